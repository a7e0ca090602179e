import Foundation
/// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
///
///     [8 bytes: N, u64 little-endian][N bytes: JSON header][data]
///
/// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (byte
/// offsets into the data section) and may hold "__metadata__" (string → string). Files written
/// here load in PyTorch with `safetensors.torch.load_file`, and files from there load here.
public enum SafeTensors {
    /// Largest header accepted (the reference implementation uses 100 MB as well).
    public static let maximumHeaderSize = 100_000_000

    public struct File: Sendable {
        public var tensors: [String: TensorData]
        public var metadata: [String: String]
    }

    // MARK: Encoding

    /// Serializes tensors (sorted by name, contiguous, header padded with spaces to 8 bytes).
    public static func encode(_ tensors: [String: TensorData], metadata: [String: String] = [:]) throws -> [UInt8] {
        let names = tensors.keys.sorted()
        var header = "{"
        var entries: [String] = []
        if !metadata.isEmpty {
            let items = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            entries.append("\"__metadata__\":{\(items.joined(separator: ","))}")
        }
        var offset = 0
        for name in names {
            guard name != "__metadata__" else { throw SafeTensorsError("a tensor cannot be named __metadata__") }
            let t = tensors[name]!
            let end = offset + t.bytes.count
            entries.append("\(jsonString(name)):{\"dtype\":\"\(t.dtype.rawValue)\","
                           + "\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],"
                           + "\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        header += entries.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: headerBytes)
        for name in names { out.append(contentsOf: tensors[name]!.bytes) }
        return out
    }

    /// Writes a file atomically: a temporary file beside `path` is written, flushed to disk
    /// (fsync), then renamed over `path`, so readers never see a half-written file and the old
    /// file stays until the new one is complete.
    public static func write(_ tensors: [String: TensorData], metadata: [String: String] = [:],
                             to path: String) throws {
        let data = try encode(tensors, metadata: metadata)
        try writeAtomically(data, to: path)
    }

    /// Writes bytes atomically (temporary file, fsync, rename, fsync of the directory).
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw SafeTensorsError("cannot write \(path): directory \(directory) does not exist")
        }
        let temporary = "\(path).tmp.\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw SafeTensorsError("cannot write \(temporary): \(String(cString: strerror(errno)))") }
        var ok = true
        bytes.withUnsafeBytes { raw in
            var written = 0
            while written < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + written, raw.count - written)
                if n <= 0 { ok = false; return }
                written += n
            }
        }
        let errorText = String(cString: strerror(errno))
        if ok { ok = fsync(fd) == 0 }
        close(fd)
        guard ok else {
            unlink(temporary)
            throw SafeTensorsError("cannot write \(temporary): \(errorText)")
        }
        guard rename(temporary, path) == 0 else {
            let text = String(cString: strerror(errno))
            unlink(temporary)
            throw SafeTensorsError("cannot rename \(temporary) to \(path): \(text)")
        }
        let dirfd = open(directory, O_RDONLY)
        if dirfd >= 0 { _ = fsync(dirfd); close(dirfd) }
    }

    // MARK: Decoding

    /// Reads and validates a file.
    public static func read(_ path: String) throws -> File {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SafeTensorsError("cannot read \(path): no such file or not readable")
        }
        do {
            return try decode([UInt8](data))
        } catch let error as SafeTensorsError {
            throw SafeTensorsError("\(path): \(error.message)")
        }
    }

    /// Parses and validates bytes: header length within the file and under the limit, valid
    /// UTF-8 JSON object, known dtypes, non-negative shapes without overflow, byte ranges that
    /// match dtype × shape, lie inside the data section, do not overlap, and cover it exactly.
    public static func decode(_ bytes: [UInt8]) throws -> File {
        guard bytes.count >= 8 else {
            throw SafeTensorsError("file is \(bytes.count) bytes, shorter than the 8-byte header length")
        }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(maximumHeaderSize) else {
            throw SafeTensorsError("header length \(n) exceeds the \(maximumHeaderSize)-byte limit")
        }
        guard n <= UInt64(bytes.count - 8) else {
            throw SafeTensorsError("header length \(n) runs past the end of the file (\(bytes.count) bytes)")
        }
        let headerEnd = 8 + Int(n)
        let headerData = Data(bytes[8..<headerEnd])
        guard String(data: headerData, encoding: .utf8) != nil else {
            throw SafeTensorsError("header is not valid UTF-8")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerData, options: [])
        } catch {
            throw SafeTensorsError("header is not valid JSON")
        }
        guard let object = json as? [String: Any] else { throw SafeTensorsError("header is not a JSON object") }
        let dataSize = bytes.count - headerEnd
        var metadata: [String: String] = [:]
        var ranges: [(name: String, begin: Int, end: Int)] = []
        var specs: [String: (DType, [Int])] = [:]
        for (name, value) in object {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw SafeTensorsError("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else {
                        throw SafeTensorsError("__metadata__ value for \(k) is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any] else { throw SafeTensorsError("entry \(name) is not an object") }
            guard let dtypeName = entry["dtype"] as? String, let dtype = DType(rawValue: dtypeName) else {
                throw SafeTensorsError("entry \(name) has an unknown or missing dtype")
            }
            guard let shapeValues = entry["shape"] as? [Any] else {
                throw SafeTensorsError("entry \(name) has no shape")
            }
            let shape = try shapeValues.map { v -> Int in try integer(v, "\(name) shape") }
            guard let offsets = entry["data_offsets"] as? [Any], offsets.count == 2 else {
                throw SafeTensorsError("entry \(name) needs data_offsets [begin, end]")
            }
            let begin = try integer(offsets[0], "\(name) data_offsets"),
                end = try integer(offsets[1], "\(name) data_offsets")
            guard begin <= end, end <= dataSize else {
                throw SafeTensorsError(
                    "entry \(name) has data_offsets [\(begin), \(end)] outside the \(dataSize)-byte data section")
            }
            guard let count = TensorData.elementCount(shape) else {
                throw SafeTensorsError("entry \(name) has an invalid shape \(shape)")
            }
            let (expected, overflow) = count.multipliedReportingOverflow(by: dtype.size)
            guard !overflow, expected == end - begin else {
                throw SafeTensorsError("entry \(name): \(dtype.rawValue) \(shape) needs "
                    + "\(overflow ? "too many" : String(expected)) bytes, data_offsets give \(end - begin)")
            }
            ranges.append((name, begin, end))
            specs[name] = (dtype, shape)
        }
        ranges.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        for r in ranges {
            guard r.begin == cursor else {
                throw SafeTensorsError(r.begin < cursor ? "entry \(r.name) overlaps the previous tensor"
                                       : "gap in the data section before \(r.name)")
            }
            cursor = r.end
        }
        guard cursor == dataSize else {
            throw SafeTensorsError("data section is \(dataSize) bytes but the tensors cover \(cursor)")
        }
        var tensors: [String: TensorData] = [:]
        for r in ranges {
            let (dtype, shape) = specs[r.name]!
            tensors[r.name] = try TensorData(dtype: dtype, shape: shape,
                                             bytes: Array(bytes[headerEnd + r.begin..<headerEnd + r.end]))
        }
        return File(tensors: tensors, metadata: metadata)
    }

    private static func integer(_ value: Any, _ what: String) throws -> Int {
        // JSONSerialization yields NSNumber; reject booleans, fractions and negatives.
        guard let number = value as? NSNumber, !(value is Bool && String(cString: number.objCType) == "c") else {
            throw SafeTensorsError("\(what) must hold non-negative integers")
        }
        let d = number.doubleValue
        guard d >= 0, d == d.rounded(), d < 9.0e18, let i = Int(exactly: number.int64Value), Double(i) == d else {
            throw SafeTensorsError("\(what) must hold non-negative integers")
        }
        return i
    }

    private static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
