import SwiftDDP
import Testing
@testable import SwiftDDPTestSupport

/// A layer as a user writes one with the public API: y = a ⊙ x² + b, per feature, parameters a, b.
final class ScaledSquare: InitializableLayer {
    let features: Int
    /// Breaks the input gradient on purpose (dx = a ⊙ x instead of 2 a ⊙ x).
    let brokenInputGradient: Bool
    private(set) var aSlot = TensorSlot.unregistered, bSlot = TensorSlot.unregistered
    var parameterSlots: [TensorSlot] { [aSlot, bSlot] }
    private var store: ParameterStore!
    private let output = Workspace(), gradInput = Workspace()
    private var lastInput: Matrix?

    init(features: Int, brokenInputGradient: Bool = false) {
        self.features = features
        self.brokenInputGradient = brokenInputGradient
    }

    var description: String { "ScaledSquare(\(features))" }

    func registerState(in scope: ParameterScope) {
        store = scope.store
        aSlot = scope.parameter("a", shape: [features])
        bSlot = scope.parameter("b", shape: [features])
    }

    func outputShape(for input: SampleShape) throws -> SampleShape {
        guard input.count == features else { throw NNError("ScaledSquare(\(features)): got \(input)") }
        return input
    }

    func resetParameters(scheme: InitScheme, using generator: inout SeededGenerator) {
        for i in 0..<features {
            store.parameter(aSlot)[i] = generator.uniform(0.5, 1.5)
            store.parameter(bSlot)[i] = generator.uniform(-0.5, 0.5)
        }
    }

    func forward(_ input: Matrix, training: Bool) throws -> Matrix {
        let y = output.matrix(rows: input.rows, shape: input.shape)
        let a = store.parameter(aSlot), b = store.parameter(bSlot)
        for r in 0..<input.rows {
            for f in 0..<features { y.row(r)[f] = a[f] * input.row(r)[f] * input.row(r)[f] + b[f] }
        }
        lastInput = input
        return y
    }

    func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        guard let x = lastInput else { throw NNError("ScaledSquare.backward before forward") }
        let a = store.parameter(aSlot), da = store.gradient(aSlot), db = store.gradient(bSlot)
        da.update(repeating: 0, count: features)  // gradients are written, not accumulated
        db.update(repeating: 0, count: features)
        let dx = gradInput.matrix(rows: x.rows, shape: x.shape)
        for r in 0..<x.rows {
            for f in 0..<features {
                let g = gradOutput.row(r)[f], v = x.row(r)[f]
                da[f] += g * v * v
                db[f] += g
                dx.row(r)[f] = (brokenInputGradient ? 1 : 2) * a[f] * v * g
            }
        }
        return needsInputGradient ? dx : nil
    }
}

@Suite("GradientCheck, the public finite-difference check")
struct GradientCheckTests {
    @Test("a user's layer with a correct backward passes; the same layer with a wrong input gradient fails")
    func userLayer() throws {
        let good = try GradientCheck.run(layer: ScaledSquare(features: 5), inputShape: .features(5), rows: 4)
        #expect(good.passes(), "\(good)")
        #expect(good.parameterErrors.map(\.name) == ["a", "b"])
        let bad = try GradientCheck.run(layer: ScaledSquare(features: 5, brokenInputGradient: true),
                                        inputShape: .features(5), rows: 4)
        #expect(!bad.passes() && bad.inputError > 0.3, "\(bad)")
    }

    @Test("inside a Sequential, between library layers, the parameters are named by position")
    func inSequential() throws {
        let net = Sequential([Linear(inFeatures: 6, outFeatures: 5), ScaledSquare(features: 5),
                              Linear(inFeatures: 5, outFeatures: 3)])
        let check = try GradientCheck.run(layer: net, inputShape: .features(6), rows: 3)
        #expect(check.passes(), "\(check)")
        #expect(check.parameterErrors.map(\.name) == ["0.weight", "0.bias", "1.a", "1.b", "2.weight", "2.bias"])
    }
}
