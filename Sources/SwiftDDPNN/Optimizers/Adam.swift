import RealModule
import SwiftDDPSafeTensors
/// Adam and AdamW, as `torch.optim.Adam` / `torch.optim.AdamW` (amsgrad off):
///
///     Adam:  g ← ∇ + λ·p            AdamW:  p ← p·(1 − lr·λ), g ← ∇
///     m ← β₁·m + (1 − β₁)·g,   v ← β₂·v + (1 − β₂)·g²
///     p ← p − (lr / (1 − β₁ᵗ)) · m / (sqrt(v) / sqrt(1 − β₂ᵗ) + ε)
///
/// ### References
/// - Kingma & Ba, "Adam" (2015), https://arxiv.org/abs/1412.6980
/// - Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (2019), https://arxiv.org/abs/1711.05101
public final class Adam: Optimizer {
    public var learningRate: Float
    public let beta1: Float
    public let beta2: Float
    public let epsilon: Float
    public let weightDecay: Float
    /// Decoupled weight decay (AdamW) instead of an L2 term in the gradient.
    public let decoupledWeightDecay: Bool
    private let store: ParameterStore
    private let firstMoment: FlatVector
    private let secondMoment: FlatVector
    public private(set) var stepCount: Int64 = 0
    public private(set) var lastStepWasFinite = true

    public init(store: ParameterStore, learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8, weightDecay: Float = 0, decoupledWeightDecay: Bool = false) throws
    {
        guard learningRate >= 0, learningRate.isFinite else { throw NNError("invalid learning rate \(learningRate)") }
        guard (0..<1).contains(beta1), (0..<1).contains(beta2) else { throw NNError("Adam betas must be in [0, 1)") }
        guard epsilon >= 0, weightDecay >= 0 else { throw NNError("Adam epsilon and weight decay must be ≥ 0") }
        self.store = store
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
        firstMoment = FlatVector(count: store.parameterCount)
        secondMoment = FlatVector(count: store.parameterCount)
    }

    public func step() { step(range: 0..<store.parameterCount) }

    public func step(range: Range<Int>) {
        stepCount += 1
        let lo = range.lowerBound
        let p = store.parameters.baseAddress! + lo, grad = store.gradients.baseAddress! + lo
        let m = firstMoment.buffer.baseAddress! + lo, v = secondMoment.buffer.baseAddress! + lo
        let t = Float(stepCount)
        let bc1 = 1 - Float.pow(beta1, t), bc2Sqrt = (1 - Float.pow(beta2, t)).squareRoot()
        let stepSize = learningRate / bc1
        let l2 = decoupledWeightDecay ? 0 : weightDecay
        let shrink = decoupledWeightDecay ? 1 - learningRate * weightDecay : 1
        var poison: Float = 0
        defer { lastStepWasFinite = poison == 0 }
        for i in 0..<range.count {
            p[i] *= shrink
            let g = grad[i] + l2 * p[i]
            poison += grad[i] * 0
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            p[i] -= stepSize * m[i] / (v[i].squareRoot() / bc2Sqrt + epsilon)
        }
    }

    public var stateVectors: Int { 2 }

    /// Both moments, first then second.
    public func relocateState(to storage: UnsafeMutablePointer<Float>, owner: AnyObject, copyingValues: Bool) {
        firstMoment.relocate(to: storage, owner: owner, copyingValues: copyingValues)
        secondMoment.relocate(to: storage + store.parameterCount, owner: owner, copyingValues: copyingValues)
    }

    public func stateDict() -> [String: TensorData] {
        var dict = flatStateDict(store, "exp_avg", firstMoment.values)
        dict.merge(flatStateDict(store, "exp_avg_sq", secondMoment.values)) { a, _ in a }
        dict["step"] = TensorData(int64s: [stepCount], shape: [])
        return dict
    }

    public func loadStateDict(_ dict: [String: TensorData]) throws {
        let steps = try int64State(dict, "step")
        try loadFlatState(dict, store, "exp_avg", into: firstMoment.values)
        try loadFlatState(dict, store, "exp_avg_sq", into: secondMoment.values)
        stepCount = steps
    }
}
