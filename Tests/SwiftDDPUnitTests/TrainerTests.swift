import SwiftDDPCollectives
import SwiftDDPDatasets
import SwiftDDPNN
import Testing
@testable import SwiftDDPTraining
@testable import SwiftDDPTestSupport
/// The data-parallel trainer over in-process ranks (threads): the same logic that runs under
/// mpirun, checked without it.
@Suite("Distributed sampler and trainer (in-process ranks)", .timeLimit(.minutes(5)))
struct TrainerTests {
    @Test("sampler: PyTorch DistributedSampler semantics (padding, strided shards, shuffling)")
    func sampler() {
        // 10 samples, 4 ranks: 3 per rank, padded by wrapping: order 0...9, 0, 1
        let shards = (0..<4).map {
            DistributedSampler(datasetSize: 10, worldSize: 4, rank: $0, shuffle: false).indices(epoch: 0)
        }
        #expect(shards == [[0, 4, 8], [1, 5, 9], [2, 6, 0], [3, 7, 1]])
        let dropped = (0..<4).map {
            DistributedSampler(datasetSize: 10, worldSize: 4, rank: $0, shuffle: false, dropLast: true)
                .indices(epoch: 0)
        }
        #expect(dropped == [[0, 4], [1, 5], [2, 6], [3, 7]])
        // shuffled: a permutation, identical on every rank, different per epoch
        let a = DistributedSampler(datasetSize: 1000, worldSize: 3, rank: 0, seed: 7)
        #expect(Set(a.globalOrder(epoch: 0).prefix(1000)) == Set(0..<1000))
        #expect(a.globalOrder(epoch: 0)
                    == DistributedSampler(datasetSize: 1000, worldSize: 3, rank: 2, seed: 7).globalOrder(epoch: 0))
        #expect(a.globalOrder(epoch: 0) != a.globalOrder(epoch: 1))
        // at step t the union of the ranks' batches is positions [t·B·W, (t+1)·B·W) of the order
        let W = 3, B = 4
        let order = a.globalOrder(epoch: 2)
        let perRank = (0..<W).map {
            DistributedSampler(datasetSize: 1000, worldSize: W, rank: $0, seed: 7).indices(epoch: 2)
        }
        for t in 0..<5 {
            let union = Set((0..<W).flatMap { perRank[$0][t * B..<(t + 1) * B] })
            #expect(union == Set(order[t * B * W..<(t + 1) * B * W]))
        }
    }

    static func configuration(norm: NormKind, batch: Int, sync: GradientSyncMode = .flat) -> TrainingConfiguration {
        var c = TrainingConfiguration()
        c.model = ModelConfiguration(inputFeatures: 20, depth: 2, width: 16, classes: 4, activation: .tanh, norm: norm)
        c.dataDirectory = nil
        c.batchSize = batch
        c.epochs = 1
        c.maxSteps = 12
        c.learningRate = 0.1
        c.momentum = 0.9
        c.schedule = .constant
        c.seed = 5
        c.gradSync = sync
        c.bucketBytes = 256  // several buckets in this small model
        c.evaluate = false
        return c
    }

    struct Outcome: Sendable {
        var parameters: [Float]
        var buffers: [Float]
        var counters: [Int64]
        var losses: [Double]
    }

    static func train(worldSize: Int, _ config: TrainingConfiguration) throws -> [Outcome] {
        let data = try SyntheticData.make(count: 600, features: 20, classes: 4, noise: 0.4, seed: 2)
        return try LocalProcessGroup.run(worldSize: worldSize) { group in
            let trainer = try Trainer(config: config, group: group, train: data, test: data)
            let summary = try trainer.run()
            let store = trainer.model.store
            return Outcome(parameters: Array(store.parameters), buffers: Array(store.buffers), counters: store.counters,
                           losses: summary.stepLosses)
        }
    }

    @Test("SyncBN on W ranks with batch B equals one rank with batch W·B", arguments: [2, 4])
    func syncEquivalence(worldSize: Int) throws {
        let single = try Self.train(worldSize: 1, Self.configuration(norm: .syncbn, batch: 8 * worldSize))[0]
        let ranks = try Self.train(worldSize: worldSize, Self.configuration(norm: .syncbn, batch: 8))
        #expect(single.losses.count == 12)
        for (r, outcome) in ranks.enumerated() {
            #expect(relativeError(outcome.parameters.map(Double.init), single.parameters.map(Double.init)) < 1e-4,
                    "rank \(r) parameters")
            #expect(relativeError(outcome.buffers.map(Double.init), single.buffers.map(Double.init)) < 1e-4,
                    "rank \(r) running statistics")
            #expect(outcome.counters == single.counters)
            #expect(relativeError(outcome.losses, single.losses) < 1e-4, "rank \(r) losses")
        }
        #expect(ranks.allSatisfy { $0.parameters == ranks[0].parameters }, "ranks stay in lockstep, bit for bit")
    }

    @Test("precise BN forgets the running averages; with local BN every rank ends with the ranks' average")
    func preciseBN() throws {
        let data = try SyntheticData.make(count: 600, features: 20, classes: 4, noise: 0.4, seed: 2)
        let outcomes = try LocalProcessGroup.run(worldSize: 2) { group in
            let trainer = try Trainer(config: Self.configuration(norm: .bn, batch: 8), group: group, train: data,
                                      test: data)
            _ = try trainer.run()
            let store = trainer.model.store
            let before = Array(store.buffers)
            let used = try trainer.recomputeBatchNormStatistics(samples: 96, epoch: 1)
            let first = Array(store.buffers)
            // running statistics far from anything a batch gives: the recomputation must not see them
            for slot in store.bufferSlots { store.buffer(slot).update(repeating: 100, count: slot.count) }
            try trainer.recomputeBatchNormStatistics(samples: 96, epoch: 1)
            return (used, before, first, Array(store.buffers))
        }
        for (used, before, first, again) in outcomes {
            #expect(used == 96)
            #expect(first == again, "precise statistics depend on the running averages before them")
            #expect(relativeError(first.map(Double.init), before.map(Double.init)) > 1e-3)
        }
        #expect(outcomes[0].2 == outcomes[1].2, "the ranks' local statistics are averaged over the ranks")
    }

    @Test("local BN on W ranks does not equal the one-rank run")
    func localDiffers() throws {
        let single = try Self.train(worldSize: 1, Self.configuration(norm: .bn, batch: 16))[0]
        let ranks = try Self.train(worldSize: 2, Self.configuration(norm: .bn, batch: 8))
        #expect(relativeError(ranks[0].parameters.map(Double.init), single.parameters.map(Double.init)) > 1e-3)
    }

    @Test("local BN with broadcast buffers evaluates with rank 0's running statistics on every rank",
          arguments: [true, false])
    func broadcastBuffers(broadcast: Bool) throws {
        var settings = Self.configuration(norm: .bn, batch: 8)
        settings.broadcastBuffers = broadcast
        let config = settings
        let data = try SyntheticData.make(count: 600, features: 20, classes: 4, noise: 0.4, seed: 2)
        let buffers = try LocalProcessGroup.run(worldSize: 2) { group -> [Float] in
            let trainer = try Trainer(config: config, group: group, train: data, test: data)
            _ = try trainer.run()
            _ = try trainer.evaluate()
            return Array(trainer.model.store.buffers)
        }
        #expect((buffers[0] == buffers[1]) == broadcast)
    }

    @Test("flat and bucketed gradient synchronization give the same result")
    func bucketedMatchesFlat() throws {
        let flat = try Self.train(worldSize: 3, Self.configuration(norm: .syncbn, batch: 6, sync: .flat))
        let bucketed = try Self.train(worldSize: 3, Self.configuration(norm: .syncbn, batch: 6, sync: .bucketed))
        #expect(flat[0].parameters == bucketed[0].parameters)
        #expect(flat[0].losses == bucketed[0].losses)
    }

    @Test("shared and sharded synchronization equal flat; sharded keeps one copy of the model",
          arguments: [TrainingConfiguration.OptimizerKind.sgd, .adam])
    func sharedMemoryModes(optimizer: TrainingConfiguration.OptimizerKind) throws {
        var config = Self.configuration(norm: .syncbn, batch: 6, sync: .flat)
        config.optimizer = optimizer
        config.learningRate = optimizer == .sgd ? 0.1 : 0.01
        let flat = try Self.train(worldSize: 3, config)
        config.gradSync = .shared
        let shared = try Self.train(worldSize: 3, config)
        config.gradSync = .sharded
        let sharded = try Self.train(worldSize: 3, config)
        // Both shared-memory modes sum in rank order and update with the same arithmetic.
        for r in 0..<3 {
            #expect(sharded[r].parameters == shared[0].parameters, "rank \(r) parameters, bit for bit")
            #expect(sharded[r].losses == shared[0].losses, "rank \(r) losses")
            #expect(sharded[r].buffers == shared[r].buffers, "rank \(r) running statistics")
        }
        // The all-reduce may add three ranks in another order: float32 rounding only.
        #expect(relativeError(sharded[0].parameters.map(Double.init), flat[0].parameters.map(Double.init)) < 1e-5)
        #expect(relativeError(sharded[0].losses, flat[0].losses) < 1e-5)

        let data = try SyntheticData.make(count: 600, features: 20, classes: 4, noise: 0.4, seed: 2)
        let frozen = config
        let layout = try LocalProcessGroup.run(worldSize: 3) { group -> [Int] in
            let trainer = try Trainer(config: frozen, group: group, train: data, test: data)
            let part = try #require(trainer.optimizer as? ShardedOptimizer).range
            return [Int(bitPattern: trainer.model.store.parameters.baseAddress), part.lowerBound, part.upperBound,
                    trainer.model.store.parameterCount]
        }
        #expect(Set(layout.map { $0[0] }).count == 1, "every rank addresses the same parameters")
        #expect(layout.map { $0[1] } == [0, layout[0][2], layout[1][2]] && layout[2][2] == layout[0][3],
                "the update ranges tile the parameters in rank order")
    }

    @Test("SyncBN subgroups: groups of 2 on 4 ranks equal two independent 2-rank SyncBN groups' statistics")
    func subgroups() throws {
        var config = Self.configuration(norm: .syncbn, batch: 8)
        config.syncBNGroupSize = 2
        let grouped = try Self.train(worldSize: 4, config)
        let whole = try Self.train(worldSize: 4, Self.configuration(norm: .syncbn, batch: 8))
        #expect(grouped.allSatisfy { $0.parameters == grouped[0].parameters }, "parameters stay identical")
        #expect(grouped[0].buffers != grouped[2].buffers, "the two groups keep different running statistics")
        #expect(grouped[0].buffers == grouped[1].buffers, "members of a group agree")
        #expect(grouped[0].parameters != whole[0].parameters)
    }

    /// Values taken from PyTorch 1.13 (Debian's python3-torch), pinned so that the check runs
    /// without PyTorch too; the PyTorch suite compares many more.
    @Test("the shuffled order is PyTorch's: MT19937, torch.randperm and DistributedSampler values")
    func torchOrder() {
        var mt = MT19937(seed: 5489)
        #expect(mt.next() == 3_499_211_612, "the reference MT19937's first output for its default seed")
        #expect(torchRandperm(10, seed: 3) == [6, 0, 3, 7, 8, 5, 1, 9, 2, 4], "torch.randperm(10) after manual_seed(3)")
        let sampler = DistributedSampler(datasetSize: 40, worldSize: 2, rank: 0, shuffle: true, seed: 0)
        #expect(Array(sampler.indices(epoch: 0).prefix(8)) == [4, 21, 11, 39, 17, 2, 20, 24])
        #expect(Array(sampler.indices(epoch: 1).prefix(8)) == [5, 12, 11, 13, 23, 0, 24, 6])
    }

    @Test("ranks with different configurations refuse to start")
    func configurationMismatch() throws {
        let data = try SyntheticData.make(count: 64, features: 20, classes: 4, seed: 2)
        #expect {
            _ = try LocalProcessGroup.run(worldSize: 2) { group in
                var c = Self.configuration(norm: .syncbn, batch: 8)
                if group.rank == 1 { c.learningRate = 0.2 }
                _ = try Trainer(config: c, group: group, train: data, test: data)
            }
        } throws: { "\($0)".contains("configuration of rank 1 differs") }
    }

    @Test("invalid settings are refused with a clear message")
    func invalidSettings() throws {
        let data = try SyntheticData.make(count: 64, features: 20, classes: 4, seed: 2)
        var grouped = Self.configuration(norm: .syncbn, batch: 8)
        grouped.syncBNGroupSize = 3
        let badGroup = grouped
        #expect {
            _ = try LocalProcessGroup.run(worldSize: 4) { group in
                _ = try Trainer(config: badGroup, group: group, train: data, test: data)
            }
        } throws: { "\($0)".contains("must divide the world size 4") }
        let c = Self.configuration(norm: .bn, batch: 0)
        #expect { _ = try Trainer(config: c, group: LocalProcessGroup.single(), train: data, test: data) } throws: {
            ($0 as? ConfigurationError)?.description == "batchSize must be at least 1, got 0"
        }
    }
}
