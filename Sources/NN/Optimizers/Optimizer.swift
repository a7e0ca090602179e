import SafeTensors

/// An optimizer updating a `ParameterStore`'s flat parameters from its flat gradients.
public protocol Optimizer: AnyObject {
    /// The learning rate used by the next `step()` (schedules set it before each step).
    var learningRate: Float { get set }
    /// Applies one update from the current gradients.
    func step()
    /// Whether every gradient the last `step()` read was finite. The check rides along with the
    /// update's own pass over memory; a caller that must not apply a non-finite update at all
    /// checks the gradients before `step()` instead.
    var lastStepWasFinite: Bool { get }
    /// The optimizer's state (momentum buffers, moments, step count) under stable names.
    func stateDict() -> [String: TensorData]
    /// Restores state saved by `stateDict()`; throws if it does not match this optimizer.
    func loadStateDict(_ dict: [String: TensorData]) throws
}

/// Flat state vectors named like PyTorch's per-parameter state (`state.<param>.<what>`).
func flatStateDict(_ store: ParameterStore, _ what: String, _ values: UnsafeMutableBufferPointer<Float>)
    -> [String: TensorData]
{
    var dict: [String: TensorData] = [:]
    for slot in store.parameterSlots {
        dict["state.\(slot.name).\(what)"] = TensorData(
            floats: UnsafeBufferPointer(rebasing: values[slot.offset..<slot.offset + slot.count]), shape: slot.shape)
    }
    return dict
}

func loadFlatState(_ dict: [String: TensorData], _ store: ParameterStore, _ what: String,
                   into values: UnsafeMutableBufferPointer<Float>) throws
{
    var staged: [(TensorSlot, [Float])] = []
    for slot in store.parameterSlots {
        let key = "state.\(slot.name).\(what)"
        guard let t = dict[key] else { throw NNError("optimizer state is missing \(key)") }
        guard t.dtype == .f32, t.shape == slot.shape else {
            throw NNError("optimizer state \(key): expected F32 \(slot.shape), got \(t.dtype.rawValue) \(t.shape)")
        }
        staged.append((slot, try t.floats()))
    }
    for (slot, v) in staged {
        _ = UnsafeMutableBufferPointer(rebasing: values[slot.offset..<slot.offset + slot.count]).update(fromContentsOf: v)
    }
}

func int64State(_ dict: [String: TensorData], _ key: String) throws -> Int64 {
    guard let t = dict[key], t.dtype == .i64, t.shape.isEmpty else { throw NNError("optimizer state is missing the I64 scalar \(key)") }
    return try t.int64s()[0]
}

final class FlatVector {
    let buffer: UnsafeMutableBufferPointer<Float>
    init(count: Int) {
        buffer = .allocate(capacity: max(count, 1))
        buffer.initialize(repeating: 0)
    }
    deinit { buffer.deallocate() }
    var values: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(rebasing: buffer[0..<buffer.count]) }
}
