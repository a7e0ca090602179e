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
    /// fusableActivation[i]: the activation that layer i + 1 applies, when layer i is a
    /// BatchNorm that can run it.
    private let fusableActivation: [ActivationKind?]
    /// Whether the last forward ran fused pairs (backward follows the same path).
    public private(set) var lastForwardFused = false

    public convenience init(_ layers: [any Layer]) {
        self.init(named: layers.enumerated().map { ("\($0.offset)", $0.element) })
    }

    public init(named children: [(name: String, layer: any Layer)], typeName: String = "Sequential") {
        precondition(Set(children.map(\.name)).count == children.count, "Sequential: two children with one name")
        let layers = children.map(\.layer)
        self.layers = layers
        names = children.map(\.name)
        self.typeName = typeName
        fusableActivation = layers.indices.map { i in
            guard layers[i] is BatchNorm, i + 1 < layers.count, let next = layers[i + 1] as? Activation,
                  BatchNorm.canFuse(next.kind) else { return nil }
            return next.kind
        }
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
        lastForwardFused = fuse
        var x = input
        var i = 0
        while i < layers.count {
            if fuse, let kind = fusableActivation[i], let bn = layers[i] as? BatchNorm {
                x = try runner.forward(bn, x, training: training, fusing: kind)
                i += 2
                continue
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
            if lastForwardFused, i > 0, fusableActivation[i - 1] != nil {
                // Layer i is the activation the BatchNorm at i − 1 ran; it has no parameters.
                try runner.skipped(layers[i])
                i -= 1
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
