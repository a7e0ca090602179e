#if canImport(Glibc)
import Glibc
#endif
import SwiftDDPMPI
/// A `ProcessGroup` over an MPI communicator: one member per MPI process.
///
/// When every member runs on one host, collectives on small buffers (up to
/// `HostMailbox.slotBytes` per rank: SyncBatchNorm's statistics, the loss) go through shared
/// memory instead of MPI messages (`HostMailbox`); set `SWIFTDDP_SMALL_COLLECTIVES=mpi` to keep
/// them on MPI. Larger buffers, and members on several hosts, always use MPI.
public final class MPIProcessGroup: ProcessGroup {
    /// The communicator the collectives run on.
    public let communicator: Communicator
    public let hostName: String

    private enum MailboxState { case undecided, ready(HostMailbox), unavailable }
    // MPI runs funneled: only one thread makes the group's collectives.
    nonisolated(unsafe) private var mailboxState = MailboxState.undecided
    nonisolated(unsafe) private var pairwiseCommunicator: Communicator?
    nonisolated(unsafe) private var pairwiseTags = 0

    /// - Parameter communicator: the communicator to use. Pass a duplicate of the world (the
    ///   default) so the group's messages cannot interfere with anything else on the world.
    public init(communicator: Communicator) throws {
        self.communicator = communicator
        hostName = (try? Communicator.processorName()) ?? "unknown"
    }

    /// A group over a duplicate of `MPI_COMM_WORLD`; MPI must be initialized.
    public static func world() throws -> MPIProcessGroup {
        try MPIProcessGroup(communicator: try Communicator.world().duplicate())
    }

    public var rank: Int { communicator.rank }
    public var worldSize: Int { communicator.size }

    public func allReduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp) throws {
        if let mailbox = try mailbox(bytes: buffer.count * MemoryLayout<T>.stride) {
            return try mailbox.allReduce(buffer, op: op)
        }
        try communicator.allreduce(buffer, op: op)
    }

    public func startAllReduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp) throws
        -> any PendingCollective
    {
        MPIPendingCollective(request: try communicator.iallreduce(buffer, op: op))
    }

    /// Float sums (the gradients) run as `PairwiseAllReduce` on the group's pairwise
    /// communicator, small ones through the mailbox at `start`; set
    /// `SWIFTDDP_GRADIENT_ALLREDUCE=mpi` (on every rank) to use MPI's persistent collective
    /// instead. Other types and operations always use MPI's. Members must complete their
    /// all-reduces in the same order.
    public func persistentAllReduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp) throws
        -> any PersistentCollective
    {
        try agreeOnPersistentAllReduce(count: buffer.count)
        if T.self == Float.self, op == .sum, worldSize > 1, !Self.gradientAllReduceUsesMPI {
            if try mailbox(bytes: buffer.count * MemoryLayout<T>.stride) != nil {
                return MailboxAllReduce(group: self, buffer: buffer, op: op)
            }
            let floats = UnsafeMutableBufferPointer(
                start: UnsafeMutableRawPointer(buffer.baseAddress)?.assumingMemoryBound(to: Float.self),
                count: buffer.count)
            let (communicator, tag) = try nextPairwiseTags()
            return try PairwiseAllReduce(buffer: floats, communicator: communicator, tag: tag)
        }
        do {
            return MPIPersistentCollective(request: try communicator.persistentAllreduce(buffer, op: op))
        } catch let error where error.isUnsupportedOperation {
            // an MPI without persistent collectives (Open MPI 4 built without its pcollreq extension)
            return RestartedAllReduce(group: self, buffer: buffer, op: op)
        }
    }

    /// Every member must take the same path with the same length: a mismatch would hang or sum
    /// the wrong elements. Checked once per set-up, outside the step.
    private func agreeOnPersistentAllReduce(count: Int) throws {
        let usesMPI: Int64 = Self.gradientAllReduceUsesMPI ? 1 : 0
        var agreed: [Int64] = [usesMPI, -usesMPI, Int64(count), -Int64(count)]
        try communicator.allreduce(&agreed, op: .min)
        if agreed[0] != -agreed[1] {
            throw ProcessGroupError(
                "SWIFTDDP_GRADIENT_ALLREDUCE differs between the ranks: export it to all (mpirun -x)")
        }
        if agreed[2] != -agreed[3] {
            throw ProcessGroupError(
                "persistent all-reduce: the ranks' buffers hold \(agreed[2]) to \(-agreed[3]) elements")
        }
    }

    /// `SWIFTDDP_GRADIENT_ALLREDUCE=mpi`: gradients through MPI's own persistent all-reduce.
    static let gradientAllReduceUsesMPI =
        (getenv("SWIFTDDP_GRADIENT_ALLREDUCE").map { String(cString: $0) } ?? "") == "mpi"

    /// The communicator the group's pairwise all-reduces share (a duplicate, so their messages
    /// cannot match anyone else's), and the next pair of tags on it. Collective when it makes the
    /// communicator (the first time, and past 16,383 all-reduces): every member sets its
    /// all-reduces up in the same order.
    private func nextPairwiseTags() throws -> (Communicator, Int) {
        // MPI guarantees tags up to 32767: past them, a fresh communicator
        if pairwiseTags + 1 > 32767 { pairwiseCommunicator = nil }
        if pairwiseCommunicator == nil { pairwiseTags = 0 }
        let communicator = try pairwiseCommunicator ?? self.communicator.duplicate()
        pairwiseCommunicator = communicator
        defer { pairwiseTags += 2 }
        return (communicator, pairwiseTags)
    }

    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        // An invalid root goes to MPI, which reports it as MPI_ERR_ROOT.
        if (0..<worldSize).contains(root), let mailbox = try mailbox(bytes: buffer.count * MemoryLayout<T>.stride) {
            return try mailbox.broadcast(buffer, root: root)
        }
        try communicator.broadcast(buffer, root: root)
    }

    public func allGather<T: MPIScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>)
        throws
    {
        // A wrong receive size goes to MPI, which reports it.
        if receive.count == send.count * worldSize,
           let mailbox = try mailbox(bytes: send.count * MemoryLayout<T>.stride) {
            return try mailbox.allGather(send, into: receive)
        }
        try communicator.allgather(send, into: receive)
    }

    public func barrier() throws { try communicator.barrier() }

    /// A shared file mapping in /dev/shm over the members (`HostSharedMemory`), when they are
    /// all on this host.
    public func sharedSegments(floats count: Int, common: Int) throws -> (any SharedSegments)? {
        try hostSharedMemory(floats: count, common: common, wanted: true)
    }

    /// `sharedSegments`, also nil unless every member passes `wanted`. Runs on the
    /// communicator directly: the group's own small collectives may be what is being set up.
    private func hostSharedMemory(floats count: Int, common: Int, wanted: Bool) throws -> HostSharedMemory? {
        let host = try communicator.splitSharedMemory()
        var usable: [Int32] = [host.size == worldSize && wanted ? 1 : 0]
        try communicator.allreduce(&usable, op: .min)
        guard usable[0] == 1 else { return nil }
        return try HostSharedMemory(host: host, count: count, common: common)
    }

    /// The largest payload per member (bytes) that goes through shared memory.
    public static var smallCollectiveBytes: Int { HostMailbox.slotBytes }

    /// Whether small collectives go through shared memory (nil until the first one decided it).
    public var smallCollectivesUseSharedMemory: Bool? {
        switch mailboxState {
        case .undecided: nil
        case .ready: true
        case .unavailable: false
        }
    }

    /// The mailbox for a collective of `bytes` per rank, or nil to use MPI. The first
    /// collective that could use it sets it up; every member makes that same call (same
    /// collectives, same lengths, same order), so the set-up is collective and the members agree.
    private func mailbox(bytes: Int) throws -> HostMailbox? {
        guard worldSize > 1, bytes > 0, bytes <= HostMailbox.slotBytes else { return nil }
        switch mailboxState {
        case .ready(let mailbox): return mailbox
        case .unavailable: return nil
        case .undecided:
            let wanted = (getenv("SWIFTDDP_SMALL_COLLECTIVES").map { String(cString: $0) } ?? "") != "mpi"
            do {
                if let memory = try hostSharedMemory(floats: HostMailbox.segmentFloats, common: 0, wanted: wanted) {
                    let mailbox = HostMailbox(memory: memory, rank: rank)
                    mailboxState = .ready(mailbox)
                    return mailbox
                }
            } catch is ProcessGroupError {
                // The mapping failed on some member (agreed by all): MPI carries everything.
            }
            mailboxState = .unavailable
            return nil
        }
    }

    public func hostGroup() throws -> any ProcessGroup {
        try MPIProcessGroup(communicator: try communicator.splitSharedMemory())
    }

    public func split(color: Int?, key: Int) throws -> (any ProcessGroup)? {
        if let color, color < 0 { throw ProcessGroupError("split color must be non-negative, got \(color)") }
        guard let sub = try communicator.split(color: color, key: key) else { return nil }
        return try MPIProcessGroup(communicator: sub)
    }
}

final class MPIPendingCollective: PendingCollective {
    let request: Request
    init(request: Request) { self.request = request }
    func wait() throws { try request.wait() }
    func test() throws -> Bool { try request.test() }
}

final class MPIPersistentCollective: PersistentCollective {
    let request: PersistentRequest
    init(request: PersistentRequest) { self.request = request }
    func start() throws { try request.start() }
    func wait() throws { try request.wait() }
    func test() throws -> Bool { try request.test() }
}

/// A persistent all-reduce that runs, blocking, at `start` through the mailbox: for buffers
/// small enough that overlapping them with backward would gain little. Like SyncBatchNorm's
/// exchanges, a small gradient bucket then waits for the slowest rank where it starts.
final class MailboxAllReduce<T: MPIScalar>: PersistentCollective {
    private let group: any ProcessGroup
    private let buffer: UnsafeMutableBufferPointer<T>
    private let op: ReductionOp
    init(group: any ProcessGroup, buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp) {
        self.group = group
        self.buffer = buffer
        self.op = op
    }
    func start() throws { try group.allReduce(buffer, op: op) }
    func wait() throws {}
    func test() throws -> Bool { true }
}
