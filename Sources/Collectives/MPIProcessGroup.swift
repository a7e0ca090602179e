import MPI

/// A `ProcessGroup` over an MPI communicator: one member per MPI process.
public final class MPIProcessGroup: ProcessGroup {
    /// The communicator the collectives run on.
    public let communicator: Communicator
    public let hostName: String

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
        try communicator.allreduce(buffer, op: op)
    }

    public func startAllReduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp) throws
        -> any PendingCollective
    {
        MPIPendingCollective(request: try communicator.iallreduce(buffer, op: op))
    }

    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        try communicator.broadcast(buffer, root: root)
    }

    public func allGather<T: MPIScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>)
        throws
    {
        try communicator.allgather(send, into: receive)
    }

    public func barrier() throws { try communicator.barrier() }

    /// A shared file mapping in /dev/shm over the members (`HostSharedMemory`), when they are
    /// all on this host.
    public func sharedSegments(floats count: Int, common: Int) throws -> (any SharedSegments)? {
        let host = try communicator.splitSharedMemory()
        var everyoneHere: [Int32] = [host.size == worldSize ? 1 : 0]
        try allReduce(&everyoneHere, op: .min)
        guard everyoneHere[0] == 1 else { return nil }
        return try HostSharedMemory(host: host, count: count, common: common)
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
