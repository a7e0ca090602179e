import CSwiftDDPMPI
/// An MPI call that did not return `MPI_SUCCESS`, or a call refused before it reached MPI
/// because its arguments could never be valid (for example send and receive buffers of
/// different lengths).
///
/// Communicators created by this module use `MPI_ERRORS_RETURN`, so a failing MPI call comes
/// back here instead of aborting the process; the error carries the MPI error class and the
/// text of `MPI_Error_string`.
public struct MPIError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The MPI function that failed, e.g. `"MPI_Bcast"`.
    public let function: String
    /// The error code MPI returned (may be implementation specific).
    public let code: Int32
    /// The MPI error class of `code` (`MPI_ERR_ROOT`, `MPI_ERR_COUNT`, ...).
    public let errorClass: Int32
    /// `MPI_Error_string(code)`, possibly followed by a detail added by SwiftDDP.
    public let message: String

    public init(function: String, code: Int32, detail: String? = nil) {
        self.function = function
        self.code = code
        self.errorClass = MPIError.errorClass(of: code)
        let text = MPIError.errorString(of: code)
        self.message = detail.map { "\(text) (\($0))" } ?? text
    }

    public var description: String { "\(function) failed: \(message)" }

    /// Whether MPI does not implement what was asked (`MPI_ERR_UNSUPPORTED_OPERATION`).
    public var isUnsupportedOperation: Bool { errorClass == MPI_ERR_UNSUPPORTED_OPERATION }

    /// `MPI_Error_class`, which MPI allows before `MPI_Init` and after `MPI_Finalize`.
    static func errorClass(of code: Int32) -> Int32 {
        var cls: Int32 = code
        _ = MPI_Error_class(code, &cls)
        return cls
    }

    /// `MPI_Error_string`, which MPI allows before `MPI_Init` and after `MPI_Finalize`.
    static func errorString(of code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        guard MPI_Error_string(code, &buffer, &length) == cmpi_success() else {
            return "unknown MPI error code \(code)"
        }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Throws an `MPIError` unless `code` is `MPI_SUCCESS`.
@inline(__always)
func check(_ code: Int32, _ function: @autoclosure () -> String) throws(MPIError) {
    if code != MPI_SUCCESS { throw MPIError(function: function(), code: code) }
}

/// Converts a Swift count to MPI's `int`, refusing counts MPI cannot express.
@inline(__always)
func mpiCount(_ count: Int, _ function: String) throws(MPIError) -> Int32 {
    guard count >= 0, count <= Int(Int32.max) else {
        throw MPIError(function: function, code: MPI_ERR_COUNT,
                       detail: "count \(count) does not fit MPI's int")
    }
    return Int32(count)
}

extension MPIError {
    /// MPI error classes a caller may want to match on (`MPIError.errorClass`).
    public enum Class {
        public static let buffer: Int32 = MPI_ERR_BUFFER
        public static let count: Int32 = MPI_ERR_COUNT
        public static let type: Int32 = MPI_ERR_TYPE
        public static let root: Int32 = MPI_ERR_ROOT
        public static let rank: Int32 = MPI_ERR_RANK
        public static let tag: Int32 = MPI_ERR_TAG
        public static let communicator: Int32 = MPI_ERR_COMM
        public static let op: Int32 = MPI_ERR_OP
        public static let argument: Int32 = MPI_ERR_ARG
        public static let truncate: Int32 = MPI_ERR_TRUNCATE
        public static let other: Int32 = MPI_ERR_OTHER
        public static let `internal`: Int32 = MPI_ERR_INTERN
    }
}
