import SwiftDDPBLAS
import SwiftDDPCollectives
import SwiftDDPDatasets
import Foundation
import SwiftDDPNN
import SwiftDDPSafeTensors
#if canImport(Glibc)
import Glibc
#endif

/// True when no element is NaN or infinite: Σ|x| (BLAS sasum, vectorized) propagates NaN and
/// infinity. (A finite sum beyond Float.greatestFiniteMagnitude also reads as non-finite; such
/// a gradient has diverged anyway.)
func allFinite(_ values: UnsafeMutableBufferPointer<Float>) -> Bool {
    guard let base = values.baseAddress, values.count > 0 else { return true }
    return BLAS.sasum(values.count, x: base).isFinite
}

/// Where the time of the training steps went (seconds, summed over steps).
public struct StepTimings: Sendable, Codable, Equatable {
    public var data = 0.0
    public var forward = 0.0
    public var backward = 0.0
    public var gradientSync = 0.0
    public var syncBNCommunication = 0.0
    public var optimizer = 0.0
    public var bufferBroadcast = 0.0
    public var total = 0.0
    /// Time spent in diagnostics (not part of `total`).
    public var diagnostics = 0.0

    public init() {}
}

/// A position in training: `step` optimizer steps done, the next batch starts at `position`
/// of this rank's indices of `epoch`.
public struct ResumePoint: Sendable, Equatable {
    public var step: Int
    public var epoch: Int
    public var position: Int
    /// The ranks of the run that wrote the checkpoint, when they were not this job's.
    public var writtenByRanks: Int? = nil
    public init(step: Int, epoch: Int, position: Int) {
        self.step = step
        self.epoch = epoch
        self.position = position
    }
}

/// A deliberate failure of one rank at one step, for testing failure handling.
public struct FaultInjection: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        /// Throw an error (the job must end with the rank and the message).
        case `throw`
        /// SIGKILL itself, like `kill -9`.
        case kill
        /// Put NaN into this rank's gradients (all ranks must agree to stop or skip).
        case nan
    }
    public var kind: Kind
    public var rank: Int
    public var step: Int
    public init(kind: Kind, rank: Int, step: Int) {
        self.kind = kind
        self.rank = rank
        self.step = step
    }
}

/// What a finished run reports (identical on every rank).
public struct TrainingSummary: Sendable {
    /// Steps skipped because their loss or gradients were not finite (`skipNonFinite`).
    public var skippedSteps = 0
    public var steps = 0
    public var epochs = 0
    public var trainingSeconds = 0.0
    public var wallSeconds = 0.0
    /// Training samples processed by all ranks per second of training time.
    public var samplesPerSecond = 0.0
    public var finalLoss = Double.nan
    public var testLoss: Double? = nil
    public var testAccuracy: Double? = nil
    /// With precise BN: the test loss and accuracy with the running averages of training, before
    /// the statistics were recomputed (`testLoss`/`testAccuracy` are then the precise ones).
    public var testLossEMA: Double? = nil
    public var testAccuracyEMA: Double? = nil
    /// Every test evaluation, in order: (epoch index, test loss, test accuracy).
    public var evaluations: [(epoch: Int, loss: Double, accuracy: Double)] = []
    /// Per epoch trained in this run: (epoch index, the fraction of the epoch's training samples
    /// the model classified right in its training forward: all ranks, BatchNorm in training mode,
    /// weights changing along the epoch, as He et al. plot training error).
    public var trainAccuracyByEpoch: [(epoch: Int, accuracy: Double)] = []

    public init() {}
    /// Global mean training loss of every step, in order.
    public var stepLosses: [Double] = []
    /// Diagnostics records (with `--diagnostics-every`), in order.
    public var diagnostics: [DiagnosticsRecord] = []
    public var timings = StepTimings()
}

/// Data-parallel training of one model replica per rank, in lockstep:
///
/// 1. every rank checks that all ranks hold the same configuration;
/// 2. rank 0's parameters and buffers are broadcast, so every replica starts identical;
/// 3. each step, every rank takes its shard of the global batch (`DistributedSampler`), runs
///    forward and backward (SyncBatchNorm layers communicate inside), the gradients are
///    averaged over the world (`GradientSynchronizer`), and every rank applies the same update.
public final class Trainer {
    public let config: TrainingConfiguration
    public let group: any ProcessGroup
    public let model: Model
    public let optimizer: any Optimizer
    public let synchronizer: GradientSynchronizer
    public let train: Dataset
    public let test: Dataset
    /// The group SyncBN layers reduce over (the world, or this rank's subgroup).
    public let syncBNGroup: (any ProcessGroup)?
    public var log: (String) -> Void
    public var metrics: MetricsWriter?
    /// TensorBoard event files, fed the same records as `metrics`.
    public var tensorBoard: TensorBoardWriter?
    /// Called after every optimizer step with (step, epoch, global loss); for diagnostics.
    public var afterStep: ((Int, Int, Double) throws -> Void)?
    /// Show a redrawn progress line (rank 0 on a terminal) instead of periodic lines.
    public var interactiveProgress = false
    /// Time per phase, summed over the steps run so far (read it from `afterStep` to measure a
    /// window of steps, as `ddp bench` does).
    public private(set) var timings = StepTimings()
    /// Where to continue from (set by `Checkpointer.resume`); nil starts at step 0.
    public var resumePoint: ResumePoint?
    /// Saves checkpoints every `checkpointer.every` steps.
    public var checkpointer: Checkpointer?
    /// Skip steps whose loss or averaged gradients are not finite instead of stopping.
    public var skipNonFinite = false
    /// Resume a checkpoint written by another number of ranks even where local BatchNorm's
    /// statistics then cover other samples (`--allow-bn-regroup`).
    public var allowBatchNormRegroup = false
    /// Deliberate failures, for testing how the job ends (hidden `--debug-fail-*` options).
    public var faultInjection: FaultInjection?
    /// Called with (epoch, step, this rank's sample indices) before each step's forward pass;
    /// tests read the order the ranks trained in (hidden `--debug-trace`).
    public var batchObserver: ((Int, Int, ArraySlice<Int>) -> Void)?
    /// A hash of this rank's parameters, buffers and counters right after the initial broadcast:
    /// equal on every rank when the broadcast works, whatever each rank initialized.
    public private(set) var initialStateHash: UInt64 = 0
    /// The same hash just before the broadcast (what this rank built itself).
    public private(set) var builtStateHash: UInt64 = 0

    private let loss: any Loss
    /// How the model's BatchNorm layers normalize: `config.model.norm`, or for a model given to
    /// `init`, what its layers do (syncbn if any is synchronized).
    private let batchNormMode: NormKind
    private let batchNorms: [BatchNorm]
    /// The model's dropout layers and their per-row keys: (epoch, data-set index) of each row.
    private let dropouts: [Dropout]
    private let sampleKeys: UnsafeMutableBufferPointer<UInt64>
    /// Scratch for the per-step loss all-reduce (kept to avoid an allocation per step).
    private let lossScratch = UnsafeMutableBufferPointer<Double>.allocate(capacity: 2)
    private let batchInputs = Workspace()
    private let augmentScratch = Workspace()
    private var batchLabels: [Int32]
    private let schedule: LearningRateSchedule
    public let diagnostics: Diagnostics?
    public let covariateShiftProbe: CovariateShiftProbe?

    /// - Parameters:
    ///   - config: the run; validated here.
    ///   - group: the ranks training together.
    ///   - train, test: the data; every rank holds the whole set and reads its shard.
    ///   - model: a model of your own (its BatchNorm layers as they are: convert them with
    ///     `convertSyncBatchNorm` first); nil builds `config.model`. Rank 0's state is broadcast.
    ///   - loss: the loss (default: softmax cross-entropy).
    ///   - initialState: a state dict to start from (`--init-from`), loaded before the broadcast.
    ///   - initSeedOffset: added to the initialization seed on this rank only; tests set it to
    ///     the rank so that only the broadcast can make the replicas equal.
    public init(config: TrainingConfiguration, group: any ProcessGroup, train: Dataset, test: Dataset,
                model customModel: Model? = nil, loss: (any Loss)? = nil,
                initialState: [String: TensorData]? = nil, initSeedOffset: UInt64 = 0,
                log: @escaping (String) -> Void = { _ in }) throws
    {
        try Trainer.validate(config, worldSize: group.worldSize, train: train, test: test, model: customModel)
        self.loss = loss ?? SoftmaxCrossEntropy()
        batchNormMode = customModel.map { m in
            m.batchNormLayers.isEmpty ? .none : m.batchNormLayers.contains { $0.isSynchronized } ? .syncbn : .bn
        } ?? config.model.norm
        self.config = config
        self.group = group
        self.train = train
        self.test = test
        self.log = log

        // 1. Same configuration everywhere, or nobody starts.
        let fingerprint = customModel.map { Trainer.fingerprint(config, $0) } ?? config.fingerprint
        let fingerprints = try group.allGather([fingerprint])
        if let odd = fingerprints.firstIndex(where: { $0 != fingerprints[0] }) {
            throw TrainingError("the configuration of rank \(odd) differs from rank 0's: every rank must get the same options",
                                agreed: true)
        }

        // 2. SyncBN groups: the whole world, or consecutive blocks of G ranks.
        if customModel == nil && config.model.norm == .syncbn {
            if let g = config.syncBNGroupSize, g < group.worldSize {
                syncBNGroup = try group.split(color: group.rank / g, key: group.rank)!
            } else {
                syncBNGroup = group
            }
        } else {
            syncBNGroup = nil
        }
        let model = try customModel ?? config.model.build(seed: config.seed &+ initSeedOffset,
                                                          syncGroup: syncBNGroup, rank: group.rank)
        if let initialState {
            do { try model.loadStateDict(initialState) } catch { throw TrainingError("--init-from: \(error)") }
        }
        builtStateHash = Trainer.stateHash(model.store)
        try Trainer.broadcastState(model.store, from: 0, in: group, includeParameters: true)
        initialStateHash = Trainer.stateHash(model.store)
        self.model = model

        switch config.optimizer {
        case .sgd:
            optimizer = try SGD(store: model.store, learningRate: config.learningRate, momentum: config.momentum,
                                dampening: config.dampening, nesterov: config.nesterov, weightDecay: config.weightDecay)
        case .adam, .adamw:
            optimizer = try Adam(store: model.store, learningRate: config.learningRate, weightDecay: config.weightDecay,
                                 decoupledWeightDecay: config.optimizer == .adamw)
        }
        let kind: LearningRateSchedule.Kind
        switch config.schedule {
        case .constant: kind = .constant
        case .step: kind = .step(stepSize: config.stepSize, gamma: config.gamma)
        case .cosine:
            let steps = Trainer.totalSteps(config: config, datasetSize: train.count, worldSize: group.worldSize)
            kind = .cosine(totalSteps: max(1, steps - config.warmupSteps), minimum: 0)
        }
        schedule = LearningRateSchedule(base: config.learningRate, kind: kind, warmupSteps: config.warmupSteps)
        // The covariate-shift probe rewrites parameters on every rank, which one shared copy forbids.
        synchronizer = try GradientSynchronizer(model: model, group: group, mode: config.gradSync,
                                                optimizer: config.covariateShift ? nil : optimizer,
                                                bucketBytes: config.bucketBytes)
        batchLabels = [Int32](repeating: 0, count: config.batchSize)
        batchNorms = model.batchNormLayers
        dropouts = model.leaves.compactMap { $0 as? Dropout }
        sampleKeys = .allocate(capacity: max(config.batchSize, 1))
        sampleKeys.initialize(repeating: 0)
        let built = model
        diagnostics = config.diagnosticsEvery.map { Diagnostics(model: built, group: group, every: $0) }
        if config.covariateShift {
            let n = min(config.probeSize, train.count)
            covariateShiftProbe = CovariateShiftProbe(model: model, inputs: Array(train.inputs[0..<n * train.features]),
                                                      labels: Array(train.labels[0..<n]))
        } else {
            covariateShiftProbe = nil
        }
        let sync = synchronizer
        model.onGradientsReady = { leaf in try sync.gradientsReady(leaf: leaf) }
    }

    deinit {
        lossScratch.deallocate()
        sampleKeys.deallocate()
    }

    /// The configuration's hash with the model's parameter names and shapes, which the
    /// configuration does not describe for a model given to `init`.
    static func fingerprint(_ config: TrainingConfiguration, _ model: Model) -> Int64 {
        var hash = FNV1a()
        withUnsafeBytes(of: config.fingerprint) { hash.combine($0) }
        for slot in model.store.parameterSlots {
            hash.combine(slot.name.utf8)
            slot.shape.withUnsafeBytes { hash.combine($0) }
        }
        return Int64(bitPattern: hash.value)
    }

    private func inject(_ fault: FaultInjection) throws {
        switch fault.kind {
        case .throw:
            throw TrainingError("injected failure at step \(fault.step + 1)")
        case .kill:
            kill(getpid(), SIGKILL)
        case .nan:
            model.store.gradients[0] = .nan
        }
    }

    /// FNV-1a over the bytes of this rank's parameters, buffers and counters.
    public func stateHash() -> UInt64 { Trainer.stateHash(model.store) }

    static func stateHash(_ store: ParameterStore) -> UInt64 {
        var hash = FNV1a()
        hash.combine(UnsafeRawBufferPointer(store.parameters))
        hash.combine(UnsafeRawBufferPointer(store.buffers))
        store.counters.withUnsafeBytes { hash.combine($0) }
        return hash.value
    }

    public var sampler: DistributedSampler {
        DistributedSampler(datasetSize: train.count, worldSize: group.worldSize, rank: group.rank,
                           shuffle: config.shuffle, seed: config.seed, dropLast: config.dropLast)
    }

    public var stepsPerEpoch: Int { (sampler.samplesPerRank + config.batchSize - 1) / config.batchSize }

    public var totalSteps: Int { Trainer.totalSteps(config: config, datasetSize: train.count, worldSize: group.worldSize) }

    /// Optimizer steps of a run: all epochs, or `maxSteps` if that is fewer.
    public static func totalSteps(config: TrainingConfiguration, datasetSize: Int, worldSize: Int) -> Int {
        let sampler = DistributedSampler(datasetSize: datasetSize, worldSize: worldSize, rank: 0,
                                          shuffle: false, dropLast: config.dropLast)
        let all = (sampler.samplesPerRank + config.batchSize - 1) / config.batchSize * config.epochs
        return min(all, config.maxSteps ?? all)
    }

    /// Copies rank `root`'s buffers (and, if asked, parameters) to every rank: one collective
    /// per flat store.
    static func broadcastState(_ store: ParameterStore, from root: Int, in group: any ProcessGroup,
                               includeParameters: Bool) throws
    {
        guard group.worldSize > 1 else { return }
        if includeParameters { try group.broadcast(store.parameters, root: root) }
        try group.broadcast(store.buffers, root: root)
        if !store.counters.isEmpty { try group.broadcast(&store.counters, root: root) }
    }

    // MARK: Training

    /// Runs the configured epochs (or `maxSteps`), evaluating after each epoch.
    public func run() throws -> TrainingSummary {
        var summary = TrainingSummary()
        let wallStart = monotonicSeconds()
        let W = group.worldSize
        let total = totalSteps
        var step = resumePoint?.step ?? 0
        timings = StepTimings()
        // 1/W on the loss gradient: the gradient all-reduce then sums to the average.
        let gradientScale = 1 / Float(W)
        let broadcastLocalBuffers = config.broadcastBuffers && batchNormMode == .bn && W > 1
        var windowSamples = 0, windowSeconds = 0.0
        var windowLoss = 0.0, windowSteps = 0  // the log line's loss: the mean since the last one
        var windowStart = timings  // communication times per step over the window
        let firstStep = step
        var samplesProcessed = 0
        summary.stepLosses.reserveCapacity(total - step)  // no reallocation inside the loop
        let firstEpoch = resumePoint?.epoch ?? 0
        // [correct, seen] per epoch on this rank, summed over the ranks at the end
        var trainCounts = [Double](repeating: 0, count: 2 * max(config.epochs - firstEpoch, 1))
        epochs: for epoch in firstEpoch..<max(config.epochs, firstEpoch + 1) {
            summary.epochs = epoch + 1
            let indices = sampler.indices(epoch: epoch)
            var position = epoch == firstEpoch ? resumePoint?.position ?? 0 : 0
            while position < indices.count {
                if step >= total { break epochs }
                let stepStart = monotonicSeconds()
                let end = min(position + config.batchSize, indices.count)
                let rows = end - position
                batchObserver?(epoch, step, indices[position..<end])
                let x = batchInputs.matrix(rows: rows, cols: train.features)
                batchLabels.withUnsafeMutableBufferPointer { labels in
                    train.gather(indices[position..<end], inputs: x.base, labels: labels.baseAddress!)
                }
                if config.augment {
                    Augmentation.cropAndFlip(x.base, shape: train.sampleShape, indices: indices[position..<end],
                                             seed: config.seed, epoch: epoch, scratch: augmentScratch)
                }
                if !dropouts.isEmpty {
                    // A sample's masks depend on the sample and the epoch, not on the rank it lands on.
                    for r in 0..<rows { sampleKeys[r] = UInt64(epoch) << 40 ^ UInt64(indices[position + r]) }
                    for d in dropouts { d.sampleKeys = UnsafeBufferPointer(rebasing: sampleKeys[0..<rows]) }
                }
                position = end
                var t = monotonicSeconds()
                timings.data += t - stepStart

                if broadcastLocalBuffers {
                    try Trainer.broadcastState(model.store, from: 0, in: group, includeParameters: false)
                    let now = monotonicSeconds(); timings.bufferBroadcast += now - t; t = now
                }
                for bn in batchNorms { bn.resetTimers() }
                synchronizer.resetTimers()
                let diagnosing = diagnostics?.isDue(step: step) ?? false
                if diagnosing { diagnostics!.arm() }

                let logits = try model.forward(x, training: true)
                let (localLoss, correct) = try batchLabels.withUnsafeBufferPointer { labels in
                    try loss.forward(logits: logits, labels: UnsafeBufferPointer(rebasing: labels[0..<rows]),
                                     gradientScale: gradientScale)
                }
                trainCounts[2 * (epoch - firstEpoch)] += Double(correct)
                trainCounts[2 * (epoch - firstEpoch) + 1] += Double(rows)
                var now = monotonicSeconds(); timings.forward += now - t; t = now

                try model.backward(loss.backward())
                for d in dropouts { d.sampleKeys = nil }  // other forwards (diagnostics, precise BN) draw in order
                var syncbnSeconds = 0.0
                for bn in batchNorms { syncbnSeconds += bn.communicationSeconds }
                now = monotonicSeconds()
                timings.backward += now - t - synchronizer.communicationSeconds
                t = now
                if let fault = faultInjection, fault.rank == group.rank, fault.step == step {
                    try inject(fault)
                }
                // Sharded sync leaves each rank only its part of the sums unless all are read here.
                try synchronizer.finish(wholeGradients: diagnosing || skipNonFinite)
                now = monotonicSeconds()
                timings.gradientSync += synchronizer.communicationSeconds
                timings.syncBNCommunication += syncbnSeconds
                t = now

                // The global loss: mean of the ranks' batch means (what the averaged gradient descends).
                lossScratch[0] = localLoss
                try group.allReduce(UnsafeMutableBufferPointer(rebasing: lossScratch[0..<1]), op: .sum)
                let globalLoss = lossScratch[0] / Double(W)
                // Averaged gradients are identical on every rank, so these checks agree everywhere
                // without another collective (a NaN on any rank reaches all through the sum).
                // Skipping needs the gradients checked before the update (a pass over memory);
                // stopping lets the optimizer's own pass detect them (below).
                if !globalLoss.isFinite || (skipNonFinite && !allFinite(model.store.gradients)) {
                    let what = globalLoss.isFinite ? "gradients" : "loss (\(globalLoss))"
                    guard skipNonFinite else {
                        throw TrainingError("non-finite \(what) at step \(step + 1); stopping (--skip-nonfinite skips such steps)",
                                            agreed: true)
                    }
                    summary.skippedSteps += 1
                    if group.rank == 0 { log("warning: skipped step \(step + 1): non-finite \(what)") }
                    diagnostics?.disarm()
                    step += 1
                    continue
                }

                var diagnosticSeconds = 0.0
                var record: DiagnosticsRecord? = nil
                if diagnosing {
                    record = try diagnostics!.collect(step: step, epoch: epoch)
                    covariateShiftProbe?.rememberParametersBeforeStep()
                    now = monotonicSeconds(); diagnosticSeconds += now - t; t = now
                }

                optimizer.learningRate = schedule.learningRate(at: step)
                guard try synchronizer.updateParameters(with: optimizer) else {
                    // Training stops here, so the partly non-finite parameters are never saved.
                    throw TrainingError("non-finite gradients at step \(step + 1); stopping (--skip-nonfinite skips such steps)",
                                        agreed: true)
                }
                now = monotonicSeconds(); timings.optimizer += now - t

                if diagnosing, var r = record {
                    try covariateShiftProbe?.measure(into: &r)
                    let after = monotonicSeconds()
                    diagnosticSeconds += after - now
                    now = after
                    record = r
                }
                timings.diagnostics += diagnosticSeconds
                timings.total += now - stepStart - diagnosticSeconds
                windowSeconds += now - stepStart - diagnosticSeconds
                windowSamples += rows
                samplesProcessed += rows

                summary.stepLosses.append(globalLoss)
                windowLoss += globalLoss
                windowSteps += 1
                if var r = record {
                    r.loss = globalLoss
                    writeMetrics(r.json)
                    summary.diagnostics.append(r)
                }
                summary.finalLoss = globalLoss
                step += 1

                if step % config.logEvery == 0 || step == total {
                    var window = [Double(windowSamples), windowSeconds]
                    try group.allReduce(&window, op: .max)  // slowest rank sets the pace
                    let throughput = window[1] > 0 ? Double(windowSamples * W) / window[1] : 0
                    windowSamples = 0
                    windowSeconds = 0
                    let meanLoss = windowLoss / Double(windowSteps)
                    let perStep = 1000 / Double(windowSteps)
                    writeMetrics(["kind": "step", "step": step, "epoch": epoch + 1, "loss": globalLoss,
                                  "mean_loss": meanLoss, "lr": Double(optimizer.learningRate),
                                  "samples_per_second": throughput,
                                  "syncbn_ms":
                                      (timings.syncBNCommunication - windowStart.syncBNCommunication) * perStep,
                                  "grad_sync_ms": (timings.gradientSync - windowStart.gradientSync) * perStep])
                    windowLoss = 0
                    windowSteps = 0
                    windowStart = timings
                    let elapsed = monotonicSeconds() - wallStart
                    let remaining = elapsed / Double(step - firstStep) * Double(total - step)
                    progress(step: step, total: total, epoch: epoch, loss: meanLoss, throughput: throughput,
                             elapsed: elapsed, remaining: remaining)
                }
                try afterStep?(step, epoch, globalLoss)
                if let checkpointer, step % checkpointer.every == 0 {
                    try checkpointer.save(self, at: ResumePoint(step: step, epoch: epoch, position: position))
                }
            }
            if config.evaluate && (epoch + 1 < config.epochs) && step < total {
                try evaluateAndReport(epoch: epoch, into: &summary)
            }
        }
        if interactiveProgress { log("") }
        summary.steps = step
        summary.timings = timings
        try group.allReduce(&trainCounts, op: .sum)
        summary.trainAccuracyByEpoch = (0..<(summary.epochs - firstEpoch)).compactMap { e in
            trainCounts[2 * e + 1] > 0 ? (firstEpoch + e, trainCounts[2 * e] / trainCounts[2 * e + 1]) : nil
        }
        var trainTime = [timings.total]
        try group.allReduce(&trainTime, op: .max)
        summary.trainingSeconds = trainTime[0]
        let samples = Double(samplesProcessed * W)  // the sampler gives every rank the same count
        summary.samplesPerSecond = trainTime[0] > 0 ? samples / trainTime[0] : 0
        if let samples = config.preciseBNSamples, !model.batchNormLayers.isEmpty {
            // with evaluation, the test set first with the running averages, then with these
            if config.evaluate {
                try evaluateAndReport(epoch: summary.epochs - 1, into: &summary, label: "running averages")
                (summary.testLossEMA, summary.testAccuracyEMA) = (summary.testLoss, summary.testAccuracy)
            }
            let used = try recomputeBatchNormStatistics(samples: samples, epoch: summary.epochs)
            log("precise BN: running statistics recomputed over \(used) training samples")
            if config.evaluate { try evaluateAndReport(epoch: summary.epochs - 1, into: &summary, label: "precise BN") }
        } else if config.evaluate {
            try evaluateAndReport(epoch: summary.epochs - 1, into: &summary)
        }
        summary.wallSeconds = monotonicSeconds() - wallStart
        var record: [String: Any] = ["kind": "summary", "steps": summary.steps, "wall_seconds": summary.wallSeconds,
                                     "training_seconds": summary.trainingSeconds,
                                     "samples_per_second": summary.samplesPerSecond, "world_size": W,
                                     "final_loss": summary.finalLoss]
        if let acc = summary.testAccuracy { record["test_accuracy"] = acc }
        if let l = summary.testLoss { record["test_loss"] = l }
        if let acc = summary.testAccuracyEMA { record["test_accuracy_ema"] = acc }
        if let l = summary.testLossEMA { record["test_loss_ema"] = l }
        writeMetrics(record)
        return summary
    }

    private func evaluateAndReport(epoch: Int, into summary: inout TrainingSummary, label: String? = nil) throws {
        let (testLoss, accuracy) = try evaluate()
        summary.testLoss = testLoss
        summary.testAccuracy = accuracy
        summary.evaluations.append((epoch, testLoss, accuracy))
        var record: [String: Any] = ["kind": "eval", "epoch": epoch + 1, "test_loss": testLoss,
                                     "test_accuracy": accuracy]
        if let label { record["statistics"] = label }
        writeMetrics(record)
        if interactiveProgress { log("") }
        log(String(format: "epoch %d  test loss %.4f  test accuracy %.2f%%", epoch + 1, testLoss, accuracy * 100)
            + (label.map { " (\($0))" } ?? ""))
    }

    /// Precise BN: replaces every BatchNorm's running statistics by the average over batches of a
    /// fixed set of `samples` training samples (the first of the epoch-0 order, each rank its
    /// shard, in training-size batches, so each batch normalizes as in training: per rank, per
    /// SyncBN group or over all ranks), forward only. Where ranks normalize apart (local BN,
    /// SyncBN subgroups) their averages are then averaged over all ranks. Returns the samples used.
    @discardableResult
    public func recomputeBatchNormStatistics(samples: Int, epoch: Int) throws -> Int {
        let W = group.worldSize, B = config.batchSize
        let order = sampler.indices(epoch: 0)
        // whole batches on every rank (at least one), and no more than an epoch
        let batches = max(1, min(samples / (W * B), order.count / B))
        let batchNorms = model.batchNormLayers
        for bn in batchNorms { bn.beginPreciseStatistics() }
        defer { for bn in batchNorms { bn.endPreciseStatistics() } }
        let inputs = Workspace()
        var used = [0.0]
        for b in 0..<batches {
            let range = order[(b * B)..<min((b + 1) * B, order.count)]
            used[0] += Double(range.count)
            let x = inputs.matrix(rows: range.count, cols: train.features)
            batchLabels.withUnsafeMutableBufferPointer { labels in
                train.gather(range, inputs: x.base, labels: labels.baseAddress!)
            }
            if config.augment {
                Augmentation.cropAndFlip(x.base, shape: train.sampleShape, indices: range, seed: config.seed,
                                         epoch: epoch, scratch: augmentScratch)
            }
            _ = try model.forward(x, training: true)
        }
        for bn in batchNorms where (bn.group?.worldSize ?? 1) < W {
            for slot in [bn.runningMeanSlot, bn.runningVarSlot].compactMap({ $0 }) {
                let values = UnsafeMutableBufferPointer(start: model.store.buffer(slot), count: slot.count)
                try group.allReduce(values, op: .sum)
                for i in values.indices { values[i] /= Float(W) }
            }
        }
        try group.allReduce(&used, op: .sum)
        return Int(used[0])
    }

    /// Loss and accuracy over the whole test set: each rank evaluates a contiguous shard with
    /// the running statistics, and the sums are all-reduced.
    public func evaluate() throws -> (loss: Double, accuracy: Double) {
        if config.broadcastBuffers && batchNormMode == .bn {
            try Trainer.broadcastState(model.store, from: 0, in: group, includeParameters: false)
        }
        let W = group.worldSize, r = group.rank, n = test.count
        let lo = n * r / W, hi = n * (r + 1) / W
        var lossSum = 0.0, correct = 0
        var labels = [Int32](repeating: 0, count: config.evalBatchSize)
        let inputs = Workspace()
        var start = lo
        while start < hi {
            let end = min(start + config.evalBatchSize, hi)
            let x = inputs.matrix(rows: end - start, cols: test.features)
            labels.withUnsafeMutableBufferPointer { l in
                test.gather(Array(start..<end)[...], inputs: x.base, labels: l.baseAddress!)
            }
            let logits = try model.forward(x, training: false)
            let (batchLoss, batchCorrect) = try labels.withUnsafeBufferPointer {
                try loss.forward(logits: logits, labels: UnsafeBufferPointer(rebasing: $0[0..<(end - start)]))
            }
            lossSum += batchLoss * Double(end - start)
            correct += batchCorrect
            start = end
        }
        var totals = [lossSum, Double(correct), Double(hi - lo)]
        try group.allReduce(&totals, op: .sum)
        return (totals[0] / max(totals[2], 1), totals[1] / max(totals[2], 1))
    }

    private func writeMetrics(_ record: [String: Any]) {
        metrics?.write(record)
        tensorBoard?.write(record)
    }

    /// The progress line; `loss` is the mean over the steps since the previous line.
    private func progress(step: Int, total: Int, epoch: Int, loss: Double, throughput: Double,
                          elapsed: Double, remaining: Double) {
        let time = "\(clock(elapsed)) elapsed" + (step < total ? ", ETA \(clock(remaining))" : "")
        if interactiveProgress {
            let width = 30
            let filled = total > 0 ? width * step / total : width
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            log(String(format: "\r\u{1B}[K[%@] %d/%d  epoch %d  loss %.4f  %.0f samples/s  %@", bar, step, total,
                       epoch + 1, loss, throughput, time))
        } else {
            log(String(format: "step %d/%d  epoch %d  loss %.4f  lr %.4g  %.0f samples/s  %@", step, total, epoch + 1,
                       loss, Double(optimizer.learningRate), throughput, time))
        }
    }

    /// 75 s → "1:15", 3725 s → "1:02:05".
    private func clock(_ seconds: Double) -> String {
        let s = Int(seconds.isFinite ? max(seconds, 0).rounded() : 0)
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
            : String(format: "%d:%02d", s / 60, s % 60)
    }

    /// The model's state dict with the configuration as metadata, written atomically.
    public func saveModel(to path: String) throws {
        try SafeTensors.write(model.stateDict(), metadata: ["format": "pt", "swiftddp_config": config.json], to: path)
    }

    /// The optimizer's state (momentum buffers or Adam moments, keyed `state.<param>.<what>`)
    /// in its own safetensors file, written atomically.
    public func saveOptimizer(to path: String) throws {
        try SafeTensors.write(optimizer.stateDict(), metadata: ["optimizer": config.optimizer.rawValue], to: path)
    }

    /// Restores optimizer state saved by `saveOptimizer` (collective: every rank loads it).
    public func loadOptimizer(from path: String) throws {
        let file = try SafeTensors.read(path)
        if let kind = file.metadata["optimizer"], kind != config.optimizer.rawValue {
            throw TrainingError("\(path) holds \(kind) state, but the optimizer is \(config.optimizer.rawValue)")
        }
        do { try optimizer.loadStateDict(file.tensors) } catch { throw TrainingError("\(path): \(error)") }
        try group.barrier()  // sharded: the ranks of a host wrote one shared copy of the state
    }
}
