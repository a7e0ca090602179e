import SwiftDDPCollectives
import SwiftDDPNN
/// One diagnostics measurement (all values global, identical on every rank).
public struct DiagnosticsRecord: Sendable, Equatable {
    public var step = 0
    public var epoch = 0
    public var loss = Double.nan
    /// Per Linear layer, input to output.
    public var weightGradNorm: [Double] = []
    public var inputGradNorm: [Double] = []
    /// Per hidden block.
    public var preactMean: [Double] = []
    public var preactStd: [Double] = []
    public var saturation: [Double] = []
    /// Per hidden block: how far the statistics each rank *normalized with* are from those of
    /// the global batch (local BN: its own batch; SyncBN: the group's; no BN: none, so empty).
    public var batchStatNoiseMean: [Double] = []
    public var batchStatNoiseVariance: [Double] = []
    /// Per hidden block: how far each rank's own batch statistics of the normalized quantity
    /// are from the global batch's, whatever the normalization (what local BN would use).
    public var rankStatNoiseMean: [Double] = []
    public var rankStatNoiseVariance: [Double] = []
    /// Covariate shift (with the probe): per Linear after the first / per Linear.
    public var distributionShift: [Double]? = nil
    public var icsGradientRelative: [Double]? = nil
    public var icsGradientCosine: [Double]? = nil

    /// ‖∂L/∂W‖ of the first Linear layer over that of the last.
    public var firstToLastGradientRatio: Double? {
        guard let first = weightGradNorm.first, let last = weightGradNorm.last, last > 0 else { return nil }
        return first / last
    }

    /// The metrics-file line.
    public var json: [String: Any] {
        var r: [String: Any] = [
            "kind": "diagnostics", "step": step, "epoch": epoch + 1, "loss": loss,
            "weight_grad_norm": weightGradNorm, "input_grad_norm": inputGradNorm,
            "preact_mean": preactMean, "preact_std": preactStd, "saturation": saturation,
            "bn_noise_mean": batchStatNoiseMean, "bn_noise_variance": batchStatNoiseVariance,
            "rank_noise_mean": rankStatNoiseMean, "rank_noise_variance": rankStatNoiseVariance,
        ]
        if let ratio = firstToLastGradientRatio { r["first_last_grad_ratio"] = ratio }
        if let d = distributionShift { r["distribution_shift"] = d }
        if let g = icsGradientRelative { r["ics_gradient_relative"] = g }
        if let c = icsGradientCosine { r["ics_gradient_cosine"] = c }
        return r
    }
}

/// Measurements for studying gradients and normalization, taken every `every` steps when
/// enabled (`ddp train --diagnostics`); when disabled the trainer installs no observers and
/// pays nothing. All quantities are global (reduced over the ranks) and identical on every rank.
///
/// Per hidden block k = 1…D and the output layer (Linear layers, in order):
/// - `weight_grad_norm`: ‖∂L/∂W‖ of the averaged gradient the optimizer applies;
/// - `input_grad_norm`: ‖∂L/∂x‖ of the gradient reaching the Linear layer's input, for the
///   global loss (the mean of the ranks' batch losses), over the global batch.
/// Per hidden block (the input of its activation, i.e. the pre-activation):
/// - `preact_mean`, `preact_std`: over all units and samples of the global batch;
/// - `saturation`: the fraction of units whose activation derivative is below 1% of its
///   maximum: sigmoid σ' < 0.0025, tanh 1 − y² < 0.01, ReLU x ≤ 0 (zero derivative: "dead");
///   LeakyReLU never saturates by this definition (its smallest derivative is exactly 1%).
/// Per hidden block, the statistics noise, as RMS over channels of (μ − μ_global)/σ_global
/// (`mean`) and σ²/σ²_global − 1 (`variance`), averaged over ranks, where μ_global, σ_global
/// are the statistics of the Linear output over the global batch:
/// - `bn_noise`: of the statistics the BatchNorm layer normalized with (this rank's batch for
///   local BN, the group's for SyncBN over subgroups, the world's for SyncBN: ≈ 0) — the noise
///   SyncBN removes;
/// - `rank_noise`: of this rank's own batch statistics, for any network (what local BN uses).
/// Internal covariate shift, on a fixed probe batch (see `ProbeMeasurements`).
public final class Diagnostics {
    public let every: Int
    private let model: Model
    private let group: any ProcessGroup
    private let linearIndices: [Int]
    private let activationIndices: [Int]
    private let activationKinds: [ActivationKind]
    /// Layer whose output is a BatchNorm input (the Linear before each BN).
    private let bnInputIndices: [Int]
    private var armed = false

    // Local accumulators of the armed step.
    private var preactSums: [Double]  // per activation: n, Σx, Σx², saturated
    private var inputGradSquares: [Double]  // per linear
    private var bnLocal: [[Double]]  // per BN input: [n, mean(C), M2(C)]

    public init(model: Model, group: any ProcessGroup, every: Int) {
        self.every = max(1, every)
        self.model = model
        self.group = group
        let layers = model.leaves
        linearIndices = layers.indices.filter { weightSlot(of: layers[$0]) != nil }
        activationIndices = layers.indices.filter { layers[$0] is Activation }
        activationKinds = activationIndices.map { (layers[$0] as! Activation).kind }
        bnInputIndices = layers.indices.filter { i in
            weightSlot(of: layers[i]) != nil && i + 1 < layers.count
                && (layers[i + 1] is BatchNorm || layers[i + 1] is GroupNorm || layers[i + 1] is Activation)
        }
        preactSums = []
        inputGradSquares = []
        bnLocal = []
    }

    public func isDue(step: Int) -> Bool { step % every == 0 }

    /// Installs the observers for the next forward/backward.
    public func arm() {
        armed = true
        preactSums = [Double](repeating: 0, count: 4 * activationIndices.count)
        inputGradSquares = [Double](repeating: 0, count: linearIndices.count)
        bnLocal = Array(repeating: [], count: bnInputIndices.count)
        let layers = model.leaves
        model.forwardObserver = { [unowned self] index, output in
            // Pre-activation: the output of the layer just before an activation.
            if index + 1 < layers.count, let a = self.activationIndices.firstIndex(of: index + 1) {
                var s = 0.0, s2 = 0.0
                for i in 0..<output.count { let v = Double(output.base[i]); s += v; s2 += v * v }
                self.preactSums[4 * a] += Double(output.count)
                self.preactSums[4 * a + 1] += s
                self.preactSums[4 * a + 2] += s2
            }
            if let a = self.activationIndices.firstIndex(of: index) {
                let kind = self.activationKinds[a]
                var saturated = 0
                let threshold = 0.01 * kind.maxDerivative
                for i in 0..<output.count where Activation.derivative(kind, output: output.base[i]) < threshold {
                    saturated += 1
                }
                self.preactSums[4 * a + 3] += Double(saturated)
            }
            if let b = self.bnInputIndices.firstIndex(of: index) {
                self.bnLocal[b] = columnStatistics(output.channelRows)
            }
        }
        model.backwardObserver = { [unowned self] index, gradInput in
            if let l = self.linearIndices.firstIndex(of: index) {
                var s = 0.0
                for i in 0..<gradInput.count { let v = Double(gradInput.base[i]); s += v * v }
                self.inputGradSquares[l] = s
            }
        }
    }

    /// Drops an armed measurement (the step was skipped).
    public func disarm() {
        armed = false
        model.forwardObserver = nil
        model.backwardObserver = nil
    }

    /// Completes the armed step after the gradients were averaged: reduces everything over the
    /// ranks (a few collectives) and returns the record (identical on every rank).
    public func collect(step: Int, epoch: Int) throws -> DiagnosticsRecord {
        guard armed else { return DiagnosticsRecord(step: step, epoch: epoch) }
        armed = false
        model.forwardObserver = nil
        model.backwardObserver = nil
        var sums = preactSums + inputGradSquares
        try group.allReduce(&sums, op: .sum)
        let A = activationIndices.count
        var preMean: [Double] = [], preStd: [Double] = [], saturation: [Double] = []
        for a in 0..<A {
            let n = max(sums[4 * a], 1), mean = sums[4 * a + 1] / n
            preMean.append(mean)
            preStd.append(max(sums[4 * a + 2] / n - mean * mean, 0).squareRoot())
            saturation.append(sums[4 * a + 3] / n)
        }
        // The trainer's loss gradient already carries the 1/W of the global mean loss.
        let inputGrad = (0..<linearIndices.count).map { sums[4 * A + $0].squareRoot() }
        let store = model.store
        let weightGrad = linearIndices.map { i -> Double in
            let slot = weightSlot(of: model.leaves[i])!
            var s = 0.0
            let g = store.gradient(slot)
            for j in 0..<slot.count { s += Double(g[j]) * Double(g[j]) }
            return s.squareRoot()
        }
        var record = DiagnosticsRecord(step: step, epoch: epoch, weightGradNorm: weightGrad, inputGradNorm: inputGrad,
                                       preactMean: preMean, preactStd: preStd, saturation: saturation)
        for noise in try batchStatisticsNoise() {
            record.rankStatNoiseMean.append(noise.rank.mean)
            record.rankStatNoiseVariance.append(noise.rank.variance)
            if let used = noise.used {
                record.batchStatNoiseMean.append(used.mean)
                record.batchStatNoiseVariance.append(used.variance)
            }
        }
        return record
    }

    typealias Noise = (mean: Double, variance: Double)

    /// RMS over channels of the differences to the global statistics, averaged over ranks, per
    /// BN input: for this rank's batch and, when a BN layer follows, for the statistics it used.
    private func batchStatisticsNoise() throws -> [(rank: Noise, used: Noise?)] {
        var out: [(rank: Noise, used: Noise?)] = []
        for (b, local) in bnLocal.enumerated() {
            let stride = local.count
            guard stride > 1 else { continue }
            let C = (stride - 1) / 2
            let global = mergeStatistics(try group.allGather(local), channels: C, ranks: group.worldSize)
            func noise(mean: [Double], variance: [Double]) -> Noise {
                var dm = 0.0, dv = 0.0
                for c in 0..<C {
                    let sigma2 = max(global.variance[c], 1e-12)
                    let m = (mean[c] - global.mean[c]) / sigma2.squareRoot(), v = variance[c] / sigma2 - 1
                    dm += m * m
                    dv += v * v
                }
                return ((dm / Double(C)).squareRoot(), (dv / Double(C)).squareRoot())
            }
            let n = max(local[0], 1)
            let rank = noise(mean: Array(local[1...C]), variance: (0..<C).map { local[1 + C + $0] / n })
            let bn = model.leaves[bnInputIndices[b] + 1] as? BatchNorm
            let used = bn.map { layer -> Noise in
                let stats = layer.lastBatchStatistics()
                return noise(mean: stats.mean, variance: stats.variance)
            }
            var sums = [rank.mean, rank.variance, used?.mean ?? 0, used?.variance ?? 0]
            try group.allReduce(&sums, op: .sum)
            let W = Double(group.worldSize)
            out.append(((sums[0] / W, sums[1] / W), used == nil ? nil : (sums[2] / W, sums[3] / W)))
        }
        return out
    }
}

/// The weight of a Linear or Conv2d layer (whose gradient norms the diagnostics record).
func weightSlot(of layer: any Layer) -> TensorSlot? {
    (layer as? Linear)?.weightSlot ?? (layer as? Conv2d)?.weightSlot
}

/// `ChannelStatistics.compute` as an array [n, mean(C), M2(C)] (diagnostics only).
func columnStatistics(_ m: Matrix) -> [Double] {
    [Double](unsafeUninitializedCapacity: 1 + 2 * m.cols) { buffer, count in
        ChannelStatistics.compute(m, into: buffer.baseAddress!)
        count = 1 + 2 * m.cols
    }
}

/// `ChannelStatistics.merge` of all-gathered blocks; returns the mean and biased variance.
func mergeStatistics(_ all: [Double], channels C: Int, ranks: Int) -> (mean: [Double], variance: [Double]) {
    var mean = [Double](repeating: 0, count: C), m2 = [Double](repeating: 0, count: C)
    let n = all.withUnsafeBufferPointer { blocks in
        mean.withUnsafeMutableBufferPointer { meanOut in
            m2.withUnsafeMutableBufferPointer { m2Out in
                ChannelStatistics.merge(blocks.baseAddress!, ranks: ranks, channels: C,
                                        mean: meanOut.baseAddress!, m2: m2Out.baseAddress!)
            }
        }
    }
    return (mean, m2.map { n > 0 ? $0 / Double(n) : 0 })
}
