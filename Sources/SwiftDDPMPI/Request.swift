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
