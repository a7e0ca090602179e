import Foundation
/// Appends one JSON object per line (JSONL) to a file; each line is written whole and flushed.
public final class MetricsWriter {
    private let handle: FileHandle
    public let path: String

    /// - Parameter append: keep existing lines (a resumed run continues its file).
    public init(path: String, append: Bool = false) throws {
        self.path = path
        if !(append && FileManager.default.fileExists(atPath: path)) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw TrainingError("cannot create metrics file \(path)")
            }
        }
        guard let h = FileHandle(forWritingAtPath: path) else {
            throw TrainingError("cannot open metrics file \(path)")
        }
        handle = h
        if append { h.seekToEndOfFile() }
    }

    deinit { try? handle.close() }

    /// Writes one record; keys are sorted so files diff cleanly.
    public func write(_ record: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: sanitize(record), options: [.sortedKeys]) else {
            return
        }
        handle.write(data + Data([0x0A]))
    }

    /// JSON has no NaN or infinity: write them as null.
    private func sanitize(_ value: Any) -> Any {
        switch value {
        case let d as Double: return d.isFinite ? d : NSNull()
        case let f as Float: return f.isFinite ? Double(f) : NSNull()
        case let dict as [String: Any]: return dict.mapValues(sanitize)
        case let array as [Any]: return array.map(sanitize)
        default: return value
        }
    }
}

/// A training run that cannot go on.
public struct TrainingError: Error, CustomStringConvertible, Sendable {
    public let message: String
    /// Every rank reached this error at the same point with the same message (it followed from
    /// values all ranks share), so one rank reporting it and all exiting cleanly is enough.
    public let agreed: Bool
    public init(_ message: String, agreed: Bool = false) {
        self.message = message
        self.agreed = agreed
    }
    public var description: String { message }
}
