/// The durations of a rank's collectives in call order, kept so that ranks can compare them
/// afterwards: every member of a group calls its collectives in the same order, so entry i is
/// the same exchange on each (see `ExchangeSplit`). Storage is allocated once: recording never
/// allocates, so a log can stay attached during steady-state steps.
public final class ExchangeLog {
    public let capacity: Int
    public private(set) var count = 0
    /// A record did not fit since the last `reset()`: the log no longer lines up across ranks.
    public private(set) var overflowed = false
    private let storage: UnsafeMutablePointer<Double>

    public init(capacity: Int) {
        precondition(capacity >= 0, "an exchange log needs a capacity of zero or more")
        self.capacity = capacity
        storage = .allocate(capacity: max(capacity, 1))
    }

    deinit { storage.deallocate() }

    @inline(__always)
    public func record(_ seconds: Double) {
        guard count < capacity else { overflowed = true; return }
        storage[count] = seconds
        count += 1
    }

    public func reset() { (count, overflowed) = (0, false) }

    /// The recorded durations, in seconds.
    public var durations: [Double] { Array(UnsafeBufferPointer(start: storage, count: count)) }
}
