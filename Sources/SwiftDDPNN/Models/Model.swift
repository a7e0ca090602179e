import SwiftDDPSafeTensors
/// A network ready to train: the root layer (a container or a single leaf), the flat parameter
/// store every layer registered into, and the hooks the trainer attaches.
///
/// Building one checks every layer's input shape (one clear error before anything is
/// allocated), registers the tree's parameters in order under hierarchical names (each
/// container names its children; `layer1.0.conv1.weight`), allocates the store, and numbers the
/// leaves in that order for the hooks.
public final class Model {
    public let root: any Layer
    public let store: ParameterStore
    public let inputShape: SampleShape
    public let outputShape: SampleShape
    /// Every layer without children, in registration order (PyTorch's `modules()` order).
    public let leaves: [any Layer]
    /// The dotted name of each leaf (`layer1.0.bn1`), as in PyTorch's `named_modules()`.
    public let leafNames: [String]
    public let runner: LayerRunner

    /// Called after leaf `i`'s backward, when its parameter gradients are final (the hook for
    /// overlapping gradient communication with the rest of backward).
    public var onGradientsReady: ((Int) throws -> Void)? {
        get { runner.onGradientsReady }
        set { runner.onGradientsReady = newValue }
    }
    /// Called with (leaf index, output) after each leaf's forward, and (leaf index, gradient
    /// reaching that leaf's input) after each backward; for diagnostics.
    public var forwardObserver: ((Int, Matrix) -> Void)? {
        get { runner.forwardObserver }
        set { runner.forwardObserver = newValue }
    }
    public var backwardObserver: ((Int, Matrix) -> Void)? {
        get { runner.backwardObserver }
        set { runner.backwardObserver = newValue }
    }

    /// - Parameters:
    ///   - root: the network; its layers must not belong to another model.
    ///   - inputShape: the shape of one input sample.
    public init(_ root: any Layer, inputShape: SampleShape) throws {
        outputShape = try root.outputShape(for: inputShape)
        self.root = root
        self.inputShape = inputShape
        store = ParameterStore()
        var leaves: [any Layer] = [], names: [String] = []
        var containers: [any ContainerLayer] = []
        var seen = Set<ObjectIdentifier>()
        func register(_ layer: any Layer, _ scope: ParameterScope, _ name: String) throws {
            // A layer keeps its last input for backward, so one instance cannot serve two places.
            guard seen.insert(ObjectIdentifier(layer)).inserted else {
                throw NNError("\(name.isEmpty ? "the root" : name): this layer already appears elsewhere in the model; "
                              + "use a new instance for each place")
            }
            layer.registerState(in: scope)
            if let container = layer as? any ContainerLayer { containers.append(container) }
            let children = layer.children
            if children.isEmpty {
                leaves.append(layer)
                names.append(name)
            }
            for (childName, child) in children {
                try register(child, scope.child(childName), name.isEmpty ? childName : name + "." + childName)
            }
        }
        try register(root, ParameterScope(store: store), "")
        store.allocate()
        self.leaves = leaves
        leafNames = names
        runner = LayerRunner(leaves: leaves)
        for container in containers { container.runner = runner }
    }

    public var inputFeatures: Int { inputShape.count }
    public var outputFeatures: Int { outputShape.count }

    /// The layers' PyTorch-style description.
    public var description: String { root.description }

    /// Resets every layer: weights and biases by `scheme` (drawn in registration order from
    /// one generator seeded with `seed`), normalization layers to γ = 1, β = 0 and fresh
    /// running statistics.
    public func initialize(scheme: InitScheme, seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        for case let layer as InitializableLayer in leaves { layer.resetParameters(scheme: scheme, using: &generator) }
    }

    /// Runs the network on `input` (`input.cols` must be the input shape's size; flat feature
    /// rows are read as samples of `inputShape`).
    public func forward(_ input: Matrix, training: Bool) throws -> Matrix {
        guard input.cols == inputShape.count else {
            throw NNError("the model expects samples of shape \(inputShape) (\(inputShape.count) values), "
                          + "got \(input.cols)")
        }
        return try runner.forward(root, input.reshaped(inputShape), training: training)
    }

    /// Backpropagates dL/d(output) of the last forward, writing every parameter gradient.
    /// - Parameter needsInputGradient: also compute dL/d(input).
    /// - Returns: dL/d(input) when asked for.
    @discardableResult
    public func backward(_ gradOutput: Matrix, needsInputGradient: Bool = false) throws -> Matrix? {
        let dx = try runner.backward(root, gradOutput, needsInputGradient: needsInputGradient)
        return needsInputGradient ? dx : nil
    }

    /// Every BatchNorm layer (1-D and 2-D), in registration order.
    public var batchNormLayers: [BatchNorm] { leaves.compactMap { $0 as? BatchNorm } }

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
            guard t.shape == slot.shape else {
                throw NNError("\(slot.name): expected shape \(slot.shape), got \(t.shape)")
            }
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
        for (slot, values) in zip(store.parameterSlots, params) {
            store.parameter(slot).update(from: values, count: slot.count)
        }
        for (slot, values) in zip(store.bufferSlots, buffers) {
            store.buffer(slot).update(from: values, count: slot.count)
        }
        store.counters = counters
    }
}
