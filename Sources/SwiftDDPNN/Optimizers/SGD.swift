import SwiftDDPSafeTensors
/// Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay,
/// exactly as `torch.optim.SGD`:
///
///     g ← ∇ + λ·p
///     b ← g                      (first step)
///     b ← μ·b + (1 − τ)·g        (later steps)
///     g ← g + μ·b  (nesterov)   or   g ← b
///     p ← p − lr·g
///
/// Weight decay applies to every parameter (biases and BN affine too), as in PyTorch's default.
public final class SGD: Optimizer {
    public var learningRate: Float
    public let momentum: Float
    public let dampening: Float
    public let nesterov: Bool
    public let weightDecay: Float
    private let store: ParameterStore
    private let momentumBuffer: FlatVector
    private var hasMomentumBuffer = false
    public private(set) var lastStepWasFinite = true

    /// - Parameters:
    ///   - store: the parameters and gradients to update.
    ///   - learningRate: lr (> 0).
    ///   - momentum: μ (≥ 0).
    ///   - dampening: τ.
    ///   - nesterov: Nesterov momentum; needs μ > 0 and τ = 0 (as PyTorch requires).
    ///   - weightDecay: λ, L2 penalty (≥ 0).
    public init(store: ParameterStore, learningRate: Float, momentum: Float = 0, dampening: Float = 0,
                nesterov: Bool = false, weightDecay: Float = 0) throws
    {
        guard learningRate >= 0, learningRate.isFinite else { throw NNError("invalid learning rate \(learningRate)") }
        guard momentum >= 0 else { throw NNError("invalid momentum \(momentum)") }
        guard weightDecay >= 0 else { throw NNError("invalid weight decay \(weightDecay)") }
        if nesterov && (momentum <= 0 || dampening != 0) {
            throw NNError("Nesterov momentum requires a momentum and zero dampening")
        }
        self.store = store
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        momentumBuffer = FlatVector(count: store.parameterCount)
    }

    public func step() { step(range: 0..<store.parameterCount) }

    public func step(range: Range<Int>) {
        let p = store.parameters.baseAddress! + range.lowerBound, grad = store.gradients.baseAddress! + range.lowerBound
        let b = momentumBuffer.buffer.baseAddress! + range.lowerBound
        let n = range.count
        let lr = learningRate, mu = momentum, wd = weightDecay
        if mu == 0 {
            var poison: Float = 0
            for i in 0..<n {
                let g = grad[i] + wd * p[i]
                poison += g * 0
                p[i] -= lr * g
            }
            lastStepWasFinite = poison == 0
            return
        }
        lastStepWasFinite = Kernels.sgdMomentum(parameters: p, gradients: grad, buffer: b, count: n, lr: lr,
                                                momentum: mu, dampening: dampening, weightDecay: wd,
                                                nesterov: nesterov, first: !hasMomentumBuffer)
        hasMomentumBuffer = true
    }

    public var stateVectors: Int { momentum == 0 ? 0 : 1 }

    public func relocateState(to storage: UnsafeMutablePointer<Float>, owner: AnyObject, copyingValues: Bool) {
        guard stateVectors == 1 else { return }
        momentumBuffer.relocate(to: storage, owner: owner, copyingValues: copyingValues)
    }

    public func stateDict() -> [String: TensorData] {
        guard momentum != 0, hasMomentumBuffer else { return [:] }
        return flatStateDict(store, "momentum_buffer", momentumBuffer.values)
    }

    public func loadStateDict(_ dict: [String: TensorData]) throws {
        guard momentum != 0 else { return }
        if dict.isEmpty { hasMomentumBuffer = false; return }
        try loadFlatState(dict, store, "momentum_buffer", into: momentumBuffer.values)
        hasMomentumBuffer = true
    }
}
