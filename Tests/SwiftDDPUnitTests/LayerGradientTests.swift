import SwiftDDPNN
import Testing
@testable import SwiftDDPTestSupport
/// Finite-difference gradient checks for every layer, alone and composed.
@Suite("Layer gradients (finite differences)")
struct LayerGradientTests {
    static let tolerance = 1e-2

    /// A model of one layer, initialized as PyTorch's defaults.
    static func single(_ layer: any Layer, input: SampleShape) throws -> Model {
        let model = try Model(layer, inputShape: input)
        model.initialize(scheme: .default, seed: 5)
        return model
    }

    @Test("Linear: input, weight and bias gradients", arguments: InitScheme.allCases)
    func linear(scheme: InitScheme) throws {
        let layer = Linear(inFeatures: 5, outFeatures: 4)
        let model = try Model(layer, inputShape: .features(5))
        let store = model.store
        var g = SeededGenerator(seed: 1)
        layer.resetParameters(scheme: scheme, using: &g)
        // non-zero biases so their gradient is exercised whatever the scheme
        for i in 0..<4 { store.parameter(layer.biasSlot)[i] = Float(i) * 0.1 - 0.15 }
        var rng = TestRandom(seed: 2)
        let errors = try gradientCheck(model: model, input: rng.uniform(3 * 5), rows: 3)
        #expect(errors.input < Self.tolerance, "input gradient error \(errors.input)")
        #expect(errors.parameters < Self.tolerance, "parameter gradient error \(errors.parameters)")
    }

    @Test("activations", arguments: ActivationKind.allCases)
    func activation(kind: ActivationKind) throws {
        let model = try Self.single(Activation(kind), input: .features(6))
        var rng = TestRandom(seed: 3)
        // keep inputs away from ReLU's kink at 0 (farther than the finite-difference step)
        let x = rng.uniform(4 * 6, 0.2, 2).enumerated().map { $0.offset % 2 == 0 ? $0.element : -$0.element }
        let errors = try gradientCheck(model: model, input: x, rows: 4)
        #expect(errors.input < Self.tolerance, "\(kind) input gradient error \(errors.input)")
    }

    @Test("BatchNorm1d in training mode (batch statistics)", arguments: [true, false])
    func batchNormTraining(affine: Bool) throws {
        let bn = BatchNorm1d(features: 4, affine: affine)
        let model = try Model(bn, inputShape: .features(4))
        let store = model.store
        bn.resetParameters()
        if affine {
            for c in 0..<4 {
                store.parameter(bn.weightSlot!)[c] = 0.5 + Float(c) * 0.3
                store.parameter(bn.biasSlot!)[c] = Float(c) * 0.1
            }
        }
        var rng = TestRandom(seed: 4)
        let errors = try gradientCheck(model: model, input: rng.normal(7 * 4, mean: 0.5, std: 1.5), rows: 7)
        #expect(errors.input < Self.tolerance, "input gradient error \(errors.input)")
        #expect(errors.parameters < Self.tolerance, "parameter gradient error \(errors.parameters)")
    }

    @Test("BatchNorm1d in evaluation mode (running statistics)")
    func batchNormEval() throws {
        let bn = BatchNorm1d(features: 3)
        let model = try Model(bn, inputShape: .features(3))
        let store = model.store
        bn.resetParameters()
        for c in 0..<3 {
            store.buffer(bn.runningMeanSlot!)[c] = Float(c) - 1
            store.buffer(bn.runningVarSlot!)[c] = 0.5 + Float(c)
            store.parameter(bn.weightSlot!)[c] = 1.5 - Float(c) * 0.4
        }
        var rng = TestRandom(seed: 6)
        let errors = try gradientCheck(model: model, input: rng.normal(5 * 3), rows: 5, training: false)
        #expect(errors.input < Self.tolerance)
        #expect(errors.parameters < Self.tolerance)
    }

    @Test("Dropout with sample keys: a row's mask depends on its key only, not on its place in the batch")
    func dropoutKeys() throws {
        let layer = Dropout(probability: 0.5, seed: 9)
        var x = [Float](repeating: 1, count: 3 * 64)
        func masks(_ keys: [UInt64]) throws -> [[Float]] {
            try keys.withUnsafeBufferPointer { k in
                layer.sampleKeys = k
                defer { layer.sampleKeys = nil }
                let y = try x.withUnsafeMutableBufferPointer {
                    try layer.forward(Matrix(base: $0.baseAddress!, rows: 3, cols: 64), training: true).toArray()
                }
                return (0..<3).map { Array(y[$0 * 64..<($0 + 1) * 64]) }
            }
        }
        let a = try masks([7, 8, 9]), b = try masks([9, 7, 8])
        #expect(a[0] == b[1] && a[1] == b[2] && a[2] == b[0], "each key keeps its mask wherever its row is")
        #expect(a[0] != a[1], "different keys, different masks")
        #expect(a.joined().allSatisfy { $0 == 0 || $0 == 2 })
    }

    @Test("Dropout: the gradient is the saved mask times the upstream gradient")
    func dropout() throws {
        let layer = Dropout(probability: 0.5, seed: 9)
        var x = [Float](repeating: 1, count: 200)
        let y = try x.withUnsafeMutableBufferPointer {
            try layer.forward(Matrix(base: $0.baseAddress!, rows: 10, cols: 20), training: true).toArray()
        }
        let kept = y.filter { $0 != 0 }
        #expect(kept.allSatisfy { $0 == 2 }, "survivors are scaled by 1/(1-p)")
        #expect(kept.count > 60 && kept.count < 140, "about half survive: \(kept.count)")
        var g = (0..<200).map { Float($0) }
        let dx = try g.withUnsafeMutableBufferPointer {
            try layer.backward(Matrix(base: $0.baseAddress!, rows: 10, cols: 20), needsInputGradient: true)!.toArray()
        }
        for i in 0..<200 { #expect(dx[i] == y[i] * Float(i)) }
        let evalOut = try x.withUnsafeMutableBufferPointer {
            try layer.forward(Matrix(base: $0.baseAddress!, rows: 10, cols: 20), training: false).toArray()
        }
        #expect(evalOut == x, "identity in evaluation")
    }

    @Test("softmax cross-entropy: value and gradient")
    func crossEntropy() throws {
        let loss = SoftmaxCrossEntropy()
        var rng = TestRandom(seed: 7)
        var logits = rng.uniform(4 * 5, -3, 3)
        logits[0] = 80  // large logits must not overflow
        let labels: [Int32] = [0, 4, 2, 2]
        func value(_ z: inout [Float]) throws -> Double {
            try z.withUnsafeMutableBufferPointer { b in
                try labels.withUnsafeBufferPointer {
                    try loss.forward(logits: Matrix(base: b.baseAddress!, rows: 4, cols: 5), labels: $0).loss
                }
            }
        }
        let l = try value(&logits)
        // reference in Double
        var expected = 0.0
        for r in 0..<4 {
            let z = logits[r * 5..<r * 5 + 5].map(Double.init)
            let m = z.max()!
            let lse = m + z.reduce(0) { $0 + Foundation.exp($1 - m) }.log()
            expected += lse - z[Int(labels[r])]
        }
        #expect(abs(l - expected / 4) < 1e-5)
        let analytic = loss.backward().toArray().map(Double.init)
        var numeric: [Double] = []
        for i in 0..<logits.count {
            let saved = logits[i]
            logits[i] = saved + 1e-2
            let plus = try value(&logits)
            logits[i] = saved - 1e-2
            let minus = try value(&logits)
            logits[i] = saved
            numeric.append((plus - minus) / 2e-2)
        }
        #expect(relativeError(analytic, numeric) < 1e-2)
    }

    @Test("whole MLP with BatchNorm", arguments: [ActivationKind.tanh, .sigmoid, .leakyReLU])
    func mlp(activation: ActivationKind) throws {
        let config = ModelConfiguration(inputFeatures: 6, depth: 2, width: 5, classes: 3, activation: activation,
                                        norm: .bn)
        let model = try config.build(seed: 11)
        var rng = TestRandom(seed: 12)
        let errors = try gradientCheck(model: model, input: rng.normal(8 * 6), rows: 8)
        #expect(errors.input < Self.tolerance, "input gradient error \(errors.input)")
        #expect(errors.parameters < Self.tolerance, "parameter gradient error \(errors.parameters)")
    }
}

import Foundation
extension Double {
    func log() -> Double { Foundation.log(self) }
}
