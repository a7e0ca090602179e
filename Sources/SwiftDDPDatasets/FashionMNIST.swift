import Foundation
import SwiftDDPNN
/// Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): 60,000 training and 10,000 test images of
/// 28×28 grey pixels in 10 classes, as IDX files. Debian's `dataset-fashion-mnist` installs
/// them under /usr/share/datasets/fashion-mnist.
///
/// Pixels become float32 in [0, 1] by /255 and are flattened to 784 features (what
/// `torchvision.transforms.ToTensor()` followed by `flatten` gives); no other transform.
///
/// ### References
/// - https://github.com/zalandoresearch/fashion-mnist
public enum FashionMNIST {
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
    public static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    /// Loads the training and test splits from `directory` (files with or without `.gz`).
    public static func load(directory: String = defaultDirectory) throws -> (train: Dataset, test: Dataset) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DatasetError("data directory \(directory) does not exist "
                               + "(install dataset-fashion-mnist, or pass --data DIR or --synthetic)")
        }
        return (try split("train", in: directory), try split("t10k", in: directory))
    }

    /// Loads one split ("train" or "t10k").
    public static func split(_ prefix: String, in directory: String) throws -> Dataset {
        let images = try IDX.read(try locate("\(prefix)-images-idx3-ubyte", in: directory), expectedDimensions: 3)
        let labels = try IDX.read(try locate("\(prefix)-labels-idx1-ubyte", in: directory), expectedDimensions: 1)
        guard images.dimensions[0] == labels.dimensions[0] else {
            throw DatasetError(
                "\(directory): \(prefix) has \(images.dimensions[0]) images but \(labels.dimensions[0]) labels")
        }
        let features = images.dimensions[1] * images.dimensions[2]
        let scale: Float = 1 / 255
        let inputs = images.values.map { Float($0) * scale }
        do {
            let shape = SampleShape.image(channels: 1, height: images.dimensions[1], width: images.dimensions[2])
            return try Dataset(features: features, classes: 10, inputs: inputs, labels: labels.values.map { Int32($0) },
                               shape: shape)
        } catch let e as DatasetError {
            throw DatasetError("\(directory): \(prefix) labels: \(e.message)")
        }
    }

    private static func locate(_ name: String, in directory: String) throws -> String {
        for candidate in ["\(directory)/\(name).gz", "\(directory)/\(name)"]
            where FileManager.default.fileExists(atPath: candidate) {
            return candidate
        }
        throw DatasetError("\(directory) has no \(name).gz or \(name)")
    }
}
