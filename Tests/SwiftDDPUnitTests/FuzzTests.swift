import SwiftDDPDatasets
import Foundation
import SwiftDDPNN
import SwiftDDPSafeTensors
import Testing
@testable import SwiftDDPTestSupport
/// Seeded mutation fuzzing of the two parsers that read untrusted files. Each mutant must either
/// parse into a self-consistent value or throw the parser's error type; a crash (trap, overflow,
/// out-of-bounds read) would end the test process and fail the suite. Bounded by iterations and
/// time so CI stays fast; the seed makes every run reproducible.
@Suite("Fuzzing (seeded mutations)")
struct FuzzTests {
    static let iterations = 20_000
    static let timeLimit: TimeInterval = 20

    /// Mutations typical of corrupt files: bit flips, byte overwrites with boundary values,
    /// truncation, duplication of a chunk, deletion, insertion.
    static func mutate(_ input: [UInt8], _ rng: inout SeededGenerator) -> [UInt8] {
        var bytes = input
        let edits = 1 + Int(rng.next() % 4)
        for _ in 0..<edits {
            let at = bytes.isEmpty ? 0 : Int(rng.next() % UInt64(bytes.count))
            switch rng.next() % 7 {
            case 0 where !bytes.isEmpty: bytes[at] ^= UInt8(1 << (rng.next() % 8))
            case 1 where !bytes.isEmpty: bytes[at] = [0, 1, 0x7F, 0x80, 0xFF][Int(rng.next() % 5)]
            case 2: bytes = Array(bytes.prefix(at))
            case 3 where !bytes.isEmpty:
                let end = min(bytes.count, at + 1 + Int(rng.next() % 16))
                bytes.insert(contentsOf: bytes[at..<end], at: at)
            case 4 where !bytes.isEmpty: bytes.removeSubrange(at..<min(bytes.count, at + 1 + Int(rng.next() % 8)))
            case 5: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
            default:
                // a digit inside the JSON header, or a length/dimension byte
                if !bytes.isEmpty { bytes[at] = UInt8(0x30 + rng.next() % 10) }
            }
        }
        return bytes
    }

    @Test("safetensors decoder survives mutated files")
    func safetensors() throws {
        let model = try ModelConfiguration(inputFeatures: 5, depth: 1, width: 3, classes: 2, norm: .bn).build(seed: 1)
        let seed = try SafeTensors.encode(model.stateDict(), metadata: ["format": "pt"])
        var rng = SeededGenerator(seed: 20261124)
        let start = Date()
        var parsed = 0, rejected = 0
        for _ in 0..<Self.iterations where Date().timeIntervalSince(start) < Self.timeLimit {
            let mutant = Self.mutate(seed, &rng)
            do {
                let file = try SafeTensors.decode(mutant)
                // whatever parses is self-consistent
                for t in file.tensors.values { #expect(t.bytes.count == t.elementCount * t.dtype.size) }
                parsed += 1
                do { try model.loadStateDict(file.tensors) } catch is NNError {} catch is SafeTensorsError {}
            } catch is SafeTensorsError {
                rejected += 1
            }
        }
        #expect(parsed + rejected > 500, "too few iterations ran")
        #expect(rejected > 0)
    }

    @Test("IDX reader survives mutated files (raw and gzip)", arguments: [false, true])
    func idx(gzip: Bool) throws {
        let raw = idxBytes(dimensions: [6, 4, 4], values: (0..<96).map { UInt8($0 * 3 % 256) })
        let seed = gzip ? gzipCompress(raw) : raw
        let dir = TemporaryDirectory()
        var rng = SeededGenerator(seed: gzip ? 7 : 8)
        let start = Date()
        var parsed = 0, rejected = 0
        for i in 0..<(Self.iterations / 4) where Date().timeIntervalSince(start) < Self.timeLimit {
            let mutant = Self.mutate(seed, &rng)
            let path = dir.write("f\(i % 8)", mutant)
            do {
                let array = try IDX.read(path, expectedDimensions: 3)
                #expect(array.values.count == array.dimensions.reduce(1, *))
                parsed += 1
            } catch is DatasetError {
                rejected += 1
            }
        }
        #expect(parsed + rejected > 200)
        #expect(rejected > 0)
    }
}
