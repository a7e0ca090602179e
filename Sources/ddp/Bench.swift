import ArgumentParser
import SwiftDDPBLAS
import SwiftDDPCollectives
import SwiftDDPDatasets
import Foundation
import SwiftDDPMPI
import SwiftDDPNN
import SwiftDDPTraining
/// `ddp bench`: measured speed, as JSON.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks with JSON output: training throughput and step-time breakdown, all-reduce bandwidth.",
        subcommands: [TrainBench.self, AllReduceBench.self])
}

/// Writes `object` as pretty JSON to `path` (or stdout when nil).
func emitJSON(_ object: [String: Any], to path: String?) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    if let path {
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    } else {
        print(String(decoding: data, as: UTF8.self))
    }
}

func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    return s.isEmpty ? .nan : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Ranks whose times at one exchange differ by more than this (seconds) count as a stall there.
let stallThreshold = 0.5e-3

/// `ddp bench train`: samples/s and where the step time goes, median of several repeats.
struct TrainBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training throughput and step-time breakdown (forward, backward, gradient sync, SyncBN, optimizer) "
            + "with the GEMM floor.")

    @Option(help: "Model: mlp, cnn, resnet, plain (as ddp train's --model).") var model = Architecture.mlp
    @Option(help: "mlp: hidden layers (default 4); resnet, plain: 6n+2 layers (default 20).") var depth: Int?
    @Option(help: "mlp: units per hidden layer (default 512); cnn, resnet, plain: channels (32, 16, 16).")
    var width: Int?
    @Option(help: "Activation.") var activation = ActivationKind.relu
    @Option(help: "Normalization: none, bn, syncbn, groupnorm.") var norm = NormKind.syncbn
    @Option(help: "GroupNorm's groups (--norm groupnorm).") var groups = 8
    @Option(help: "Per-rank batch size.") var batchSize = 128
    @Option(help: "Measured steps per repeat.") var steps = 200
    @Option(help: "Warm-up steps per repeat (not measured).") var warmup = 20
    @Option(help: "Repeats (the median is reported).") var repeats = 3
    @Option(help: "Gradient averaging: sharded, shared, flat or bucketed (see ddp train --help).")
    var gradSync = GradientSyncMode.sharded
    @Option(help: "Ranks per SyncBN group, consecutive ranks (default: all ranks).") var syncbnGroupSize: Int?
    @Option(help: "Fashion-MNIST directory (synthetic data if missing).") var data = "/usr/share/datasets/fashion-mnist"
    @Option(help: "Write the JSON here instead of stdout.") var json: String?

    var modelConfiguration: ModelConfiguration {
        ModelConfiguration(architecture: model, depth: depth ?? (model == .mlp ? 4 : nil),
                           width: width ?? (model == .mlp ? 512 : nil), activation: activation, norm: norm,
                           groups: groups)
    }

    func validate() throws {
        if steps < 1 || warmup < 0 || repeats < 1 || batchSize < 1 {
            throw ValidationError("steps, repeats and batch size must be positive")
        }
        if model == .cnn, depth != nil { throw ValidationError("--depth does not apply to --model cnn") }
        if let json { try checkWritable(json, option: "--json") }
    }

    func run() throws {
        try Job.run(setUp: { group -> (Dataset, Dataset) in
            let loaded = try? FashionMNIST.load(directory: data)
            return try loaded ?? (SyntheticData.make(count: 60_000), SyntheticData.make(count: 1000, testSplit: true))
        }, work: { group, datasets in
            var config = TrainingConfiguration()
            config.model = modelConfiguration
            config.batchSize = batchSize
            config.epochs = 1000
            config.maxSteps = warmup + steps
            config.evaluate = false
            config.logEvery = Int.max / 2
            config.schedule = .constant
            config.gradSync = gradSync
            config.syncBNGroupSize = syncbnGroupSize
            var samplesPerSecond: [Double] = []
            var breakdowns: [StepTimings] = []
            var layerTimes: [(forward: [String: Double], backward: [String: Double])] = []
            typealias Split = (perRank: [ExchangeSplit], entries: Int)
            var splits: [(syncBN: Split?, gradientSync: Split?)] = []
            var lastTrainer: Trainer?
            var sharedMemoryUsed = false, shardedUpdate = false, hierarchical = false
            // Placement can change while the benchmark runs (a VM's vCPUs migrate): probe both ends.
            let roundTripBefore = try group.rankRoundTripNanoseconds()
            for _ in 0..<repeats {
                let trainer = try Trainer(config: config, group: group, train: datasets.0, test: datasets.1)
                sharedMemoryUsed = trainer.gradientSync.usesSharedMemory
                shardedUpdate = trainer.optimizer is ShardedOptimizer
                hierarchical = trainer.gradientSync.isHierarchical
                var atWarmup = StepTimings()
                // Per leaf kind; the timer's clock reads (~20 ns each, 4 per leaf) are in the step time too.
                let timer = LayerTimer(leaves: trainer.model.leaves)
                trainer.model.runner.timer = timer
                // Each collective's duration on every rank, to tell the exchange from waiting for a rank.
                let synchronized = trainer.model.batchNormLayers.filter(\.isSynchronized)
                let syncBNLog = ExchangeLog(capacity: (warmup + steps) * 2 * synchronized.count)
                for bn in synchronized { bn.exchangeLog = syncBNLog }
                let gradientLog = ExchangeLog(capacity: warmup + steps), gradientSync = trainer.gradientSync
                trainer.observers.append(PhaseObserver(after: .reduce) { _ in
                    gradientLog.record(gradientSync.communicationSeconds)
                })
                trainer.observers.append(PhaseObserver(after: .update) { step in
                    if step.number == warmup {
                        atWarmup = trainer.timings
                        timer.reset()
                        syncBNLog.reset()
                        gradientLog.reset()
                    }
                })
                _ = try trainer.run()
                layerTimes.append((timer.forwardByKind, timer.backwardByKind))
                splits.append((try split(syncBNLog, exchangeGroup: synchronized.first?.group, world: group),
                               try split(gradientLog, exchangeGroup: group, world: group)))
                lastTrainer = trainer
                var window = trainer.timings.minus(atWarmup)
                // the slowest rank sets the pace
                var total = [window.total]
                try group.allReduce(&total, op: .max)
                window.total = total[0]
                samplesPerSecond.append(Double(steps * batchSize * group.worldSize) / window.total)
                breakdowns.append(window)
            }
            let roundTripAfter = try group.rankRoundTripNanoseconds()
            // The GEMM floor is the MLP's matrix products (as in earlier records); the layer floor,
            // every model's Conv2d and Linear layers run alone.
            let floor = model == .mlp ? try gemmFloor(group: group) : nil
            guard let lastTrainer, let timer = lastTrainer.model.runner.timer else { return }
            let layerFloor = try LayerFloor.measure(model: lastTrainer.model, timer: timer, warmup: warmup,
                                                    steps: steps, repeats: repeats, group: group)
            // Every rank knows the same samples/s (the slowest rank's time), so all pick the same repeat.
            let bestIndex = samplesPerSecond.firstIndex(of: median(samplesPerSecond)) ?? 0
            let best = breakdowns[bestIndex]
            let perStep = { (v: Double) in v / Double(steps) * 1000 }
            func splitJSON(_ split: Split?) -> Any {
                guard let (perRank, entries) = split else { return NSNull() }
                return ["entries_per_step": Double(entries) / Double(steps),
                        "transfer_per_rank": perRank.map { perStep($0.transfer) },
                        "waiting_per_rank": perRank.map { perStep($0.waiting) },
                        "waiting_in_stalls_per_rank": perRank.map { perStep($0.waitingInStalls) },
                        "stalls_per_step_per_rank": perRank.map { Double($0.stalls) / Double(steps) }]
            }
            let layers = layerTimes[bestIndex]
            // Each rank's phases, to show imbalance (time one rank spends waiting for another
            // appears in the phase holding the collective it waits in).
            let phaseNames = ["data", "forward", "backward", "gradient_sync", "syncbn_communication", "optimizer"]
            let mine = [best.data, best.forward, best.backward, best.gradientSync, best.syncBNCommunication,
                        best.optimizer].map(perStep)
            let everyRank = try group.allGather(mine)
            guard group.rank == 0 else { return }
            let perRank = (0..<group.worldSize).map { r in
                Dictionary(uniqueKeysWithValues: zip(phaseNames,
                                                     everyRank[r * phaseNames.count..<(r + 1) * phaseNames.count]))
            }
            let stepMs = perStep(best.total)
            let convolutions = lastTrainer.model.leaves.compactMap { $0 as? Conv2d }
            try emitJSON([
                "benchmark": "train", "world_size": group.worldSize,
                "model": "\(modelConfiguration.summary) \(norm.rawValue) \(activation.rawValue)",
                "batch_per_rank": batchSize, "steps": steps, "warmup": warmup, "repeats": repeats,
                "grad_sync": gradSync.rawValue, "grad_sync_shared_memory": sharedMemoryUsed,
                "grad_sync_sharded_update": shardedUpdate,
                "grad_sync_hierarchical": hierarchical,
                "small_collectives": smallCollectivesPath(group),
                "rank_round_trip_ns": ["before": roundTripBefore.map { $0 as Any } ?? NSNull(),
                                       "after": roundTripAfter.map { $0 as Any } ?? NSNull()],
                "syncbn_group_size": syncbnGroupSize ?? group.worldSize, "openblas_threads": BLAS.threadCount,
                "openblas_core": BLAS.coreName,
                "elementwise_kernels": elementwiseKernelLevel,
                "conv_layers": convolutions.count,
                "conv_winograd_weight_gradients": convolutions.filter { $0.usesWinograd(batch: batchSize) }.count,
                "onednn_avx512": Conv2d.oneDNNUsesAVX512,
                "conv_implementations": convolutions.map { conv -> [String: Any] in
                    let used = conv.implementations(batch: batchSize)
                    return ["layer": conv.description, "forward": used.forward, "backward_data": used.backwardData,
                            "backward_weights": used.backwardWeights]
                },
                "samples_per_second": median(samplesPerSecond), "samples_per_second_all": samplesPerSecond,
                "step_ms": stepMs,
                "breakdown_ms": ["data": perStep(best.data), "forward": perStep(best.forward),
                                 "backward": perStep(best.backward), "gradient_sync": perStep(best.gradientSync),
                                 "syncbn_communication": perStep(best.syncBNCommunication),
                                 "optimizer": perStep(best.optimizer),
                                 "buffer_broadcast": perStep(best.bufferBroadcast)],
                "breakdown_ms_per_rank": perRank,
                "communication_split_ms": [
                    "stall_threshold": stallThreshold * 1000,
                    "syncbn": splitJSON(splits[bestIndex].syncBN),
                    "gradient_sync": splitJSON(splits[bestIndex].gradientSync),
                ],
                // rank 0's leaves by kind; normalization includes its SyncBN communication
                "layers_ms": ["forward": layers.forward.mapValues(perStep),
                              "backward": layers.backward.mapValues(perStep)],
                "layer_floor_ms": layerFloor.seconds * 1000,
                "layer_floor_ms_by_kind": layerFloor.secondsByKind.mapValues { $0 * 1000 },
                "step_over_layer_floor": stepMs / (layerFloor.seconds * 1000),
                "gemm_floor_ms": floor.map { $0 * 1000 as Any } ?? NSNull(),
                "step_over_gemm_floor": floor.map { stepMs / ($0 * 1000) as Any } ?? NSNull(),
            ], to: json)
        })
    }

    /// This rank's log split into exchange and waiting (`ExchangeSplit`), against the other members
    /// of `exchangeGroup` (the group whose collectives were logged), and every rank's split; nil where
    /// nothing was exchanged (one member) or the logs do not line up (one overflowed, or counts differ).
    /// Element-wise reductions, not a gather of every log: the memory stays one log per rank.
    func split(_ log: ExchangeLog, exchangeGroup: (any ProcessGroup)?, world: any ProcessGroup) throws
        -> (perRank: [ExchangeSplit], entries: Int)?
    {
        let n = log.count
        var counts = [Int64(log.overflowed || exchangeGroup == nil ? -1 : n)]
        var countsMax = counts
        try world.allReduce(&counts, op: .min)
        try world.allReduce(&countsMax, op: .max)
        guard let group = exchangeGroup, group.worldSize > 1, n > 0, counts[0] == n, countsMax[0] == n else {
            return nil
        }
        let durations = log.durations
        var fastest = durations, slowest = durations
        try group.allReduce(&fastest, op: .min)
        try group.allReduce(&slowest, op: .max)
        let mine = ExchangeSplit(durations: durations, fastest: fastest, slowest: slowest,
                                 stallThreshold: stallThreshold)
        let all = try world.allGather([mine.transfer, mine.waiting, mine.waitingInStalls, Double(mine.stalls)])
        let perRank = (0..<world.worldSize).map { r in
            ExchangeSplit(transfer: all[4 * r], waiting: all[4 * r + 1], waitingInStalls: all[4 * r + 2],
                          stalls: Int(all[4 * r + 3]))
        }
        return (perRank, n)
    }

    /// Seconds per step that OpenBLAS needs for this step's matrix products alone (forward
    /// Y = X·Wᵀ for every layer, then backward from the last layer: dW = dYᵀ·X, and dX = dY·W
    /// for every layer but the first), on every rank at once; the median over repeats of the
    /// slowest rank. Every layer has its own weights, weight gradient, activations and
    /// activation gradients, in the order the model touches them, so the products meet the same
    /// cache traffic as in training (a single reused buffer set would stay in L2 and
    /// understate the floor).
    func gemmFloor(group: any ProcessGroup) throws -> Double {
        let dims = [784] + Array(repeating: modelConfiguration.width, count: modelConfiguration.depth) + [10]
        let B = batchSize, L = dims.count - 1
        func buffer(_ count: Int, _ value: Float) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
            p.initialize(repeating: value, count: count)
            return p
        }
        // activations[l]: [B, dims[l]] (input of layer l); gradients likewise.
        let activations = dims.map { buffer(B * $0, 0.5) }
        let activationGradients = dims.map { buffer(B * $0, 0.25) }
        let weights = (0..<L).map { buffer(dims[$0 + 1] * dims[$0], 0.01) }
        let weightGradients = (0..<L).map { buffer(dims[$0 + 1] * dims[$0], 0) }
        defer { for p in activations + activationGradients + weights + weightGradients { p.deallocate() } }
        func oneStep() {
            for l in 0..<L {
                let i = dims[l], o = dims[l + 1]
                BLAS.sgemm(transB: .transpose, m: B, n: o, k: i, a: activations[l], lda: i, b: weights[l], ldb: i,
                           c: activations[l + 1], ldc: o)
            }
            for l in stride(from: L - 1, through: 0, by: -1) {
                let i = dims[l], o = dims[l + 1]
                BLAS.sgemm(transA: .transpose, m: o, n: i, k: B, a: activationGradients[l + 1], lda: o,
                           b: activations[l], ldb: i, c: weightGradients[l], ldc: i)
                if l > 0 {
                    BLAS.sgemm(m: B, n: i, k: o, a: activationGradients[l + 1], lda: o, b: weights[l], ldb: i,
                               c: activationGradients[l], ldc: i)
                }
            }
        }
        for _ in 0..<warmup { oneStep() }
        var results: [Double] = []
        for _ in 0..<repeats {
            try group.barrier()
            let start = monotonicSeconds()
            for _ in 0..<steps { oneStep() }
            var t = [(monotonicSeconds() - start) / Double(steps)]
            try group.allReduce(&t, op: .max)
            results.append(t[0])
        }
        return median(results)
    }
}

extension StepTimings {
    func minus(_ o: StepTimings) -> StepTimings {
        var r = StepTimings()
        r.data = data - o.data
        r.forward = forward - o.forward
        r.backward = backward - o.backward
        r.gradientSync = gradientSync - o.gradientSync
        r.syncBNCommunication = syncBNCommunication - o.syncBNCommunication
        r.optimizer = optimizer - o.optimizer
        r.bufferBroadcast = bufferBroadcast - o.bufferBroadcast
        r.total = total - o.total
        r.diagnostics = diagnostics - o.diagnostics
        return r
    }
}

/// `ddp bench allreduce`: the gradient all-reduce path against a bare MPI_Allreduce.
struct AllReduceBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "All-reduce bandwidth, 4 KB to 64 MB: SwiftDDP's gradient averaging (one all-reduce, and through "
            + "shared memory) vs a bare MPI_Allreduce of the same bytes.")

    @Option(parsing: .upToNextOption, help: "Message sizes in bytes (default 4 KiB × 4^k up to 64 MiB).")
    var sizes: [Int] = []
    @Option(help: "Seconds to spend per size and method (iterations are chosen to fill it).") var seconds = 0.3
    @Option(help: "Repeats per size, interleaving the two methods (median reported).") var repeats = 5
    @Option(help: "Write the JSON here instead of stdout.") var json: String?

    /// The largest message: three buffers of it per rank (flat, shared, bare MPI).
    static let largestSize = 1 << 30

    func validate() throws {
        if let bad = sizes.first(where: { $0 < 4 || $0 % 4 != 0 || $0 > Self.largestSize }) {
            throw ValidationError(
                "--sizes are bytes of float32 values: multiples of 4 from 4 to \(Self.largestSize), got \(bad)")
        }
        if !(seconds > 0) || repeats < 1 { throw ValidationError("--seconds and --repeats must be positive") }
        if let json { try checkWritable(json, option: "--json") }
    }

    func run() throws {
        let byteSizes = sizes.isEmpty ? (0..<8).map { 4096 << (2 * $0) } : sizes
        try Job.run(setUp: { _ in () }, work: { group, _ in
            let world = try Communicator.world().duplicate()
            let W = group.worldSize
            var rows: [[String: Any]] = []
            for bytes in byteSizes {
                let count = bytes / 4
                // "ours": a ParameterStore's gradient buffer averaged as the trainer does
                func gradientBuffer(_ mode: GradientSyncMode) throws -> (ParameterStore, any GradientSync) {
                    let model = try Model(BareParameters(count: count), inputShape: .features(1))
                    return (model.store, try mode.make(model: model, group: group).sync)
                }
                let (store, sync) = try gradientBuffer(.flat)
                // and the shared-memory reduction (`--grad-sync shared`, one host), on its own buffer
                let (_, sharedSync) = try gradientBuffer(.shared)
                // The bare call reduces the very same buffer, so alignment and page placement
                // (which change Open MPI's shared-memory path) cannot differ between the two.
                let bare = store.gradients  // zeros: repeated sums stay finite
                /// Iterations filling `seconds`, agreed from rank 0's probe.
                func iterations(_ body: () throws -> Void) throws -> Int {
                    try body()  // warm-up
                    try group.barrier()
                    let t0 = monotonicSeconds()
                    try body()
                    var probe = [monotonicSeconds() - t0]
                    try group.broadcast(&probe, root: 0)
                    return max(3, Int(seconds / max(probe[0], 1e-7)))
                }
                func timeOnce(_ n: Int, _ body: () throws -> Void) throws -> Double {
                    try group.barrier()
                    let start = monotonicSeconds()
                    for _ in 0..<n { try body() }
                    var t = [(monotonicSeconds() - start) / Double(n)]
                    try group.allReduce(&t, op: .max)
                    return t[0]
                }
                let mpiBody = { () throws -> Void in try world.allreduce(bare, op: .sum) }
                let oursBody = { () throws -> Void in try sync.finish(wholeGradients: true) }
                let sharedBody = { () throws -> Void in try sharedSync.finish(wholeGradients: true) }
                let n = try iterations(mpiBody)
                _ = try iterations(oursBody)
                _ = try iterations(sharedBody)
                // Interleaved repeats, so drift on a shared machine hits all methods alike.
                var mpiSamples: [Double] = [], oursSamples: [Double] = [], sharedSamples: [Double] = []
                for _ in 0..<repeats {
                    mpiSamples.append(try timeOnce(n, mpiBody))
                    oursSamples.append(try timeOnce(n, oursBody))
                    sharedSamples.append(try timeOnce(n, sharedBody))
                }
                let mpiTime = median(mpiSamples), oursTime = median(oursSamples), sharedTime = median(sharedSamples)
                // bus bandwidth as the NCCL tests define it: 2(W−1)/W × bytes / time
                let factor = W > 1 ? 2 * Double(W - 1) / Double(W) : 1
                rows.append(["bytes": count * 4, "mpi_allreduce_us": mpiTime * 1e6,
                             "ddp_gradient_sync_us": oursTime * 1e6,
                             "mpi_bus_gbps": factor * Double(count * 4) / mpiTime / 1e9,
                             "ddp_bus_gbps": factor * Double(count * 4) / oursTime / 1e9,
                             "ddp_over_mpi_bandwidth": mpiTime / oursTime,
                             "ddp_shared_sync_us": sharedTime * 1e6,
                             "ddp_shared_uses_shared_memory": sharedSync.usesSharedMemory,
                             "ddp_shared_over_mpi_bandwidth": mpiTime / sharedTime])
            }
            if group.rank == 0 {
                try emitJSON(["benchmark": "allreduce", "world_size": W, "results": rows], to: json)
            }
        })
    }
}

/// How the group's small collectives (SyncBN statistics, the loss) travel, for the JSON.
func smallCollectivesPath(_ group: any ProcessGroup) -> String {
    guard let mpi = group as? MPIProcessGroup, group.worldSize > 1 else { return "none (one rank)" }
    switch mpi.smallCollectivesUseSharedMemory {
    case true?: return "shared memory"
    case false?: return "mpi"
    case nil: return "not used"
    }
}

/// A layer that is nothing but `count` parameters: the gradient buffer the all-reduce benchmark
/// averages as the trainer does. It is never run.
private final class BareParameters: Layer {
    let count: Int
    private(set) var weight = TensorSlot.unregistered
    init(count: Int) { self.count = count }
    var description: String { "BareParameters(\(count))" }
    var parameterSlots: [TensorSlot] { [weight] }
    func registerState(in scope: ParameterScope) { weight = scope.parameter("weight", shape: [count]) }
    func outputShape(for input: SampleShape) throws -> SampleShape { input }
    func forward(_ input: Matrix, training: Bool) throws -> Matrix { input }
    func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix? { gradOutput }
}
