import SwiftDDP
import Testing

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
