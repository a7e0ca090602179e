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
        try poolOutputShape("MaxPool2d", input, kernel: kernel, stride: stride)
    }

    public func forward(_ input: Matrix, training: Bool) throws -> Matrix {
        let out = try outputShape(for: input.shape)
        let y = output.matrix(rows: input.rows, shape: out)
        let index = argmax.elements(input.rows * out.count)
        let C = out.channels, W = input.shape.width
        for n in 0..<input.rows {
            let x = input.row(n), yn = y.row(n), idx = index + n * out.count
            for oh in 0..<out.height {
                for ow in 0..<out.width {
                    let o = (oh * out.width + ow) * C
                    let first = ((oh * stride) * W + ow * stride) * C
                    for c in 0..<C {
                        yn[o + c] = x[first + c]
                        idx[o + c] = Int32(first + c)
                    }
                    for kh in 0..<kernel {
                        for kw in 0..<kernel where kh > 0 || kw > 0 {
                            let at = ((oh * stride + kh) * W + ow * stride + kw) * C
                            for c in 0..<C {
                                let v = x[at + c]
                                if v > yn[o + c] || v.isNaN {
                                    yn[o + c] = v
                                    idx[o + c] = Int32(at + c)
                                }
                            }
                        }
                    }
                }
            }
        }
        last = (input.rows, input.shape, out)
        return y
    }

    public func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        guard let last else { throw NNError("MaxPool2d.backward called before forward") }
        try checkGradient(gradOutput, rows: last.rows, shape: last.output, layer: "MaxPool2d")
        guard needsInputGradient else { return nil }
        let dx = gradInput.matrix(rows: last.rows, shape: last.input)
        dx.buffer.update(repeating: 0)
        let index = argmax.elements(last.rows * last.output.count)
        for n in 0..<last.rows {
            let g = gradOutput.row(n), d = dx.row(n), idx = index + n * last.output.count
            for o in 0..<last.output.count { d[Int(idx[o])] += g[o] }
        }
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
        y.buffer.update(repeating: 0)
        let C = out.channels, W = input.shape.width, scale = 1 / Float(kernel * kernel)
        for n in 0..<input.rows {
            let x = input.row(n), yn = y.row(n)
            for oh in 0..<out.height {
                for ow in 0..<out.width {
                    let o = (oh * out.width + ow) * C
                    for kh in 0..<kernel {
                        for kw in 0..<kernel {
                            let at = ((oh * stride + kh) * W + ow * stride + kw) * C
                            for c in 0..<C { yn[o + c] += x[at + c] }
                        }
                    }
                    for c in 0..<C { yn[o + c] *= scale }
                }
            }
        }
        last = (input.rows, input.shape, out)
        return y
    }

    public func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        guard let last else { throw NNError("AvgPool2d.backward called before forward") }
        try checkGradient(gradOutput, rows: last.rows, shape: last.output, layer: "AvgPool2d")
        guard needsInputGradient else { return nil }
        let dx = gradInput.matrix(rows: last.rows, shape: last.input)
        dx.buffer.update(repeating: 0)
        let out = last.output, C = out.channels, W = last.input.width, scale = 1 / Float(kernel * kernel)
        for n in 0..<last.rows {
            let g = gradOutput.row(n), d = dx.row(n)
            for oh in 0..<out.height {
                for ow in 0..<out.width {
                    let o = (oh * out.width + ow) * C
                    for kh in 0..<kernel {
                        for kw in 0..<kernel {
                            let at = ((oh * stride + kh) * W + ow * stride + kw) * C
                            for c in 0..<C { d[at + c] += g[o + c] * scale }
                        }
                    }
                }
            }
        }
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
