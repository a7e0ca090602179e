import RealModule
/// A small, fast, seedable generator (xoshiro256**, seeded through SplitMix64), so runs are
/// reproducible from a seed on every platform. Not cryptographic.
///
/// ### References
/// - Blackman & Vigna, "Scrambled linear pseudorandom number generators" (2021).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    public private(set) var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var sm = seed
        func splitMix() -> UInt64 {
            sm &+= 0x9E37_79B9_7F4A_7C15
            var z = sm
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    /// Restores a generator from a saved `state` (checkpoints).
    public init(state: (UInt64, UInt64, UInt64, UInt64)) { self.state = state }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotl(state.3, 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 24 random bits (exact in Float).
    @inline(__always)
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Uniform in [low, high).
    @inline(__always)
    public mutating func uniform(_ low: Float, _ high: Float) -> Float { low + (high - low) * nextUnitFloat() }

    /// Standard normal (Box–Muller).
    public mutating func normal() -> Float {
        let u1 = max(Double(next() >> 11) * 0x1.0p-53, .leastNonzeroMagnitude)
        let u2 = Double(next() >> 11) * 0x1.0p-53
        return Float((-2 * Double.log(u1)).squareRoot() * Double.cos(2 * .pi * u2))
    }
}

