/// Where a named tensor lives inside a flat store.
public struct TensorSlot: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }

    /// The placeholder a layer holds until a model registers it.
    public static let unregistered = TensorSlot(name: "", shape: [0], offset: 0)
}

/// Every trainable parameter of a model in one contiguous float buffer, and every gradient in
/// another of the same layout, so the data-parallel gradient all-reduce is a single call
/// (as in llm.c). Non-trainable float state (BatchNorm running statistics) lives in a third
/// flat buffer, so broadcasting buffers from rank 0 is one call as well; integer counters
/// (`num_batches_tracked`) are kept beside it.
///
/// Layers reserve their slots while the model is built, then `allocate()` creates the memory.
public final class ParameterStore {
    public private(set) var parameterSlots: [TensorSlot] = []
    public private(set) var bufferSlots: [TensorSlot] = []
    public private(set) var counterNames: [String] = []

    public private(set) var parameterCount = 0
    public private(set) var bufferCount = 0

    /// Trainable parameters, `parameterCount` floats.
    public private(set) var parameters = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    /// Gradients, same layout as `parameters`.
    public private(set) var gradients = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    /// Non-trainable float buffers (running statistics).
    public private(set) var buffers = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    /// Integer counters such as BatchNorm's `num_batches_tracked`.
    public var counters: [Int64] = []

    /// Keep relocated storage alive (see `relocateGradients`, `relocateParameters`); nil while
    /// the store owns that buffer.
    private var gradientStorageOwner: AnyObject?
    private var parameterStorageOwner: AnyObject?

    public init() {}

    deinit {
        if parameterStorageOwner == nil { parameters.deallocate() }
        if gradientStorageOwner == nil { gradients.deallocate() }
        buffers.deallocate()
    }

    /// Moves the gradients into memory the caller provides (`parameterCount` floats, e.g. a
    /// segment other ranks on the host can read), copying their current values. `owner` is
    /// retained for as long as the store uses that memory.
    public func relocateGradients(to storage: UnsafeMutablePointer<Float>, owner: AnyObject) {
        precondition(isAllocated, "allocate() before relocating the gradients")
        gradients = relocateFloats(gradients, to: storage, copyingValues: true, releasing: gradientStorageOwner == nil)
        gradientStorageOwner = owner
    }

    /// Moves the parameters into memory the caller provides (`parameterCount` floats), e.g. one
    /// copy that every rank of a host shares. With `copyingValues` false the memory is assumed
    /// to receive them from elsewhere (another rank sharing it copies them: identical values
    /// must not be written concurrently by several). `owner` is retained as above.
    public func relocateParameters(to storage: UnsafeMutablePointer<Float>, owner: AnyObject, copyingValues: Bool) {
        precondition(isAllocated, "allocate() before relocating the parameters")
        parameters = relocateFloats(parameters, to: storage, copyingValues: copyingValues,
                                    releasing: parameterStorageOwner == nil)
        parameterStorageOwner = owner
    }

    public var isAllocated: Bool { parameters.baseAddress != nil }

    /// Reserves a trainable tensor; returns its slot.
    public func reserveParameter(_ name: String, shape: [Int]) -> TensorSlot {
        precondition(parameters.baseAddress == nil, "reserve before allocate()")
        let slot = TensorSlot(name: name, shape: shape, offset: parameterCount)
        parameterSlots.append(slot)
        parameterCount += slot.count
        return slot
    }

    /// Reserves a non-trainable float tensor; returns its slot.
    public func reserveBuffer(_ name: String, shape: [Int]) -> TensorSlot {
        precondition(buffers.baseAddress == nil, "reserve before allocate()")
        let slot = TensorSlot(name: name, shape: shape, offset: bufferCount)
        bufferSlots.append(slot)
        bufferCount += slot.count
        return slot
    }

    /// Reserves an integer counter; returns its index in `counters`.
    public func reserveCounter(_ name: String) -> Int {
        counterNames.append(name)
        counters.append(0)
        return counters.count - 1
    }

    /// Allocates the flat buffers, zero-filled.
    public func allocate() {
        precondition(parameters.baseAddress == nil, "allocate() called twice")
        parameters = .allocate(capacity: max(parameterCount, 1))
        gradients = .allocate(capacity: max(parameterCount, 1))
        buffers = .allocate(capacity: max(bufferCount, 1))
        parameters.initialize(repeating: 0)
        gradients.initialize(repeating: 0)
        buffers.initialize(repeating: 0)
        parameters = UnsafeMutableBufferPointer(rebasing: parameters[0..<parameterCount])
        gradients = UnsafeMutableBufferPointer(rebasing: gradients[0..<parameterCount])
        buffers = UnsafeMutableBufferPointer(rebasing: buffers[0..<bufferCount])
    }

    @inline(__always) public func parameter(_ slot: TensorSlot) -> UnsafeMutablePointer<Float> {
        parameters.baseAddress! + slot.offset
    }
    @inline(__always) public func gradient(_ slot: TensorSlot) -> UnsafeMutablePointer<Float> {
        gradients.baseAddress! + slot.offset
    }
    @inline(__always) public func buffer(_ slot: TensorSlot) -> UnsafeMutablePointer<Float> {
        buffers.baseAddress! + slot.offset
    }

    /// Sets every gradient to zero.
    public func zeroGradients() { gradients.update(repeating: 0) }
}

/// Moves a flat float buffer into `storage` (optionally copying its values and freeing the old
/// memory, if it was the owner's own); returns the buffer at its new place.
func relocateFloats(_ old: UnsafeMutableBufferPointer<Float>, to storage: UnsafeMutablePointer<Float>,
                    copyingValues: Bool, releasing: Bool) -> UnsafeMutableBufferPointer<Float>
{
    if copyingValues, old.count > 0 { storage.update(from: old.baseAddress!, count: old.count) }
    if releasing { old.deallocate() }
    return UnsafeMutableBufferPointer(start: storage, count: old.count)
}
