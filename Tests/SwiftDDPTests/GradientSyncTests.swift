import Collectives
import NN
import Testing
import Training

/// Gradient averaging on in-process ranks (the mpirun tests compare whole training runs).
@Suite("Gradient synchronization")
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

    @Test("shared memory: every rank ends with the rank-ordered sum, bit for bit", arguments: [2, 3, 4])
    func sharedSum(worldSize: Int) throws {
        let results = try LocalProcessGroup.run(worldSize: worldSize) { group -> (Bool, [Float]) in
            let model = Self.model()
            let sync = try GradientSynchronizer(model: model, group: group, mode: .shared)
            let n = model.store.parameterCount
            // two steps: the second proves the buffers are reusable after the final barrier
            for step in 0..<2 {
                _ = model.store.gradients.update(fromContentsOf: Self.gradients(rank: group.rank, count: n).map { $0 * Float(step + 1) })
                try sync.finish()
            }
            return (sync.usesSharedMemory, Array(model.store.gradients))
        }
        let n = results[0].1.count
        var expected = [Float](repeating: 0, count: n)
        let all = (0..<worldSize).map { Self.gradients(rank: $0, count: n).map { $0 * 2 } }
        for i in 0..<n {
            var s = all[0][i]
            for r in 1..<worldSize { s += all[r][i] }
            expected[i] = s
        }
        for (rank, (shared, values)) in results.enumerated() {
            #expect(shared, "rank \(rank) did not use shared memory")
            #expect(values.map(\.bitPattern) == expected.map(\.bitPattern), "rank \(rank)")
        }
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

    @Test("sharded: each rank updates its part of one shared copy; a non-finite part stops every rank")
    func shardedUpdate() throws {
        let results = try LocalProcessGroup.run(worldSize: 3) { group -> (parameters: [Float], finite: [Bool]) in
            let model = Self.model()
            let sgd = try SGD(store: model.store, learningRate: 0.5, momentum: 0.9)
            let sync = try GradientSynchronizer(model: model, group: group, mode: .sharded, optimizer: sgd)
            let n = model.store.parameterCount
            var finite: [Bool] = [], afterTwoSteps: [Float] = []
            for step in 0..<3 {
                var g = Self.gradients(rank: group.rank, count: n).map { $0 * Float(step + 1) }
                if step == 2 && group.rank == 1 { g[0] = .nan }  // lands in rank 0's part
                _ = model.store.gradients.update(fromContentsOf: g)
                try sync.finish(wholeGradients: step == 1)  // this rank's part only, or all sums
                finite.append(try sync.updateParameters(with: sgd))
                if step == 1 { afterTwoSteps = Array(model.store.parameters) }
            }
            return (afterTwoSteps, finite)
        }
        // Reference: one process, whole-model SGD on the rank-ordered sums.
        let model = Self.model()
        let sgd = try SGD(store: model.store, learningRate: 0.5, momentum: 0.9)
        let n = model.store.parameterCount
        for step in 0..<2 {
            let all = (0..<3).map { Self.gradients(rank: $0, count: n).map { $0 * Float(step + 1) } }
            _ = model.store.gradients.update(fromContentsOf: (0..<n).map { all[0][$0] + all[1][$0] + all[2][$0] })
            sgd.step()
        }
        for (rank, result) in results.enumerated() {
            #expect(result.parameters.map(\.bitPattern) == Array(model.store.parameters).map(\.bitPattern), "rank \(rank)")
            #expect(result.finite == [true, true, false], "rank \(rank) agrees on the non-finite step")
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

    @Test("across simulated hosts: shared memory within each, one all-reduce of 1/L between them, bit for bit",
          arguments: [(4, 2), (6, 3), (6, 2)])
    func hierarchicalSum(worldSize: Int, ranksPerHost: Int) throws {
        let results = try LocalProcessGroup.run(worldSize: worldSize, ranksPerHost: ranksPerHost) { group in
            let model = Self.model()
            let sync = try GradientSynchronizer(model: model, group: group, mode: .shared)
            let n = model.store.parameterCount
            for step in 0..<2 {
                _ = model.store.gradients.update(fromContentsOf: Self.gradients(rank: group.rank, count: n).map { $0 * Float(step + 1) })
                try sync.finish()
            }
            return (sync.isHierarchical, sync.ranksPerHost, Array(model.store.gradients))
        }
        let n = results[0].2.count
        let expected = Self.hierarchicalSums((0..<worldSize).map { Self.gradients(rank: $0, count: n).map { $0 * 2 } },
                                             ranksPerHost: ranksPerHost)
        for (rank, (hierarchical, perHost, values)) in results.enumerated() {
            #expect(hierarchical && perHost == ranksPerHost, "rank \(rank)")
            #expect(values.map(\.bitPattern) == expected.map(\.bitPattern), "rank \(rank)")
        }
    }

    @Test("sharded across simulated hosts: one model copy per host, the same bits on every rank; a non-finite part stops every rank")
    func hierarchicalSharded() throws {
        let results = try LocalProcessGroup.run(worldSize: 4, ranksPerHost: 2) { group -> (parameters: [Float], finite: [Bool]) in
            let model = Self.model()
            let sgd = try SGD(store: model.store, learningRate: 0.5, momentum: 0.9)
            let sync = try GradientSynchronizer(model: model, group: group, mode: .sharded, optimizer: sgd)
            #expect(sync.updateRange?.count ?? 0 < model.store.parameterCount && sync.isHierarchical)
            let n = model.store.parameterCount
            var finite: [Bool] = [], afterTwoSteps: [Float] = []
            for step in 0..<3 {
                var g = Self.gradients(rank: group.rank, count: n).map { $0 * Float(step + 1) }
                if step == 2 && group.rank == 3 { g[0] = .nan }  // summed by rank 2 (host 1), updated by ranks 0 and 2
                _ = model.store.gradients.update(fromContentsOf: g)
                try sync.finish(wholeGradients: step == 1)
                finite.append(try sync.updateParameters(with: sgd))
                if step == 1 { afterTwoSteps = Array(model.store.parameters) }
            }
            return (afterTwoSteps, finite)
        }
        let model = Self.model()
        let sgd = try SGD(store: model.store, learningRate: 0.5, momentum: 0.9)
        let n = model.store.parameterCount
        for step in 0..<2 {
            let all = (0..<4).map { Self.gradients(rank: $0, count: n).map { $0 * Float(step + 1) } }
            _ = model.store.gradients.update(fromContentsOf: Self.hierarchicalSums(all, ranksPerHost: 2))
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
