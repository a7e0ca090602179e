import Foundation
import SwiftDDPNN
/// An in-memory classification data set: `count` samples of `features` float32 values in
/// [0, 1] (row-major) with integer labels in 0..<classes. Each sample has the shape
/// `sampleShape` (images: one channel, so their row-major pixels are also channels-last).
public struct Dataset: Sendable {
    public let features: Int
    public let sampleShape: SampleShape
    public let classes: Int
    public let inputs: [Float]
    public let labels: [Int32]

    public var count: Int { labels.count }

    /// - Parameter shape: the shape of one sample; nil for a feature vector of `features`.
    public init(features: Int, classes: Int, inputs: [Float], labels: [Int32], shape: SampleShape? = nil) throws {
        if let shape, shape.count != features {
            throw DatasetError("samples of shape \(shape) do not have \(features) values")
        }
        guard inputs.count == features * labels.count else {
            throw DatasetError(
                "\(inputs.count) input values do not form \(labels.count) samples of \(features) features")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= classes }) {
            throw DatasetError("label \(labels[bad]) of sample \(bad) is outside 0..<\(classes)")
        }
        self.features = features
        sampleShape = shape ?? .features(features)
        self.classes = classes
        self.inputs = inputs
        self.labels = labels
    }

    /// The first `n` samples (all of them when there are fewer), e.g. a fixed training subset
    /// for shorter epochs.
    public func prefix(_ n: Int) throws -> Dataset {
        let n = min(max(n, 0), count)
        return try Dataset(features: features, classes: classes, inputs: Array(inputs[0..<n * features]),
                           labels: Array(labels[0..<n]), shape: sampleShape)
    }

    /// Copies the samples at `indices` into `inputs`/`labels` buffers (a mini-batch gather).
    public func gather(_ indices: ArraySlice<Int>, inputs out: UnsafeMutablePointer<Float>,
                       labels labelsOut: UnsafeMutablePointer<Int32>)
    {
        inputs.withUnsafeBufferPointer { source in
            for (row, index) in indices.enumerated() {
                (out + row * features).update(from: source.baseAddress! + index * features, count: features)
                labelsOut[row] = labels[index]
            }
        }
    }
}

/// A data set that cannot be read or does not make sense.
public struct DatasetError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
