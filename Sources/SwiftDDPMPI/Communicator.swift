import CSwiftDDPMPI
/// An MPI communicator: a group of processes (ranks) that take part in collectives together.
///
/// `world` and `selfOnly` wrap the predefined communicators; `duplicate` and `split` create
/// new ones, which are freed when the last reference goes away (while MPI is still active).
/// All communicators here return errors (`MPI_ERRORS_RETURN`), so every method throws an
/// `MPIError` carrying the MPI error class and the `MPI_Error_string` text.
public final class Communicator: @unchecked Sendable {
    /// The raw handle, for calls this module does not wrap.
    public let handle: MPI_Comm
    /// This process's rank in the communicator, 0..<size.
    public let rank: Int
    /// The number of processes in the communicator.
    public let size: Int
    private let owned: Bool

    init(handle: MPI_Comm, owned: Bool) throws(MPIError) {
        self.handle = handle
        self.owned = owned
        var r: Int32 = 0, s: Int32 = 0
        try check(MPI_Comm_rank(handle, &r), "MPI_Comm_rank")
        try check(MPI_Comm_size(handle, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
    }

    deinit {
        guard owned, MPIRuntime.isActive else { return }
        var h: MPI_Comm? = handle
        _ = MPI_Comm_free(&h)
    }

    /// `MPI_COMM_WORLD`: every process of the job. Requires `MPIRuntime.initialize()`.
    public static func world() throws(MPIError) -> Communicator {
        try Communicator(handle: cmpi_comm_world(), owned: false)
    }

    /// `MPI_COMM_SELF`: this process alone.
    public static func selfOnly() throws(MPIError) -> Communicator {
        try Communicator(handle: cmpi_comm_self(), owned: false)
    }

    /// A new communicator with the same processes and a separate message space
    /// (`MPI_Comm_dup`), so a library's traffic cannot match the caller's.
    public func duplicate() throws(MPIError) -> Communicator {
        var newComm: MPI_Comm? = cmpi_comm_null()
        try check(MPI_Comm_dup(handle, &newComm), "MPI_Comm_dup")
        return try Communicator(handle: newComm!, owned: true)
    }

    /// Partitions the processes (`MPI_Comm_split`): processes passing the same `color` form one
    /// new communicator, ordered by `key` (ties broken by rank here). Collective.
    /// - Parameters:
    ///   - color: the group to join, non-negative; nil joins none (`MPI_UNDEFINED`).
    ///   - key: the ordering key inside the group.
    /// - Returns: the new communicator, or nil when `color` is nil.
    public func split(color: Int?, key: Int) throws(MPIError) -> Communicator? {
        let c: Int32
        if let color {
            guard color >= 0, color <= Int(Int32.max) else {
                throw MPIError(function: "MPI_Comm_split", code: MPI_ERR_ARG,
                               detail: "color \(color) must be a non-negative int")
            }
            c = Int32(color)
        } else {
            c = cmpi_undefined()
        }
        guard let k = Int32(exactly: key) else {
            throw MPIError(function: "MPI_Comm_split", code: MPI_ERR_ARG, detail: "key \(key) does not fit an int")
        }
        var newComm: MPI_Comm? = cmpi_comm_null()
        try check(MPI_Comm_split(handle, c, k, &newComm), "MPI_Comm_split")
        guard let newComm, newComm != cmpi_comm_null() else { return nil }
        return try Communicator(handle: newComm, owned: true)
    }

    /// Blocks until every process of the communicator has called it (`MPI_Barrier`).
    public func barrier() throws(MPIError) {
        try check(MPI_Barrier(handle), "MPI_Barrier")
    }

    /// The name of the processor (host) this process runs on (`MPI_Get_processor_name`).
    public static func processorName() throws(MPIError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(cmpi_max_processor_name()) + 1)
        var length: Int32 = 0
        try check(MPI_Get_processor_name(&buffer, &length), "MPI_Get_processor_name")
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Ends every process of this communicator's job (`MPI_Abort`).
    public func abort(exitCode: Int32) -> Never {
        _ = MPI_Abort(handle, exitCode)
        fatalError("MPI_Abort returned")
    }
}

extension Communicator {
    /// The members of this communicator that can share memory with this process (those on the
    /// same host), ranked as here: `MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)`. Collective.
    public func splitSharedMemory() throws(MPIError) -> Communicator {
        var newComm: MPI_Comm? = cmpi_comm_null()
        try check(MPI_Comm_split_type(handle, cmpi_comm_type_shared(), Int32(rank), cmpi_info_null(), &newComm),
                  "MPI_Comm_split_type")
        return try Communicator(handle: newComm!, owned: true)
    }

    /// A barrier that also orders memory shared between the members (a full fence on each side),
    /// for handing data in shared memory from one process to another.
    public func memoryBarrier() throws(MPIError) {
        cmpi_memory_fence()
        try barrier()
        cmpi_memory_fence()
    }
}
