import RealModule
/// Element-wise activation functions: `nn.Sigmoid`, `nn.Tanh`, `nn.ReLU`, `nn.LeakyReLU`.
public enum ActivationKind: String, CaseIterable, Sendable {
    case relu, sigmoid, tanh
    case leakyReLU = "leaky-relu"

    /// Negative slope of LeakyReLU (PyTorch's default).
    public static let leakySlope: Float = 0.01

    /// The largest value the derivative takes (used to define saturation).
    public var maxDerivative: Float {
        switch self {
        case .sigmoid: 0.25
        case .tanh, .relu, .leakyReLU: 1
        }
    }

    public var torchName: String {
        switch self {
        case .relu: "ReLU()"
        case .sigmoid: "Sigmoid()"
        case .tanh: "Tanh()"
        case .leakyReLU: "LeakyReLU(negative_slope=0.01)"
        }
    }
}

/// An activation layer (no parameters, no state-dict keys). The derivative is computed from
/// the saved output: σ' = y(1−y), tanh' = 1−y², ReLU' = [y > 0], LeakyReLU' = y > 0 ? 1 : slope.
public final class Activation: Layer {
    public let kind: ActivationKind
    private let output = Workspace()
    private let gradInput = Workspace()
    private var lastOutput: Matrix?

    public init(_ kind: ActivationKind) { self.kind = kind }

    public var description: String { kind.torchName }
    public func outputShape(for input: SampleShape) throws -> SampleShape { input }

    public func forward(_ input: Matrix, training: Bool) throws -> Matrix {
        let y = output.matrix(rows: input.rows, shape: input.shape)
        let x = input.base, out = y.base, n = input.count
        switch kind {
        case .relu:
            Kernels.relu(x, out, count: n)
        case .leakyReLU:
            Kernels.relu(x, out, count: n, slope: ActivationKind.leakySlope)
        case .sigmoid:
            for i in 0..<n { out[i] = 1 / (1 + Float.exp(-x[i])) }
        case .tanh:
            for i in 0..<n { out[i] = Float.tanh(x[i]) }
        }
        lastOutput = y
        return y
    }

    /// The derivative at a saved output value.
    @inline(__always)
    public static func derivative(_ kind: ActivationKind, output y: Float) -> Float {
        switch kind {
        case .relu: y > 0 ? 1 : 0
        case .leakyReLU: y > 0 ? 1 : ActivationKind.leakySlope
        case .sigmoid: y * (1 - y)
        case .tanh: 1 - y * y
        }
    }

    public func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        guard let y = lastOutput else { throw NNError("\(kind.torchName).backward called before forward") }
        guard gradOutput.rows == y.rows, gradOutput.cols == y.cols else {
            throw NNError("\(kind.torchName).backward: gradient shape does not match the output")
        }
        guard needsInputGradient else { return nil }
        let dx = gradInput.matrix(rows: y.rows, shape: y.shape)
        let g = gradOutput.base, out = y.base, d = dx.base, n = y.count
        switch kind {
        case .relu:
            Kernels.reluBackward(output: out, gradOutput: g, gradInput: d, count: n, slope: 0)
        case .leakyReLU:
            Kernels.reluBackward(output: out, gradOutput: g, gradInput: d, count: n, slope: ActivationKind.leakySlope)
        case .sigmoid:
            for i in 0..<n { d[i] = g[i] * out[i] * (1 - out[i]) }
        case .tanh:
            for i in 0..<n { d[i] = g[i] * (1 - out[i] * out[i]) }
        }
        return dx
    }
}
