import Foundation
import SwiftDDP
import Testing
@testable import SwiftDDPTestSupport

/// The library's data-parallel façade, driven by a hand-written loop on in-process ranks.
@Suite("DistributedDataParallel in a custom loop")
struct DistributedDataParallelTests {
    /// A user's model: Linear → BatchNorm1d → ReLU → Linear, built the same way on every rank.
    static func model(seed: UInt64) throws -> Model {
        let net = Sequential([Linear(inFeatures: 6, outFeatures: 8), BatchNorm(.features, features: 8),
                              Activation(.relu), Linear(inFeatures: 8, outFeatures: 3)])
        let model = try Model(net, inputShape: .features(6))
        model.initialize(scheme: .default, seed: seed)
        return model
    }

    static let samples = 48
    static let inputs: [Float] = {
        var g = SeededGenerator(seed: 5)
        return (0..<samples * 6).map { _ in g.uniform(-1, 1) }
    }()
    static let labels: [Int32] = (0..<samples).map { Int32($0 % 3) }

    /// `steps` steps of SGD with momentum over the data in order; rank r of W takes rows
    /// [r·B, (r+1)·B) of each global batch of W·B. Returns the final parameters.
    static func train(group: any ProcessGroup, perRank: Int, steps: Int, mode: GradientSyncMode) throws -> [Float] {
        // Different seeds per rank: the initial broadcast must make the replicas equal.
        let model = try model(seed: 11 + UInt64(group.rank))
        model.convertSyncBatchNorm(group: group)
        let ddp = try DistributedDataParallel(model, optimizer: try SGD(store: model.store, learningRate: 0.1,
                                                                         momentum: 0.9),
                                              group: group, gradientSync: mode)
        let loss = SoftmaxCrossEntropy()
        let batch = Workspace()
        let W = group.worldSize
        for step in 0..<steps {
            let first = (step * W * perRank + group.rank * perRank) % samples
            let x = batch.matrix(rows: perRank, cols: 6)
            for r in 0..<perRank {
                for f in 0..<6 { x.row(r)[f] = inputs[(first + r) * 6 + f] }
            }
            let y = try ddp.forward(x)
            let labels = Array(Self.labels[first..<first + perRank])
            _ = try labels.withUnsafeBufferPointer {
                try loss.forward(logits: y, labels: $0, gradientScale: ddp.gradientScale)
            }
            try ddp.backward(loss.backward())
            #expect(try ddp.step())
        }
        return Array(model.store.parameters)
    }

    @Test("2 ranks with batch 4 and SyncBN equal 1 process with batch 8, in every gradient-sync mode",
          arguments: [GradientSyncMode.flat, .bucketed, .shared, .sharded])
    func equivalence(mode: GradientSyncMode) throws {
        let single = try LocalProcessGroup.run(worldSize: 1) {
            try Self.train(group: $0, perRank: 8, steps: 5, mode: mode)
        }
        let pair = try LocalProcessGroup.run(worldSize: 2) {
            try Self.train(group: $0, perRank: 4, steps: 5, mode: mode)
        }
        #expect(pair[0] == pair[1], "the replicas stay identical")
        let a = pair[0].map(Double.init), b = single[0].map(Double.init)
        #expect(relativeError(a, b) < 1e-5, "2 ranks vs 1: \(relativeError(a, b))")
    }
}

/// A loss of the user's own: mean squared error between softmax and the one-hot label (the
/// Brier score), with its gradient through the softmax.
final class BrierLoss: Loss {
    private let gradient = Workspace()
    private var last = (rows: 0, classes: 0)

    func forward(logits: Matrix, labels: UnsafeBufferPointer<Int32>, normalizer: Int?, gradientScale: Float) throws
        -> (loss: Double, correct: Int)
    {
        let B = logits.rows, K = logits.cols
        let g = gradient.matrix(rows: B, cols: K)
        var total = 0.0, correct = 0
        for r in 0..<B {
            let z = logits.row(r)
            let top = (0..<K).map { Double(z[$0]) }.max()!
            let e = (0..<K).map { exp(Double(z[$0]) - top) }
            let p = e.map { $0 / e.reduce(0, +) }
            let d = (0..<K).map { p[$0] - ($0 == Int(labels[r]) ? 1 : 0) }
            total += d.reduce(0) { $0 + $1 * $1 }
            if p.firstIndex(of: p.max()!) == Int(labels[r]) { correct += 1 }
            // dL/dz_k = Σ_j 2 d_j p_j (δ_jk − p_k), over the batch mean
            var s = 0.0
            for j in 0..<K { s += d[j] * p[j] }
            let n = Double(normalizer ?? B)
            for k in 0..<K {
                let dz: Double = 2 * p[k] * (d[k] - s) / n
                g.row(r)[k] = Float(dz) * gradientScale
            }
        }
        last = (B, K)
        return (total / Double(normalizer ?? B), correct)
    }

    func backward() -> Matrix { gradient.matrix(rows: last.rows, cols: last.classes) }
}

@Suite("Trainer with a model and loss of the user's own")
struct CustomTrainerTests {
    static func run(worldSize: Int, batch: Int) throws -> [[Float]] {
        let data = try SyntheticData.make(count: 240, features: 6, classes: 3, noise: 0.4, seed: 2)
        var config = TrainingConfiguration()
        config.batchSize = batch
        config.maxSteps = 10
        config.schedule = .constant
        config.learningRate = 0.2
        config.evaluate = false
        config.dataDirectory = nil
        let settings = config
        return try LocalProcessGroup.run(worldSize: worldSize) { group in
            let model = try DistributedDataParallelTests.model(seed: 3 + UInt64(group.rank))
            model.convertSyncBatchNorm(group: group)
            let trainer = try Trainer(config: settings, group: group, train: data, test: data, model: model,
                                      loss: BrierLoss())
            let summary = try trainer.run()
            #expect(summary.stepLosses.last! < summary.stepLosses.first!, "the Brier loss falls")
            return Array(trainer.model.store.parameters)
        }
    }

    @Test("2 ranks × batch 8 equal 1 rank × batch 16 with a custom model, SyncBN and a custom loss")
    func equivalence() throws {
        let single = try Self.run(worldSize: 1, batch: 16)[0]
        let pair = try Self.run(worldSize: 2, batch: 8)
        #expect(pair[0] == pair[1])
        let error = relativeError(pair[0].map(Double.init), single.map(Double.init))
        #expect(error < 1e-5, "\(error)")
    }

    @Test("a model that does not fit the data is refused before training")
    func mismatch() throws {
        let data = try SyntheticData.make(count: 64, features: 5, classes: 3, seed: 2)
        var config = TrainingConfiguration()
        config.evaluate = false
        let model = try DistributedDataParallelTests.model(seed: 1)  // takes 6 features
        #expect {
            try Trainer(config: config, group: LocalProcessGroup.single(), train: data, test: data, model: model)
        } throws: { "\($0)".contains("the model takes samples of shape [6], the data has [5]") }
    }
}
