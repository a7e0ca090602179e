/// A layer with an explicit forward/backward pair.
///
/// Contract:
/// - `forward` returns a view of the layer's own output buffer, valid until its next forward;
///   the layer may keep a view of its input for the backward pass, so callers keep inputs alive
///   and unmodified until `backward` has run.
/// - `backward` receives dL/d(output) for the last forward and **writes** (does not accumulate)
///   the gradients of its parameters into the model's gradient buffer; it returns dL/d(input)
///   when `needsInputGradient` is true (the first layer skips it: the input is data).
public protocol Layer: AnyObject {
    /// A PyTorch-style description, e.g. `Linear(in_features=784, out_features=256, bias=True)`.
    var description: String { get }
    /// Output features for a given number of input features.
    func outputFeatures(forInput features: Int) -> Int
    func forward(_ input: Matrix, training: Bool) throws -> Matrix
    func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix?
    /// The layer's parameters, in the order it registered them in the store. Gradient buckets
    /// come from these (registration order), never from parsing parameter names.
    var parameterSlots: [TensorSlot] { get }
}

extension Layer {
    public var parameterSlots: [TensorSlot] { [] }
}

/// A layer with parameters that can be (re)initialized.
public protocol InitializableLayer: Layer {
    func resetParameters(scheme: InitScheme, using generator: inout SeededGenerator)
}

/// Weight initialization schemes for Linear layers.
public enum InitScheme: String, CaseIterable, Sendable {
    /// PyTorch's `nn.Linear` default: weight and bias uniform in ±1/sqrt(fan_in)
    /// (`kaiming_uniform_(a=sqrt(5))` reduces to this bound).
    case `default`
    /// Glorot/Xavier uniform (`torch.nn.init.xavier_uniform_`, gain 1): ±sqrt(6/(fan_in+fan_out));
    /// biases zero.
    case xavier
    /// He/Kaiming uniform for ReLU (`torch.nn.init.kaiming_uniform_(nonlinearity='relu')`):
    /// ±sqrt(6/fan_in); biases zero.
    case kaiming
}

@inline(__always)
func checkInput(_ input: Matrix, features: Int, layer: String) throws {
    guard input.cols == features else {
        throw NNError("\(layer): expected \(features) input features, got \(input.cols)")
    }
}
