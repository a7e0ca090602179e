/// Finite-difference gradient checks, for your own layers as for the project's: the analytic
/// gradients of `backward` against central differences of `forward`, for the scalar
/// L = Σ output ⊙ R with a fixed random R (so every output element matters).
///
/// ```swift
/// let check = try GradientCheck.run(layer: MyLayer(), inputShape: .features(5), rows: 4)
/// precondition(check.passes(), "\(check)")
/// ```
///
/// The model runs in float32 (the sums in double): errors around 1e-3 are rounding noise; a wrong
/// gradient gives errors of order 1. Layers with random behaviour in training (Dropout) must be checked
/// with `training: false` or a fixed mask.
public struct GradientCheck: CustomStringConvertible, Sendable {
    /// ‖analytic − numeric‖ / ‖numeric‖ for the input gradient.
    public let inputError: Double
    /// The same per parameter tensor, by name; a tensor whose gradient is near zero is measured
    /// against 1% of the whole parameter gradient instead of its own size.
    public let parameterErrors: [(name: String, error: Double)]

    public var worstParameterError: Double { parameterErrors.map(\.error).max() ?? 0 }

    public func passes(tolerance: Double = 1e-2) -> Bool {
        inputError < tolerance && worstParameterError < tolerance
    }

    public var description: String {
        "input gradient error \(inputError)"
            + parameterErrors.map { ", \($0.name) \($0.error)" }.joined()
    }

    /// Checks `layer` alone on `rows` random samples of `inputShape` (uniform in ±1, seeded).
    public static func run(layer: any Layer, inputShape: SampleShape, rows: Int, training: Bool = true,
                           step: Float = 3e-3, seed: UInt64 = 99) throws -> GradientCheck
    {
        let model = try Model(layer, inputShape: inputShape)
        model.initialize(scheme: .default, seed: seed &+ 1)
        var generator = SeededGenerator(seed: seed &+ 2)
        let input = (0..<rows * inputShape.count).map { _ in generator.uniform(-1, 1) }
        return try run(model: model, input: input, rows: rows, training: training, step: step, seed: seed)
    }

    /// Checks a whole model on `input` (`rows` samples, row-major).
    public static func run(model: Model, input: [Float], rows: Int, training: Bool = true, step: Float = 3e-3,
                           seed: UInt64 = 99) throws -> GradientCheck
    {
        guard rows > 0, input.count == rows * model.inputShape.count else {
            throw NNError("gradient check: \(input.count) input values are not \(rows) samples of \(model.inputShape)")
        }
        var x = input
        let cols = model.inputShape.count
        var generator = SeededGenerator(seed: seed)
        let projection = (0..<rows * model.outputFeatures).map { _ in generator.uniform(-1, 1) }

        // The input lives in a Workspace (aligned, as the trainer's batches): oneDNN's last bits
        // depend on alignment, and a near-tie in a max pooling must not flip between evaluations.
        let staged = Workspace()
        func stage(_ x: [Float]) -> Matrix {
            let m = staged.matrix(rows: rows, cols: cols)
            x.withUnsafeBufferPointer { m.base.update(from: $0.baseAddress!, count: $0.count) }
            return m
        }
        func loss(_ x: [Float]) throws -> Double {
            let y = try model.forward(stage(x), training: training)
            var total = 0.0
            for i in 0..<y.count { total += Double(y.base[i]) * Double(projection[i]) }
            return total
        }

        _ = try model.forward(stage(x), training: training)
        var r = projection
        let analyticInput: [Double] = try r.withUnsafeMutableBufferPointer { g in
            let dy = Matrix(base: g.baseAddress!, rows: rows, shape: model.outputShape)
            guard let dx = try model.backward(dy, needsInputGradient: true) else {
                throw NNError("gradient check: the model returned no input gradient")
            }
            return dx.toArray().map(Double.init)
        }
        let analyticParameters = model.store.gradients.map(Double.init)

        func centralDifferences(count: Int, read: (Int) -> Float, write: (Int, Float) -> Void) throws -> [Double] {
            try (0..<count).map { i in
                let saved = read(i)
                write(i, saved + step)
                let plus = try loss(x)
                write(i, saved - step)
                let minus = try loss(x)
                write(i, saved)
                return (plus - minus) / (2 * Double(step))
            }
        }
        let numericInput = try centralDifferences(count: x.count, read: { x[$0] }, write: { x[$0] = $1 })
        let p = model.store.parameters
        let numericParameters = try centralDifferences(count: p.count, read: { p[$0] }, write: { p[$0] = $1 })
        let whole = analyticParameters.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let perTensor = model.store.parameterSlots.map { slot in
            let range = slot.offset..<slot.offset + slot.count
            return (slot.name, relativeError(Array(analyticParameters[range]), Array(numericParameters[range]),
                                             floor: max(1e-2 * whole, 1e-6)))
        }
        return GradientCheck(inputError: relativeError(analyticInput, numericInput, floor: 1e-6),
                             parameterErrors: perTensor)
    }

    /// ‖a − b‖ / max(‖a‖, ‖b‖, floor), for vectors of equal length.
    public static func relativeError(_ a: [Double], _ b: [Double], floor: Double) -> Double {
        var diff = 0.0, na = 0.0, nb = 0.0
        for i in a.indices {
            diff += (a[i] - b[i]) * (a[i] - b[i])
            na += a[i] * a[i]
            nb += b[i] * b[i]
        }
        return diff.squareRoot() / max(na.squareRoot(), nb.squareRoot(), floor)
    }
}
