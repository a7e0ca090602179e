import Collectives
import SafeTensors

/// Layers applied in order, like `torch.nn.Sequential`; state-dict keys are prefixed with the
/// layer's index (`0.weight`, `1.running_mean`, ...), so a PyTorch user loads them into the
/// equivalent `nn.Sequential` unchanged.
public final class Sequential {
    public let layers: [any Layer]
    public let store: ParameterStore
    public let inputFeatures: Int

    /// Called after layer `i`'s backward, when that layer's parameter gradients are final
    /// (the hook for overlapping gradient communication with the rest of backward).
    public var onGradientsReady: ((Int) throws -> Void)?
    /// Called with (layer index, output) after each forward, and (layer index, gradient
    /// reaching that layer's input) after each backward; for diagnostics. Nil costs nothing.
    public var forwardObserver: ((Int, Matrix) -> Void)?
    public var backwardObserver: ((Int, Matrix) -> Void)?

    /// Run each BatchNorm1d followed by a ReLU or LeakyReLU as one layer: the activation is
    /// applied in BatchNorm's output pass and its derivative in BatchNorm's backward passes,
    /// saving a pass over the activations each way. Bit-identical to running them separately;
    /// off while an observer is set, because observers see every layer's own output.
    public var fusesBatchNormActivation = true
    /// fusableActivation[i]: the activation that layer i + 1 applies, when layer i is a
    /// BatchNorm1d that can run it.
    private let fusableActivation: [ActivationKind?]
    /// Whether the last forward ran fused pairs (backward follows the same path).
    public private(set) var lastForwardFused = false

    /// - Parameters:
    ///   - layers: the layers, in order; their parameters must live in `store`.
    ///   - store: the parameter store; allocated here if it is not yet.
    public init(layers: [any Layer], store: ParameterStore, inputFeatures: Int) {
        self.layers = layers
        self.store = store
        self.inputFeatures = inputFeatures
        fusableActivation = layers.indices.map { i in
            guard layers[i] is BatchNorm1d, i + 1 < layers.count, let next = layers[i + 1] as? Activation,
                  BatchNorm1d.canFuse(next.kind) else { return nil }
            return next.kind
        }
        if !store.isAllocated { store.allocate() }
    }

    public var outputFeatures: Int { layers.reduce(inputFeatures) { $1.outputFeatures(forInput: $0) } }

    /// The layers' PyTorch-style description.
    public var description: String {
        var lines = ["Sequential("]
        for (i, layer) in layers.enumerated() { lines.append("  (\(i)): \(layer.description)") }
        lines.append(")")
        return lines.joined(separator: "\n")
    }

    public func forward(_ input: Matrix, training: Bool) throws -> Matrix {
        let fuse = fusesBatchNormActivation && forwardObserver == nil && backwardObserver == nil
        lastForwardFused = fuse
        var x = input
        var i = 0
        while i < layers.count {
            if fuse, let kind = fusableActivation[i], let bn = layers[i] as? BatchNorm1d {
                x = try bn.forward(x, training: training, fusing: kind)
                i += 2
                continue
            }
            x = try layers[i].forward(x, training: training)
            forwardObserver?(i, x)
            i += 1
        }
        return x
    }

    /// Backpropagates dL/d(output) of the last forward, writing every parameter gradient.
    /// - Parameter needsInputGradient: also compute dL/d(input) of the first layer.
    /// - Returns: dL/d(input) when asked for.
    @discardableResult
    public func backward(_ gradOutput: Matrix, needsInputGradient: Bool = false) throws -> Matrix? {
        var g = gradOutput
        var i = layers.count - 1
        while i >= 0 {
            if lastForwardFused, i > 0, fusableActivation[i - 1] != nil {
                // Layer i is the activation the BatchNorm at i − 1 ran; it has no parameters.
                try onGradientsReady?(i)
                i -= 1
            }
            let wantInput = i > 0 || needsInputGradient || backwardObserver != nil
            let dx = try layers[i].backward(g, needsInputGradient: wantInput)
            try onGradientsReady?(i)
            if let dx {
                backwardObserver?(i, dx)
                g = dx
            }
            i -= 1
        }
        return needsInputGradient ? g : nil
    }

    public var batchNormLayers: [BatchNorm1d] { layers.compactMap { $0 as? BatchNorm1d } }

    // MARK: State dict

    /// Parameters, running statistics and counters under PyTorch's names.
    public func stateDict() -> [String: TensorData] {
        var dict: [String: TensorData] = [:]
        for slot in store.parameterSlots {
            dict[slot.name] = TensorData(floats: UnsafeBufferPointer(start: store.parameter(slot), count: slot.count),
                                         shape: slot.shape)
        }
        for slot in store.bufferSlots {
            dict[slot.name] = TensorData(floats: UnsafeBufferPointer(start: store.buffer(slot), count: slot.count),
                                         shape: slot.shape)
        }
        for (i, name) in store.counterNames.enumerated() {
            dict[name] = TensorData(int64s: [store.counters[i]], shape: [])
        }
        return dict
    }

    /// Loads a state dict, checking that it has exactly this model's keys with the right dtype
    /// and shape (like PyTorch's `load_state_dict(strict=True)`). Nothing is modified when
    /// anything is wrong.
    public func loadStateDict(_ dict: [String: TensorData]) throws {
        let expected = Set(store.parameterSlots.map(\.name) + store.bufferSlots.map(\.name) + store.counterNames)
        let missing = expected.subtracting(dict.keys).sorted()
        let unexpected = Set(dict.keys).subtracting(expected).sorted()
        guard missing.isEmpty && unexpected.isEmpty else {
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing keys \(missing)") }
            if !unexpected.isEmpty { parts.append("unexpected keys \(unexpected)") }
            throw NNError("state dict does not match the model: " + parts.joined(separator: "; "))
        }
        func floats(_ slot: TensorSlot) throws -> [Float] {
            let t = dict[slot.name]!
            guard t.dtype == .f32 else { throw NNError("\(slot.name): expected dtype F32, got \(t.dtype.rawValue)") }
            guard t.shape == slot.shape else { throw NNError("\(slot.name): expected shape \(slot.shape), got \(t.shape)") }
            return try t.floats()
        }
        // Validate everything first, then copy.
        let params = try store.parameterSlots.map { try floats($0) }
        let buffers = try store.bufferSlots.map { try floats($0) }
        let counters = try store.counterNames.map { name -> Int64 in
            let t = dict[name]!
            guard t.dtype == .i64, t.shape.isEmpty || t.shape == [1] else {
                throw NNError("\(name): expected an I64 scalar, got \(t.dtype.rawValue) \(t.shape)")
            }
            return try t.int64s()[0]
        }
        for (slot, values) in zip(store.parameterSlots, params) { store.parameter(slot).update(from: values, count: slot.count) }
        for (slot, values) in zip(store.bufferSlots, buffers) { store.buffer(slot).update(from: values, count: slot.count) }
        store.counters = counters
    }
}
