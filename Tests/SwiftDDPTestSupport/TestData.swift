import CSwiftDDPZlib
import Foundation
import SwiftDDPDatasets
import SwiftDDPNN
import SwiftDDPSafeTensors
import Testing

/// gzip-compresses bytes with zlib (test helper; the library only inflates).
func gzipCompress(_ input: [UInt8]) -> [UInt8] {
    var stream = z_stream()
    // windowBits 15 + 16 asks deflate for a gzip wrapper
    precondition(deflateInit2_(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY,
                               ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK)
    defer { deflateEnd(&stream) }
    var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 64)
    var source = input
    let produced: Int = source.withUnsafeMutableBufferPointer { inBuffer in
        output.withUnsafeMutableBufferPointer { outBuffer in
            stream.next_in = inBuffer.baseAddress
            stream.avail_in = uInt(inBuffer.count)
            stream.next_out = outBuffer.baseAddress
            stream.avail_out = uInt(outBuffer.count)
            precondition(deflate(&stream, Z_FINISH) == Z_STREAM_END)
            return outBuffer.count - Int(stream.avail_out)
        }
    }
    return Array(output[0..<produced])
}

/// IDX bytes: magic [0, 0, type, ndim], big-endian dimensions, data.
func idxBytes(dimensions: [Int], values: [UInt8], type: UInt8 = 0x08) -> [UInt8] {
    var out: [UInt8] = [0, 0, type, UInt8(dimensions.count)]
    for d in dimensions { out += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
    return out + values
}

/// A temporary directory removed when the value goes away.
final class TemporaryDirectory {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "swiftddp-test-" + UUID().uuidString
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            Issue.record("cannot create \(path): \(error)")
        }
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let file = "\(path)/\(name)"
        replaceFile(file, with: Data(bytes))
        return file
    }
}

/// Writes `data` to `path` (replacing it); a failure is recorded against the running test.
func replaceFile(_ path: String, with data: Data) {
    if !FileManager.default.createFile(atPath: path, contents: data) { Issue.record("cannot write \(path)") }
}

/// Writes a small, valid Fashion-MNIST-like split (images of `side`×`side` pixels) into `dir`.
func writeSplit(_ dir: TemporaryDirectory, prefix: String, count: Int, labels: [UInt8]? = nil, gzip: Bool = true,
                rows: Int = 2, cols: Int = 3)
{
    let images = idxBytes(dimensions: [count, rows, cols], values: (0..<count * rows * cols).map { UInt8($0 % 256) })
    let labelBytes = idxBytes(dimensions: [labels?.count ?? count],
                              values: labels ?? (0..<count).map { UInt8($0 % 10) })
    let suffix = gzip ? ".gz" : ""
    _ = dir.write("\(prefix)-images-idx3-ubyte\(suffix)", gzip ? gzipCompress(images) : images)
    _ = dir.write("\(prefix)-labels-idx1-ubyte\(suffix)", gzip ? gzipCompress(labelBytes) : labelBytes)
}

/// Writes a Fashion-MNIST-like split of the given `side`×`side` images and labels into `dir`.
func writeIDXSplit(_ dir: TemporaryDirectory, prefix: String, images: [[UInt8]], labels: [UInt8], side: Int = 28) {
    _ = dir.write("\(prefix)-images-idx3-ubyte.gz", gzipCompress(idxBytes(dimensions: [images.count, side, side],
                                                                         values: Array(images.joined()))))
    _ = dir.write("\(prefix)-labels-idx1-ubyte.gz", gzipCompress(idxBytes(dimensions: [labels.count], values: labels)))
}

/// Float64 values of a safetensors tensor (the PyTorch reference writes F64).
func doubles(_ t: TensorData) throws -> [Double] {
    if t.dtype == .f32 { return try t.floats().map(Double.init) }
    try #require(t.dtype == .f64, "expected F32 or F64, found \(t.dtype.rawValue)")
    return t.bytes.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
}

/// Channels-last [N, H, W, C] values as PyTorch's [N, C, H, W] (`toChannelsFirst`), or back.
func permuted<T: Numeric>(_ x: [T], _ n: Int, _ s: SampleShape, toChannelsFirst: Bool) -> [T] {
    s.permuted(x, samples: n, toChannelsFirst: toChannelsFirst)
}

/// A tiny deterministic generator for test data.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E4B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
