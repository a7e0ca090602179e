/// Monotonic time in seconds, for step-time breakdowns.
@inline(__always)
public func monotonicSeconds() -> Double {
    let d = ContinuousClock.now.duration(to: ContinuousClock.Instant.zeroReference)
    return -(Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
}

extension ContinuousClock.Instant {
    static let zeroReference = ContinuousClock.now
}
