import RealModule
/// Learning rate as a function of the optimizer step, matching the closed forms of PyTorch's
/// schedulers stepped once per optimizer step.
public struct LearningRateSchedule: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// lr = base.
        case constant
        /// `StepLR`: lr = base·γ^⌊t / stepSize⌋.
        case step(stepSize: Int, gamma: Float)
        /// `CosineAnnealingLR`: lr = η_min + (base − η_min)·(1 + cos(π·t / T_max)) / 2, t ≤ T_max.
        case cosine(totalSteps: Int, minimum: Float)
    }

    public var base: Float
    public var kind: Kind
    /// Linear warm-up over the first `warmupSteps` steps: lr ramps as base·(t + 1)/warmupSteps
    /// (like `LinearLR(start_factor=1/warmupSteps, total_iters=warmupSteps-1)`), then `kind`
    /// runs with t counted from the end of the warm-up.
    public var warmupSteps: Int

    public init(base: Float, kind: Kind = .constant, warmupSteps: Int = 0) {
        self.base = base
        self.kind = kind
        self.warmupSteps = max(0, warmupSteps)
    }

    /// The learning rate for optimizer step `t` (0-based).
    public func learningRate(at t: Int) -> Float {
        if t < warmupSteps { return base * Float(t + 1) / Float(warmupSteps) }
        let s = t - warmupSteps
        switch kind {
        case .constant:
            return base
        case .step(let stepSize, let gamma):
            return base * Float.pow(gamma, Float(s / max(stepSize, 1)))
        case .cosine(let total, let minimum):
            let progress = Float(min(s, total)) / Float(max(total, 1))
            return minimum + (base - minimum) * (1 + Float.cos(.pi * progress)) / 2
        }
    }
}
