import SwiftDDPMPI
/// The ranks that train together, and the collectives they perform. This is the seam between
/// the trainer and the transport: `MPIProcessGroup` runs over an MPI communicator, and
/// `LocalProcessGroup` runs N ranks as threads of one process, so layer logic such as
/// SyncBatchNorm can be tested without `mpirun`.
///
/// Every member must call the same collectives in the same order with buffers of the same
/// length (as with MPI); implementations throw on arguments they can see are invalid.
public protocol ProcessGroup: AnyObject, Sendable {
    /// This member's rank, 0..<worldSize.
    var rank: Int { get }
    /// The number of members.
    var worldSize: Int { get }
    /// A name for the host this member runs on.
    var hostName: String { get }

    /// Element-wise reduction of `buffer` over all members, result in `buffer` on every member.
    func allReduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp) throws
    /// Starts an all-reduce that may complete in the background; `buffer` must stay valid and
    /// untouched until `wait()` returns.
    func startAllReduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp) throws
        -> any PendingCollective
    /// Sets up an all-reduce of `buffer` that runs once per `start()`, for a buffer reduced every
    /// step. Collective: every member sets its ones up, starts them and completes them in the same
    /// order. Over MPI its runs skip the set-up and
    /// allocate nothing (`MPIProcessGroup.persistentAllReduce`). `buffer` must stay valid while
    /// the collective exists.
    func persistentAllReduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp) throws
        -> any PersistentCollective
    /// Copies `buffer` from `root` to every member.
    func broadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws
    /// Concatenates every member's `send` in rank order into `receive` (`send.count × worldSize`).
    func allGather<T: MPIScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>) throws
    /// Waits until every member has arrived.
    func barrier() throws
    /// Partitions the members: those passing the same `color` (≥ 0) form a new group, ordered
    /// by `key` then by rank; members passing nil join no group and get nil. Collective over
    /// this group.
    func split(color: Int?, key: Int) throws -> (any ProcessGroup)?
    /// The members on this member's host (those that can share memory with it), ordered by
    /// rank. Collective over this group.
    func hostGroup() throws -> any ProcessGroup
    /// Memory every member can load from and store to directly — one segment of `count` floats
    /// per member and one `common` region of that many floats for all of them (zero-filled) —
    /// or nil when the members do not all share a host. Collective; every member gets the same
    /// answer.
    func sharedSegments(floats count: Int, common: Int) throws -> (any SharedSegments)?
}

/// Per-member memory segments that every member of a group addresses directly
/// (`ProcessGroup.sharedSegments`): ranks on one host exchange data with loads and stores
/// instead of messages.
public protocol SharedSegments: AnyObject {
    /// Each member's segment, in rank order; this member's own is `segments[rank]`.
    var segments: [UnsafeMutablePointer<Float>] { get }
    /// The floats in each segment.
    var count: Int { get }
    /// The region all members share (`commonCount` floats; not to be confused with the
    /// per-member segments).
    var common: UnsafeMutablePointer<Float> { get }
    var commonCount: Int { get }
    /// A barrier that also orders memory: stores made by any member before it are visible to
    /// loads made by every member after it. Collective.
    func synchronize() throws
}

/// The elements member `m` of `W` owns when `n` elements are split evenly in rank order: the part
/// each member sums in the reduce-scatters (shared memory, `PairwiseAllReduce`) and updates when
/// the optimizer is sharded.
public func memberPart(_ m: Int, of n: Int, members W: Int) -> Range<Int> { (n * m / W)..<(n * (m + 1) / W) }

extension ReductionOp {
    /// `a ∘ b`: the step of a reduction that the in-process and shared-memory collectives run
    /// themselves, member after member in rank order.
    @inline(__always)
    func combine<T: MPIScalar>(_ a: T, _ b: T) -> T {
        switch self {
        case .sum: a + b
        case .product: a * b
        case .max: Swift.max(a, b)
        case .min: Swift.min(a, b)
        }
    }
}

/// A collective started by `ProcessGroup.startAllReduce`.
public protocol PendingCollective: AnyObject {
    /// Blocks until the collective has completed.
    func wait() throws
    /// Returns whether the collective has completed, without blocking; calling it also lets
    /// MPI make progress on the operation.
    func test() throws -> Bool
}

/// Invalid arguments detected by a process group before communicating.
public struct ProcessGroupError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

// MARK: - Array conveniences

extension ProcessGroup {
    /// Per-member shared segments without a common region.
    public func sharedSegments(floats count: Int) throws -> (any SharedSegments)? {
        try sharedSegments(floats: count, common: 0)
    }

    /// In-place all-reduce of an array.
    public func allReduce<T: MPIScalar>(_ array: inout [T], op: ReductionOp = .sum) throws {
        try array.withUnsafeMutableBufferPointer { try allReduce($0, op: op) }
    }

    /// Broadcast of an array from `root`.
    public func broadcast<T: MPIScalar>(_ array: inout [T], root: Int) throws {
        try array.withUnsafeMutableBufferPointer { try broadcast($0, root: root) }
    }

    /// All-gather of equal-length arrays, concatenated in rank order.
    public func allGather<T: MPIScalar>(_ send: [T]) throws -> [T] {
        var result = [T](repeating: 0, count: send.count * worldSize)
        try send.withUnsafeBufferPointer { s in
            try result.withUnsafeMutableBufferPointer { try allGather(s, into: $0) }
        }
        return result
    }
}

/// A collective set up once by `ProcessGroup.persistentAllReduce` and run many times: `start`,
/// then `wait` (or `test` until true) before the next `start`.
public protocol PersistentCollective: PendingCollective {
    /// Starts a run; the previous one must have completed.
    func start() throws
}

extension ProcessGroup {
    /// Without persistent collectives of its own, a group starts a fresh all-reduce per run.
    public func persistentAllReduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp) throws
        -> any PersistentCollective
    {
        RestartedAllReduce(group: self, buffer: buffer, op: op)
    }
}

/// `PersistentCollective` from `startAllReduce`, one per run.
final class RestartedAllReduce<T: MPIScalar>: PersistentCollective {
    private let group: any ProcessGroup
    private let buffer: UnsafeMutableBufferPointer<T>
    private let op: ReductionOp
    private var running: (any PendingCollective)?

    init(group: any ProcessGroup, buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp) {
        self.group = group
        self.buffer = buffer
        self.op = op
    }

    func start() throws {
        guard running == nil else { throw ProcessGroupError("all-reduce started again before it completed") }
        running = try group.startAllReduce(buffer, op: op)
    }

    func wait() throws {
        defer { running = nil }
        try running?.wait()
    }

    func test() throws -> Bool {
        guard let current = running else { return true }
        guard try current.test() else { return false }
        running = nil
        return true
    }
}
