/// A layer: a leaf with an explicit forward/backward pair (Linear, Conv2d, BatchNorm2d, ...) or
/// a container that owns named children and runs them (Sequential, BasicBlock, ResNet).
///
/// Contract:
/// - `outputShape(for:)` derives one output sample's shape from one input sample's, and
///   throws one clear line when the layer cannot take that input; a `Model` calls it for the
///   whole tree before anything is allocated.
/// - `forward` returns a view of the layer's own output buffer, valid until its next forward;
///   the layer may keep a view of its input for the backward pass, so callers keep inputs alive
///   and unmodified until `backward` has run.
/// - `backward` receives dL/d(output) for the last forward and **writes** (does not accumulate)
///   the gradients of its parameters into the model's gradient buffer; it returns dL/d(input)
///   when `needsInputGradient` is true (the first layer skips it: the input is data).
/// - Parameters are registered, not named by the layer: the `Model` walks the tree in order,
///   each container names its children, and each layer reserves its own tensors under the
///   resulting prefix (`layer1.0.conv1.` + `weight`) in `registerState(in:)`. The order of
///   registration is PyTorch's `named_parameters()` order; gradient buckets follow it.
public protocol Layer: AnyObject {
    /// A PyTorch-style description, e.g. `Linear(in_features=784, out_features=256, bias=True)`.
    var description: String { get }
    /// The shape of one output sample for input samples of shape `input`.
    func outputShape(for input: SampleShape) throws -> SampleShape
    func forward(_ input: Matrix, training: Bool) throws -> Matrix
    func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix?
    /// Named children, in registration order (containers); empty for a leaf.
    var children: [(name: String, layer: any Layer)] { get }
    /// Reserves this layer's own parameters, buffers and counters (not its children's).
    func registerState(in scope: ParameterScope)
    /// This layer's own parameters, in the order it registered them.
    var parameterSlots: [TensorSlot] { get }
}

extension Layer {
    public var children: [(name: String, layer: any Layer)] { [] }
    public func registerState(in scope: ParameterScope) {}
    public var parameterSlots: [TensorSlot] { [] }
}

/// A layer that runs children: the model gives it its `LayerRunner`, through which it calls
/// them, so the model's hooks (gradient buckets, diagnostics) see every leaf wherever it sits.
public protocol ContainerLayer: Layer {
    var runner: LayerRunner { get set }
}

/// Where a layer reserves its tensors: the model's store, under the layer's name prefix.
public struct ParameterScope {
    public let store: ParameterStore
    /// `""` for the root, else the dotted path followed by a dot (`layer1.0.conv1.`).
    public let prefix: String

    public init(store: ParameterStore, prefix: String = "") {
        self.store = store
        self.prefix = prefix
    }

    public func child(_ name: String) -> ParameterScope { ParameterScope(store: store, prefix: prefix + name + ".") }

    public func parameter(_ name: String, shape: [Int]) -> TensorSlot {
        store.reserveParameter(prefix + name, shape: shape)
    }

    public func buffer(_ name: String, shape: [Int]) -> TensorSlot { store.reserveBuffer(prefix + name, shape: shape) }

    public func counter(_ name: String) -> Int { store.reserveCounter(prefix + name) }
}

/// A layer with parameters that can be (re)initialized.
public protocol InitializableLayer: Layer {
    func resetParameters(scheme: InitScheme, using generator: inout SeededGenerator)
}

/// Weight initialization schemes for Linear and Conv2d layers (fan-in = in·kh·kw for a
/// convolution, fan-out = out·kh·kw, as `torch.nn.init` computes them).
public enum InitScheme: String, CaseIterable, Sendable {
    /// PyTorch's `nn.Linear`/`nn.Conv2d` default: weight and bias uniform in ±1/sqrt(fan_in)
    /// (`kaiming_uniform_(a=sqrt(5))` reduces to this bound).
    case `default`
    /// Glorot/Xavier uniform (`torch.nn.init.xavier_uniform_`, gain 1): ±sqrt(6/(fan_in+fan_out));
    /// biases zero.
    case xavier
    /// He/Kaiming uniform for ReLU (`torch.nn.init.kaiming_uniform_(nonlinearity='relu')`):
    /// ±sqrt(6/fan_in); biases zero.
    case kaiming
}

extension InitScheme {
    /// The uniform bounds of weight and bias for these fans.
    func bounds(fanIn: Int, fanOut: Int) -> (weight: Float, bias: Float) {
        let fanIn = Float(fanIn), fanOut = Float(fanOut)
        switch self {
        case .default: return (1 / fanIn.squareRoot(), 1 / fanIn.squareRoot())
        case .xavier: return ((6 / (fanIn + fanOut)).squareRoot(), 0)
        case .kaiming: return ((6 / fanIn).squareRoot(), 0)
        }
    }
}

@inline(__always)
func checkInput(_ input: Matrix, features: Int, layer: String) throws {
    guard !input.shape.isImage, input.cols == features else {
        throw NNError("\(layer): expected samples of shape [\(features)], got \(input.shape)")
    }
}

@inline(__always)
func checkGradient(_ gradOutput: Matrix, rows: Int, shape: SampleShape, layer: String) throws {
    guard gradOutput.rows == rows, gradOutput.cols == shape.count else {
        throw NNError("\(layer).backward: gradient is \(gradOutput.rows) × \(gradOutput.shape), "
                      + "expected \(rows) × \(shape)")
    }
}
