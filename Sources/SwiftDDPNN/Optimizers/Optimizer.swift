import SwiftDDPSafeTensors
/// An optimizer updating a `ParameterStore`'s flat parameters from its flat gradients.
public protocol Optimizer: AnyObject {
    /// The learning rate used by the next `step()` (schedules set it before each step).
    var learningRate: Float { get set }
    /// Applies one update from the current gradients (collective for an optimizer whose state
    /// ranks share, `ShardedOptimizer`).
    func step() throws
    /// Applies one update to the parameters in `range` only (and their state), as `step()` would
    /// to those elements — the same bits. Ranks sharing one copy of the parameters each update
    /// their own part; every rank calls it once per step (step counts stay in lockstep).
    func step(range: Range<Int>)
    /// Floats of per-parameter state (momentum buffer, Adam moments), laid out as
    /// `stateVectors` vectors of `parameterCount` each.
    var stateVectors: Int { get }
    /// Moves the per-parameter state into `storage` (`stateVectors × parameterCount` floats),
    /// e.g. memory shared by the ranks of a host; see `ParameterStore.relocateParameters` for
    /// `copyingValues`. `owner` is retained while the memory is used.
    func relocateState(to storage: UnsafeMutablePointer<Float>, owner: AnyObject, copyingValues: Bool)
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
        _ = UnsafeMutableBufferPointer(rebasing: values[slot.offset..<slot.offset + slot.count])
            .update(fromContentsOf: v)
    }
}

func int64State(_ dict: [String: TensorData], _ key: String) throws -> Int64 {
    guard let t = dict[key], t.dtype == .i64, t.shape.isEmpty else {
        throw NNError("optimizer state is missing the I64 scalar \(key)")
    }
    return try t.int64s()[0]
}

/// One float per parameter of optimizer state, in memory of its own or relocated elsewhere.
final class FlatVector {
    private(set) var buffer: UnsafeMutableBufferPointer<Float>
    private var owner: AnyObject?
    init(count: Int) {
        buffer = .allocate(capacity: max(count, 1))
        buffer.initialize(repeating: 0)
        buffer = UnsafeMutableBufferPointer(rebasing: buffer[0..<count])
    }
    deinit { if owner == nil { buffer.deallocate() } }
    var values: UnsafeMutableBufferPointer<Float> { buffer }

    func relocate(to storage: UnsafeMutablePointer<Float>, owner: AnyObject, copyingValues: Bool) {
        buffer = relocateFloats(buffer, to: storage, copyingValues: copyingValues, releasing: self.owner == nil)
        self.owner = owner
    }
}
