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
    return GradientCheck.relativeError(a, b, floor: floor)
}

/// The library's finite-difference check (`GradientCheck`), as (input error, worst parameter
/// tensor's error).
func gradientCheck(model: Model, input: [Float], rows: Int, training: Bool = true, step: Float = 3e-3,
                   seed: UInt64 = 99) throws -> (input: Double, parameters: Double)
{
    let check = try GradientCheck.run(model: model, input: input, rows: rows, training: training, step: step,
                                      seed: seed)
    return (check.inputError, check.worstParameterError)
}
