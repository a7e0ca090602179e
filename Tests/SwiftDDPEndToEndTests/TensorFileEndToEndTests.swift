import Foundation
import SwiftDDPDatasets
import SwiftDDPNN
@testable import SwiftDDPTestSupport
import Testing

@Suite("Tensor-file data sets under mpirun")
struct TensorFileEndToEndTests {
    /// The whole route under mpirun: 3-channel 8×8 images whose class lights up its own channel.
    @Test("ddp train --data FILE.safetensors: a cnn on 3-channel images, 2 ranks, learns the task")
    func trainOnFile() throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/rgb.safetensors"
        var rng = SplitMix(seed: 7)
        var inputs: [Float] = [], labels: [Int32] = []
        for _ in 0..<320 {
            let label = Int32(rng.next() % 3)
            labels.append(label)
            for _ in 0..<64 { for c in 0..<3 { inputs.append((c == label ? 0.6 : 0) + Float(rng.next() % 100) / 400) } }
        }
        let shape = SampleShape.image(channels: 3, height: 8, width: 8)
        let all = try Dataset(features: 192, classes: 3, inputs: inputs, labels: labels, shape: shape)
        try TensorFile.write(train: try all.prefix(256),
                             test: try Dataset(features: 192, classes: 3, inputs: Array(inputs[(256 * 192)...]),
                                               labels: Array(labels[256...]), shape: shape), to: path)
        let outcome = try Executables.mpirun(np: 2, "ddp", ["train", "--data", path, "--model", "cnn", "--width", "4",
                                                            "--epochs", "3", "--batch-size", "16"], timeout: 120)
        expectEnded(outcome, status: 0)
        #expect(outcome.output.contains("(256 train, 64 test)"), "\(outcome.output)")
        let accuracy = outcome.output.split(separator: "\n").last { $0.hasPrefix("done:") }
            .flatMap { $0.split(separator: " ").last }.flatMap { Double($0.dropLast()) }
        #expect((accuracy ?? 0) > 90, "\(outcome.output)")
    }
}
