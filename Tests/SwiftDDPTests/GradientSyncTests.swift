import Collectives
import NN
import Testing
import Training

/// Gradient averaging on in-process ranks (the mpirun tests compare whole training runs).
@Suite("Gradient synchronization", .timeLimit(.minutes(5)))
struct GradientSyncTests {
    /// Each rank's gradients: a seeded function of the rank, the same on every call.
    static func gradients(rank: Int, count: Int) -> [Float] {
        var rng = TestRandom(seed: 100 + UInt64(rank))
        return rng.normal(count, std: 0.5)
    }

    static func model() -> Sequential {
        // 19·7 + 7 + 7 + 7 + 7·3 + 3 = 175 parameters: chunks of 58/58/59 over 3 ranks.
        Sequential.mlp(MLPConfiguration(inputFeatures: 19, depth: 1, width: 7, classes: 3, activation: .relu, norm: .bn),
                       seed: 1)
    }

    @Test("shared memory and one all-reduce give the same sums")
    func sharedEqualsFlat() throws {
        func run(_ mode: GradientSyncMode) throws -> [[Float]] {
            try LocalProcessGroup.run(worldSize: 3) { group in
                let model = Self.model()
                let sync = try GradientSynchronizer(model: model, group: group, mode: mode)
                _ = model.store.gradients.update(fromContentsOf: Self.gradients(rank: group.rank, count: model.store.parameterCount))
                try sync.finish()
                return Array(model.store.gradients)
            }
        }
        let shared = try run(.shared), flat = try run(.flat)
        for rank in 0..<3 {
            #expect(relativeError(shared[rank].map(Double.init), flat[rank].map(Double.init)) < 1e-6)
        }
    }

    /// A model whose parameter names nest, as a ResNet's do (`block.fc1.weight`): the buckets
    /// must come from the layers' registration order, not from a layer index in the name.
    static func nestedModel() -> Sequential {
        let store = ParameterStore()
        let layers: [any Layer] = [
            Linear(inFeatures: 19, outFeatures: 7, store: store, prefix: "block.fc1"),
            BatchNorm1d(features: 7, store: store, prefix: "block.bn1"),
            Activation(.relu),
            Linear(inFeatures: 7, outFeatures: 3, store: store, prefix: "head"),
        ]
        return Sequential(layers: layers, store: store, inputFeatures: 19)
    }

    @Test("bucketed sync of a model with nested parameter names averages every gradient, as flat does",
          arguments: [0, 64, 1 << 20])
    func bucketedNestedNames(bucketBytes: Int) throws {
        func run(_ mode: GradientSyncMode) throws -> [[Float]] {
            try LocalProcessGroup.run(worldSize: 2) { group in
                let model = Self.nestedModel()
                let sync = try GradientSynchronizer(model: model, group: group, mode: mode, bucketBytes: bucketBytes)
                let mine = Self.gradients(rank: group.rank, count: model.store.parameterCount)
                _ = model.store.gradients.update(fromContentsOf: mine)
                for layer in model.layers.indices.reversed() {  // as backward does
                    try sync.gradientsReady(layer: layer)
                }
                try sync.finish()
                return Array(model.store.gradients)
            }
        }
        let bucketed = try run(.bucketed), flat = try run(.flat)
        let n = Self.nestedModel().store.parameterCount
        let sum = zip(Self.gradients(rank: 0, count: n), Self.gradients(rank: 1, count: n)).map { Double($0 + $1) }
        for rank in 0..<2 {
            #expect(bucketed[rank] == flat[rank], "rank \(rank): the same sums as one all-reduce")
            #expect(relativeError(bucketed[rank].map(Double.init), sum) < 1e-6, "rank \(rank): every gradient summed")
        }
    }

    /// Rank-ordered sums within each simulated host, then the host sums in host order: what
    /// the hierarchical reduction computes (the in-process all-reduce adds in rank order).
    static func hierarchicalSums(_ all: [[Float]], ranksPerHost: Int) -> [Float] {
        (0..<all[0].count).map { i in
            var total: Float = 0
            for host in stride(from: 0, to: all.count, by: ranksPerHost) {
                var s = all[host][i]
                for r in host + 1..<host + ranksPerHost { s += all[r][i] }
                total = host == 0 ? s : total + s
            }
            return total
        }
    }

    @Test("shared memory: every rank ends with the rank-ordered sum on one host, and across simulated hosts the host sums all-reduced 1/L per rank, bit for bit",
          arguments: [(2, 2), (3, 3), (4, 4), (4, 2), (6, 3), (6, 2)])
    func sharedSum(worldSize: Int, ranksPerHost: Int) throws {
        let results = try LocalProcessGroup.run(worldSize: worldSize, ranksPerHost: ranksPerHost) { group in
            let model = Self.model()
            let sync = try GradientSynchronizer(model: model, group: group, mode: .shared)
            let n = model.store.parameterCount
            // two steps: the second proves the buffers are reusable after the final barrier
            for step in 0..<2 {
                _ = model.store.gradients.update(fromContentsOf: Self.gradients(rank: group.rank, count: n).map { $0 * Float(step + 1) })
                try sync.finish()
            }
            return (sync.usesSharedMemory, sync.isHierarchical, sync.ranksPerHost, Array(model.store.gradients))
        }
        let n = results[0].3.count
        let expected = Self.hierarchicalSums((0..<worldSize).map { Self.gradients(rank: $0, count: n).map { $0 * 2 } },
                                             ranksPerHost: ranksPerHost)
        for (rank, (shared, hierarchical, perHost, values)) in results.enumerated() {
            #expect(shared && hierarchical == (ranksPerHost < worldSize) && perHost == ranksPerHost, "rank \(rank)")
            #expect(values.map(\.bitPattern) == expected.map(\.bitPattern), "rank \(rank)")
        }
    }

    @Test("sharded: each rank updates its part of one shared copy per host, the same bits on every rank; a non-finite part stops every rank",
          arguments: [(3, 3, 1), (4, 2, 3)])  // one host (NaN in rank 0's part); 2 hosts × 2 (summed by rank 2, updated by ranks 0 and 2)
    func shardedUpdate(worldSize: Int, ranksPerHost: Int, poisonedRank: Int) throws {
        let results = try LocalProcessGroup.run(worldSize: worldSize, ranksPerHost: ranksPerHost) { group -> (parameters: [Float], finite: [Bool]) in
            let model = Self.model()
            let sgd = try SGD(store: model.store, learningRate: 0.5, momentum: 0.9)
            let sync = try GradientSynchronizer(model: model, group: group, mode: .sharded, optimizer: sgd)
            #expect(sync.updateRange?.count ?? 0 < model.store.parameterCount && sync.isHierarchical == (ranksPerHost < worldSize))
            let n = model.store.parameterCount
            var finite: [Bool] = [], afterTwoSteps: [Float] = []
            for step in 0..<3 {
                var g = Self.gradients(rank: group.rank, count: n).map { $0 * Float(step + 1) }
                if step == 2 && group.rank == poisonedRank { g[0] = .nan }  // lands in part 0
                _ = model.store.gradients.update(fromContentsOf: g)
                try sync.finish(wholeGradients: step == 1)  // this rank's part only, or all sums
                finite.append(try sync.updateParameters(with: sgd))
                if step == 1 { afterTwoSteps = Array(model.store.parameters) }
            }
            return (afterTwoSteps, finite)
        }
        // Reference: one process, whole-model SGD on the sums in the same order.
        let model = Self.model()
        let sgd = try SGD(store: model.store, learningRate: 0.5, momentum: 0.9)
        let n = model.store.parameterCount
        for step in 0..<2 {
            let all = (0..<worldSize).map { Self.gradients(rank: $0, count: n).map { $0 * Float(step + 1) } }
            _ = model.store.gradients.update(fromContentsOf: Self.hierarchicalSums(all, ranksPerHost: ranksPerHost))
            sgd.step()
        }
        for (rank, result) in results.enumerated() {
            #expect(result.parameters.map(\.bitPattern) == Array(model.store.parameters).map(\.bitPattern), "rank \(rank)")
            #expect(result.finite == [true, true, false], "rank \(rank) agrees on the non-finite step")
        }
    }

    @Test("hosts with different numbers of ranks, or one rank each: one all-reduce, and why",
          arguments: [(3, 2, "different numbers of ranks"), (3, 1, nil as String?)])
    func hierarchicalFallback(worldSize: Int, ranksPerHost: Int, reason: String?) throws {
        let results = try LocalProcessGroup.run(worldSize: worldSize, ranksPerHost: ranksPerHost) { group in
            let model = Self.model()
            let sync = try GradientSynchronizer(model: model, group: group, mode: .sharded, optimizer: try SGD(store: model.store, learningRate: 0.1))
            _ = model.store.gradients.update(fromContentsOf: Self.gradients(rank: group.rank, count: model.store.parameterCount))
            try sync.finish()
            return (sync.usesSharedMemory, sync.sharedMemoryUnavailable, Array(model.store.gradients))
        }
        let n = results[0].2.count
        let all = (0..<worldSize).map { Self.gradients(rank: $0, count: n) }
        let expected = (0..<n).map { i in all.dropFirst().reduce(all[0][i]) { $0 + $1[i] } }
        for (rank, (shared, why, values)) in results.enumerated() {
            #expect(!shared, "rank \(rank)")
            if let reason { #expect(why?.contains(reason) == true, "rank \(rank): \(why ?? "no reason")") } else { #expect(why == nil) }
            #expect(values.map(\.bitPattern) == expected.map(\.bitPattern), "rank \(rank)")
        }
    }

    @Test("one rank: shared mode needs no shared memory")
    func singleRank() throws {
        let model = Self.model()
        let sync = try GradientSynchronizer(model: model, group: LocalProcessGroup.single(), mode: .shared)
        #expect(!sync.usesSharedMemory)
        _ = model.store.gradients.update(fromContentsOf: Self.gradients(rank: 0, count: model.store.parameterCount))
        try sync.finish()
        #expect(Array(model.store.gradients) == Self.gradients(rank: 0, count: model.store.parameterCount))
    }
}
