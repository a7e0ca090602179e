import CSwiftDDPZlib
import SwiftDDPDatasets
import Foundation
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
    let labelBytes = idxBytes(dimensions: [labels?.count ?? count], values: labels ?? (0..<count).map { UInt8($0 % 10) })
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

@Suite("IDX, gzip and Fashion-MNIST")
struct DatasetTests {
    @Test("IDX round-trips, gzip-compressed and raw", arguments: [true, false])
    func roundTrip(gzip: Bool) throws {
        let dir = TemporaryDirectory()
        writeSplit(dir, prefix: "train", count: 5, gzip: gzip)
        writeSplit(dir, prefix: "t10k", count: 3, gzip: gzip)
        let (train, test) = try FashionMNIST.load(directory: dir.path)
        #expect(train.count == 5 && test.count == 3 && train.features == 6)
        #expect(train.labels == [0, 1, 2, 3, 4])
        #expect(train.inputs[0..<7].map { ($0 * 255).rounded() } == [0, 1, 2, 3, 4, 5, 6], "pixels are /255")
    }

    @Test("truncated gzip is reported") func truncatedGzip() throws {
        let dir = TemporaryDirectory()
        let full = gzipCompress(idxBytes(dimensions: [100], values: (0..<100).map { UInt8($0 * 7 % 256) }))
        let path = dir.write("x.gz", Array(full.prefix(full.count / 2)))
        #expect { try IDX.read(path, expectedDimensions: 1) } throws: { "\($0)".contains("truncated") }
    }

    @Test("corrupt gzip is reported") func corruptGzip() throws {
        let dir = TemporaryDirectory()
        var bytes = gzipCompress(idxBytes(dimensions: [100], values: (0..<100).map { UInt8($0) }))
        for i in 10..<min(30, bytes.count - 8) { bytes[i] ^= 0xA5 }
        let path = dir.write("x.gz", bytes)
        #expect { try IDX.read(path, expectedDimensions: 1) } throws: { "\($0)".contains("gzip") }
    }

    @Test("wrong IDX magic, type or dimension count is reported") func badMagic() throws {
        #expect { try IDX.parse([1, 2, 8, 1, 0, 0, 0, 0], expectedDimensions: 1) } throws: { "\($0)".contains("magic") }
        #expect { try IDX.parse(idxBytes(dimensions: [1], values: [0, 0, 0, 0], type: 0x0D), expectedDimensions: 1) } throws: {
            "\($0)".contains("not unsigned byte")
        }
        #expect { try IDX.parse(idxBytes(dimensions: [1, 1], values: [0]), expectedDimensions: 3) } throws: {
            "\($0)".contains("2 dimensions, expected 3")
        }
    }

    @Test("IDX payload shorter or longer than its dimensions is reported") func sizeMismatch() throws {
        #expect { try IDX.parse(idxBytes(dimensions: [4], values: [1, 2, 3]), expectedDimensions: 1) } throws: {
            "\($0)".contains("truncated")
        }
        #expect { try IDX.parse(idxBytes(dimensions: [2], values: [1, 2, 3]), expectedDimensions: 1) } throws: {
            "\($0)".contains("past")
        }
    }

    @Test("image and label counts that differ are reported") func countMismatch() throws {
        let dir = TemporaryDirectory()
        writeSplit(dir, prefix: "train", count: 5, labels: [0, 1, 2, 3])
        writeSplit(dir, prefix: "t10k", count: 3)
        #expect { try FashionMNIST.load(directory: dir.path) } throws: { "\($0)".contains("5 images but 4 labels") }
    }

    @Test("labels out of range are reported") func labelRange() throws {
        let dir = TemporaryDirectory()
        writeSplit(dir, prefix: "train", count: 3, labels: [0, 12, 1])
        writeSplit(dir, prefix: "t10k", count: 3)
        #expect { try FashionMNIST.load(directory: dir.path) } throws: { "\($0)".contains("label 12") }
    }

    @Test("a missing directory is reported") func missingDirectory() {
        #expect { try FashionMNIST.load(directory: "/nonexistent/fashion") } throws: { "\($0)".contains("does not exist") }
    }

    @Test("the installed Fashion-MNIST loads with the published shapes")
    func realData() throws {
        let (train, test) = try FashionMNIST.load()
        #expect(train.count == 60_000 && test.count == 10_000 && train.features == 784)
        #expect(train.labels[0] == 9, "the first training image is an ankle boot")
        #expect(train.inputs.min() == 0 && train.inputs.max() == 1)
        var perClass = [Int](repeating: 0, count: 10)
        for l in train.labels { perClass[Int(l)] += 1 }
        #expect(perClass.allSatisfy { $0 == 6000 }, "6,000 training images per class")
    }

    @Test("synthetic data is reproducible from its seed")
    func synthetic() throws {
        let a = try SyntheticData.make(count: 50, features: 8, classes: 3, seed: 4)
        let b = try SyntheticData.make(count: 50, features: 8, classes: 3, seed: 4)
        let c = try SyntheticData.make(count: 50, features: 8, classes: 3, seed: 5)
        #expect(a.inputs == b.inputs && a.labels == b.labels)
        #expect(a.inputs != c.inputs)
        #expect(a.inputs.allSatisfy { $0 >= 0 && $0 <= 1 })
    }
}
