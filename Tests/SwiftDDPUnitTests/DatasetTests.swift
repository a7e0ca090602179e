import CSwiftDDPZlib
import SwiftDDPDatasets
import Foundation
import Testing
@testable import SwiftDDPTestSupport
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
        #expect {
            try IDX.parse(idxBytes(dimensions: [1], values: [0, 0, 0, 0], type: 0x0D), expectedDimensions: 1)
        } throws: {
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
        #expect { try FashionMNIST.load(directory: "/nonexistent/fashion") } throws: {
            "\($0)".contains("does not exist")
        }
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
