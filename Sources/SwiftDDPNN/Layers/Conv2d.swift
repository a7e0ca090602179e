import CSwiftDDPConvolution
/// A 2-D convolution, like `torch.nn.Conv2d(in, out, kernel_size, stride, padding, bias)` with
/// groups = 1 and dilation = 1, computed by oneDNN (the library PyTorch's CPU convolutions use;
/// chosen by measurement, Docs/performance.md "Convolution: which library"), except the weight
/// gradient of 3×3 layers with stride 1 and padding 1 and 32+ channels in and out: Winograd
/// F(3×3, 2×2) with OpenBLAS products.
///
/// Shapes: input [N, C, H, W] stored channels-last, weight [O, C, kh, kw] (PyTorch's OIHW),
/// bias [O], output [N, O, OH, OW] channels-last with OH = (H + 2·ph − kh)/sh + 1.
/// State-dict keys: `weight`, `bias` (when `bias`).
public final class Conv2d: InitializableLayer {
    public let inChannels: Int
    public let outChannels: Int
    public let kernel: (height: Int, width: Int)
    public let stride: (height: Int, width: Int)
    public let padding: (height: Int, width: Int)
    public let hasBias: Bool
    public private(set) var weightSlot = TensorSlot.unregistered
    public private(set) var biasSlot: TensorSlot?
    public var parameterSlots: [TensorSlot] { [weightSlot] + (biasSlot.map { [$0] } ?? []) }
    private var store: ParameterStore!
    private let output = Workspace()
    private let gradInput = Workspace()
    /// oneDNN's primitives for one input size (built on the first forward of that size).
    private var handle: OpaquePointer?
    private var handleInput: SampleShape?
    private var last: (input: Matrix, output: SampleShape)?
    /// How the weight gradient is computed: Winograd F(3×3, 2×2) applies to 3×3 kernels with
    /// stride 1 and padding 1, 32+ channels in and out, one thread; oneDNN does the rest.
    public enum WeightGradientAlgorithm: Int32, Sendable {
        /// oneDNN always.
        case oneDNN = 0
        /// Winograd where it applies, the batch has at least 128 output tiles of 2×2, and oneDNN
        /// has no AVX-512 kernels on this CPU (with them its own weight gradients are faster).
        case automatic = 1
        /// Winograd wherever it applies, whatever the batch.
        case winograd = 2
    }
    public var weightGradientAlgorithm = WeightGradientAlgorithm.automatic {
        didSet { if let handle { ddp_conv_set_winograd_policy(handle, weightGradientAlgorithm.rawValue) } }
    }
    /// Whether backward computes the weight gradient of `batch` images by Winograd (known after
    /// the first forward).
    public func usesWinograd(batch: Int) -> Bool {
        handle.map { ddp_conv_uses_winograd($0, Int32(clamping: batch)) != 0 } ?? false
    }

    /// The kernels that ran each pass for `batch` images: oneDNN's implementation names
    /// ("jit:avx512_core", "brgconv:avx512_core", ...) or "winograd"; "" for a pass not run yet at that batch.
    public func implementations(batch: Int) -> (forward: String, backwardData: String, backwardWeights: String) {
        guard let handle else { return ("", "", "") }
        let n = Int32(clamping: batch)
        let name = { (pass: Int32) in String(cString: ddp_conv_implementation(handle, n, pass)) }
        return (name(0), name(1), name(2))
    }

    /// - Parameters:
    ///   - kernel, stride, padding: square sizes (PyTorch's ints); padding is zeros on both sides.
    ///   - bias: learn a per-channel bias (PyTorch's default; off before a BatchNorm in ResNets).
    public convenience init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                            bias: Bool = true)
    {
        self.init(inChannels, outChannels, kernel: (kernel, kernel), stride: (stride, stride),
                  padding: (padding, padding), bias: bias)
    }

    public init(_ inChannels: Int, _ outChannels: Int, kernel: (Int, Int), stride: (Int, Int) = (1, 1),
                padding: (Int, Int) = (0, 0), bias: Bool = true)
    {
        precondition(inChannels > 0 && outChannels > 0 && kernel.0 > 0 && kernel.1 > 0, "Conv2d needs positive sizes")
        precondition(stride.0 > 0 && stride.1 > 0 && padding.0 >= 0 && padding.1 >= 0, "Conv2d: bad stride or padding")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        hasBias = bias
    }

    deinit { ddp_conv_destroy(handle) }

    public func registerState(in scope: ParameterScope) {
        store = scope.store
        weightSlot = scope.parameter("weight", shape: [outChannels, inChannels, kernel.height, kernel.width])
        biasSlot = hasBias ? scope.parameter("bias", shape: [outChannels]) : nil
    }

    public var description: String {
        func pair(_ p: (Int, Int)) -> String { "(\(p.0), \(p.1))" }
        var text = "Conv2d(\(inChannels), \(outChannels), kernel_size=\(pair(kernel)), stride=\(pair(stride))"
        if padding != (0, 0) { text += ", padding=\(pair(padding))" }
        return text + (hasBias ? ")" : ", bias=False)")
    }

    public func outputShape(for input: SampleShape) throws -> SampleShape {
        guard input.isImage, input.channels == inChannels else {
            throw NNError("Conv2d(\(inChannels), \(outChannels)): expected images [\(inChannels), H, W], got \(input)")
        }
        let h = input.height + 2 * padding.height - kernel.height, w = input.width + 2 * padding.width - kernel.width
        guard h >= 0, w >= 0 else {
            throw NNError("Conv2d: the \(kernel.height)×\(kernel.width) kernel does not fit the input \(input) "
                          + "padded by \(padding.height)×\(padding.width)")
        }
        return .image(channels: outChannels, height: h / stride.height + 1, width: w / stride.width + 1)
    }

    /// fan-in = in·kh·kw and fan-out = out·kh·kw, as `torch.nn.init` computes them.
    private var fans: (in: Int, out: Int) {
        (inChannels * kernel.height * kernel.width, outChannels * kernel.height * kernel.width)
    }

    public func resetParameters(scheme: InitScheme, using generator: inout SeededGenerator) {
        let bounds = scheme.bounds(fanIn: fans.in, fanOut: fans.out)
        let w = store.parameter(weightSlot)
        for i in 0..<weightSlot.count { w[i] = generator.uniform(-bounds.weight, bounds.weight) }
        if let biasSlot {
            let b = store.parameter(biasSlot)
            for i in 0..<outChannels { b[i] = bounds.bias == 0 ? 0 : generator.uniform(-bounds.bias, bounds.bias) }
        }
    }

    /// torchvision's ResNet initialization: `kaiming_normal_(mode="fan_out", nonlinearity="relu")`,
    /// normal with std sqrt(2/fan_out); the bias (if any) is zeroed.
    public func resetKaimingNormalFanOut(using generator: inout SeededGenerator) {
        let std = (2 / Float(fans.out)).squareRoot()
        let w = store.parameter(weightSlot)
        for i in 0..<weightSlot.count { w[i] = std * generator.normal() }
        if let biasSlot { store.parameter(biasSlot).update(repeating: 0, count: outChannels) }
    }

    /// Whether oneDNN runs AVX-512 kernels on this CPU; `.automatic` then leaves every weight
    /// gradient to it.
    public static var oneDNNUsesAVX512: Bool { ddp_conv_onednn_avx512() != 0 }

    /// The number of threads oneDNN may use in this process; 1 by default (a rank uses one core).
    public static func setThreadCount(_ n: Int) { ddp_conv_set_threads(Int32(n)) }

    /// oneDNN's per-call bookkeeping is served from a per-thread arena, not the heap (CSwiftDDPConvolution's
    /// arena.cpp). Totals since start: allocations served from it, requests too big for it (which went to
    /// malloc), and executions that returned with arena memory still allocated.
    public static var arenaStatistics: (served: Int, fallbacks: Int, outlived: Int) {
        var served: UInt = 0, fallbacks: UInt = 0, outlived: UInt = 0
        ddp_conv_arena_stats(&served, &fallbacks, &outlived)
        return (Int(served), Int(fallbacks), Int(outlived))
    }

    /// Checks the arena's rules on a thread of its own: 0 if they hold, else the number of the broken one.
    public static func arenaSelfTest() -> Int { Int(ddp_conv_arena_selftest()) }

    /// The primitives for inputs of `shape`, built when the size changes.
    private func primitives(for shape: SampleShape) throws -> OpaquePointer {
        if let handle, handleInput == shape { return handle }
        ddp_conv_destroy(handle)
        handle = nil
        var message = [CChar](repeating: 0, count: 256)
        guard let created = ddp_conv_create(
            Int32(inChannels), Int32(outChannels), Int32(shape.height), Int32(shape.width), Int32(kernel.height),
            Int32(kernel.width), Int32(stride.height), Int32(stride.width), Int32(padding.height),
            Int32(padding.width), &message, message.count)
        else {
            let text = message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            throw NNError("Conv2d: " + String(decoding: text, as: UTF8.self))
        }
        ddp_conv_set_winograd_policy(created, weightGradientAlgorithm.rawValue)
        handle = created
        handleInput = shape
        return created
    }

    private func check(_ status: Int32, _ handle: OpaquePointer) throws {
        guard status == 0 else { throw NNError("Conv2d: " + String(cString: ddp_conv_last_error(handle))) }
    }

    public func forward(_ input: Matrix, training: Bool) throws -> Matrix {
        let out = try outputShape(for: input.shape)
        let y = output.matrix(rows: input.rows, shape: out)
        let conv = try primitives(for: input.shape)
        // y[N,OH,OW,O] = x[N,H,W,C] ⊛ w[O,C,kh,kw] + b[O]
        try check(ddp_conv_forward(conv, Int32(input.rows), input.base, store.parameter(weightSlot),
                                   biasSlot.map { UnsafePointer(store.parameter($0)) }, y.base), conv)
        last = (input, out)
        return y
    }

    public func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        guard let last else { throw NNError("Conv2d.backward called before forward") }
        let x = last.input
        try checkGradient(gradOutput, rows: x.rows, shape: last.output, layer: "Conv2d")
        let conv = try primitives(for: x.shape)
        // dw[O,C,kh,kw] = Σ_n dy ⋆ x, db[O] = Σ dy
        try check(ddp_conv_backward_weights(conv, Int32(x.rows), x.base, gradOutput.base,
                                            store.gradient(weightSlot), biasSlot.map { store.gradient($0) }), conv)
        guard needsInputGradient else { return nil }
        // dx[N,H,W,C] = dy ⊛ᵀ w
        let dx = gradInput.matrix(rows: x.rows, shape: x.shape)
        try check(ddp_conv_backward_data(conv, Int32(x.rows), gradOutput.base, store.parameter(weightSlot), dx.base),
                  conv)
        return dx
    }
}
