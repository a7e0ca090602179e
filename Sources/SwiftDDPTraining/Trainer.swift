import SwiftDDPCollectives
import SwiftDDPDatasets
import Foundation
import SwiftDDPNN
import SwiftDDPSafeTensors

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
/// 2. rank 0's parameters and buffers are broadcast, so every replica starts identical
///    (`DistributedDataParallel`);
/// 3. each step, every rank gathers its shard of the global batch (`DistributedSampler`), runs
///    forward, loss and backward (SyncBatchNorm layers communicate inside), the gradients are
///    averaged over the world (`GradientSync`), and every rank applies the same update.
///    Timing, diagnostics, fault injection, the non-finite policy, progress lines and
///    checkpoints watch the step as `TrainingObserver`s.
public final class Trainer {
    public let config: TrainingConfiguration
    public let group: any ProcessGroup
    public let model: Model
    /// The model, optimizer and gradient averaging over `group`.
    public let ddp: DistributedDataParallel
    /// The optimizer stepped (a `ShardedOptimizer` when the ranks of a host share the model).
    public var optimizer: any Optimizer { ddp.optimizer }
    public var gradientSync: any GradientSync { ddp.gradientSync }
    public let train: Dataset
    public let test: Dataset
    /// The group SyncBN layers reduce over (the world, or this rank's subgroup).
    public let syncBNGroup: (any ProcessGroup)?
    public var log: (String) -> Void
    public var metrics: MetricsWriter?
    /// TensorBoard event files, fed the same records as `metrics`.
    public var tensorBoard: TensorBoardWriter?
    /// Observers of your own, called after the trainer's (timing, fault injection, non-finite
    /// policy, diagnostics, progress, checkpoints) at every phase of every step.
    public var observers: [any TrainingObserver] = []
    /// Show a redrawn progress line (rank 0 on a terminal) instead of periodic lines.
    public var interactiveProgress = false
    /// Time per phase, summed over the steps run so far (read it from an observer to measure a
    /// window of steps, as `ddp bench` does).
    public var timings: StepTimings {
        var t = timer.timings
        t.diagnostics = diagnosticsObserver?.seconds ?? 0
        return t
    }
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
    /// A hash of this rank's parameters, buffers and counters right after the initial broadcast:
    /// equal on every rank when the broadcast works, whatever each rank initialized.
    public private(set) var initialStateHash: UInt64 = 0
    /// The same hash just before the broadcast (what this rank built itself).
    public private(set) var builtStateHash: UInt64 = 0

    private let loss: any Loss
    /// How the model's BatchNorm layers normalize: `config.model.norm`, or for a model given to
    /// `init`, what its layers do (syncbn if any is synchronized).
    private let batchNormMode: NormKind
    /// The model's dropout layers and their per-row keys: (epoch, data-set index) of each row.
    private let dropouts: [Dropout]
    private let sampleKeys: UnsafeMutableBufferPointer<UInt64>
    /// Scratch for the per-step loss all-reduce (kept to avoid an allocation per step).
    private let lossScratch = UnsafeMutableBufferPointer<Double>.allocate(capacity: 1)
    private let batchInputs = Workspace()
    private let augmentScratch = Workspace()
    private var batchLabels: [Int32]
    private let schedule: LearningRateSchedule
    private let timer: StepTimer
    private var diagnosticsObserver: DiagnosticsObserver?
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
            throw TrainingError(
                "the configuration of rank \(odd) differs from rank 0's: every rank must get the same options",
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
        self.model = model

        // 3. The optimizer, and data parallelism around model and optimizer (rank 0's state broadcast).
        let optimizer: any Optimizer
        switch config.optimizer {
        case .sgd:
            optimizer = try SGD(store: model.store, learningRate: config.learningRate, momentum: config.momentum,
                                dampening: config.dampening, nesterov: config.nesterov, weightDecay: config.weightDecay)
        case .adam, .adamw:
            optimizer = try Adam(store: model.store, learningRate: config.learningRate, weightDecay: config.weightDecay,
                                 decoupledWeightDecay: config.optimizer == .adamw)
        }
        builtStateHash = Trainer.stateHash(model.store)
        // The covariate-shift probe rewrites parameters on every rank, which one shared copy forbids.
        ddp = try DistributedDataParallel(model, optimizer: optimizer, group: group, gradientSync: config.gradSync,
                                          bucketBytes: config.bucketBytes, shardOptimizer: !config.covariateShift)
        ddp.broadcastBuffers = config.broadcastBuffers && batchNormMode == .bn
        initialStateHash = Trainer.stateHash(model.store)

        let kind: LearningRateSchedule.Kind
        switch config.schedule {
        case .constant: kind = .constant
        case .step: kind = .step(stepSize: config.stepSize, gamma: config.gamma)
        case .cosine:
            let steps = Trainer.totalSteps(config: config, datasetSize: train.count, worldSize: group.worldSize)
            kind = .cosine(totalSteps: max(1, steps - config.warmupSteps), minimum: 0)
        }
        schedule = LearningRateSchedule(base: config.learningRate, kind: kind, warmupSteps: config.warmupSteps)
        timer = StepTimer(ddp)
        batchLabels = [Int32](repeating: 0, count: config.batchSize)
        dropouts = model.leaves.compactMap { $0 as? Dropout }
        sampleKeys = .allocate(capacity: max(config.batchSize, 1))
        sampleKeys.initialize(repeating: 0)
        diagnostics = config.diagnosticsEvery.map { Diagnostics(model: model, group: group, every: $0) }
        if config.covariateShift {
            let n = min(config.probeSize, train.count)
            covariateShiftProbe = CovariateShiftProbe(model: model, inputs: Array(train.inputs[0..<n * train.features]),
                                                      labels: Array(train.labels[0..<n]))
        } else {
            covariateShiftProbe = nil
        }
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

    public var totalSteps: Int {
        Trainer.totalSteps(config: config, datasetSize: train.count, worldSize: group.worldSize)
    }

    /// Optimizer steps of a run: all epochs, or `maxSteps` if that is fewer.
    public static func totalSteps(config: TrainingConfiguration, datasetSize: Int, worldSize: Int) -> Int {
        let sampler = DistributedSampler(datasetSize: datasetSize, worldSize: worldSize, rank: 0,
                                          shuffle: false, dropLast: config.dropLast)
        let all = (sampler.samplesPerRank + config.batchSize - 1) / config.batchSize * config.epochs
        return min(all, config.maxSteps ?? all)
    }

    // MARK: Training

    /// Runs the configured epochs (or `maxSteps`), evaluating after each epoch.
    public func run() throws -> TrainingSummary {
        var summary = TrainingSummary()
        let wallStart = monotonicSeconds()
        let total = totalSteps
        let firstStep = resumePoint?.step ?? 0, firstEpoch = resumePoint?.epoch ?? 0
        timer.reset()
        let nonFinite = NonFinitePolicy(skip: skipNonFinite, store: model.store) { [unowned self] warning in
            if group.rank == 0 { log(warning) }
        }
        diagnosticsObserver = diagnostics.map { d in
            DiagnosticsObserver(d, probe: covariateShiftProbe) { [unowned self] record in
                writeMetrics(record.json)
                summary.diagnostics.append(record)
            }
        }
        let progress = ProgressReporter(every: config.logEvery, total: total, firstStep: firstStep, group: group,
                                        timer: timer, optimizer: optimizer, interactive: interactiveProgress, log: log,
                                        write: { [unowned self] in writeMetrics($0) })
        let checkpoints = checkpointer.map { checkpointer in
            PhaseObserver(after: .update) { [unowned self] step in
                guard step.number % checkpointer.every == 0 else { return }
                let next = ResumePoint(step: step.number, epoch: step.epoch, position: step.indices.endIndex)
                try checkpointer.save(self, at: next)
            }
        }
        // The timer first: the others' work at a phase then falls after its clock read.
        let fault = FaultInjector(faultInjection, rank: group.rank, store: model.store)
        let builtIn: [(any TrainingObserver)?] = [timer, fault, nonFinite, diagnosticsObserver, progress]
        let watching = builtIn.compactMap { $0 } + observers + (checkpoints.map { [$0] } ?? [])

        summary.stepLosses.reserveCapacity(total - firstStep)  // no reallocation inside the loop
        // [correct, seen] per epoch on this rank, summed over the ranks at the end
        var trainCounts = [Double](repeating: 0, count: 2 * max(config.epochs - firstEpoch, 1))
        var samplesProcessed = 0
        let step = TrainingStep()
        var index = firstStep
        epochs: for epoch in firstEpoch..<max(config.epochs, firstEpoch + 1) {
            summary.epochs = epoch + 1
            let order = sampler.indices(epoch: epoch)
            var position = epoch == firstEpoch ? resumePoint?.position ?? 0 : 0
            while position < order.count {
                if index >= total { break epochs }
                let end = min(position + config.batchSize, order.count)
                step.begin(index: index, epoch: epoch, indices: order[position..<end])
                try run(step, watching)
                trainCounts[2 * (epoch - firstEpoch)] += Double(step.correct)
                trainCounts[2 * (epoch - firstEpoch) + 1] += Double(step.rows)
                if step.skipReason == nil {
                    summary.stepLosses.append(step.loss)
                    summary.finalLoss = step.loss
                    samplesProcessed += step.rows
                }
                position = end
                index += 1
            }
            if config.evaluate && (epoch + 1 < config.epochs) && index < total {
                progress.breakLine()
                try evaluateAndReport(epoch: epoch, into: &summary)
            }
        }
        progress.breakLine()
        summary.steps = index
        summary.skippedSteps = nonFinite.skippedSteps
        summary.timings = timings
        try group.allReduce(&trainCounts, op: .sum)
        summary.trainAccuracyByEpoch = (0..<(summary.epochs - firstEpoch)).compactMap { e in
            trainCounts[2 * e + 1] > 0 ? (firstEpoch + e, trainCounts[2 * e] / trainCounts[2 * e + 1]) : nil
        }
        var trainTime = [summary.timings.total]
        try group.allReduce(&trainTime, op: .max)
        summary.trainingSeconds = trainTime[0]
        let samples = Double(samplesProcessed * group.worldSize)  // the sampler gives every rank the same count
        summary.samplesPerSecond = trainTime[0] > 0 ? samples / trainTime[0] : 0
        try finalEvaluation(into: &summary)
        summary.wallSeconds = monotonicSeconds() - wallStart
        var record: [String: Any] = ["kind": "summary", "steps": summary.steps, "wall_seconds": summary.wallSeconds,
                                     "training_seconds": summary.trainingSeconds,
                                     "samples_per_second": summary.samplesPerSecond, "world_size": group.worldSize,
                                     "final_loss": summary.finalLoss]
        if let acc = summary.testAccuracy { record["test_accuracy"] = acc }
        if let l = summary.testLoss { record["test_loss"] = l }
        if let acc = summary.testAccuracyEMA { record["test_accuracy_ema"] = acc }
        if let l = summary.testLossEMA { record["test_loss_ema"] = l }
        writeMetrics(record)
        return summary
    }

    /// One step: gather → forward → loss → backward → reduce → update, the observers after each.
    private func run(_ step: TrainingStep, _ observers: [any TrainingObserver]) throws {
        let x = gather(step)                                        // this rank's part of the global batch
        try notify(observers, .gather, step)
        let logits = try ddp.forward(x)                             // SyncBN exchanges statistics inside
        try notify(observers, .forward, step)
        (step.localLoss, step.correct) = try batchLabels.withUnsafeBufferPointer { labels in
            try loss.forward(logits: logits, labels: UnsafeBufferPointer(rebasing: labels[0..<step.rows]),
                             gradientScale: ddp.gradientScale)      // 1/W: the gradient sum is the average
        }
        try notify(observers, .loss, step)
        try ddp.backward(loss.backward())                           // bucketed all-reduces start inside
        for d in dropouts { d.sampleKeys = nil }  // other forwards (diagnostics, precise BN) draw in order
        try notify(observers, .backward, step)
        try ddp.reduceGradients(whole: step.needsWholeGradients)    // the average over the ranks
        step.loss = try meanOverRanks(step.localLoss)
        try notify(observers, .reduce, step)
        if step.skipReason != nil {
            for o in observers { try o.didSkip(step) }
            return
        }
        optimizer.learningRate = schedule.learningRate(at: step.index)
        step.updateWasFinite = try ddp.update()                     // the same update on every rank
        try notify(observers, .update, step)
    }

    private func notify(_ observers: [any TrainingObserver], _ phase: StepPhase, _ step: TrainingStep) throws {
        for o in observers { try o.didRun(phase, of: step) }
    }

    /// The step's samples into the input matrix and labels, augmented; dropout keyed by sample.
    private func gather(_ step: TrainingStep) -> Matrix {
        let x = batchInputs.matrix(rows: step.rows, cols: train.features)
        batchLabels.withUnsafeMutableBufferPointer { labels in
            train.gather(step.indices, inputs: x.base, labels: labels.baseAddress!)
        }
        if config.augment {
            Augmentation.cropAndFlip(x.base, shape: train.sampleShape, indices: step.indices,
                                     seed: config.seed, epoch: step.epoch, scratch: augmentScratch)
        }
        if !dropouts.isEmpty {
            // A sample's masks depend on the sample and the epoch, not on the rank it lands on.
            for (r, i) in step.indices.enumerated() { sampleKeys[r] = UInt64(step.epoch) << 40 ^ UInt64(i) }
            for d in dropouts { d.sampleKeys = UnsafeBufferPointer(rebasing: sampleKeys[0..<step.rows]) }
        }
        return x
    }

    /// The mean of the ranks' batch losses (what the averaged gradient descends).
    private func meanOverRanks(_ value: Double) throws -> Double {
        lossScratch[0] = value
        try group.allReduce(lossScratch, op: .sum)
        return lossScratch[0] / Double(group.worldSize)
    }

    /// The evaluation after the last epoch; with precise BN, first with the running averages of
    /// training, then with the recomputed statistics.
    private func finalEvaluation(into summary: inout TrainingSummary) throws {
        if let samples = config.preciseBNSamples, !model.batchNormLayers.isEmpty {
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
            try DistributedDataParallel.broadcastState(model.store, from: 0, in: group, includeParameters: false)
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
