import Foundation
/// What `--data PATH` names: a safetensors file of your own (`TensorFile`) or a Fashion-MNIST
/// directory of IDX files (`FashionMNIST`).
public enum DataFiles {
    public static func load(_ path: String) throws -> (train: Dataset, test: Dataset) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DatasetError("--data \(path) does not exist (give a Fashion-MNIST directory, a safetensors "
                               + "file with \(TensorFile.expected), or --synthetic)")
        }
        if isDirectory.boolValue { return try FashionMNIST.load(directory: path) }
        return try TensorFile.load(path)
    }
}
