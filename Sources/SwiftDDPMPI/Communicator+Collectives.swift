import CSwiftDDPMPI
/// Typed collectives on Swift buffers. Every rank of the communicator must call the same
/// collective with compatible arguments; lengths that cannot match (for example an
/// out-of-place receive buffer of the wrong size) are refused before MPI is called.
extension Communicator {
    // MARK: All-reduce

    /// Reduces `buffer` element-wise across all ranks and leaves the result in `buffer` on
    /// every rank (`MPI_Allreduce` with `MPI_IN_PLACE`).
    public func allreduce<T: MPIScalar>(
        _ buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp = .sum
    ) throws(MPIError) {
        let n = try mpiCount(buffer.count, "MPI_Allreduce")
        try check(MPI_Allreduce(UnsafeRawPointer(cmpi_in_place()), buffer.baseAddress, n,
                                T.mpiDatatype, op.handle, handle), "MPI_Allreduce")
    }

    /// In-place all-reduce of an array.
    public func allreduce<T: MPIScalar>(_ array: inout [T], op: ReductionOp = .sum) throws(MPIError) {
        try array.withUnsafeMutableBufferPointer { b in
            catching { () throws(MPIError) in try allreduce(b, op: op) }
        }.get()
    }

    /// Out-of-place all-reduce: `receive` gets the reduction of every rank's `send`.
    public func allreduce<T: MPIScalar>(
        _ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>, op: ReductionOp = .sum
    ) throws(MPIError) {
        guard send.count == receive.count else {
            throw MPIError(function: "MPI_Allreduce", code: MPI_ERR_COUNT,
                           detail: "send buffer has \(send.count) elements, receive buffer \(receive.count)")
        }
        let n = try mpiCount(send.count, "MPI_Allreduce")
        try check(MPI_Allreduce(send.baseAddress, receive.baseAddress, n, T.mpiDatatype, op.handle, handle),
                  "MPI_Allreduce")
    }

    /// Out-of-place all-reduce returning a new array.
    public func allreduce<T: MPIScalar>(_ send: [T], op: ReductionOp = .sum) throws(MPIError) -> [T] {
        var result = [T](repeating: 0, count: send.count)
        try send.withUnsafeBufferPointer { s in
            result.withUnsafeMutableBufferPointer { r in
                catching { () throws(MPIError) in try allreduce(s, into: r, op: op) }
            }
        }.get()
        return result
    }

    /// Starts a non-blocking in-place all-reduce (`MPI_Iallreduce`). `buffer` must stay valid
    /// and unmodified until the returned request completes.
    public func iallreduce<T: MPIScalar>(
        _ buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp = .sum
    ) throws(MPIError) -> Request {
        let n = try mpiCount(buffer.count, "MPI_Iallreduce")
        var request: MPI_Request? = cmpi_request_null()
        try check(MPI_Iallreduce(UnsafeRawPointer(cmpi_in_place()), buffer.baseAddress, n,
                                 T.mpiDatatype, op.handle, handle, &request), "MPI_Iallreduce")
        return Request(handle: request, function: "MPI_Iallreduce")
    }

    /// Sets up an in-place all-reduce of `buffer` to be run many times (a persistent collective:
    /// `MPI_Allreduce_init`, Open MPI 4.1's `MPIX_Allreduce_init`), so that each run skips the
    /// set-up, and its heap allocations. Collective: every rank sets it up in the same order.
    /// `buffer` must stay valid while the request exists.
    public func persistentAllreduce<T: MPIScalar>(
        _ buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp = .sum
    ) throws(MPIError) -> PersistentRequest {
        let n = try mpiCount(buffer.count, "MPI_Allreduce_init")
        var request: MPI_Request? = cmpi_request_null()
        try check(cmpi_allreduce_init(buffer.baseAddress, n, T.mpiDatatype, op.handle, handle, &request),
                  "MPI_Allreduce_init")
        return PersistentRequest(handle: request, function: "MPI_Allreduce_init", communicator: self)
    }

    // MARK: Broadcast

    /// Copies `buffer` from `root` to every other rank (`MPI_Bcast`). All ranks pass buffers of
    /// the same length.
    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws(MPIError) {
        let n = try mpiCount(buffer.count, "MPI_Bcast")
        guard let r = Int32(exactly: root) else {
            throw MPIError(function: "MPI_Bcast", code: MPI_ERR_ROOT, detail: "root \(root)")
        }
        try check(MPI_Bcast(buffer.baseAddress, n, T.mpiDatatype, r, handle), "MPI_Bcast")
    }

    /// Broadcast of an array from `root`.
    public func broadcast<T: MPIScalar>(_ array: inout [T], root: Int) throws(MPIError) {
        try array.withUnsafeMutableBufferPointer { b in
            catching { () throws(MPIError) in try broadcast(b, root: root) }
        }.get()
    }

    // MARK: Gather

    /// Every rank contributes `send`; every rank receives all contributions in rank order
    /// (`MPI_Allgather`). `receive.count` must be `send.count * size`.
    public func allgather<T: MPIScalar>(
        _ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>
    ) throws(MPIError) {
        guard receive.count == send.count * size else {
            throw MPIError(function: "MPI_Allgather", code: MPI_ERR_COUNT,
                           detail: "receive buffer has \(receive.count) elements, expected \(send.count) × \(size)")
        }
        let n = try mpiCount(send.count, "MPI_Allgather")
        try check(MPI_Allgather(send.baseAddress, n, T.mpiDatatype, receive.baseAddress, n, T.mpiDatatype, handle),
                  "MPI_Allgather")
    }

    /// All-gather of equal-length arrays, concatenated in rank order.
    public func allgather<T: MPIScalar>(_ send: [T]) throws(MPIError) -> [T] {
        var result = [T](repeating: 0, count: send.count * size)
        try send.withUnsafeBufferPointer { s in
            result.withUnsafeMutableBufferPointer { r in catching { () throws(MPIError) in try allgather(s, into: r) } }
        }.get()
        return result
    }

    /// All-gather of arrays whose lengths may differ per rank (`MPI_Allgatherv`, after an
    /// all-gather of the lengths). Returns one array per rank, in rank order.
    public func allgatherv<T: MPIScalar>(_ send: [T]) throws(MPIError) -> [[T]] {
        let counts = try allgather([try mpiCount(send.count, "MPI_Allgatherv")])
        var displacements = [Int32](repeating: 0, count: size)
        var total = 0
        for r in 0..<size {
            displacements[r] = try mpiCount(total, "MPI_Allgatherv")
            total += Int(counts[r])
        }
        var flat = [T](repeating: 0, count: total)
        let n = Int32(send.count)
        try send.withUnsafeBufferPointer { s in
            flat.withUnsafeMutableBufferPointer { f in
                catching { () throws(MPIError) in
                    try check(MPI_Allgatherv(s.baseAddress, n, T.mpiDatatype, f.baseAddress, counts, displacements,
                                             T.mpiDatatype, handle), "MPI_Allgatherv")
                }
            }
        }.get()
        return (0..<size).map { r in
            let start = Int(displacements[r])
            return Array(flat[start..<start + Int(counts[r])])
        }
    }

    /// Gathers equal-length arrays at `root` (`MPI_Gather`): root receives the concatenation in
    /// rank order, the other ranks an empty array.
    public func gather<T: MPIScalar>(_ send: [T], root: Int) throws(MPIError) -> [T] {
        guard let r = Int32(exactly: root) else {
            throw MPIError(function: "MPI_Gather", code: MPI_ERR_ROOT, detail: "root \(root)")
        }
        let n = try mpiCount(send.count, "MPI_Gather")
        var result = [T](repeating: 0, count: rank == root ? send.count * size : 0)
        try send.withUnsafeBufferPointer { s in
            result.withUnsafeMutableBufferPointer { out in
                catching { () throws(MPIError) in
                    try check(MPI_Gather(s.baseAddress, n, T.mpiDatatype, out.baseAddress, n, T.mpiDatatype, r, handle),
                              "MPI_Gather")
                }
            }
        }.get()
        return result
    }
}

/// Runs a typed-throwing body inside a non-throwing closure (the standard library's
/// `withUnsafe…` helpers rethrow untyped errors) and hands the outcome back as a `Result`.
@inline(__always)
func catching(_ body: () throws(MPIError) -> Void) -> Result<Void, MPIError> {
    do { try body(); return .success(()) } catch { return .failure(error) }
}
