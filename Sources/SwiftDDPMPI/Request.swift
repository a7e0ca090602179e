import CSwiftDDPMPI
/// A pending non-blocking operation (`MPI_Request`), such as `Communicator.iallreduce`.
///
/// The buffer handed to the operation must stay valid and untouched until `wait()` returns
/// or `test()` returns true. A request that is dropped while pending is waited for in
/// `deinit`, so memory is never released under a running operation.
public final class Request: @unchecked Sendable {
    private var handle: MPI_Request?
    private let function: String

    init(handle: MPI_Request?, function: String) {
        self.handle = handle
        self.function = function
    }

    /// True once the operation has completed and `wait`/`test` observed it.
    public var isComplete: Bool { handle == nil || handle == cmpi_request_null() }

    /// Blocks until the operation completes (`MPI_Wait`).
    public func wait() throws(MPIError) {
        guard !isComplete else { return }
        let rc = MPI_Wait(&handle, cmpi_status_ignore())
        try check(rc, "MPI_Wait (\(function))")
    }

    /// Returns whether the operation has completed, without blocking (`MPI_Test`).
    public func test() throws(MPIError) -> Bool {
        guard !isComplete else { return true }
        var flag: Int32 = 0
        try check(MPI_Test(&handle, &flag, cmpi_status_ignore()), "MPI_Test (\(function))")
        return flag != 0
    }

    deinit {
        if !isComplete, MPIRuntime.isActive { _ = MPI_Wait(&handle, cmpi_status_ignore()) }
    }
}

/// A collective set up once and run many times (`Communicator.persistentAllreduce`): `start`,
/// then `wait` (or `test` until true), as often as needed. Freed with the object, after
/// waiting for a run still in progress.
public final class PersistentRequest: @unchecked Sendable {
    private var handle: MPI_Request?
    private let function: String
    /// Kept alive while the request exists: it must be freed before its communicator.
    private let communicator: Communicator?
    /// Whether a run has started and has not been seen to complete.
    public private(set) var isActive = false

    init(handle: MPI_Request?, function: String, communicator: Communicator?) {
        self.handle = handle
        self.function = function
        self.communicator = communicator
    }

    /// Starts a run (`MPI_Start`); the previous one must have completed.
    public func start() throws(MPIError) {
        guard !isActive else {
            throw MPIError(function: "MPI_Start (\(function))", code: MPI_ERR_REQUEST,
                           detail: "started again before the previous run completed")
        }
        try check(MPI_Start(&handle), "MPI_Start (\(function))")
        isActive = true
    }

    /// Blocks until the current run completes (`MPI_Wait`); returns at once if none is running.
    public func wait() throws(MPIError) {
        guard isActive else { return }
        try check(MPI_Wait(&handle, cmpi_status_ignore()), "MPI_Wait (\(function))")
        isActive = false
    }

    /// Whether the current run has completed (`MPI_Test`), without blocking; true if none is running.
    public func test() throws(MPIError) -> Bool {
        guard isActive else { return true }
        var flag: Int32 = 0
        try check(MPI_Test(&handle, &flag, cmpi_status_ignore()), "MPI_Test (\(function))")
        if flag != 0 { isActive = false }
        return flag != 0
    }

    deinit {
        guard MPIRuntime.isActive else { return }
        if isActive { _ = MPI_Wait(&handle, cmpi_status_ignore()) }
        if handle != cmpi_request_null() { _ = MPI_Request_free(&handle) }
    }
}
