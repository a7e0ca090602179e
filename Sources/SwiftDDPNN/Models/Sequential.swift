/// Layers applied in order, like `torch.nn.Sequential`: the children are named by their
/// index, so state-dict keys are `0.weight`, `1.running_mean`, ... (nested: `layer1.0.weight`)
/// and a PyTorch user loads them into the equivalent `nn.Sequential` unchanged; or by given
/// names (`nn.Sequential(OrderedDict(...))`), which is how the ResNet names its stages.
public final class Sequential: ContainerLayer {
    public let layers: [any Layer]
    public let names: [String]
    /// The name in the printout (`Sequential`, or e.g. `ResNet` for a model written as a chain).
    public let typeName: String
    public var runner = LayerRunner()

    /// Run each BatchNorm followed by a ReLU or LeakyReLU as one layer: the activation is
    /// applied in BatchNorm's output pass and its derivative in BatchNorm's backward passes,
    /// saving a pass over the activations each way. Bit-identical to running them separately;
    /// off while an observer is set, because observers see every layer's own output.
    public var fusesBatchNormActivation = true
    /// In training, also run a MaxPool2d that follows such a pair (or a BatchNorm alone) inside
    /// the BatchNorm, when its windows do not overlap: only the pooled output is written, and
    /// backward reads the pooled gradient through the argmax instead of spreading it out first
    /// (`BatchNorm.forward(_:training:fusing:pooling:)`). Bit-identical too; needs
    /// `fusesBatchNormActivation`.
    public var fusesBatchNormPooling = true
    /// What can run inside the BatchNorm at index i: the activation and pooling after it.
    private struct Fusion {
        var activation: ActivationKind?
        var pool: MaxPool2d?
    }
    private let fusions: [Fusion?]
    /// coveredBy[i]: the BatchNorm that ran layer i inside its own passes in the last forward,
    /// or -1 (backward skips covered layers: the BatchNorm's backward did their work).
    private var coveredBy: [Int]
    /// Whether the last forward ran any layers fused (backward follows the same path).
    public var lastForwardFused: Bool { lastForwardCovered > 0 }
    /// How many layers the last forward ran inside a BatchNorm's passes.
    public private(set) var lastForwardCovered = 0

    public convenience init(_ layers: [any Layer]) {
        self.init(named: layers.enumerated().map { ("\($0.offset)", $0.element) })
    }

    public init(named children: [(name: String, layer: any Layer)], typeName: String = "Sequential") {
        precondition(Set(children.map(\.name)).count == children.count, "Sequential: two children with one name")
        let layers = children.map(\.layer)
        self.layers = layers
        names = children.map(\.name)
        self.typeName = typeName
        fusions = layers.indices.map { i in
            guard let bn = layers[i] as? BatchNorm else { return nil }
            var next = i + 1
            var fusion = Fusion()
            if next < layers.count, let act = layers[next] as? Activation, BatchNorm.canFuse(act.kind) {
                fusion.activation = act.kind
                next += 1
            }
            if bn.kind == .images, next < layers.count, let pool = layers[next] as? MaxPool2d, pool.fusesIntoBatchNorm {
                fusion.pool = pool
            }
            return fusion.activation == nil && fusion.pool == nil ? nil : fusion
        }
        coveredBy = Array(repeating: -1, count: layers.count)
    }

    public var children: [(name: String, layer: any Layer)] { Array(zip(names, layers)) }

    public var description: String { describeContainer(typeName, children) }

    public func outputShape(for input: SampleShape) throws -> SampleShape {
        var shape = input
        for layer in layers { shape = try layer.outputShape(for: shape) }
        return shape
    }

    public func forward(_ input: Matrix, training: Bool) throws -> Matrix {
        let fuse = fusesBatchNormActivation && !runner.isObserving
        lastForwardCovered = 0
        for i in coveredBy.indices { coveredBy[i] = -1 }
        var x = input
        var i = 0
        while i < layers.count {
            if fuse, let fusion = fusions[i], let bn = layers[i] as? BatchNorm {
                let pool = fusesBatchNormPooling && training ? fusion.pool : nil
                if fusion.activation != nil || pool != nil {
                    x = try runner.forward(bn, x, training: training, fusing: fusion.activation, pooling: pool)
                    let covered = (fusion.activation == nil ? 0 : 1) + (pool == nil ? 0 : 1)
                    for j in i + 1...i + covered { coveredBy[j] = i }
                    lastForwardCovered += covered
                    i += 1 + covered
                    continue
                }
            }
            x = try runner.forward(layers[i], x, training: training)
            i += 1
        }
        return x
    }

    public func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        var g = gradOutput
        var i = layers.count - 1
        while i >= 0 {
            if coveredBy[i] >= 0 {
                // An activation or pooling the BatchNorm before it ran; neither has parameters.
                try runner.skipped(layers[i])
                i -= 1
                continue
            }
            let dx = try runner.backward(layers[i], g, needsInputGradient: i > 0 || needsInputGradient)
            if let dx { g = dx }
            i -= 1
        }
        return needsInputGradient ? g : nil
    }
}

/// PyTorch's module printout: `Name(\n  (child): ...\n)`, children indented by two spaces.
func describeContainer(_ name: String, _ children: [(name: String, layer: any Layer)]) -> String {
    var lines = ["\(name)("]
    for (childName, layer) in children {
        let text = layer.description.split(separator: "\n", omittingEmptySubsequences: false)
        lines.append("  (\(childName)): " + text[0])
        lines.append(contentsOf: text.dropFirst().map { "  " + $0 })
    }
    lines.append(")")
    return lines.joined(separator: "\n")
}
