import SwiftDDPDatasets
import Foundation
import SwiftDDPNN
/// Everything that determines a training run. Every rank must hold the same configuration;
/// the trainer compares a hash of it across ranks before training.
public struct TrainingConfiguration: Codable, Sendable, Equatable {
    public enum OptimizerKind: String, Codable, Sendable, CaseIterable { case sgd, adam, adamw }
    public enum ScheduleKind: String, Codable, Sendable, CaseIterable { case constant, step, cosine }

    public var model = ModelConfiguration()
    /// Fashion-MNIST directory, or nil for synthetic data.
    public var dataDirectory: String? = "/usr/share/datasets/fashion-mnist"
    public var syntheticTrainCount = 4096
    public var syntheticTestCount = 1024
    /// Random crop of the 2-pixel zero-padded image and horizontal flip of every training image,
    /// drawn from (seed, epoch, sample index) so that N ranks see what one process would.
    public var augment = false
    /// Per-rank batch size.
    public var batchSize = 64
    public var epochs = 3
    /// Stop after this many optimizer steps (nil: run all epochs).
    public var maxSteps: Int? = nil
    public var optimizer = OptimizerKind.sgd
    public var learningRate: Float = 0.05
    public var momentum: Float = 0.9
    public var dampening: Float = 0
    public var nesterov = false
    public var weightDecay: Float = 0
    public var schedule = ScheduleKind.cosine
    public var warmupSteps = 0
    public var stepSize = 1000
    public var gamma: Float = 0.1
    public var seed: UInt64 = 0
    public var shuffle = true
    public var dropLast = false
    /// Shared memory when every rank is on one host, one all-reduce otherwise.
    public var gradSync = GradientSyncMode.sharded
    public var bucketBytes = 1 << 20
    /// Ranks per SyncBN group (nil: the whole world).
    public var syncBNGroupSize: Int? = nil
    /// Broadcast rank 0's BatchNorm buffers before each forward (PyTorch DDP's default).
    public var broadcastBuffers = true
    /// Evaluate on the test set after every epoch (and at the end).
    public var evaluate = true
    /// Precise BN: before the final evaluation, recompute BatchNorm's running statistics over this
    /// many training samples (nil: keep the running averages of training). Optional, so that
    /// configurations without it keep their fingerprints.
    public var preciseBNSamples: Int? = nil
    public var evalBatchSize = 1000
    /// Write a step line every this many steps.
    public var logEvery = 50
    /// Record diagnostics (gradient norms, pre-activations, saturation, BN statistics noise)
    /// every this many steps, starting at step 0 (initialization); nil: off.
    public var diagnosticsEvery: Int? = nil
    /// Also measure internal covariate shift on a fixed probe batch at diagnostic steps.
    public var covariateShift = false
    /// Samples in the covariate-shift probe batch (the first ones of the training set).
    public var probeSize = 256

    public init() {}

    /// Checks values that would make no sense, with one clear message: a `ConfigurationError`
    /// naming the field by its property path (`batchSize`, `model.depth`).
    public func validate(worldSize: Int) throws {
        func fail(_ field: String, _ rest: ConfigurationError.Message) throws -> Never {
            throw ConfigurationError(field, rest)
        }
        if batchSize < 1 { try fail("batchSize", "must be at least 1, got \(batchSize)") }
        if epochs < 1 { try fail("epochs", "must be at least 1, got \(epochs)") }
        if let m = maxSteps, m < 1 { try fail("maxSteps", "must be at least 1, got \(m)") }
        if !(learningRate > 0) || !learningRate.isFinite {
            try fail("learningRate", "must be a positive number, got \(learningRate)")
        }
        if momentum < 0 || !momentum.isFinite { try fail("momentum", "must be ≥ 0, got \(momentum)") }
        if weightDecay < 0 || !weightDecay.isFinite { try fail("weightDecay", "must be ≥ 0, got \(weightDecay)") }
        if nesterov && optimizer != .sgd {
            try fail("nesterov", "applies to \(field: "optimizer") sgd, not \(optimizer.rawValue)")
        }
        if nesterov && (momentum == 0 || dampening != 0) {
            try fail("nesterov", "needs \(field: "momentum") > 0 and no dampening")
        }
        do { try model.validate() } catch let error as ConfigurationError { throw error.nested(in: "model") }
        if augment && model.sampleShape?.isImage != true {
            try fail("augment", "needs image samples (\(field: "model.architecture") cnn or resnet)")
        }
        if logEvery < 1 { try fail("logEvery", "must be at least 1, got \(logEvery)") }
        if evalBatchSize < 1 { try fail("evalBatchSize", "must be at least 1") }
        if let n = preciseBNSamples {
            if n < 1 { try fail("preciseBNSamples", "must be at least 1 sample, got \(n)") }
            if !model.norm.usesBatchStatistics {
                try fail("preciseBNSamples", "needs BatchNorm (\(field: "model.norm") bn or syncbn)")
            }
        }
        if let d = diagnosticsEvery, d < 1 { try fail("diagnosticsEvery", "must be at least 1, got \(d)") }
        if covariateShift && diagnosticsEvery == nil {
            try fail("covariateShift", "needs \(field: "diagnosticsEvery")")
        }
        // The probe takes a weight layer's input to be the previous leaf's output: true in a chain,
        // not across a residual block's sum and shortcut.
        if covariateShift && model.architecture.isResNetFamily {
            try fail("covariateShift", """
                needs a chain of layers (\(field: "model.architecture") mlp or cnn), \
                not \(field: "model.architecture") \(model.architecture.rawValue)
                """)
        }
        if probeSize < 2 { try fail("probeSize", "must be at least 2, got \(probeSize)") }
        if let g = syncBNGroupSize {
            if g < 1 { try fail("syncBNGroupSize", "must be at least 1, got \(g)") }
            if worldSize % g != 0 { try fail("syncBNGroupSize", "\(g) must divide the world size \(worldSize)") }
        }
        if warmupSteps < 0 { try fail("warmupSteps", "must be ≥ 0, got \(warmupSteps)") }
        if schedule == .step && stepSize < 1 { try fail("stepSize", "must be at least 1, got \(stepSize)") }
        if schedule == .step && !(gamma >= 0 && gamma.isFinite) {
            try fail("gamma", "must be a number ≥ 0, got \(gamma)")
        }
        if !(bucketBytes >= 0) { try fail("bucketBytes", "must be ≥ 0") }
        // Parameters, gradients and optimizer state, one float each, and a batch's activations:
        // refuse what cannot fit instead of dying in an allocation.
        let floatsPerParameter = 2.0 + (optimizer == .sgd ? (momentum > 0 ? 1 : 0) : 2)
        let modelBytes = model.parameterCount * floatsPerParameter * 4
        let activationBytes = model.activationFloatsPerSample * Double(max(batchSize, evalBatchSize / 2)) * 4
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        if modelBytes + activationBytes > memory {
            let what = modelBytes > activationBytes
                ? String(format: "%.3g parameters, their gradients and optimizer state", model.parameterCount)
                : "the activations of a batch of \(max(batchSize, evalBatchSize / 2))"
            let needs = String(format: "the model needs %.3g GB per rank for %@; this machine has %.1f GB",
                               (modelBytes + activationBytes) / 1e9, what, memory / 1e9)
            throw ConfigurationError(
                field: modelBytes > activationBytes ? "model.width" : "batchSize",
                message: "\(needs): lower \(field: "model.width"), \(field: "model.depth") or \(field: "batchSize")")
        }
        let together = model.norm == .syncbn ? (syncBNGroupSize ?? worldSize) : 1
        if model.norm.usesBatchStatistics && batchSize * together * model.batchNormPositions < 2 {
            throw ConfigurationError(field: "batchSize", message: """
                BatchNorm needs more than one sample per batch: raise \(field: "batchSize") (got \(batchSize))
                """)
        }
    }

    /// A stable 64-bit hash (FNV-1a of the sorted-key JSON encoding).
    public var fingerprint: Int64 {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(self)) ?? Data()
        var hash = FNV1a()
        hash.combine(data)
        return Int64(bitPattern: hash.value)
    }

    /// The configuration as a compact JSON object (sorted keys).
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}

extension TrainingConfiguration {
    /// The model sized for `data`: its input (features for an MLP, the image for a conv net)
    /// and its number of classes, as a PyTorch user writes them into the model's definition.
    public mutating func fit(to data: Dataset) {
        let shape = data.sampleShape
        if model.architecture == .mlp || !shape.isImage {
            model.inputShape = [data.features]
        } else {
            model.inputShape = [shape.channels, shape.height, shape.width]
        }
        model.classes = data.classes
    }
}
