import ArgumentParser
import SwiftDDPCollectives
import SwiftDDPDatasets
import Foundation
import SwiftDDPMPI
import SwiftDDPNN
import SwiftDDPSafeTensors
import SwiftDDPTraining
/// `ddp train`: data-parallel training under mpirun.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model data-parallel over the MPI ranks (per-rank batch, averaged gradients, SyncBN).")

    @OptionGroup(title: "Data") var data: DataOptions
    @OptionGroup(title: "Model") var model: ModelOptions
    @OptionGroup(title: "Optimizer") var optimizer: OptimizerOptions
    @OptionGroup(title: "Distributed") var distributed: DistributedOptions

    @Option(help: "Per-rank batch size (the global batch is this × the world size; default 64).")
    var batchSize: Int?

    @Option(help: ArgumentHelp("Global batch size: each of W ranks takes G/W (W must divide G), so the run trains the "
                               + "same on any number of ranks (exclusive with --batch-size).", valueName: "G"))
    var globalBatchSize: Int?

    @Option(help: "Epochs.")
    var epochs = 3

    @Option(help: "Stop after this many optimizer steps.")
    var maxSteps: Int?

    @Option(help: "Seed for initialization, shuffling and synthetic data.")
    var seed: UInt64 = 0

    @Flag(help: "Keep the data order (no shuffling).")
    var noShuffle = false

    @Flag(help: "Drop the tail of the data set that does not fill every rank evenly.")
    var dropLast = false

    @Option(help: "Initial model state (safetensors, PyTorch state-dict names).")
    var initFrom: String?

    @Option(help: "Write the final model state here (safetensors; rank 0).")
    var save: String?

    @Option(help: "Initial optimizer state (safetensors written by --save-optimizer).")
    var initOptimizerFrom: String?

    @Option(help: "Write the final optimizer state here (safetensors; rank 0).")
    var saveOptimizer: String?

    @Option(help: "Write metrics here (JSON lines; rank 0).")
    var metrics: String?

    @Option(help: ArgumentHelp("Write TensorBoard event files into this directory (rank 0): loss, accuracy, learning "
                               + "rate, throughput, and the --diagnostics-every measurements.", valueName: "dir"))
    var tensorboard: String?

    @Option(help: "Report every N steps (the progress line: the mean loss over those steps, elapsed time and ETA).")
    var logEvery = 50

    @Flag(help: "Skip the test-set evaluation.")
    var noEval = false

    @Option(name: .customLong("precise-bn"), help: ArgumentHelp(
        "Precise BN: before the final evaluation, recompute BatchNorm's statistics over N training samples "
            + "(the test set is evaluated with the running averages first, then with these).", valueName: "N"))
    var preciseBN: Int?

    @OptionGroup(title: "Diagnostics") var diagnostics: DiagnosticsOptions

    @Option(help: "Directory for training checkpoints (model, optimizer, data position, RNG).")
    var checkpointDir: String?

    @Option(help: "Write a checkpoint every N steps (needs --checkpoint-dir).")
    var checkpointEvery: Int?

    @Flag(help: "Delete the checkpoints already in --checkpoint-dir (another job's) instead of refusing to start.")
    var overwriteCheckpoints = false

    @Flag(help: "Continue from the newest valid checkpoint in --checkpoint-dir (if any).")
    var resume = false

    @Flag(help: "Skip steps whose loss or gradients are not finite, instead of stopping.")
    var skipNonfinite = false

    @Flag(help: ArgumentHelp("With --resume on another number of ranks: accept that local BatchNorm (or SyncBN "
                             + "groups) then normalizes over other samples than the checkpoint's run did."))
    var allowBnRegroup = false

    @Option(help: .hidden) var debugFail: FaultInjection.Kind?
    @Option(help: .hidden) var debugFailRank = 0
    @Option(help: .hidden) var debugFailStep = 1
    /// The fault fires only in a run that finds no file at this path (the failing rank creates
    /// it at start), so a relaunched job (launch.sh --max-restarts) runs through.
    @Option(help: .hidden) var debugFailMarker: String?
    /// Each rank initializes with seed + rank, so only the initial broadcast makes replicas equal.
    @Flag(help: .hidden) var debugRankSeedOffset = false
    /// Each rank writes FILE.rank<r>: its state hash as built and after the initial broadcast,
    /// every batch's sample indices, and its state hash at the end (JSON lines).
    @Option(help: .hidden) var debugTrace: String?

    /// The options the library does not know; the rest (batch size, epochs, learning rate, …)
    /// `TrainingConfiguration.validate` checks on every rank, before any collective (in `run`).
    func validate() throws {
        if let g = globalBatchSize, g < 1 { throw ValidationError("--global-batch-size must be at least 1, got \(g)") }
        if batchSize != nil && globalBatchSize != nil {
            throw ValidationError("give --batch-size (per rank) or --global-batch-size, not both")
        }
        if data.synthetic && data.syntheticTrain < 1 {
            throw ValidationError("--synthetic-train must be at least 1, got \(data.syntheticTrain)")
        }
        if data.synthetic && data.syntheticTest < 0 {
            throw ValidationError("--synthetic-test must be ≥ 0, got \(data.syntheticTest)")
        }
        if let n = checkpointEvery, n < 1 { throw ValidationError("--checkpoint-every must be at least 1, got \(n)") }
    }

    var trainingConfiguration: TrainingConfiguration {
        var c = TrainingConfiguration(data: data, model: model, optimizer: optimizer, distributed: distributed)
        c.batchSize = batchSize ?? 64
        c.epochs = epochs
        c.maxSteps = maxSteps
        c.seed = seed
        c.shuffle = !noShuffle
        c.dropLast = dropLast
        c.logEvery = logEvery
        c.evaluate = !noEval
        c.preciseBNSamples = preciseBN
        diagnostics.apply(to: &c)
        return c
    }

    func run() throws {
        let config = trainingConfiguration
        struct Prepared {
            let config: TrainingConfiguration
            let train: Dataset
            let test: Dataset
            let initialState: [String: TensorData]?
        }
        try Job.run(setUp: { group -> Prepared in
            // Local checks only: no collective may run before the ranks agree that set-up worked.
            var config = config
            if let g = globalBatchSize {
                // One line from the lowest rank and a clean exit on all, as for every set-up error.
                guard g % group.worldSize == 0 else {
                    throw ValidationError("--global-batch-size \(g) is not divisible by the \(group.worldSize) ranks "
                                          + "(each rank takes G/W samples)")
                }
                config.batchSize = g / group.worldSize
            }
            let (train, test) = try loadData(config)
            config.fit(to: train)
            try Trainer.validate(config, worldSize: group.worldSize, train: train, test: test)
            let initial = try initFrom.map { path -> [String: TensorData] in
                let file = try SafeTensors.read(path)
                let state = try Checkpointer.modelState(in: file, path: path) ?? file.tensors
                do { try config.model.build(seed: 0).loadStateDict(state) } catch {
                    throw ValidationError("--init-from \(path): \(error)")
                }
                return state
            }
            if let initOptimizerFrom { _ = try SafeTensors.read(initOptimizerFrom) }
            if let save { try checkWritable(save, option: "--save") }
            if let saveOptimizer { try checkWritable(saveOptimizer, option: "--save-optimizer") }
            if let metrics { try checkWritable(metrics, option: "--metrics") }
            if checkpointEvery != nil && checkpointDir == nil {
                throw ValidationError("--checkpoint-every needs --checkpoint-dir")
            }
            if resume && checkpointDir == nil { throw ValidationError("--resume needs --checkpoint-dir") }
            if let checkpointDir { _ = try Checkpointer(directory: checkpointDir, every: checkpointEvery ?? Int.max) }
            if overwriteCheckpoints && (checkpointDir == nil || resume) {
                throw ValidationError("--overwrite-checkpoints needs --checkpoint-dir and no --resume")
            }
            if let checkpointDir, checkpointEvery != nil, !overwriteCheckpoints {
                try Checkpointer.claim(directory: checkpointDir, resume: resume, overwrite: false, isRoot: false)
            }
            return Prepared(config: config, train: train, test: test, initialState: initial)
        }, work: { group, prepared in
            let config = prepared.config
            let trainer = try Trainer(config: config, group: group, train: prepared.train, test: prepared.test,
                                      initialState: prepared.initialState,
                                      initSeedOffset: debugRankSeedOffset ? UInt64(group.rank) : 0)
            let trace = try debugTrace.map { try DebugTrace(path: "\($0).rank\(group.rank)", trainer: trainer) }
            if let initOptimizerFrom { try trainer.loadOptimizer(from: initOptimizerFrom) }
            trainer.skipNonFinite = skipNonfinite
            trainer.allowBatchNormRegroup = allowBnRegroup
            if let kind = debugFail, !(debugFailMarker.map { FileManager.default.fileExists(atPath: $0) } ?? false) {
                trainer.faultInjection = FaultInjection(kind: kind, rank: debugFailRank, step: debugFailStep - 1)
                if let marker = debugFailMarker, group.rank == debugFailRank {
                    _ = FileManager.default.createFile(atPath: marker, contents: nil)
                }
            }
            if let checkpointDir {
                if checkpointEvery != nil && overwriteCheckpoints {
                    try Checkpointer.claim(directory: checkpointDir, resume: false, overwrite: true,
                                           isRoot: group.rank == 0)
                    try group.barrier()
                }
                if let every = checkpointEvery {
                    trainer.checkpointer = try Checkpointer(directory: checkpointDir, every: every)
                }
                if resume {
                    let warn: (String) -> Void = { FileHandle.standardError.write(Data(("ddp: " + $0 + "\n").utf8)) }
                    trainer.resumePoint = try Checkpointer.resume(trainer, from: checkpointDir, warn: warn)
                    trainer.checkpointer?.adoptExisting(for: trainer)
                    if group.rank == 0 {
                        print(trainer.resumePoint.map { "resuming from step \($0.step) (epoch \($0.epoch + 1))" }
                              ?? "no valid checkpoint in \(checkpointDir): starting from step 0")
                        if let point = trainer.resumePoint, let saved = point.writtenByRanks {
                            let b = config.batchSize, g = b * group.worldSize
                            print("the checkpoint was written by \(saved) ranks: the global batch stays \(g), "
                                  + "now \(b) per rank on \(group.worldSize)"
                                  + (config.model.norm == .bn ? "; local BatchNorm now normalizes over \(b) samples "
                                     + "per rank instead of \(g / saved)" : ""))
                        }
                    }
                }
            }
            if group.rank == 0, let metrics {
                trainer.metrics = try MetricsWriter(path: metrics, append: trainer.resumePoint != nil)
            }
            if group.rank == 0, let tensorboard { trainer.tensorBoard = try TensorBoardWriter(directory: tensorboard) }
            let isRoot = group.rank == 0
            let hosts = try hostSummary(group)
            if isRoot {
                trainer.interactiveProgress = Launch.stdoutIsTerminal
                trainer.log = { line in
                    if line.hasPrefix("\r") { print(line, terminator: ""); fflush(nil) } else { print(line) }
                }
                print("SwiftDDP train: world size \(group.worldSize) on \(hosts)")
                print("data: \(config.dataDirectory ?? "synthetic") "
                      + "(\(trainer.train.count) train, \(trainer.test.count) test)")
                print("model: \(config.model.summary), \(config.model.activation), norm \(config.model.norm.rawValue)"
                      + (trainer.syncBNGroup.map { " over groups of \($0.worldSize)" } ?? "")
                      + ", init \(config.model.initialization); \(trainer.model.store.parameterCount) parameters")
                print("optimizer: \(config.optimizer.rawValue) lr \(config.learningRate) momentum \(config.momentum)"
                      + "\(config.nesterov ? " nesterov" : "") weight decay \(config.weightDecay), "
                      + "schedule \(config.schedule.rawValue)")
                let sync = syncDescription(trainer.gradientSync, optimizer: trainer.optimizer,
                                           worldSize: group.worldSize)
                print("batch: \(config.batchSize) per rank × \(group.worldSize) ranks = "
                      + "\(config.batchSize * group.worldSize) global; \(trainer.totalSteps) steps; "
                      + "gradient sync \(sync)")
            }
            let summary = try trainer.run()
            try trace?.finish(trainer)
            if isRoot {
                var line = String(format: "done: %d steps in %.2f s of training (%.0f samples/s), final loss %.4f",
                                  summary.steps, summary.trainingSeconds, summary.samplesPerSecond, summary.finalLoss)
                if let acc = summary.testAccuracy { line += String(format: ", test accuracy %.2f%%", acc * 100) }
                if summary.skippedSteps > 0 { line += ", \(summary.skippedSteps) non-finite steps skipped" }
                print(line)
                if let save {
                    try trainer.saveModel(to: save)
                    print("saved model state to \(save)")
                }
                if let saveOptimizer {
                    try trainer.saveOptimizer(to: saveOptimizer)
                    print("saved optimizer state to \(saveOptimizer)")
                }
            }
            try group.barrier()
        })
    }
}

/// The hidden `--debug-trace` file of one rank (for tests: sample order, replica identity):
/// state hashes as built and after the initial broadcast, each batch's indices, the end hash.
final class DebugTrace {
    let handle: FileHandle

    init(path: String, trainer: Trainer) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path)
        else { throw ValidationError("--debug-trace: cannot write \(path)") }
        self.handle = handle
        write(["event": "built", "state_hash": String(trainer.builtStateHash)])
        write(["event": "start", "state_hash": String(trainer.initialStateHash)])
        trainer.observers.append(PhaseObserver(after: .gather) { [unowned self] step in
            write(["event": "batch", "epoch": step.epoch, "step": step.index, "indices": Array(step.indices)])
        })
    }

    func write(_ record: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) else { return }
        handle.write(data + Data("\n".utf8))
    }

    func finish(_ trainer: Trainer) throws {
        write(["event": "end", "state_hash": String(trainer.stateHash())])
        try handle.close()
    }
}

/// Loads Fashion-MNIST, or makes synthetic data, as the configuration says.
func loadData(_ config: TrainingConfiguration) throws -> (Dataset, Dataset) {
    if let path = config.dataDirectory { return try DataFiles.load(path) }
    let train = try SyntheticData.make(count: config.syntheticTrainCount, seed: config.seed &+ 1)
    let test = try SyntheticData.make(count: config.syntheticTestCount, seed: config.seed &+ 1, testSplit: true)
    return (train, test)
}

/// Fails early if `path` cannot be written later (its directory is missing).
func checkWritable(_ path: String, option: String) throws {
    let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw ValidationError("\(option) \(path): directory \(directory) does not exist")
    }
}

/// Every rank's host name, in rank order (one all-gather of fixed-width rows).
func gatherHostNames(_ group: any ProcessGroup) throws -> [String] {
    try gatherStrings(group.hostName, group)
}

/// Every rank's `value` (up to 64 UTF-8 bytes), in rank order, on every rank: one all-gather.
func gatherStrings(_ value: String, _ group: any ProcessGroup) throws -> [String] {
    let width = 64
    var row = [Int32](repeating: 0, count: width)
    for (i, byte) in value.utf8.prefix(width).enumerated() { row[i] = Int32(byte) }
    let all = try group.allGather(row)
    return (0..<group.worldSize).map { r in
        String(decoding: all[r * width..<(r + 1) * width].prefix { $0 != 0 }.map { UInt8($0) }, as: UTF8.self)
    }
}

/// "host (2 ranks), other (2 ranks)".
func hostSummary(_ group: any ProcessGroup) throws -> String {
    var order: [String] = []
    var counts: [String: Int] = [:]
    for name in try gatherHostNames(group) {
        if counts[name] == nil { order.append(name) }
        counts[name, default: 0] += 1
    }
    return order.map { "\($0) (\(counts[$0]!) rank\(counts[$0]! == 1 ? "" : "s"))" }.joined(separator: ", ")
}

/// What the gradient averaging does in this job, for the start-up line.
func syncDescription(_ sync: any GradientSync, optimizer: any Optimizer, worldSize: Int) -> String {
    let mode = sync.mode
    switch mode {
    case .shared, .sharded:
        let through = sync.isHierarchical
            ? "through shared memory on each host, then one all-reduce of 1/\(sync.ranksPerHost) per rank between hosts"
            : "through shared memory"
        return if optimizer is ShardedOptimizer {
            "sharded (\(through); each rank updates 1/\(sync.ranksPerHost) of "
                + "\(sync.isHierarchical ? "its host's" : "the") model)"
        } else if sync.usesSharedMemory && mode == .sharded {
            "sharded → shared (\(through); every rank updates the whole model because --covariate-shift rewrites "
                + "parameters on each rank)"
        } else if sync.usesSharedMemory {
            "shared (\(through))"
        } else if let reason = sync.sharedMemoryUnavailable {
            "\(mode.rawValue) → one all-reduce (\(reason))"
        } else {
            "\(mode.rawValue) (one all-reduce: \(worldSize == 1 ? "there is one rank" : "one rank per host"))"
        }
    case .flat, .bucketed: return mode.rawValue
    }
}
