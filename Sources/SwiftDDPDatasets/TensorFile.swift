import Foundation
import SwiftDDPNN
import SwiftDDPSafeTensors
/// A data set of your own in one safetensors file (`ddp train --data FILE.safetensors`):
///
/// - `images`: `[N, C, H, W]` (PyTorch's layout) or `[N, F]` feature vectors; uint8 (scaled by
///   1/255, as torchvision's `ToTensor`) or float32 (taken as they are);
/// - `labels`: `[N]`, int64, int32 or uint8, in `0..<classes`;
/// - optionally `test_images` and `test_labels`, the same way: the test set (without them, none);
/// - optionally the metadata `"classes"`: the number of classes, when the labels do not show
///   them all (default: the largest label + 1).
///
/// Images are stored channels-last inside (`SampleShape`), so `[N, C, H, W]` with C > 1 is
/// transposed on load.
public enum TensorFile {
    public static let expected = "images [N, C, H, W] or [N, F] (uint8 or float32) and labels [N] "
        + "(int64, int32 or uint8)"

    /// The training and test sets of `path`.
    public static func load(_ path: String) throws -> (train: Dataset, test: Dataset) {
        let file: SafeTensors.File
        do {
            file = try SafeTensors.read(path)
        } catch {
            throw DatasetError("\(path): \(error)")
        }
        func fail(_ message: String) -> DatasetError { DatasetError("\(path): \(message)") }
        guard let images = file.tensors["images"], let labels = file.tensors["labels"] else {
            let found = file.tensors.keys.sorted().joined(separator: ", ")
            throw fail("expected \(expected); found \(found.isEmpty ? "no tensors" : found)")
        }
        let testImages = file.tensors["test_images"], testLabels = file.tensors["test_labels"]
        if (testImages == nil) != (testLabels == nil) {
            throw fail("test_images and test_labels come together; the file has only one of them")
        }
        let trainLabels = try decodeLabels(labels, name: "labels", fail: fail)
        let testLabelValues = try testLabels.map { try decodeLabels($0, name: "test_labels", fail: fail) } ?? []
        let largest = Int((trainLabels + testLabelValues).max() ?? 0)
        var classes = largest + 1
        if let text = file.metadata["classes"] {
            guard let n = Int(text), n > largest else {
                throw fail("metadata \"classes\" is \(text), but the labels go up to \(largest)")
            }
            classes = n
        }
        guard classes >= 2 else { throw fail("the labels hold one class (0); a classifier needs at least 2") }
        if let negative = (trainLabels + testLabelValues).first(where: { $0 < 0 }) {
            throw fail("label \(negative) is negative")
        }
        let (shape, inputs) = try decodeImages(images, name: "images", count: trainLabels.count, fail: fail)
        let train = try Dataset(features: shape.count, classes: classes, inputs: inputs, labels: trainLabels,
                                shape: shape)
        guard let testImages else {
            return (train, try Dataset(features: shape.count, classes: classes, inputs: [], labels: [], shape: shape))
        }
        let (testShape, testInputs) = try decodeImages(testImages, name: "test_images", count: testLabelValues.count,
                                                       fail: fail)
        guard testShape == shape else { throw fail("test_images are \(testShape), images are \(shape)") }
        return (train, try Dataset(features: shape.count, classes: classes, inputs: testInputs, labels: testLabelValues,
                                   shape: shape))
    }

    /// Writes `train` (and `test`) in the format `load` reads, images as float32 `[N, C, H, W]`.
    public static func write(train: Dataset, test: Dataset? = nil, to path: String) throws {
        var tensors: [String: TensorData] = [:]
        for (prefix, data) in [("", train), ("test_", test)] {
            guard let data else { continue }
            let s = data.sampleShape
            let planar = s.permuted(data.inputs, samples: data.count, toChannelsFirst: true)
            let shape = s.isImage ? [data.count, s.channels, s.height, s.width] : [data.count, s.count]
            tensors[prefix + "images"] = TensorData(floats: planar, shape: shape)
            tensors[prefix + "labels"] = TensorData(int64s: data.labels.map(Int64.init), shape: [data.count])
        }
        try SafeTensors.write(tensors, metadata: ["classes": String(train.classes)], to: path)
    }

    private static func decodeLabels(_ t: TensorData, name: String, fail: (String) -> DatasetError) throws -> [Int32] {
        guard t.shape.count == 1 else { throw fail("\(name) must be [N], got \(t.shape)") }
        let values: [Int64]
        switch t.dtype {
        case .i64: values = try t.int64s()
        case .i32:
            values = t.bytes.withUnsafeBytes { raw in
                (0..<t.elementCount).map { Int64(raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
            }
        case .u8: values = t.bytes.map(Int64.init)
        default: throw fail("\(name) must be int64, int32 or uint8, got \(t.dtype.rawValue)")
        }
        guard let big = values.first(where: { $0 > Int64(Int32.max) }) else { return values.map { Int32($0) } }
        throw fail("label \(big) in \(name) is too large")
    }

    private static func decodeImages(_ t: TensorData, name: String, count: Int,
                                     fail: (String) -> DatasetError) throws -> (SampleShape, [Float]) {
        guard t.shape.count == 4 || t.shape.count == 2 else {
            throw fail("\(name) must be [N, C, H, W] or [N, F], got \(t.shape)")
        }
        guard t.shape[0] == count else { throw fail("\(name) hold \(t.shape[0]) samples, the labels \(count)") }
        guard count > 0, t.shape.dropFirst().allSatisfy({ $0 > 0 }) else { throw fail("\(name) \(t.shape) are empty") }
        let shape = t.shape.count == 4 ? SampleShape.image(channels: t.shape[1], height: t.shape[2], width: t.shape[3])
            : .features(t.shape[1])
        let values: [Float]
        switch t.dtype {
        case .u8: values = t.bytes.map { Float($0) / 255 }
        case .f32:
            values = try t.floats()
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw fail("\(name) value \(values[bad]) of sample \(bad / shape.count) is not finite")
            }
        default: throw fail("\(name) must be uint8 or float32, got \(t.dtype.rawValue)")
        }
        return (shape, shape.permuted(values, samples: count, toChannelsFirst: false))
    }
}
