import SwiftDDPCollectives
import SwiftDDPMPI
/// Batch normalization, the one core of `BatchNorm1d` (features of a [B, C] input) and
/// `BatchNorm2d` (channels of a [B, C, H, W] input, statistics over B·H·W), like PyTorch's
/// `_BatchNorm`; when given a process group, synchronized across ranks like
/// `torch.nn.SyncBatchNorm` (which, unlike this one, refuses CPU tensors). Images are stored
/// channels-last, so a 2-D input is the [B·H·W, C] matrix of its positions and both kinds run
/// the same kernels and exchange; the subclasses differ only in the input they accept.
///
/// Training: y = γ·(x − μ)/sqrt(σ²_b + eps) + β with the batch mean μ and the *biased* batch
/// variance σ²_b; running statistics are updated with momentum 0.1 using the *unbiased*
/// variance, and `num_batches_tracked` counts updates. Evaluation uses the running statistics
/// (no communication). eps = 1e-5. State-dict keys: `weight`, `bias`, `running_mean`,
/// `running_var`, `num_batches_tracked`, as in PyTorch.
///
/// Synchronized mode (`group` set, more than one member):
/// - forward: each rank's (count, mean, M2) per channel, computed in Double, are all-gathered
///   in one collective and merged in rank order with Chan et al.'s parallel formula, so the
///   statistics are exact for uneven per-rank batches, a rank with no rows, and features whose
///   mean is far larger than their spread;
/// - backward: one all-reduce of [Σdy | Σdy·x̂] (2C values), divided by the global count.
///   dγ and dβ stay local: the data-parallel gradient all-reduce averages them like every other
///   parameter gradient.
/// Every member must call forward and backward, even with an empty batch.
///
/// ### References
/// - Ioffe & Szegedy, "Batch Normalization" (2015), https://arxiv.org/abs/1502.03167
/// - Chan, Golub & LeVeque, "Updating formulae and a pairwise algorithm for computing sample
///   variances" (1979).
/// - PyTorch `SyncBatchNorm`: https://pytorch.org/docs/stable/generated/torch.nn.SyncBatchNorm.html
public class BatchNorm: InitializableLayer {
    /// The input a BatchNorm accepts: feature vectors (1-D) or images (2-D).
    public enum Kind: Sendable { case features, images }
    public let kind: Kind
    public let features: Int
    public let eps: Double
    /// Running-average factor; nil means a cumulative average (PyTorch's `momentum=None`).
    public let momentum: Double?
    public let affine: Bool
    public let trackRunningStats: Bool
    /// The ranks whose statistics are combined; nil (or one member) is local BatchNorm.
    public private(set) var group: (any ProcessGroup)?

    public private(set) var weightSlot: TensorSlot?
    public private(set) var biasSlot: TensorSlot?
    public var parameterSlots: [TensorSlot] { [weightSlot, biasSlot].compactMap { $0 } }
    public private(set) var runningMeanSlot: TensorSlot?
    public private(set) var runningVarSlot: TensorSlot?
    public private(set) var batchesTrackedIndex: Int?
    private var store: ParameterStore!

    private let output = Workspace()
    private let gradInput = Workspace()
    private let localStats: DoubleScratch  // [n, mean(C), M2(C)] of this rank
    private var gatheredStats: DoubleScratch  // all ranks' localStats
    private let gradSums: DoubleScratch  // [Σdy (C) | Σdy·x̂ (C)]
    private let mean: DoubleScratch
    private let invStd: DoubleScratch
    private let mergedM2: DoubleScratch
    private let unbiasedVariance: DoubleScratch
    /// Forward's per-channel float32 constants [mean | invstd | γ | β], kept for backward.
    private let constants: UnsafeMutablePointer<Float>
    /// Backward's per-channel float32 coefficients [γ·invstd | S1/N | S2/N].
    private let coefficients: UnsafeMutablePointer<Float>
    /// The last forward: its input (x̂ is recomputed from it in backward), the global count and
    /// whether batch statistics and a fused activation were used.
    private var lastBatch: (input: Matrix, shape: SampleShape, globalCount: Int, usedBatchStats: Bool,
                            activationSlope: Float?, pool: MaxPool2d?)?
    private var gatheredCapacity: Int

    /// Batches averaged so far while recomputing precise statistics; nil while training normally.
    private var preciseBatches: Int?

    /// Seconds spent in this layer's collectives since the last `resetTimers()`.
    public private(set) var communicationSeconds = 0.0
    /// When set, each of this layer's collectives also records its duration here, in call order.
    public var exchangeLog: ExchangeLog?

    /// - Parameters:
    ///   - kind: feature vectors (`BatchNorm1d`) or images (`BatchNorm2d`).
    ///   - features: C, the number of channels.
    ///   - eps: added to the variance for stability (PyTorch: 1e-5).
    ///   - momentum: running-statistics factor (PyTorch: 0.1); nil for a cumulative average.
    ///   - affine: learn γ and β (PyTorch: true).
    ///   - trackRunningStats: keep running statistics for evaluation (PyTorch: true).
    ///   - group: synchronize statistics over these ranks (SyncBatchNorm); nil for local BN.
    public init(_ kind: Kind, features: Int, eps: Double = 1e-5, momentum: Double? = 0.1, affine: Bool = true,
                trackRunningStats: Bool = true, group: (any ProcessGroup)? = nil)
    {
        precondition(features > 0, "BatchNorm needs at least one feature")
        self.kind = kind
        self.features = features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.trackRunningStats = trackRunningStats
        self.group = group
        localStats = DoubleScratch(count: 2 * features + 1)
        gradSums = DoubleScratch(count: 2 * features)
        mean = DoubleScratch(count: features)
        invStd = DoubleScratch(count: features)
        mergedM2 = DoubleScratch(count: features)
        unbiasedVariance = DoubleScratch(count: features)
        constants = .allocate(capacity: 4 * features)
        constants.initialize(repeating: 0, count: 4 * features)
        coefficients = .allocate(capacity: 3 * features)
        coefficients.initialize(repeating: 0, count: 3 * features)
        gatheredCapacity = (2 * features + 1) * max(group?.worldSize ?? 1, 1)
        gatheredStats = DoubleScratch(count: gatheredCapacity)
    }

    deinit {
        constants.deallocate()
        coefficients.deallocate()
    }

    public func registerState(in scope: ParameterScope) {
        store = scope.store
        weightSlot = affine ? scope.parameter("weight", shape: [features]) : nil
        biasSlot = affine ? scope.parameter("bias", shape: [features]) : nil
        runningMeanSlot = trackRunningStats ? scope.buffer("running_mean", shape: [features]) : nil
        runningVarSlot = trackRunningStats ? scope.buffer("running_var", shape: [features]) : nil
        batchesTrackedIndex = trackRunningStats ? scope.counter("num_batches_tracked") : nil
    }

    /// `BatchNorm1d` or `BatchNorm2d`.
    public var name: String { kind == .features ? "BatchNorm1d" : "BatchNorm2d" }

    private func forwardConstants(slope: Float?) -> Kernels.BatchNormConstants {
        let C = features
        return .init(mean: constants, inv: constants + C, gamma: constants + 2 * C, beta: constants + 3 * C,
                     slope: slope)
    }

    public var description: String {
        let momentum = momentum.map { "\($0)" } ?? "None"
        return "\(isSynchronized ? "SyncBatchNorm" : name)(\(features), eps=\(eps), momentum=\(momentum), "
            + "affine=\(affine ? "True" : "False"), track_running_stats=\(trackRunningStats ? "True" : "False"))"
    }

    public var isSynchronized: Bool { (group?.worldSize ?? 1) > 1 }

    /// Makes this layer SyncBatchNorm over `group` (nil: local BatchNorm again), as PyTorch's
    /// `convert_sync_batchnorm` does; call it before training, on every rank alike.
    public func synchronize(over group: (any ProcessGroup)?) {
        self.group = group
        let needed = (2 * features + 1) * max(group?.worldSize ?? 1, 1)
        if needed > gatheredCapacity {
            gatheredCapacity = needed
            gatheredStats = DoubleScratch(count: needed)
        }
    }

    public func outputShape(for input: SampleShape) throws -> SampleShape {
        try check(input)
        return input
    }

    private func check(_ input: SampleShape) throws {
        let expected = kind == .features ? "[\(features)]" : "[\(features), H, W]"
        guard input.isImage == (kind == .images), input.channels == features else {
            throw NNError("\(name)(\(features)): expected samples of shape \(expected), got \(input)")
        }
    }

    public func resetParameters(scheme: InitScheme, using generator: inout SeededGenerator) { resetParameters() }

    /// γ = 1, β = 0, running mean 0, running variance 1, no batches tracked (PyTorch's reset).
    public func resetParameters() {
        if let w = weightSlot { store.parameter(w).update(repeating: 1, count: features) }
        if let b = biasSlot { store.parameter(b).update(repeating: 0, count: features) }
        resetRunningStats()
    }

    public func resetRunningStats() {
        if let m = runningMeanSlot { store.buffer(m).update(repeating: 0, count: features) }
        if let v = runningVarSlot { store.buffer(v).update(repeating: 1, count: features) }
        if let i = batchesTrackedIndex { store.counters[i] = 0 }
    }

    public func resetTimers() { communicationSeconds = 0 }

    /// This rank's last local batch mean and biased variance per channel (diagnostics: the
    /// difference to the global statistics is the noise SyncBN removes).
    public func lastLocalStatistics() -> (count: Int, mean: [Double], variance: [Double]) {
        let n = Int(localStats.pointer[0])
        let m = Array(UnsafeBufferPointer(start: localStats.pointer + 1, count: features))
        let v = (0..<features).map { n > 0 ? localStats.pointer[1 + features + $0] / Double(n) : 0 }
        return (n, m, v)
    }

    /// The statistics used to normalize in the last training forward (global when synchronized).
    public func lastBatchStatistics() -> (mean: [Double], variance: [Double]) {
        let m = Array(mean.buffer)
        let v = invStd.buffer.map { 1 / ($0 * $0) - eps }
        return (m, v)
    }

    // MARK: Forward

    public func forward(_ input: Matrix, training: Bool) throws -> Matrix {
        try forward(input, training: training, fusing: nil)
    }

    /// Whether `kind` can run inside this layer's passes (`forward(_:training:fusing:)`).
    public static func canFuse(_ kind: ActivationKind) -> Bool { kind == .relu || kind == .leakyReLU }

    /// Forward followed by `activation` in the same pass over the output; the next `backward`
    /// then takes the gradient with respect to the activation's output. Results are
    /// bit-identical to running this layer and an `Activation` layer one after the other,
    /// with one pass less over memory each way (`Sequential` fuses such pairs).
    /// - Parameters:
    ///   - activation: `.relu`, `.leakyReLU` (see `canFuse`), or nil for BatchNorm alone.
    public func forward(_ batch: Matrix, training: Bool, fusing activation: ActivationKind?) throws -> Matrix {
        try forward(batch, training: training, fusing: activation, pooling: nil)
    }

    /// Forward, then `activation`, then the max pooling `pool` in the same pass: only the pooled
    /// output and its argmax are written (in `pool`'s buffers), not the full-size output; the
    /// next `backward` takes the gradient with respect to the pooled output and reads it through
    /// the argmax instead of spreading it into a full-size array first. Bit-identical to the
    /// three layers one after the other. Training only: `pool` must have `fusesIntoBatchNorm`.
    public func forward(_ batch: Matrix, training: Bool, fusing activation: ActivationKind?, pooling pool: MaxPool2d?)
        throws -> Matrix
    {
        try forward(batch, training: training, fusing: activation, pooling: pool, residual: nil)
    }

    /// Training forward whose output pass also adds `residual` and applies `activation`: writes
    /// act(BN(x) + residual) into `output`, a buffer of the caller's with the input's shape,
    /// instead of this layer's own output (`BasicBlock` runs bn2, the shortcut's sum and the last
    /// activation so). Bit-identical to this layer, the sum and the activation one after the
    /// other; the next `backward` takes the gradient with respect to BN(x), as after a plain
    /// forward (the caller applies the activation's derivative, which it reads from `output`).
    public func forward(_ batch: Matrix, training: Bool, adding residual: Matrix, activation: ActivationKind?,
                        into output: Matrix) throws -> Matrix
    {
        try forward(batch, training: training, fusing: nil, pooling: nil,
                    residual: (residual, output, try activationSlope(activation)))
    }

    private func activationSlope(_ activation: ActivationKind?) throws -> Float? {
        switch activation {
        case nil: return nil
        case .relu: return 0
        case .leakyReLU: return ActivationKind.leakySlope
        case let kind?: throw NNError("\(name) cannot fuse \(kind.torchName)")
        }
    }

    private func forward(_ batch: Matrix, training: Bool, fusing activation: ActivationKind?, pooling pool: MaxPool2d?,
                         residual: (add: Matrix, into: Matrix, slope: Float?)?) throws -> Matrix
    {
        try check(batch.shape)
        if let pool {
            guard training, kind == .images, pool.fusesIntoBatchNorm else {
                throw NNError("\(name): a max pooling fuses only into BatchNorm2d, in training, with stride = kernel")
            }
            _ = try pool.outputShape(for: batch.shape)  // before any statistics are exchanged or updated
        }
        if let residual {
            guard training else { throw NNError("\(name): a residual sum fuses only in training") }
            // two checks, not a loop over an array literal: the step allocates nothing
            func matches(_ m: Matrix) throws {
                guard m.rows == batch.rows, m.shape == batch.shape else {
                    throw NNError("\(name): the residual sum needs \(batch.rows) samples of \(batch.shape), "
                                  + "got \(m.rows) of \(m.shape)")
                }
            }
            try matches(residual.add)
            try matches(residual.into)
        }
        let input = batch.channelRows
        let slope = try activationSlope(activation)
        let useBatchStats = training || !trackRunningStats
        let globalCount: Int
        if useBatchStats {
            globalCount = try computeBatchStatistics(input)
            if training, trackRunningStats { updateRunningStatistics(globalCount: globalCount) }
        } else {
            // Evaluation with running statistics: no communication.
            let rm = store.buffer(runningMeanSlot!), rv = store.buffer(runningVarSlot!)
            for c in 0..<features {
                mean.pointer[c] = Double(rm[c])
                invStd.pointer[c] = 1 / (Double(rv[c]) + eps).squareRoot()
            }
            globalCount = input.rows
        }
        let C = features
        // Float copies of the per-channel constants keep the inner loop in float32.
        let meanF = constants
        let invF = meanF + C, gammaF = meanF + 2 * C, betaF = meanF + 3 * C
        for c in 0..<C {
            meanF[c] = Float(mean.pointer[c])
            invF[c] = Float(invStd.pointer[c])
            gammaF[c] = weightSlot.map { store.parameter($0)[c] } ?? 1
            betaF[c] = biasSlot.map { store.parameter($0)[c] } ?? 0
        }
        lastBatch = (input, batch.shape, globalCount, useBatchStats, slope, pool)
        if let pool { return try pool.forward(normalizing: batch, forwardConstants(slope: slope)) }
        if let residual {
            Kernels.batchNormForward(x: input.base, residual: residual.add.base, rows: input.rows, cols: C,
                                     forwardConstants(slope: residual.slope), y: residual.into.base)
            return residual.into
        }
        let y = output.matrix(rows: input.rows, cols: C)  // the [N·H·W, C] view of the output
        Kernels.batchNormForward(x: input.base, rows: input.rows, cols: C, forwardConstants(slope: slope), y: y.base)
        return y.reshaped(rows: batch.rows, batch.shape)
    }

    /// Fills `mean` and `invStd` from this batch (merged over the group); returns the global
    /// row count.
    private func computeBatchStatistics(_ input: Matrix) throws -> Int {
        let C = features
        let stats = localStats.pointer
        ChannelStatistics.compute(input, into: stats)
        var total = input.rows
        let m2 = mergedM2.pointer
        if let group, group.worldSize > 1 {
            let W = group.worldSize, stride = 2 * C + 1
            precondition(stride * W <= gatheredCapacity, "process group grew after construction")
            let start = monotonicSeconds()
            try group.allGather(UnsafeBufferPointer(localStats.buffer),
                                into: UnsafeMutableBufferPointer(rebasing: gatheredStats.buffer[0..<stride * W]))
            let seconds = monotonicSeconds() - start
            communicationSeconds += seconds
            exchangeLog?.record(seconds)
            total = ChannelStatistics.merge(gatheredStats.pointer, ranks: W, channels: C, mean: mean.pointer, m2: m2)
        } else {
            mean.pointer.update(from: stats + 1, count: C)
            m2.update(from: stats + 1 + C, count: C)
        }
        guard total > 0 else { throw NNError("\(name): the batch is empty on every rank") }
        guard total > 1 else {
            throw NNError("\(name): expected more than 1 value per channel when training, got 1")
        }
        for c in 0..<C {
            invStd.pointer[c] = 1 / (m2[c] / Double(total) + eps).squareRoot()
        }
        // Keep the unbiased variance for the running update.
        for c in 0..<C { unbiasedVariance.pointer[c] = m2[c] / Double(total - 1) }
        return total
    }

    /// Precise BN (Wu & Johnson 2021): from now until `endPreciseStatistics()`, each training
    /// forward makes the running statistics the equal-weight average of the batches seen since
    /// this call, as PyTorch's `momentum=None` does (fvcore's `update_bn_stats`,
    /// `torch.optim.swa_utils.update_bn`); the variance averaged is each batch's unbiased one.
    public func beginPreciseStatistics() { preciseBatches = 0 }

    public func endPreciseStatistics() { preciseBatches = nil }

    private func updateRunningStatistics(globalCount: Int) {
        guard let meanSlot = runningMeanSlot, let varSlot = runningVarSlot, let idx = batchesTrackedIndex else {
            return
        }
        store.counters[idx] += 1
        var factor = momentum ?? 1 / Double(store.counters[idx])
        if let k = preciseBatches {
            preciseBatches = k + 1
            factor = 1 / Double(k + 1)
        }
        let rm = store.buffer(meanSlot), rv = store.buffer(varSlot)
        for c in 0..<features {
            rm[c] = Float((1 - factor) * Double(rm[c]) + factor * mean.pointer[c])
            rv[c] = Float((1 - factor) * Double(rv[c]) + factor * unbiasedVariance.pointer[c])
        }
    }

    // MARK: Backward

    public func backward(_ gradBatch: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        guard let last = lastBatch else { throw NNError("\(name).backward called before forward") }
        let x = last.input, rows = x.rows
        let samples = rows / max(last.shape.positions, 1)
        let gradOutput: Kernels.BatchNormGradient
        if let pool = last.pool {
            gradOutput = .pooled(try pool.pooledGradient(gradBatch, input: last.shape, rows: samples))
        } else {
            try checkGradient(gradBatch, rows: samples, shape: last.shape, layer: name)
            gradOutput = .dense(gradBatch.channelRows.base)
        }
        let C = features
        // With a fused activation, gradOutput is dL/d(activation output).
        let slope = last.activationSlope
        let k = forwardConstants(slope: slope)
        let s1 = gradSums.pointer, s2 = gradSums.pointer + C
        Kernels.batchNormGradientSums(g: gradOutput, x: x.base, rows: rows, cols: C, k, s1: s1, s2: s2)
        if let w = weightSlot { let dw = store.gradient(w); for c in 0..<C { dw[c] = Float(s2[c]) } }
        if let b = biasSlot { let db = store.gradient(b); for c in 0..<C { db[c] = Float(s1[c]) } }

        // All members join the collective, even if this one needs no input gradient.
        if last.usedBatchStats, let group, group.worldSize > 1 {
            let start = monotonicSeconds()
            try group.allReduce(gradSums.buffer, op: .sum)
            let seconds = monotonicSeconds() - start
            communicationSeconds += seconds
            exchangeLog?.record(seconds)
        }
        guard needsInputGradient else { return nil }
        let dx = gradInput.matrix(rows: rows, cols: C)  // the [N·H·W, C] view
        if last.usedBatchStats {
            let invN = 1 / Double(last.globalCount)
            // dx = γ·invstd·(dy − S1/N − x̂·S2/N), constants per channel in float32
            let coef = coefficients
            for c in 0..<C {
                let gamma = weightSlot.map { Double(store.parameter($0)[c]) } ?? 1
                coef[c] = Float(gamma * invStd.pointer[c])
                coef[C + c] = Float(s1[c] * invN)
                coef[2 * C + c] = Float(s2[c] * invN)
            }
            Kernels.batchNormBackward(g: gradOutput, x: x.base, rows: rows, cols: C, k, scale: coef, a: coef + C,
                                      s: coef + 2 * C, d: dx.base)
        } else {
            // Running statistics are constants: dx = dy·γ·invstd (and the activation's
            // derivative, read from the output).
            let coef = coefficients
            for c in 0..<C {
                coef[c] = (weightSlot.map { store.parameter($0)[c] } ?? 1) * Float(invStd.pointer[c])
            }
            guard case let .dense(g) = gradOutput else { throw NNError("\(name): a fused pooling needs training") }
            let y = output.matrix(rows: rows, cols: C)
            for r in 0..<rows {
                let d = dx.row(r), out = y.row(r), g = g + r * C
                for c in 0..<C {
                    let gc = slope.map { out[c] <= 0 ? g[c] * $0 : g[c] } ?? g[c]
                    d[c] = gc * coef[c]
                }
            }
        }
        return dx.reshaped(rows: samples, last.shape)
    }
}

/// `torch.nn.BatchNorm1d` over [B, C] feature batches (`SyncBatchNorm` with a group).
public final class BatchNorm1d: BatchNorm {
    public init(features: Int, eps: Double = 1e-5, momentum: Double? = 0.1, affine: Bool = true,
                trackRunningStats: Bool = true, group: (any ProcessGroup)? = nil)
    {
        super.init(.features, features: features, eps: eps, momentum: momentum, affine: affine,
                   trackRunningStats: trackRunningStats, group: group)
    }
}

/// `torch.nn.BatchNorm2d` over [B, C, H, W] image batches, statistics per channel over B·H·W
/// (`SyncBatchNorm` with a group: the count exchanged is B·H·W).
public final class BatchNorm2d: BatchNorm {
    public init(channels: Int, eps: Double = 1e-5, momentum: Double? = 0.1, affine: Bool = true,
                trackRunningStats: Bool = true, group: (any ProcessGroup)? = nil)
    {
        super.init(.images, features: channels, eps: eps, momentum: momentum, affine: affine,
                   trackRunningStats: trackRunningStats, group: group)
    }
}
