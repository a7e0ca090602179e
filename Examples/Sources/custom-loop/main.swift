// A training loop written by hand on the SwiftDDP library: a residual MLP of this example's own
// ResidualBlock, trained data-parallel with SyncBN on Fashion-MNIST (or --synthetic data).
//
//   mpirun -np 2 .build/release/custom-loop [--synthetic] [--epochs N]
//
// The step reads top to bottom: batch, forward, loss, backward, reduce and update.
import Foundation
import SwiftDDP

let arguments = CommandLine.arguments
let synthetic = arguments.contains("--synthetic")
let epochs = arguments.firstIndex(of: "--epochs").flatMap { Int(arguments[$0 + 1]) } ?? 2
let batchSize = 32  // per rank

do {
    try MPIRuntime.withRuntime { _ in
        let world = try MPIProcessGroup.world()
        let (train, test) = synthetic
            ? (try SyntheticData.make(count: 4096, seed: 1),
               try SyntheticData.make(count: 1024, seed: 1, testSplit: true))
            : try FashionMNIST.load()

        // The model, identical on every rank after DistributedDataParallel's broadcast.
        let model = try Model(Sequential([Linear(inFeatures: train.features, outFeatures: 64),
                                          ResidualBlock(features: 64), ResidualBlock(features: 64),
                                          Activation(.relu), Linear(inFeatures: 64, outFeatures: train.classes)]),
                              inputShape: .features(train.features))
        model.initialize(scheme: .default, seed: 0)
        model.convertSyncBatchNorm(group: world)  // BatchNorm statistics over all ranks' batches
        let optimizer = try SGD(store: model.store, learningRate: 0.05, momentum: 0.9)
        let ddp = try DistributedDataParallel(model, optimizer: optimizer, group: world)
        let loss = SoftmaxCrossEntropy()
        let sampler = DistributedSampler(datasetSize: train.count, worldSize: world.worldSize, rank: world.rank,
                                         seed: 0)
        let batch = Workspace()
        var labels = [Int32](repeating: 0, count: batchSize)

        for epoch in 0..<epochs {
            let indices = sampler.indices(epoch: epoch)
            var lossSum = 0.0, steps = 0
            for start in stride(from: 0, to: indices.count, by: batchSize) {
                let rows = min(batchSize, indices.count - start)
                guard rows > 1 else { continue }  // BatchNorm needs two samples
                // 1. batch: this rank's shard of the global batch
                let x = batch.matrix(rows: rows, cols: train.features)
                labels.withUnsafeMutableBufferPointer {
                    train.gather(indices[start..<start + rows], inputs: x.base, labels: $0.baseAddress!)
                }
                // 2. forward (SyncBN exchanges statistics inside)
                let logits = try ddp.forward(x)
                // 3. loss, its gradient scaled by 1/W so that the summed gradients average
                let (value, _) = try labels.withUnsafeBufferPointer {
                    try loss.forward(logits: logits, labels: UnsafeBufferPointer(rebasing: $0[0..<rows]),
                                     gradientScale: ddp.gradientScale)
                }
                // 4. backward, 5. reduce and update
                try ddp.backward(loss.backward())
                guard try ddp.step() else { throw NNError("non-finite gradients at epoch \(epoch + 1)") }
                lossSum += value
                steps += 1
            }

            // Test accuracy: each rank evaluates a contiguous shard; the counts are summed.
            var counts = [0.0, 0.0]  // correct, seen
            let shard = test.count * world.rank / world.worldSize..<test.count * (world.rank + 1) / world.worldSize
            for start in stride(from: shard.lowerBound, to: shard.upperBound, by: 256) {
                let rows = min(256, shard.upperBound - start)
                let x = batch.matrix(rows: rows, cols: test.features)
                labels = [Int32](repeating: 0, count: max(rows, batchSize))
                labels.withUnsafeMutableBufferPointer {
                    test.gather(Array(start..<start + rows)[...], inputs: x.base, labels: $0.baseAddress!)
                }
                let logits = try model.forward(x, training: false)
                for r in 0..<rows {
                    let row = logits.row(r)
                    let predicted = (0..<test.classes).max { row[$0] < row[$1] }!
                    if predicted == Int(labels[r]) { counts[0] += 1 }
                }
                counts[1] += Double(rows)
            }
            try world.allReduce(&counts, op: .sum)
            var meanLoss = [lossSum / Double(max(steps, 1))]
            try world.allReduce(&meanLoss, op: .sum)
            if world.rank == 0 {
                print(String(format: "epoch %d: train loss %.4f, test accuracy %.2f%% on %d ranks", epoch + 1,
                             meanLoss[0] / Double(world.worldSize), 100 * counts[0] / counts[1], world.worldSize))
            }
        }
    }
} catch {
    FileHandle.standardError.write(Data("custom-loop: \(error)\n".utf8))
    MPIRuntime.abort(exitCode: 1)
}
