import SwiftDDPDatasets
import Foundation
import SwiftDDPNN
import SwiftDDPSafeTensors
import Testing
@testable import SwiftDDPTestSupport
/// `--data FILE.safetensors`: a data set of the user's own.
@Suite("Tensor-file data sets")
struct TensorFileTests {
    /// uint8 images [2, 3, 2, 2] whose value encodes its index: 100·n + 10·c + (2h + w).
    static func encodedImages() throws -> TensorData {
        var bytes: [UInt8] = []
        for n in 0..<2 { for c in 0..<3 { for p in 0..<4 { bytes.append(UInt8(100 * n + 10 * c + p)) } } }
        return try TensorData(dtype: .u8, shape: [2, 3, 2, 2], bytes: bytes)
    }

    @Test("[N, C, H, W] uint8 images load channels-last, scaled by 1/255; labels and classes as given")
    func layout() throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/d.safetensors"
        try SafeTensors.write(["images": try Self.encodedImages(), "labels": TensorData(int64s: [2, 0], shape: [2])],
                              metadata: ["classes": "5"], to: path)
        let (train, test) = try TensorFile.load(path)
        #expect(train.sampleShape == .image(channels: 3, height: 2, width: 2) && train.classes == 5)
        #expect(train.labels == [2, 0] && test.count == 0)
        for n in 0..<2 {
            for c in 0..<3 {
                for p in 0..<4 {
                    // channels-last: sample n, position p = 2h + w, channel c
                    #expect(train.inputs[n * 12 + p * 3 + c] == Float(100 * n + 10 * c + p) / 255,
                            "n \(n) c \(c) p \(p)")
                }
            }
        }
    }

    @Test("what TensorFile.write writes, TensorFile.load reads back: float32 images, the test set, classes")
    func roundTrip() throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/d.safetensors"
        let shape = SampleShape.image(channels: 2, height: 3, width: 1)
        let train = try Dataset(features: 6, classes: 4, inputs: (0..<18).map { Float($0) * 0.5 - 3 },
                                labels: [0, 3, 1], shape: shape)
        let test = try Dataset(features: 6, classes: 4, inputs: (0..<6).map(Float.init), labels: [2], shape: shape)
        try TensorFile.write(train: train, test: test, to: path)
        let (a, b) = try TensorFile.load(path)
        #expect(a.inputs == train.inputs && a.labels == train.labels && a.classes == 4 && a.sampleShape == shape)
        #expect(b.inputs == test.inputs && b.labels == test.labels)
    }

    @Test("a file that is not a data set: one line naming the file and what is wrong", arguments: [
        ("no labels", ["images"], "expected images [N, C, H, W] or [N, F]"),
        ("3-d images", ["images3d", "labels"], "images must be [N, C, H, W] or [N, F], got [2, 12, 1]"),
        ("f64 images", ["images64", "labels"], "images must be uint8 or float32, got F64"),
        ("NaN", ["imagesNaN", "labels"], "images value nan of sample 1 is not finite"),
        ("count", ["images", "labels3"], "images hold 2 samples, the labels 3"),
        ("negative label", ["images", "labelsNegative"], "label -1 is negative"),
        ("2-d labels", ["images", "labels2d"], "labels must be [N], got [2, 1]"),
        ("half a test set", ["images", "labels", "test_images"], "test_images and test_labels come together"),
        ("one class", ["images", "labelsZero"], "a classifier needs at least 2"),
    ])
    func refused(_ name: String, keys: [String], message: String) throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/bad.safetensors"
        let floats = (0..<24).map { Float($0) }
        var nan = floats
        nan[13] = .nan
        let all: [String: (String, TensorData)] = [
            "images": ("images", try Self.encodedImages()),
            "images3d": ("images", TensorData(floats: floats, shape: [2, 12, 1])),
            "images64": ("images", try TensorData(dtype: .f64, shape: [2, 12], bytes: .init(repeating: 0, count: 192))),
            "imagesNaN": ("images", TensorData(floats: nan, shape: [2, 12])),
            "labels": ("labels", TensorData(int64s: [1, 0], shape: [2])),
            "labels3": ("labels", TensorData(int64s: [1, 0, 1], shape: [3])),
            "labelsNegative": ("labels", TensorData(int64s: [1, -1], shape: [2])),
            "labels2d": ("labels", TensorData(int64s: [1, 0], shape: [2, 1])),
            "labelsZero": ("labels", TensorData(int64s: [0, 0], shape: [2])),
            "test_images": ("test_images", try Self.encodedImages()),
        ]
        var tensors: [String: TensorData] = [:]
        for key in keys { let (name, t) = all[key]!; tensors[name] = t }
        try SafeTensors.write(tensors, to: path)
        #expect { try TensorFile.load(path) } throws: { error in
            "\(error)".hasPrefix(path + ": ") && "\(error)".contains(message)
        }
    }
}
