import SwiftDDPCollectives
import SwiftDDPNN
/// The floor of a training step: the model's convolutions and matrix products (every Conv2d and
/// Linear, forward and backward, on the inputs they saw in training) run alone, with nothing
/// between them. Each runs on its own copy of the layer with its own buffers, in the order the
/// step runs them (forward in order, backward in reverse), so the cache traffic is the step's.
struct LayerFloor {
    /// Seconds per step, all measured layers together (the slowest rank, median over repeats).
    var seconds: Double
    /// Seconds per step by kind ("convolution", "linear").
    var secondsByKind: [String: Double]

    static func measure(model: Model, timer: LayerTimer, warmup: Int, steps: Int, repeats: Int,
                        group: any ProcessGroup) throws -> LayerFloor
    {
        var generator = SeededGenerator(seed: 7)
        struct Part {
            let model: Model
            let input: Matrix
            let gradOutput: Matrix
            let needsInputGradient: Bool
            let kind: LayerTimer.Kind
            let buffers: [Workspace]
        }
        var parts: [Part] = []
        for (i, leaf) in model.leaves.enumerated() {
            guard let seen = timer.lastInput[i] else { continue }
            let copy: any Layer
            if let conv = leaf as? Conv2d {
                copy = Conv2d(conv.inChannels, conv.outChannels, kernel: conv.kernel, stride: conv.stride,
                              padding: conv.padding, bias: conv.hasBias)
            } else if let linear = leaf as? Linear {
                copy = Linear(inFeatures: linear.inFeatures, outFeatures: linear.outFeatures)
            } else {
                continue
            }
            let alone = try Model(copy, inputShape: seen.shape)
            alone.initialize(scheme: .default, seed: 1)
            let inputBuffer = Workspace(), gradientBuffer = Workspace()
            let input = inputBuffer.matrix(rows: seen.rows, shape: seen.shape)
            let gradOutput = gradientBuffer.matrix(rows: seen.rows, shape: alone.outputShape)
            for j in 0..<input.rows * input.cols { input.base[j] = generator.uniform(-1, 1) }
            for j in 0..<gradOutput.rows * gradOutput.cols { gradOutput.base[j] = generator.uniform(-1, 1) * 1e-3 }
            parts.append(Part(model: alone, input: input, gradOutput: gradOutput,
                              needsInputGradient: timer.lastNeededInputGradient[i], kind: timer.kinds[i],
                              buffers: [inputBuffer, gradientBuffer]))
        }
        var byKind = Dictionary(uniqueKeysWithValues: [LayerTimer.Kind.convolution, .linear].map { ($0, 0.0) })
        func oneStep(timed: Bool) throws {
            for part in parts {
                let start = monotonicSeconds()
                _ = try part.model.forward(part.input, training: true)
                if timed { byKind[part.kind, default: 0] += monotonicSeconds() - start }
            }
            for part in parts.reversed() {
                let start = monotonicSeconds()
                try part.model.backward(part.gradOutput, needsInputGradient: part.needsInputGradient)
                if timed { byKind[part.kind, default: 0] += monotonicSeconds() - start }
            }
        }
        for _ in 0..<warmup { try oneStep(timed: false) }
        var totals: [Double] = [], kinds: [[LayerTimer.Kind: Double]] = []
        for _ in 0..<repeats {
            for key in byKind.keys { byKind[key] = 0 }
            try group.barrier()
            let start = monotonicSeconds()
            for _ in 0..<steps { try oneStep(timed: true) }
            var t = [(monotonicSeconds() - start) / Double(steps)]
            try group.allReduce(&t, op: .max)
            totals.append(t[0])
            kinds.append(byKind.mapValues { $0 / Double(steps) })
        }
        let pick = totals.firstIndex(of: median(totals)) ?? 0
        return LayerFloor(seconds: totals[pick],
                          secondsByKind: Dictionary(
                              uniqueKeysWithValues: kinds[pick].map { ($0.key.rawValue, $0.value) }))
    }
}
