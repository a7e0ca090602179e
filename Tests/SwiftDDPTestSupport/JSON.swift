import Foundation
import Testing
/// A JSON object decoded from `data`; anything else fails the test (no crash).
func jsonObject(_ data: Data, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
    let decoded = try JSONSerialization.jsonObject(with: data)
    return try #require(decoded as? [String: Any], "not a JSON object: \(String(decoding: data, as: UTF8.self))",
                        sourceLocation: sourceLocation)
}

func jsonObject(_ line: some StringProtocol, sourceLocation: SourceLocation = #_sourceLocation) throws
    -> [String: Any]
{
    try jsonObject(Data(line.utf8), sourceLocation: sourceLocation)
}

/// The JSON object in the file at `path`.
func jsonFile(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
    try jsonObject(Data(contentsOf: URL(fileURLWithPath: path)), sourceLocation: sourceLocation)
}

/// One JSON object per line of the file at `path` (a metrics or results file).
func jsonLines(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
    try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        .map { try jsonObject($0, sourceLocation: sourceLocation) }
}

extension Dictionary where Key == String, Value == Any {
    /// The value at `key` as a `T`; a missing key or another type fails the test.
    func value<T>(_ key: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
        try #require(self[key] as? T, "\"\(key)\" is \(self[key].map { "\($0)" } ?? "missing"), expected \(T.self)",
                     sourceLocation: sourceLocation)
    }

    func double(_ key: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Double {
        try value(key, sourceLocation: sourceLocation)
    }
    func int(_ key: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Int {
        try value(key, sourceLocation: sourceLocation)
    }
    func string(_ key: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        try value(key, sourceLocation: sourceLocation)
    }
    func bool(_ key: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Bool {
        try value(key, sourceLocation: sourceLocation)
    }
}
