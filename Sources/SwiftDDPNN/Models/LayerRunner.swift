/// Runs a layer's forward or backward for its container and tells the model's hooks about
/// leaves: `onGradientsReady` after a leaf's backward (its parameter gradients are final: the
/// gradient buckets start their all-reduce from here), and the diagnostics observers.
///
/// One runner per model, shared by all its containers; leaves are numbered in registration
/// order (`Model.leaves`). A container outside any model has a runner with no hooks.
public final class LayerRunner {
    /// Leaf number of each leaf, by identity.
    private var leafIndex: [ObjectIdentifier: Int] = [:]
    /// Called with a leaf's number after its backward.
    public var onGradientsReady: ((Int) throws -> Void)?
    /// Called with (leaf number, output) after each leaf's forward, and (leaf number, gradient
    /// reaching that leaf's input) after each backward; for diagnostics. Nil costs nothing.
    public var forwardObserver: ((Int, Matrix) -> Void)?
    public var backwardObserver: ((Int, Matrix) -> Void)?

    public init() {}

    init(leaves: [any Layer]) {
        for (i, leaf) in leaves.enumerated() { leafIndex[ObjectIdentifier(leaf)] = i }
    }

    /// Whether an observer wants every leaf's own output (containers then run no fused pairs).
    public var isObserving: Bool { forwardObserver != nil || backwardObserver != nil }

    /// Times every leaf's passes by kind when set (`ddp bench train`).
    public var timer: LayerTimer?

    @inline(__always)
    public func forward(_ layer: any Layer, _ input: Matrix, training: Bool) throws -> Matrix {
        guard timer != nil || forwardObserver != nil, let i = leafIndex[ObjectIdentifier(layer)] else {
            return try layer.forward(input, training: training)
        }
        let start = timer == nil ? 0 : monotonicSeconds()
        let y = try layer.forward(input, training: training)
        timer?.addForward(leaf: i, input: input, seconds: monotonicSeconds() - start)
        forwardObserver?(i, y)
        return y
    }

    /// A BatchNorm's forward with the following activation, and max pooling, applied in its
    /// output pass (a fused group; the covered layers' own forwards do not run).
    @inline(__always)
    public func forward(_ norm: BatchNorm, _ input: Matrix, training: Bool, fusing kind: ActivationKind?,
                        pooling pool: MaxPool2d? = nil) throws -> Matrix
    {
        guard let timer, let i = leafIndex[ObjectIdentifier(norm)] else {
            return try norm.forward(input, training: training, fusing: kind, pooling: pool)
        }
        let start = monotonicSeconds()
        let y = try norm.forward(input, training: training, fusing: kind, pooling: pool)
        timer.addForward(leaf: i, input: input, seconds: monotonicSeconds() - start)
        return y
    }

    /// A BatchNorm's training forward with a residual sum and an activation in its output pass
    /// (`BatchNorm.forward(_:training:adding:activation:into:)`), timed as the BatchNorm's.
    @inline(__always)
    public func forward(_ norm: BatchNorm, _ input: Matrix, training: Bool, adding residual: Matrix,
                        activation: ActivationKind?, into output: Matrix) throws -> Matrix
    {
        guard let timer, let i = leafIndex[ObjectIdentifier(norm)] else {
            return try norm.forward(input, training: training, adding: residual, activation: activation, into: output)
        }
        let start = monotonicSeconds()
        let y = try norm.forward(input, training: training, adding: residual, activation: activation, into: output)
        timer.addForward(leaf: i, input: input, seconds: monotonicSeconds() - start)
        return y
    }

    @inline(__always)
    public func backward(_ layer: any Layer, _ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        let wants = needsInputGradient || backwardObserver != nil
        let start = timer == nil ? 0 : monotonicSeconds()
        let dx = try layer.backward(gradOutput, needsInputGradient: wants)
        if let i = leafIndex[ObjectIdentifier(layer)] {
            timer?.addBackward(leaf: i, neededInputGradient: wants, seconds: monotonicSeconds() - start)
            try onGradientsReady?(i)
            if let dx, let backwardObserver { backwardObserver(i, dx) }
        }
        return dx
    }

    /// Tells the hooks that `layer`'s backward was skipped because a fused neighbour did its work.
    public func skipped(_ layer: any Layer) throws {
        if let i = leafIndex[ObjectIdentifier(layer)] { try onGradientsReady?(i) }
    }
}
