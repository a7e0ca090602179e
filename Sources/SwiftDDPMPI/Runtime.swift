import CSwiftDDPMPI
import Synchronization
/// The thread-support levels of `MPI_Init_thread`, lowest first.
public enum ThreadLevel: Int32, Comparable, Sendable, CustomStringConvertible {
    case single, funneled, serialized, multiple

    init(mpiValue: Int32) {
        switch mpiValue {
        case cmpi_thread_multiple(): self = .multiple
        case cmpi_thread_serialized(): self = .serialized
        case cmpi_thread_funneled(): self = .funneled
        default: self = .single
        }
    }

    var mpiValue: Int32 {
        switch self {
        case .single: cmpi_thread_single()
        case .funneled: cmpi_thread_funneled()
        case .serialized: cmpi_thread_serialized()
        case .multiple: cmpi_thread_multiple()
        }
    }

    public static func < (a: ThreadLevel, b: ThreadLevel) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .single: "MPI_THREAD_SINGLE"
        case .funneled: "MPI_THREAD_FUNNELED"
        case .serialized: "MPI_THREAD_SERIALIZED"
        case .multiple: "MPI_THREAD_MULTIPLE"
        }
    }
}

/// Process-wide MPI start-up and shut-down.
///
/// MPI may be initialized and finalized once per process. `initialize` and `finalize` are
/// idempotent so that every exit path (normal return, thrown error) can call `finalize`
/// without double-finalizing; `withRuntime` does this for you.
public enum MPIRuntime {
    private struct State: Sendable {
        var provided: ThreadLevel?
        var finalized = false
    }
    private static let state = Mutex(State())

    /// Starts MPI (`MPI_Init_thread`) and makes `MPI_COMM_WORLD` and `MPI_COMM_SELF` return
    /// errors instead of aborting. Calling it again returns the level recorded the first time.
    /// - Parameter required: the thread level asked for; MPI may provide less.
    /// - Returns: the thread level MPI provided.
    @discardableResult
    public static func initialize(required: ThreadLevel = .funneled) throws(MPIError) -> ThreadLevel {
        let result: Result<ThreadLevel, MPIError> = state.withLock { s in
            if let provided = s.provided { return .success(provided) }
            if s.finalized {
                return .failure(MPIError(function: "MPI_Init_thread", code: MPI_ERR_OTHER,
                                         detail: "MPI was already finalized in this process"))
            }
            applyDefaultParameters()
            var provided: Int32 = 0
            let rc = MPI_Init_thread(nil, nil, required.mpiValue, &provided)
            guard rc == MPI_SUCCESS else { return .failure(MPIError(function: "MPI_Init_thread", code: rc)) }
            let rc1 = MPI_Comm_set_errhandler(cmpi_comm_world(), cmpi_errors_return())
            guard rc1 == MPI_SUCCESS else { return .failure(MPIError(function: "MPI_Comm_set_errhandler", code: rc1)) }
            let rc2 = MPI_Comm_set_errhandler(cmpi_comm_self(), cmpi_errors_return())
            guard rc2 == MPI_SUCCESS else { return .failure(MPIError(function: "MPI_Comm_set_errhandler", code: rc2)) }
            let level = ThreadLevel(mpiValue: provided)
            s.provided = level
            return .success(level)
        }
        return try result.get()
    }

    /// Open MPI settings SwiftDDP changes from Open MPI's defaults, as (MCA parameter, value).
    /// They are applied as `OMPI_MCA_*` environment variables before `MPI_Init`, and only where
    /// the variable is not set, so `mpirun --mca NAME VALUE` or the environment still wins.
    ///
    /// - `coll_libnbc_iallreduce_algorithm` 3 (reduce-scatter + all-gather): by default libnbc's
    ///   `MPI_Iallreduce` uses a binomial reduce-then-broadcast for fewer than 4 ranks *and* for
    ///   every in-place call, which sends the whole buffer each way one after the other. The
    ///   bucketed gradient sync is in place; across 2 nodes at 1 Gbit/s the binomial schedule made
    ///   it 1.4× slower than the flat (blocking) all-reduce, while reduce-scatter + all-gather made
    ///   it faster (Docs/multi-node.md). libnbc falls back to its ring where the buffer has fewer
    ///   elements than ranks.
    public static let defaultParameters: [(name: String, value: String)] = [
        ("coll_libnbc_iallreduce_algorithm", "3"),
    ]

    private static func applyDefaultParameters() {
        for (name, value) in defaultParameters {
            setenv("OMPI_MCA_" + name, value, 0)  // 0: keep a value the user set
        }
    }

    /// The thread level MPI provided, or nil before `initialize`.
    public static var providedThreadLevel: ThreadLevel? { state.withLock { $0.provided } }

    /// True between a successful `initialize` and `finalize`.
    public static var isActive: Bool { state.withLock { $0.provided != nil && !$0.finalized } }

    /// Shuts MPI down (`MPI_Finalize`) if it was started and not yet shut down.
    public static func finalize() throws(MPIError) {
        let rc: Int32 = state.withLock { s in
            guard s.provided != nil, !s.finalized else { return MPI_SUCCESS }
            s.finalized = true
            return MPI_Finalize()
        }
        try check(rc, "MPI_Finalize")
    }

    /// Runs `body` between `initialize` and `finalize`; `finalize` runs on every exit path.
    public static func withRuntime<R>(
        required: ThreadLevel = .funneled, _ body: (ThreadLevel) throws -> R
    ) throws -> R {
        let level = try initialize(required: required)
        do {
            let result = try body(level)
            try finalize()
            return result
        } catch {
            try? finalize()
            throw error
        }
    }

    /// Ends every process of the job (`MPI_Abort` on `MPI_COMM_WORLD`). Use it when one rank
    /// cannot go on: the others would otherwise wait forever in their next collective.
    public static func abort(exitCode: Int32) -> Never {
        if isActive { _ = MPI_Abort(cmpi_comm_world(), exitCode) }
        exit(exitCode)
    }

    /// The Open MPI library version string (`MPI_Get_library_version`).
    public static var libraryVersion: String {
        var buffer = [CChar](repeating: 0, count: 8192)
        var length: Int32 = 0
        guard MPI_Get_library_version(&buffer, &length) == MPI_SUCCESS else { return "unknown" }
        // Open MPI counts the terminating NUL in `length`; a NUL in output cuts logs short.
        let bytes = buffer.prefix(Int(length)).prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
            .trimmingTrailingWhitespace()
    }
}

extension String {
    func trimmingTrailingWhitespace() -> String {
        var s = Substring(self)
        while let last = s.last, last.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}

#if canImport(Glibc)
import Glibc
#endif
