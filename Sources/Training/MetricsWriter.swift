import Foundation

/// Appends one JSON object per line (JSONL) to a file; each line is written whole and flushed.
public final class MetricsWriter {
    private let handle: FileHandle
    public let path: String

    public init(path: String) throws {
        self.path = path
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw TrainingError("cannot create metrics file \(path)")
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw TrainingError("cannot open metrics file \(path)") }
        handle = h
    }

    deinit { try? handle.close() }

    /// Writes one record; keys are sorted so files diff cleanly.
    public func write(_ record: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: sanitize(record), options: [.sortedKeys]) else { return }
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
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
