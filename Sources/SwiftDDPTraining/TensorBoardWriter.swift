import Foundation
/// Writes scalars to a TensorBoard event file (`events.out.tfevents.<seconds>.<host>.<pid>.<n>`):
/// TFRecord-framed `Event` protocol buffers, encoded here by hand so the package needs no
/// protobuf dependency. Every record goes to the file in one write, so a TensorBoard reading the
/// file while training runs never sees half a record.
///
/// `write(_:)` takes the trainer's metrics records (those `MetricsWriter` writes) and logs:
/// - `"step"` records: `train/<key>` for each number: `train/loss`, `train/lr`,
///   `train/samples_per_second` (and `train/mean_loss` where the record has it);
/// - `"eval"` records: `eval/test_loss`, `eval/test_accuracy` (and any other number), at the
///   last step written before them; an evaluation labeled with its BN statistics gets the label
///   as a suffix: `eval/test_accuracy_running_averages`, `eval/test_accuracy_precise_bn`;
/// - `"diagnostics"` records: `diagnostics/<key>` for numbers (`loss`, `first_last_grad_ratio`),
///   `diagnostics/<key>/<i>` for per-layer lists, `i` counted from 0 in the list's order, input to
///   output (`weight_grad_norm`, `input_grad_norm` per Linear layer; `preact_mean`, `preact_std`,
///   `saturation`, `bn_noise_mean`, `bn_noise_variance`, `rank_noise_mean`,
///   `rank_noise_variance` per hidden block; `distribution_shift`, `ics_gradient_relative`,
///   `ics_gradient_cosine` with the covariate-shift probe), `diagnostics/<key>/<subkey>` for
///   dictionaries of numbers.
/// `step` and `epoch` are the x axis, not scalars; `"summary"` records and non-finite values
/// are skipped.
public final class TensorBoardWriter {
    public let path: String
    private let handle: FileHandle
    /// The step of the last record with one: evaluations carry only an epoch.
    private var lastStep = 0

    public init(directory: String) throws {
        let name = "events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(Self.hostName()).\(getpid())"
        var candidate = "\(directory)/\(name).0"
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw TrainingError("cannot create TensorBoard event file \(candidate)")
        }
        // O_EXCL: a second writer started within the same second takes the next suffix rather
        // than truncating the first one's file.
        var fd: Int32 = -1
        for n in 0..<100 {
            candidate = "\(directory)/\(name).\(n)"
            fd = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw TrainingError("cannot create TensorBoard event file \(candidate)") }
        path = candidate
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        var event = Protobuf()
        event.double(1, Date().timeIntervalSince1970)
        event.string(3, "brain.Event:2")
        append(event.bytes)
    }

    deinit {
        flush()
        try? handle.close()
    }

    /// Logs `value` under `tag` at `step`; `wallTime` is seconds since 1970 (default: now).
    public func addScalar(_ tag: String, _ value: Double, step: Int, wallTime: Double? = nil) {
        var summaryValue = Protobuf()
        summaryValue.string(1, tag)
        summaryValue.float(2, Float(value))
        var summary = Protobuf()
        summary.message(1, summaryValue)
        var event = Protobuf()
        event.double(1, wallTime ?? Date().timeIntervalSince1970)
        event.varint(2, UInt64(bitPattern: Int64(step)))
        event.message(5, summary)
        append(event.bytes)
    }

    /// Logs the scalars of one metrics record (see the type's documentation for the tags).
    public func write(_ record: [String: Any]) {
        guard let kind = record["kind"] as? String, kind != "summary" else { return }
        if let step = record["step"] as? Int { lastStep = step }
        let group = kind == "step" ? "train" : kind
        var suffix = ""
        if let label = record["statistics"] as? String {
            suffix = "_" + String(label.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "_" })
        }
        let wallTime = Date().timeIntervalSince1970
        for (key, value) in record.sorted(by: { $0.key < $1.key }) where key != "step" && key != "epoch" {
            for (tag, number) in Self.scalars(value, tag: "\(group)/\(key)\(suffix)") where number.isFinite {
                addScalar(tag, number, step: lastStep, wallTime: wallTime)
            }
        }
    }

    /// Syncs what was written to disk (records are written unbuffered as they come).
    public func flush() {
        try? handle.synchronize()
    }

    private func append(_ data: [UInt8]) {
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian) { Array($0) }
        var record = length
        record += withUnsafeBytes(of: maskedCRC32C(length).littleEndian) { Array($0) }
        record += data
        record += withUnsafeBytes(of: maskedCRC32C(data).littleEndian) { Array($0) }
        try? handle.write(contentsOf: record)
    }

    /// A number, list of numbers or dictionary of numbers as (tag, value) pairs; nothing else.
    private static func scalars(_ value: Any, tag: String) -> [(String, Double)] {
        if let number = number(value) { return [(tag, number)] }
        if let list = value as? [Any] {
            return list.enumerated().compactMap { i, v in number(v).map { ("\(tag)/\(i)", $0) } }
        }
        if let dictionary = value as? [String: Any] {
            return dictionary.sorted { $0.key < $1.key }.compactMap { k, v in number(v).map { ("\(tag)/\(k)", $0) } }
        }
        return []
    }

    private static func number(_ value: Any) -> Double? {
        switch value {
        case is Bool: return nil  // a flag, not a measurement
        case let v as Int: return Double(v)
        case let v as Double: return v
        case let v as Float: return Double(v)
        default: return nil
        }
    }

    private static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// The protocol-buffer wire format, as far as `Event` needs it.
private struct Protobuf {
    private(set) var bytes: [UInt8] = []

    mutating func varint(_ field: Int, _ value: UInt64) {
        key(field, wireType: 0)
        raw(value)
    }

    mutating func double(_ field: Int, _ value: Double) {
        key(field, wireType: 1)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 }
    }

    mutating func float(_ field: Int, _ value: Float) {
        key(field, wireType: 5)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 }
    }

    mutating func string(_ field: Int, _ value: String) { lengthDelimited(field, Array(value.utf8)) }
    mutating func message(_ field: Int, _ value: Protobuf) { lengthDelimited(field, value.bytes) }

    private mutating func lengthDelimited(_ field: Int, _ value: [UInt8]) {
        key(field, wireType: 2)
        raw(UInt64(value.count))
        bytes += value
    }

    private mutating func key(_ field: Int, wireType: UInt64) { raw(UInt64(field) << 3 | wireType) }

    /// Base 128, low group first, the high bit marking "more follows".
    private mutating func raw(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord framing uses.
func crc32c(_ data: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in data { crc = crc32cTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
    return ~crc
}

/// TFRecord stores CRCs rotated and offset, so that a CRC of data containing CRCs stays strong.
func maskedCRC32C(_ data: [UInt8]) -> UInt32 {
    let crc = crc32c(data)
    return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
}

private let crc32cTable: [UInt32] = (0..<256).map { (n: UInt32) in
    (0..<8).reduce(n) { c, _ in c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
}
