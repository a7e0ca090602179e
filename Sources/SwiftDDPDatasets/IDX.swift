import Foundation
/// The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/):
///
///     [0, 0, type, ndim][ndim × u32 big-endian dimensions][data, row-major]
///
/// Only unsigned-byte data (type 0x08) is used by these data sets.
public enum IDX {
    /// A parsed IDX array of unsigned bytes.
    public struct Array: Sendable {
        public let dimensions: [Int]
        public let values: [UInt8]
    }

    /// Reads an IDX file, gzip-compressed (`.gz`, detected by its magic bytes) or raw, and
    /// validates the magic number, the dimensions and that the data size matches them exactly.
    public static func read(_ path: String, expectedDimensions: Int) throws -> Array {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DatasetError("cannot read \(path): no such file or not readable")
        }
        var bytes = [UInt8](data)
        if Gzip.isCompressed(bytes) {
            do {
                bytes = try Gzip.decompress(bytes)
            } catch let e as DatasetError {
                throw DatasetError("\(path): \(e.message)")
            }
        }
        do {
            return try parse(bytes, expectedDimensions: expectedDimensions)
        } catch let e as DatasetError {
            throw DatasetError("\(path): \(e.message)")
        }
    }

    /// Parses uncompressed IDX bytes.
    public static func parse(_ bytes: [UInt8], expectedDimensions: Int) throws -> Array {
        guard bytes.count >= 4 else { throw DatasetError("file is \(bytes.count) bytes, too short for an IDX header") }
        guard bytes[0] == 0, bytes[1] == 0 else {
            throw DatasetError(String(format: "bad IDX magic %02x%02x%02x%02x (expected 0000080%d)",
                                      bytes[0], bytes[1], bytes[2], bytes[3], expectedDimensions))
        }
        guard bytes[2] == 0x08 else {
            throw DatasetError(String(format: "IDX data type 0x%02x is not unsigned byte (0x08)", bytes[2]))
        }
        let ndim = Int(bytes[3])
        guard ndim == expectedDimensions else {
            throw DatasetError("IDX file has \(ndim) dimensions, expected \(expectedDimensions)")
        }
        let headerSize = 4 + 4 * ndim
        guard bytes.count >= headerSize else { throw DatasetError("IDX header is truncated") }
        var dims: [Int] = []
        var total = 1
        for d in 0..<ndim {
            let o = 4 + 4 * d
            let v = Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3])
            dims.append(v)
            let (product, overflow) = total.multipliedReportingOverflow(by: v)
            guard !overflow else { throw DatasetError("IDX dimensions \(dims) describe more data than can exist") }
            total = product
        }
        let payload = bytes.count - headerSize
        guard payload == total else {
            throw DatasetError(payload < total
                ? "IDX data is truncated: dimensions \(dims) need \(total) bytes, file has \(payload)"
                : "IDX data has \(payload - total) bytes past the \(total) its dimensions \(dims) describe")
        }
        return Array(dimensions: dims, values: Swift.Array(bytes[headerSize...]))
    }
}
