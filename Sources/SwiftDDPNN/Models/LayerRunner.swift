/// Runs a layer's forward or backward for its container and tells the model's hooks about
/// leaves: `onGradientsReady` after a leaf's backward (its parameter gradients are final: the
/// gradient buckets start their all-reduce from here), and the diagnostics observers.
///
/// One runner per model, shared by all its containers; leaves are numbered in registration
/// order (`Model.leaves`). A container outside any model has a runner with no hooks.
public final class LayerRunner {
    /// Leaf number of each leaf, by identity.
    private var leafIndex: [ObjectIdentifier: Int] = [:]
    /// Whether each leaf has parameters (fixed once the model has registered them).
    private var hasParameters: [Bool] = []
    /// Called with a leaf's number after its backward.
    public var onGradientsReady: ((Int) throws -> Void)?
    /// Called with (leaf number, output) after each leaf's forward, and (leaf number, gradient
    /// reaching that leaf's input) after each backward; for diagnostics. Nil costs nothing.
    public var forwardObserver: ((Int, Matrix) -> Void)?
    public var backwardObserver: ((Int, Matrix) -> Void)?

    public init() {}

    init(leaves: [any Layer]) {
        for (i, leaf) in leaves.enumerated() { leafIndex[ObjectIdentifier(leaf)] = i }
        hasParameters = leaves.map { !$0.parameterSlots.isEmpty }
    }

    /// Compute the parameter gradients of a `SplitBackwardLayer` (Conv2d, Linear) after its input
    /// gradient, while the next synchronized BatchNorm's backward exchange is in flight, instead
    /// of before: a rank that reaches the exchange early computes instead of waiting for the
    /// others. At most one layer waits so; a leaf with parameters that has no exchange to offer
    /// computes it first, and so does `runDeferredWork` at the end of backward. The same bits either
    /// way; the gradient hooks see each leaf once its gradients are final.
    public var defersParameterGradients = false
    private var deferred: (layer: any SplitBackwardLayer, gradOutput: Matrix, leaf: Int)?

    /// Computes the deferred parameter gradients, if any, and tells the hooks.
    public func runDeferredWork() throws {
        guard let (layer, gradOutput, leaf) = deferred else { return }
        deferred = nil
        let start = timer == nil ? 0 : monotonicSeconds()
        try layer.parameterGradients(gradOutput)
        timer?.addBackward(leaf: leaf, neededInputGradient: true, seconds: monotonicSeconds() - start)
        try onGradientsReady?(leaf)
    }

    /// Drops deferred work of a backward that failed.
    public func discardDeferredWork() { deferred = nil }

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
        guard let i = leafIndex[ObjectIdentifier(layer)] else {
            return try layer.backward(gradOutput, needsInputGradient: wants)  // a container
        }
        if defersParameterGradients, backwardObserver == nil, hasParameters[i] {
            if let norm = layer as? BatchNorm, norm.exchangesStatistics {
                return try exchangingBackward(norm, leaf: i, gradOutput, needsInputGradient: wants)
            }
            try runDeferredWork()
            if wants, let split = layer as? any SplitBackwardLayer {
                let start = timer == nil ? 0 : monotonicSeconds()
                let dx = try split.inputGradient(gradOutput)
                timer?.addBackward(leaf: i, neededInputGradient: true, seconds: monotonicSeconds() - start)
                deferred = (split, gradOutput, i)
                return dx
            }
        }
        let start = timer == nil ? 0 : monotonicSeconds()
        let dx = try layer.backward(gradOutput, needsInputGradient: wants)
        timer?.addBackward(leaf: i, neededInputGradient: wants, seconds: monotonicSeconds() - start)
        try onGradientsReady?(i)
        if let dx, let backwardObserver { backwardObserver(i, dx) }
        return dx
    }

    /// A synchronized BatchNorm's backward with the deferred work in its exchange; its time
    /// counts for that work's layer, not the BatchNorm.
    private func exchangingBackward(_ norm: BatchNorm, leaf i: Int, _ gradOutput: Matrix, needsInputGradient: Bool)
        throws -> Matrix?
    {
        let start = timer == nil ? 0 : monotonicSeconds()
        var overlapped = 0.0
        let dx = try norm.backward(gradOutput, needsInputGradient: needsInputGradient) {
            let begin = timer == nil ? 0 : monotonicSeconds()
            try runDeferredWork()
            overlapped = timer == nil ? 0 : monotonicSeconds() - begin
        }
        timer?.addBackward(leaf: i, neededInputGradient: needsInputGradient,
                           seconds: monotonicSeconds() - start - overlapped)
        try onGradientsReady?(i)
        return dx
    }

    /// Tells the hooks that `layer`'s backward was skipped because a fused neighbour did its work.
    public func skipped(_ layer: any Layer) throws {
        if let i = leafIndex[ObjectIdentifier(layer)] { try onGradientsReady?(i) }
    }
}
