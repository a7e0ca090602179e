import SwiftDDPNN
import Testing
/// Seeded values for tests.
struct TestRandom {
    var generator: SeededGenerator
    init(seed: UInt64) { generator = SeededGenerator(seed: seed) }
    mutating func uniform(_ n: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
        (0..<n).map { _ in generator.uniform(lo, hi) }
    }
    mutating func normal(_ n: Int, mean: Float = 0, std: Float = 1) -> [Float] {
        (0..<n).map { _ in mean + std * generator.normal() }
    }
}

/// Relative error of two vectors: ‖a − b‖ / max(‖a‖, ‖b‖, floor).
func relativeError(_ a: [Double], _ b: [Double], floor: Double = 1e-6) -> Double {
    // A length mismatch fails the test that asked, rather than trapping the whole run.
    guard a.count == b.count else {
        Issue.record("relativeError: vectors of \(a.count) and \(b.count) elements")
        return .infinity
    }
    var diff = 0.0, na = 0.0, nb = 0.0
    for i in a.indices {
        diff += (a[i] - b[i]) * (a[i] - b[i])
        na += a[i] * a[i]
        nb += b[i] * b[i]
    }
    return diff.squareRoot() / max(na.squareRoot(), nb.squareRoot(), floor)
}

/// Finite-difference check of a model's input and parameter gradients for the scalar
/// L = Σ output ⊙ R with a fixed random R (so every output element matters).
/// Returns the relative errors (input, and the worst parameter tensor's).
func gradientCheck(model: Model, input: [Float], rows: Int, training: Bool = true, step: Float = 3e-3,
                   seed: UInt64 = 99) throws -> (input: Double, parameters: Double)
{
    var x = input
    let cols = input.count / max(rows, 1)
    var rng = TestRandom(seed: seed)
    let outCols = model.outputFeatures
    let projection = rng.uniform(rows * outCols)

    // The input lives in a Workspace (aligned, like the trainer's batches): oneDNN's last bits
    // depend on alignment, and a near-tie in a max pooling must not flip between evaluations.
    let staged = Workspace()
    func loss(_ x: inout [Float]) throws -> Double {
        try x.withUnsafeMutableBufferPointer { buffer in
            let input = staged.matrix(rows: rows, cols: cols)
            input.base.update(from: buffer.baseAddress!, count: buffer.count)
            let y = try model.forward(input, training: training)
            var total = 0.0
            for i in 0..<y.count { total += Double(y.base[i]) * Double(projection[i]) }
            return total
        }
    }

    // Analytic gradients.
    var analyticInput: [Double] = []
    let input = Workspace()
    try x.withUnsafeMutableBufferPointer { buffer in
        let staged = input.matrix(rows: rows, cols: cols)
        staged.base.update(from: buffer.baseAddress!, count: buffer.count)
        _ = try model.forward(staged, training: training)
        var r = projection
        try r.withUnsafeMutableBufferPointer { g in
            let dy = Matrix(base: g.baseAddress!, rows: rows, shape: model.outputShape)
            let dx = try #require(try model.backward(dy, needsInputGradient: true))
            analyticInput = dx.toArray().map(Double.init)
        }
    }
    let analyticParameters = model.store.gradients.map(Double.init)

    // Central differences over any set of values we can read and write.
    func centralDifferences(count: Int, read: (Int) -> Float, write: (Int, Float) -> Void) throws -> [Double] {
        try (0..<count).map { i in
            let saved = read(i)
            write(i, saved + step)
            let plus = try loss(&x)
            write(i, saved - step)
            let minus = try loss(&x)
            write(i, saved)
            return (plus - minus) / (2 * Double(step))
        }
    }
    let numericInput = try centralDifferences(count: x.count, read: { x[$0] }, write: { x[$0] = $1 })
    let p = model.store.parameters
    let numericParameters = try centralDifferences(count: p.count, read: { p[$0] }, write: { p[$0] = $1 })
    // Per tensor, so a wrong gradient in a small one (a BN β, a bias) cannot hide in the norm of
    // the rest; tensors whose gradient is near zero (a bias before a BatchNorm) are measured
    // against 1% of the whole gradient instead of their own size (float32 noise).
    let whole = analyticParameters.reduce(0) { $0 + $1 * $1 }.squareRoot()
    let perTensor = model.store.parameterSlots.map { slot -> Double in
        let range = slot.offset..<slot.offset + slot.count
        return relativeError(Array(analyticParameters[range]), Array(numericParameters[range]),
                             floor: max(1e-2 * whole, 1e-6))
    }
    return (relativeError(analyticInput, numericInput), perTensor.max() ?? 0)
}
