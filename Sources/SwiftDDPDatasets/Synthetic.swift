import SwiftDDPNN
/// Seeded synthetic classification data for tests and quick runs: each class has a random
/// centre in [0.2, 0.8]^features, and samples are the centre plus Gaussian noise (std `noise`),
/// clamped to [0, 1] like pixels. The same seed gives the same data on every machine.
public enum SyntheticData {
    /// - Parameters:
    ///   - seed: picks the class centres; train and test splits of one task share it.
    ///   - testSplit: draw the samples from a separate stream (a held-out split of the same task).
    public static func make(count: Int, features: Int = 784, classes: Int = 10, noise: Float = 0.25,
                            seed: UInt64 = 1, testSplit: Bool = false) throws -> Dataset
    {
        guard count >= 0, features > 0, classes > 1 else { throw DatasetError("invalid synthetic data shape") }
        var generator = SeededGenerator(seed: seed ^ 0x5EED_DA7A)
        let centres = (0..<classes * features).map { _ in generator.uniform(0.2, 0.8) }
        if testSplit { generator = SeededGenerator(seed: seed ^ 0x7E57_5EED) }
        var inputs = [Float](repeating: 0, count: count * features)
        var labels = [Int32](repeating: 0, count: count)
        for i in 0..<count {
            let label = Int(generator.next() % UInt64(classes))
            labels[i] = Int32(label)
            for f in 0..<features {
                inputs[i * features + f] = min(max(centres[label * features + f] + noise * generator.normal(), 0), 1)
            }
        }
        // A square number of features reads as a one-channel image, so conv nets can train on it.
        let side = Int(Double(features).squareRoot().rounded())
        let shape: SampleShape? = side * side == features ? .image(channels: 1, height: side, width: side) : nil
        return try Dataset(features: features, classes: classes, inputs: inputs, labels: labels, shape: shape)
    }
}
