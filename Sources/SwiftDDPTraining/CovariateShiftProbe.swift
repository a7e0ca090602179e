import SwiftDDPCollectives
import SwiftDDPNN
/// Internal covariate shift, measured on a fixed probe batch (the same samples at every
/// measurement, so batch-to-batch sampling noise does not count as shift). Two definitions:
///
/// - **Distribution shift** (Ioffe & Szegedy's notion, the one the background article uses):
///   for the input of every Linear layer after the first, the per-unit mean and standard
///   deviation over the probe batch; the shift between two measurements is
///   RMS_units(Δmean) / RMS_units(std) — how far the layer's input distribution moved, in
///   units of its spread.
/// - **Gradient shift** (Santurkar et al. 2018, §2.2): for Linear layer l, the gradient of its
///   weights before the update, G_l, and after only the layers *below* l took their update,
///   G'_l. Reported as ‖G_l − G'_l‖ / ‖G_l‖ and cos(G_l, G'_l): how much the updates of the
///   earlier layers change what layer l should do.
///
/// The probe runs in training mode (batch statistics, like the step it follows); BatchNorm
/// running statistics and counters are restored afterwards, and gradient synchronization hooks
/// are disabled, so the probe leaves training untouched. Every rank runs the same probe, so
/// SyncBN collectives inside it stay matched.
///
/// ### References
/// - Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing
///   Internal Covariate Shift" (2015), https://arxiv.org/abs/1502.03167
/// - Santurkar, Tsipras, Ilyas & Madry, "How Does Batch Normalization Help Optimization?"
///   (2018), https://arxiv.org/abs/1805.11604
public final class CovariateShiftProbe {
    private let model: Model
    private let inputs: [Float]
    private let labels: [Int32]
    private let rows: Int
    private let loss = SoftmaxCrossEntropy()
    private let linearIndices: [Int]
    private var previous: [[Double]]? = nil  // per Linear (after the first): means then stds
    private var savedParameters: [Float]

    public init(model: Model, inputs: [Float], labels: [Int32]) {
        self.model = model
        self.inputs = inputs
        self.labels = labels
        rows = labels.count
        linearIndices = model.leaves.indices.filter { weightSlot(of: model.leaves[$0]) != nil }
        savedParameters = [Float](repeating: 0, count: model.store.parameterCount)
    }

    /// Keeps a copy of the parameters before the optimizer step (θ_t).
    public func rememberParametersBeforeStep() {
        savedParameters.withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: model.store.parameters) }
    }

    /// Measures after the optimizer step and fills the covariate-shift fields of `record`.
    public func measure(into record: inout DiagnosticsRecord) throws {
        let store = model.store
        let buffers = Array(store.buffers), counters = store.counters
        let hook = model.onGradientsReady
        model.onGradientsReady = nil
        let newParameters = Array(store.parameters)
        defer {
            _ = store.parameters.update(fromContentsOf: newParameters)
            _ = store.buffers.update(fromContentsOf: buffers)
            store.counters = counters
            model.onGradientsReady = hook
        }

        // Distribution of every Linear input (after the first) at θ_{t+1}.
        var current: [[Double]] = []
        let observed = Set(linearIndices.dropFirst().map { $0 - 1 })
        model.forwardObserver = { index, output in
            if observed.contains(index) {
                let s = columnStatistics(output.channelRows)
                let C = output.shape.channels, n = max(s[0], 1)
                current.append(Array(s[1...C]) + (0..<C).map { (s[1 + C + $0] / n).squareRoot() })
            }
        }
        _ = try forwardBackward()
        model.forwardObserver = nil
        if let previous {
            record.distributionShift = zip(previous, current).map { old, new -> Double in
                let C = old.count / 2
                var dm = 0.0, sd = 0.0
                for c in 0..<C {
                    dm += (new[c] - old[c]) * (new[c] - old[c])
                    sd += old[C + c] * old[C + c]
                }
                return (dm / Double(C)).squareRoot() / max((sd / Double(C)).squareRoot(), 1e-12)
            }
        }
        previous = current

        // Santurkar et al.'s gradient shift: G_l at θ_t, G'_l with layers below l at θ_{t+1}.
        let old = savedParameters
        _ = store.parameters.update(fromContentsOf: old)
        _ = try forwardBackward()
        let before = linearIndices.map { weightGradient($0) }
        var relative: [Double] = [0], cosine: [Double] = [1]
        for (k, l) in linearIndices.enumerated().dropFirst() {
            // layers below l updated, l and above as before the step
            let boundary = weightSlot(of: model.leaves[l])!.offset
            _ = UnsafeMutableBufferPointer(rebasing: store.parameters[0..<boundary])
                .update(fromContentsOf: newParameters[0..<boundary])
            _ = UnsafeMutableBufferPointer(rebasing: store.parameters[boundary...])
                .update(fromContentsOf: old[boundary...])
            _ = try forwardBackward()
            let after = weightGradient(l)
            var diff = 0.0, na = 0.0, nb = 0.0, dot = 0.0
            for i in after.indices {
                let a = before[k][i], b = after[i]
                diff += (a - b) * (a - b); na += a * a; nb += b * b; dot += a * b
            }
            relative.append(diff.squareRoot() / max(na.squareRoot(), 1e-30))
            cosine.append(dot / max((na * nb).squareRoot(), 1e-30))
        }
        record.icsGradientRelative = relative
        record.icsGradientCosine = cosine
    }

    private func weightGradient(_ layer: Int) -> [Double] {
        let slot = weightSlot(of: model.leaves[layer])!
        let g = model.store.gradient(slot)
        return (0..<slot.count).map { Double(g[$0]) }
    }

    private func forwardBackward() throws -> Double {
        var x = inputs
        return try x.withUnsafeMutableBufferPointer { buffer in
            let logits = try model.forward(Matrix(base: buffer.baseAddress!, rows: rows, cols: model.inputFeatures),
                                           training: true)
            let value = try labels.withUnsafeBufferPointer { try loss.forward(logits: logits, labels: $0).loss }
            try model.backward(loss.backward())
            return value
        }
    }
}
