import CSwiftDDPKernels
/// `torch.nn.MaxPool2d(kernel_size, stride)` (no padding, floor mode): each output is the
/// largest value of its window; the gradient goes to that one input (the first in scan order
/// on ties, NaN wins, as in PyTorch).
public final class MaxPool2d: Layer {
    public let kernel: Int
    public let stride: Int
    private let output = Workspace()
    private let gradInput = Workspace()
    /// For each output value, the offset of the chosen input within its sample.
    private let argmax = Scratch<Int32>()
    private var last: (rows: Int, input: SampleShape, output: SampleShape)?

    /// - Parameters:
    ///   - kernel: the window's side.
    ///   - stride: the step between windows; nil means `kernel` (PyTorch's default).
    public init(kernel: Int, stride: Int? = nil) {
        precondition(kernel > 0 && (stride ?? kernel) > 0, "MaxPool2d needs a positive kernel and stride")
        self.kernel = kernel
        self.stride = stride ?? kernel
    }

    public var description: String {
        "MaxPool2d(kernel_size=\(kernel), stride=\(stride), padding=0, dilation=1, ceil_mode=False)"
    }

    public func outputShape(for input: SampleShape) throws -> SampleShape {
        // the argmax is an Int32 offset within a sample
        guard input.count <= Int(Int32.max) else {
            throw NNError("MaxPool2d: samples of \(input.count) values are more than its Int32 indices address")
        }
        return try poolOutputShape("MaxPool2d", input, kernel: kernel, stride: stride)
    }

    public func forward(_ input: Matrix, training: Bool) throws -> Matrix {
        let out = try outputShape(for: input.shape)
        let y = output.matrix(rows: input.rows, shape: out)
        let index = argmax.elements(input.rows * out.count)
        let x = input.shape
        // y[N,OH,OW,C] = max over each window of x[N,H,W,C]; index = the input it came from
        ddp_maxpool_forward(input.base, input.rows, x.height, x.width, x.channels, kernel, stride, out.height,
                            out.width, y.base, index)
        last = (input.rows, input.shape, out)
        return y
    }

    /// Whether this pooling can run inside a BatchNorm's output pass: its windows must not
    /// overlap (stride = kernel), so each input has at most one window to send its gradient to.
    public var fusesIntoBatchNorm: Bool { stride == kernel }

    /// This layer's forward applied to act(γ·x̂ + β) of a BatchNorm's input `input`, computed in
    /// the BatchNorm's output pass: the same output and argmax as forward on the BatchNorm's
    /// output, without that full-size array (`BatchNorm.forward(_:training:fusing:pooling:)`).
    func forward(normalizing input: Matrix, _ k: Kernels.BatchNormConstants) throws -> Matrix {
        precondition(fusesIntoBatchNorm, "MaxPool2d: overlapping windows do not fuse")
        let out = try outputShape(for: input.shape)
        let y = output.matrix(rows: input.rows, shape: out)
        let index = argmax.elements(input.rows * out.count)
        let x = input.shape
        ddp_batchnorm_maxpool_forward(input.base, input.rows, x.height, x.width, x.channels, kernel, out.height,
                                      out.width, k.mean, k.inv, k.gamma, k.beta, k.activationCode, k.slope ?? 0,
                                      y.base, index)
        last = (input.rows, input.shape, out)
        return y
    }

    /// The gradient of the last forward's input, given `gradOutput`, as the kernels read it
    /// without writing it out (valid while `gradOutput` and this layer's state are); `input` and
    /// `rows` must be that forward's, else it throws (the pooling ran again since).
    func pooledGradient(_ gradOutput: Matrix, input: SampleShape, rows: Int) throws -> ddp_pooled_gradient {
        guard let last, last.input == input, last.rows == rows else {
            throw NNError("MaxPool2d: its last forward was not the one fused into the BatchNorm now running backward")
        }
        try checkGradient(gradOutput, rows: last.rows, shape: last.output, layer: "MaxPool2d")
        let x = last.input, out = last.output
        return ddp_pooled_gradient(g: gradOutput.base, index: argmax.elements(last.rows * out.count),
                                   h: x.height, w: x.width, k: kernel, oh: out.height, ow: out.width)
    }

    public func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        guard let last else { throw NNError("MaxPool2d.backward called before forward") }
        try checkGradient(gradOutput, rows: last.rows, shape: last.output, layer: "MaxPool2d")
        guard needsInputGradient else { return nil }
        let dx = gradInput.matrix(rows: last.rows, shape: last.input)
        // dx[index] += dy
        let x = last.input, out = last.output
        ddp_maxpool_backward(gradOutput.base, argmax.elements(last.rows * out.count), last.rows, x.height, x.width,
                             x.channels, kernel, stride, out.height, out.width, dx.base)
        return dx
    }
}

/// `torch.nn.AvgPool2d(kernel_size, stride)` (no padding, floor mode): each output is the mean
/// of its window.
public final class AvgPool2d: Layer {
    public let kernel: Int
    public let stride: Int
    private let output = Workspace()
    private let gradInput = Workspace()
    private var last: (rows: Int, input: SampleShape, output: SampleShape)?

    public init(kernel: Int, stride: Int? = nil) {
        precondition(kernel > 0 && (stride ?? kernel) > 0, "AvgPool2d needs a positive kernel and stride")
        self.kernel = kernel
        self.stride = stride ?? kernel
    }

    public var description: String { "AvgPool2d(kernel_size=\(kernel), stride=\(stride), padding=0)" }

    public func outputShape(for input: SampleShape) throws -> SampleShape {
        try poolOutputShape("AvgPool2d", input, kernel: kernel, stride: stride)
    }

    public func forward(_ input: Matrix, training: Bool) throws -> Matrix {
        let out = try outputShape(for: input.shape)
        let y = output.matrix(rows: input.rows, shape: out)
        let x = input.shape
        // y[N,OH,OW,C] = mean over each window of x[N,H,W,C]
        ddp_avgpool_forward(input.base, input.rows, x.height, x.width, x.channels, kernel, stride, out.height,
                            out.width, y.base)
        last = (input.rows, input.shape, out)
        return y
    }

    public func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        guard let last else { throw NNError("AvgPool2d.backward called before forward") }
        try checkGradient(gradOutput, rows: last.rows, shape: last.output, layer: "AvgPool2d")
        guard needsInputGradient else { return nil }
        let dx = gradInput.matrix(rows: last.rows, shape: last.input)
        let x = last.input, out = last.output
        // dx[window] += dy / k²
        ddp_avgpool_backward(gradOutput.base, last.rows, x.height, x.width, x.channels, kernel, stride, out.height,
                             out.width, dx.base)
        return dx
    }
}

/// Global average pooling, `torch.nn.AdaptiveAvgPool2d((1, 1))`: [C, H, W] → [C, 1, 1], each
/// channel's mean over its positions (ResNet's head; a Flatten follows).
public final class GlobalAvgPool2d: Layer {
    private let output = Workspace()
    private let gradInput = Workspace()
    private var last: (rows: Int, input: SampleShape)?

    public init() {}

    public var description: String { "AdaptiveAvgPool2d(output_size=(1, 1))" }

    public func outputShape(for input: SampleShape) throws -> SampleShape {
        guard input.isImage else { throw NNError("AdaptiveAvgPool2d: expected images [C, H, W], got \(input)") }
        return .image(channels: input.channels, height: 1, width: 1)
    }

    public func forward(_ input: Matrix, training: Bool) throws -> Matrix {
        let out = try outputShape(for: input.shape)
        let y = output.matrix(rows: input.rows, shape: out)
        y.buffer.update(repeating: 0)
        let C = out.channels, P = input.shape.positions, scale = 1 / Float(P)
        for n in 0..<input.rows {
            let x = input.row(n), yn = y.row(n)
            for p in 0..<P {
                for c in 0..<C { yn[c] += x[p * C + c] }
            }
            for c in 0..<C { yn[c] *= scale }
        }
        last = (input.rows, input.shape)
        return y
    }

    public func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        guard let last else { throw NNError("AdaptiveAvgPool2d.backward called before forward") }
        let C = last.input.channels, P = last.input.positions
        try checkGradient(gradOutput, rows: last.rows, shape: .image(channels: C, height: 1, width: 1),
                          layer: "AdaptiveAvgPool2d")
        guard needsInputGradient else { return nil }
        let dx = gradInput.matrix(rows: last.rows, shape: last.input)
        let scale = 1 / Float(P)
        for n in 0..<last.rows {
            let g = gradOutput.row(n), d = dx.row(n)
            for p in 0..<P {
                for c in 0..<C { d[p * C + c] = g[c] * scale }
            }
        }
        return dx
    }
}

/// The output shape of a pooling window without padding (floor mode), or PyTorch's complaint.
func poolOutputShape(_ name: String, _ input: SampleShape, kernel: Int, stride: Int) throws -> SampleShape {
    guard input.isImage else { throw NNError("\(name): expected images [C, H, W], got \(input)") }
    guard input.height >= kernel, input.width >= kernel else {
        throw NNError("\(name)(\(kernel)): the input \(input) is smaller than the window: the output would be empty")
    }
    return .image(channels: input.channels, height: (input.height - kernel) / stride + 1,
                  width: (input.width - kernel) / stride + 1)
}
