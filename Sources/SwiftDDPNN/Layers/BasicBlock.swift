/// The residual block of ResNet-18/34 and the CIFAR ResNets (torchvision's `BasicBlock`):
/// out = act(norm2(conv2(act(norm1(conv1(x))))) + shortcut(x)), where conv1 is 3×3 with the
/// block's stride, conv2 3×3, both without bias, and the shortcut is the identity or, when the
/// stride or channel count changes, `downsample` = [1×1 conv with the stride, norm].
///
/// Children (state-dict names as torchvision's): `conv1`, `bn1`, `relu`, `conv2`, `bn2`,
/// `downsample`; the norm layers are absent with no normalization, and GroupNorm keeps the
/// `bn` names as torchvision's `norm_layer` does.
///
/// Without a shortcut (`shortcut: false`) it is the block of He et al.'s plain networks:
/// out = act(norm2(conv2(act(norm1(conv1(x)))))), no sum and no `downsample`.
public final class BasicBlock: ContainerLayer {
    public let conv1: Conv2d
    public let norm1: (any Layer)?
    public let activation1: Activation
    public let conv2: Conv2d
    public let norm2: (any Layer)?
    public let downsample: Sequential?
    /// Whether the block adds its input (or its projection) to the branch's output.
    public let hasShortcut: Bool
    /// The activation after the sum: torchvision reuses its one `relu` module there, so it is
    /// no child (and has no name) here either.
    private let activationOut: Activation
    public var runner = LayerRunner()
    private let sum = Workspace()
    private let gradSum = Workspace()
    private let gradOut = Workspace()
    /// The derivative's value where the output is ≤ 0, when the activation is a ReLU or
    /// LeakyReLU: the sum and the activation then run as one pass each way.
    private let reluSlope: Float?
    /// Whether the last forward ran bn1 with the activation fused (backward follows it).
    private var fusedNorm1 = false
    private var lastOutput: Matrix?
    /// Whether the last forward ran bn2, the shortcut's sum and the activation as one pass
    /// (training, BatchNorm, ReLU or LeakyReLU, no observer).
    public private(set) var lastForwardFusedSum = false

    /// - Parameters:
    ///   - inChannels, channels: the input's and the block's channel counts.
    ///   - stride: conv1's (and the projection's) stride; 2 halves the image.
    ///   - norm: makes a normalization layer for a channel count (nil: none).
    ///   - shortcut: false for the plain block (no sum, no projection).
    public init(inChannels: Int, channels: Int, stride: Int = 1, activation: ActivationKind = .relu,
                norm: ((Int) -> any Layer)?, shortcut: Bool = true)
    {
        hasShortcut = shortcut
        conv1 = Conv2d(inChannels, channels, kernel: 3, stride: stride, padding: 1, bias: false)
        norm1 = norm?(channels)
        activation1 = Activation(activation)
        conv2 = Conv2d(channels, channels, kernel: 3, stride: 1, padding: 1, bias: false)
        norm2 = norm?(channels)
        if shortcut && (stride != 1 || inChannels != channels) {
            let projection = Conv2d(inChannels, channels, kernel: 1, stride: stride, bias: false)
            downsample = Sequential([projection] + (norm.map { [$0(channels)] } ?? []))
        } else {
            downsample = nil
        }
        activationOut = Activation(activation)
        switch activation {
        case .relu: reluSlope = 0
        case .leakyReLU: reluSlope = ActivationKind.leakySlope
        case .sigmoid, .tanh: reluSlope = nil
        }
    }

    public var children: [(name: String, layer: any Layer)] {
        var list: [(name: String, layer: any Layer)] = [("conv1", conv1)]
        if let norm1 { list.append(("bn1", norm1)) }
        list.append(("relu", activation1))
        list.append(("conv2", conv2))
        if let norm2 { list.append(("bn2", norm2)) }
        if let downsample { list.append(("downsample", downsample)) }
        return list
    }

    public var description: String { describeContainer("BasicBlock", children) }

    public func outputShape(for input: SampleShape) throws -> SampleShape {
        var main = try conv1.outputShape(for: input)
        if let norm1 { main = try norm1.outputShape(for: main) }
        main = try conv2.outputShape(for: main)
        if let norm2 { main = try norm2.outputShape(for: main) }
        guard hasShortcut else { return main }
        let shortcut = try downsample?.outputShape(for: input) ?? input
        guard main == shortcut else {
            throw NNError("BasicBlock: the residual branch gives \(main), the shortcut \(shortcut)")
        }
        return main
    }

    public func forward(_ x: Matrix, training: Bool) throws -> Matrix {
        lastForwardFusedSum = false
        var h = try runner.forward(conv1, x, training: training)
        // bn1 and the activation as one layer, as Sequential runs such pairs (bit-identical)
        let bn1 = norm1 as? BatchNorm
        fusedNorm1 = bn1 != nil && BatchNorm.canFuse(activation1.kind) && !runner.isObserving
        if let bn1, fusedNorm1 {
            h = try runner.forward(bn1, h, training: training, fusing: activation1.kind)
        } else {
            if let norm1 { h = try runner.forward(norm1, h, training: training) }
            h = try runner.forward(activation1, h, training: training)
        }
        h = try runner.forward(conv2, h, training: training)
        guard hasShortcut else {
            if let norm2 { h = try runner.forward(norm2, h, training: training) }
            return try activationOut.forward(h, training: training)
        }
        // The shortcut first, whichever path follows: every rank runs the SyncBN exchanges of the
        // projection's BatchNorm and bn2 in the same order.
        let shortcut = try downsample.map { try runner.forward($0, x, training: training) } ?? x
        let s = sum.matrix(rows: x.rows, shape: h.shape)
        if training, reluSlope != nil, let bn2 = norm2 as? BatchNorm, !runner.isObserving {
            lastForwardFusedSum = true
            // bn2, the sum and the last activation in bn2's output pass (bit-identical to the three)
            _ = try runner.forward(bn2, h, training: training, adding: shortcut, activation: activationOut.kind,
                                   into: s)
            lastOutput = s
            return s
        }
        if let norm2 { h = try runner.forward(norm2, h, training: training) }
        guard let reluSlope else {
            Kernels.add(h.base, shortcut.base, s.base, count: s.count)
            return try activationOut.forward(s, training: training)
        }
        // out = act(h + shortcut) in one pass
        Kernels.addReLU(h.base, shortcut.base, s.base, count: s.count, slope: reluSlope)
        lastOutput = s
        return s
    }

    public func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        // The sum's gradient reaches both branches unchanged.
        let g: Matrix
        if let reluSlope, hasShortcut {
            guard let y = lastOutput, gradOutput.rows == y.rows, gradOutput.cols == y.cols else {
                throw NNError("BasicBlock.backward: gradient does not match the last forward's output")
            }
            g = gradOut.matrix(rows: y.rows, shape: y.shape)
            Kernels.reluBackward(output: y.base, gradOutput: gradOutput.base, gradInput: g.base, count: g.count,
                                 slope: reluSlope)
        } else {
            guard let d = try activationOut.backward(gradOutput, needsInputGradient: true) else {
                throw NNError("BasicBlock: no gradient from its activation")
            }
            g = d
        }
        func inputGradient(_ layer: any Layer, _ gradient: Matrix) throws -> Matrix {
            guard let dx = try runner.backward(layer, gradient, needsInputGradient: true) else {
                throw NNError("BasicBlock: \(layer.description) returned no input gradient")
            }
            return dx
        }
        var h = g
        if let norm2 { h = try inputGradient(norm2, h) }
        h = try inputGradient(conv2, h)
        if fusedNorm1 {
            try runner.skipped(activation1)  // bn1's backward applies its derivative
        } else {
            h = try inputGradient(activation1, h)
        }
        if let norm1 { h = try inputGradient(norm1, h) }
        let main = try runner.backward(conv1, h, needsInputGradient: needsInputGradient)
        guard hasShortcut else { return main }
        let shortcut = try downsample.map { try runner.backward($0, g, needsInputGradient: needsInputGradient) } ?? g
        guard needsInputGradient, let main, let shortcut else { return nil }
        let dx = gradSum.matrix(rows: main.rows, shape: main.shape)
        Kernels.add(main.base, shortcut.base, dx.base, count: dx.count)
        return dx
    }
}
