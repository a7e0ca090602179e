import Foundation
import SwiftDDPNN
import SwiftDDPSafeTensors
import Testing
@testable import SwiftDDPTestSupport
@Suite("safetensors checkpoints")
struct SafeTensorsTests {
    func model(seed: UInt64) -> Model {
        // (the configuration is valid: a failure to build is a bug worth a trap in a test)
        try! ModelConfiguration(inputFeatures: 6, depth: 2, width: 4, classes: 3, norm: .bn).build(seed: seed)
    }

    /// Header bytes for hand-made files.
    func file(header: String, data: [UInt8]) -> [UInt8] {
        let h = Array(header.utf8)
        var out = [UInt8]()
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { out += $0 }
        return out + h + data
    }

    @Test("state dict keys follow torch.nn.Sequential")
    func keys() {
        let keys = Set(model(seed: 1).stateDict().keys)
        #expect(keys == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                         "1.num_batches_tracked", "3.weight", "3.bias", "4.weight", "4.bias", "4.running_mean",
                         "4.running_var", "4.num_batches_tracked", "6.weight", "6.bias"])
        let dict = model(seed: 1).stateDict()
        #expect(dict["0.weight"]?.shape == [4, 6] && dict["1.num_batches_tracked"]?.shape == [] &&
                dict["1.num_batches_tracked"]?.dtype == .i64)
    }

    @Test("a model round-trips through a file")
    func roundTrip() throws {
        let dir = TemporaryDirectory()
        let a = model(seed: 1), b = model(seed: 2)
        a.store.counters[0] = 7
        a.store.buffers[1] = 0.25
        #expect(Array(a.store.parameters) != Array(b.store.parameters))
        let path = dir.path + "/m.safetensors"
        try SafeTensors.write(a.stateDict(), metadata: ["format": "pt"], to: path)
        let loaded = try SafeTensors.read(path)
        #expect(loaded.metadata["format"] == "pt")
        try b.loadStateDict(loaded.tensors)
        #expect(Array(a.store.parameters) == Array(b.store.parameters))
        #expect(Array(a.store.buffers) == Array(b.store.buffers))
        #expect(b.store.counters == a.store.counters)
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp.\(getpid())"), "no temporary file left")
    }

    @Test("header length past the end of the file")
    func headerPastEnd() {
        var bytes = file(header: "{}", data: [])
        bytes[0] = 200
        #expect { try SafeTensors.decode(bytes) } throws: { "\($0)".contains("past the end") }
    }

    @Test("absurd header size")
    func absurdHeader() {
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes[5] = 1  // 2^40
        #expect { try SafeTensors.decode(bytes) } throws: { "\($0)".contains("limit") }
    }

    @Test("file shorter than the length prefix")
    func tooShort() {
        #expect { try SafeTensors.decode([1, 2, 3]) } throws: { "\($0)".contains("shorter") }
    }

    @Test("overlapping offsets")
    func overlap() {
        let h = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":"#
            + #"{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        #expect { try SafeTensors.decode(file(header: h, data: [UInt8](repeating: 0, count: 8))) } throws: {
            "\($0)".contains("overlaps")
        }
    }

    @Test("offsets outside the data section")
    func outOfRange() {
        let h = #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#
        #expect { try SafeTensors.decode(file(header: h, data: [UInt8](repeating: 0, count: 8))) } throws: {
            "\($0)".contains("outside")
        }
    }

    @Test("byte range that does not match dtype × shape, and integer overflow in the shape")
    func sizeMismatch() {
        let h = #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#
        #expect { try SafeTensors.decode(file(header: h, data: [UInt8](repeating: 0, count: 8))) } throws: {
            "\($0)".contains("needs 12 bytes")
        }
        let huge = #"{"a":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#
        #expect { try SafeTensors.decode(file(header: huge, data: [UInt8](repeating: 0, count: 8))) } throws: {
            $0 is SafeTensorsError && "\($0)".contains("invalid shape")  // 2⁶⁴ elements: overflow caught, no trap
        }
        let negative = #"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#
        #expect { try SafeTensors.decode(file(header: negative, data: [UInt8](repeating: 0, count: 8))) } throws: {
            "\($0)".contains("non-negative")
        }
    }

    @Test("malformed JSON, unknown dtype and gaps")
    func malformed() {
        #expect { try SafeTensors.decode(file(header: "{not json", data: [])) } throws: { "\($0)".contains("JSON") }
        let unknown = #"{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}"#
        #expect { try SafeTensors.decode(file(header: unknown, data: [0])) } throws: { "\($0)".contains("dtype") }
        let gap = #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#
        #expect { try SafeTensors.decode(file(header: gap, data: [0, 0])) } throws: { "\($0)".contains("gap") }
    }

    /// The JSON header's length: the file's first 8 bytes, little-endian.
    func headerLength(_ bytes: [UInt8]) -> Int {
        bytes.prefix(8).reversed().reduce(0) { $0 << 8 | Int($1) }
    }

    @Test("a truncated file is reported")
    func truncated() throws {
        let bytes = try SafeTensors.encode(model(seed: 1).stateDict())
        #expect { try SafeTensors.decode(Array(bytes.prefix(bytes.count - 10))) } throws: {
            let dataBytes = bytes.count - 10 - 8 - headerLength(bytes)
            return $0 is SafeTensorsError && "\($0)".contains("outside the \(dataBytes)-byte data section")
        }
    }

    @Test("wrong dtype, wrong shape, missing and unexpected keys are refused without touching the model")
    func mismatchedModel() throws {
        let m = model(seed: 3)
        let before = Array(m.store.parameters)
        var dict = m.stateDict()
        dict["0.weight"] = TensorData(int64s: [Int64](repeating: 0, count: 24), shape: [4, 6])
        #expect { try m.loadStateDict(dict) } throws: { "\($0)".contains("expected dtype F32") }
        dict = m.stateDict()
        dict["0.weight"] = TensorData(floats: [Float](repeating: 0, count: 24), shape: [6, 4])
        #expect { try m.loadStateDict(dict) } throws: { "\($0)".contains("expected shape [4, 6]") }
        dict = m.stateDict()
        dict.removeValue(forKey: "1.running_var")
        dict["extra"] = TensorData(floats: [1], shape: [1])
        #expect { try m.loadStateDict(dict) } throws: {
            "\($0)".contains("missing keys [\"1.running_var\"]") && "\($0)".contains("unexpected keys [\"extra\"]")
        }
        #expect(Array(m.store.parameters) == before)
    }

    /// Runs Python's reference safetensors implementation (in the .venv scripts/setup.sh makes).
    func python(_ script: String) throws -> Executables.Outcome {
        try Executables.run(Executables.python, ["-c", script], timeout: 60)
    }

    @Test("files interoperate with the reference safetensors implementation (Python)",
          .enabled(if: Executables.pythonMissing("safetensors.numpy") == nil,
                   Comment(rawValue: Executables.pythonMissing("safetensors.numpy") ?? "")))
    func interoperability() throws {
        let dir = TemporaryDirectory()
        let m = model(seed: 4)
        let ours = dir.path + "/ours.safetensors"
        try SafeTensors.write(m.stateDict(), metadata: ["format": "pt"], to: ours)
        let read = try python("""
            from safetensors.numpy import load_file, save_file
            import numpy as np
            t = load_file('\(ours)')
            print(sorted(t.keys()))
            print(t['0.weight'].dtype, t['0.weight'].shape, \
            t['1.num_batches_tracked'].dtype, t['1.num_batches_tracked'].shape)
            print(repr(float(t['0.weight'].astype(np.float64).sum())))
            save_file({'0.weight': np.arange(24, dtype=np.float32).reshape(4, 6), 'n': np.array(5, dtype=np.int64)}, \
            '\(dir.path)/theirs.safetensors', metadata={'format': 'pt'})
            """)
        expectEnded(read, status: 0)
        let lines = read.output.split(separator: "\n")
        #expect(lines.count >= 3)
        #expect(lines.first.map { $0.contains("'0.weight'") && $0.contains("'6.bias'") } == true)
        #expect(lines.dropFirst().first == "float32 (4, 6) int64 ()")
        let weight = try #require(m.stateDict()["0.weight"])
        let sum = try weight.floats().reduce(0.0) { $0 + Double($1) }
        let pythonSum = lines.dropFirst(2).first.flatMap { Double(String($0)) } ?? .nan
        #expect(abs(pythonSum - sum) < 1e-9)
        let theirs = try SafeTensors.read(dir.path + "/theirs.safetensors")
        #expect(try theirs.tensors["0.weight"]?.floats() == (0..<24).map(Float.init))
        #expect(try theirs.tensors["n"]?.int64s() == [5] && theirs.tensors["n"]?.shape == [])
    }
}
