import CSwiftDDPMPI
/// Point-to-point sends and receives set up once (`MPI_Send_init`, `MPI_Recv_init`) and then
/// run together many times: `start` (`MPI_Startall`), then `wait` or `test` until true. Runs
/// skip the set-up, so a steady state of them makes no heap allocation in Open MPI.
/// Built by `Communicator.persistentTransfers`; freed with the object, after waiting for a run
/// still in progress.
public final class PersistentTransfers: @unchecked Sendable {
    private let handles: UnsafeMutablePointer<MPI_Request?>
    /// The number of transfers (sends and receives) in one run.
    public let count: Int
    /// Kept alive while the requests exist: they must be freed before their communicator.
    private let communicator: Communicator
    /// Whether a run has started and has not been seen to complete.
    public private(set) var isActive = false

    init(count: Int, communicator: Communicator) {
        handles = .allocate(capacity: max(count, 1))
        handles.initialize(repeating: cmpi_request_null(), count: max(count, 1))
        self.count = count
        self.communicator = communicator
    }

    /// Starts every transfer (`MPI_Startall`); the previous run must have completed.
    public func start() throws(MPIError) {
        guard !isActive else {
            throw MPIError(function: "MPI_Startall", code: MPI_ERR_REQUEST,
                           detail: "started again before the previous run completed")
        }
        guard count > 0 else { return }
        try check(MPI_Startall(Int32(count), handles), "MPI_Startall")
        isActive = true
    }

    /// Blocks until every transfer of the current run completed (`MPI_Waitall`); returns at
    /// once if none is running.
    public func wait() throws(MPIError) {
        guard isActive else { return }
        // A failed run is over too: Open MPI completes every request before it reports an error.
        isActive = false
        try check(MPI_Waitall(Int32(count), handles, cmpi_statuses_ignore()), "MPI_Waitall")
    }

    /// Whether every transfer of the current run has completed (`MPI_Testall`), without
    /// blocking; true if none is running.
    public func test() throws(MPIError) -> Bool {
        guard isActive else { return true }
        var flag: Int32 = 0
        let rc = MPI_Testall(Int32(count), handles, &flag, cmpi_statuses_ignore())
        if flag != 0 || rc != MPI_SUCCESS { isActive = false }  // as in wait: a failed run is over
        try check(rc, "MPI_Testall")
        return flag != 0
    }

    deinit {
        if MPIRuntime.isActive {
            if isActive { _ = MPI_Waitall(Int32(count), handles, cmpi_statuses_ignore()) }
            for i in 0..<count where handles[i] != cmpi_request_null() { _ = MPI_Request_free(&handles[i]) }
        }
        handles.deallocate()
    }

    /// Sets transfer `index` up with `body`, which fills in the request.
    func setUp(_ index: Int, _ body: (UnsafeMutablePointer<MPI_Request?>) -> Int32, _ function: String)
        throws(MPIError)
    {
        try check(body(handles + index), function)
    }
}

extension Communicator {
    /// Sets up transfers to run together many times: each `sends` buffer goes to its rank, each
    /// `receives` buffer is filled from its rank, all with `tag`. The buffers must stay valid
    /// while the transfers exist; the peers must set up the matching receives and sends. A
    /// send's buffer must not change, and a receive's must not be read, while a run is active.
    /// `MPI_Startall` may start them in any order, so at most one send and one receive per peer
    /// (two with one tag could match either way round).
    public func persistentTransfers<T: MPIScalar>(
        sends: [(buffer: UnsafeBufferPointer<T>, to: Int)],
        receives: [(buffer: UnsafeMutableBufferPointer<T>, from: Int)], tag: Int
    ) throws(MPIError) -> PersistentTransfers {
        guard let t = Int32(exactly: tag), t >= 0 else {
            throw MPIError(function: "MPI_Send_init", code: MPI_ERR_TAG, detail: "tag \(tag)")
        }
        func peer(_ rank: Int, _ function: String) throws(MPIError) -> Int32 {
            guard (0..<size).contains(rank) else {
                throw MPIError(function: function, code: MPI_ERR_RANK, detail: "rank \(rank) of \(size)")
            }
            return Int32(rank)
        }
        let transfers = PersistentTransfers(count: sends.count + receives.count, communicator: self)
        for (i, send) in sends.enumerated() {
            let n = try mpiCount(send.buffer.count, "MPI_Send_init")
            let destination = try peer(send.to, "MPI_Send_init")
            try transfers.setUp(i, {
                MPI_Send_init(send.buffer.baseAddress, n, T.mpiDatatype, destination, t, handle, $0)
            }, "MPI_Send_init")
        }
        for (i, receive) in receives.enumerated() {
            let n = try mpiCount(receive.buffer.count, "MPI_Recv_init")
            let source = try peer(receive.from, "MPI_Recv_init")
            try transfers.setUp(sends.count + i, {
                MPI_Recv_init(receive.buffer.baseAddress, n, T.mpiDatatype, source, t, handle, $0)
            }, "MPI_Recv_init")
        }
        return transfers
    }
}
