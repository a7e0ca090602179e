import SwiftDDPCollectives
import SwiftDDPNN
import Testing
import SwiftDDPTraining
@testable import SwiftDDPTestSupport
/// Gradient averaging on in-process ranks (the mpirun tests compare whole training runs).
@Suite("Gradient synchronization", .timeLimit(.minutes(5)))
struct GradientSyncTests {
    /// Each rank's gradients: a seeded function of the rank, the same on every call.
    static func gradients(rank: Int, count: Int) -> [Float] {
        var rng = TestRandom(seed: 100 + UInt64(rank))
        return rng.normal(count, std: 0.5)
    }

    static func model() throws -> Model {
        // 19·7 + 7 + 7 + 7 + 7·3 + 3 = 175 parameters: chunks of 58/58/59 over 3 ranks.
        try ModelConfiguration(inputFeatures: 19, depth: 1, width: 7, classes: 3, activation: .relu, norm: .bn)
            .build(seed: 1)
    }

    @Test("shared memory and one all-reduce give the same sums")
    func sharedEqualsFlat() throws {
        func run(_ mode: GradientSyncMode) throws -> [[Float]] {
            try LocalProcessGroup.run(worldSize: 3) { group in
                let model = try Self.model()
                let sync = try mode.make(model: model, group: group).sync
                _ = model.store.gradients.update(
                    fromContentsOf: Self.gradients(rank: group.rank, count: model.store.parameterCount))
                try sync.finish(wholeGradients: true)
                return Array(model.store.gradients)
            }
        }
        let shared = try run(.shared), flat = try run(.flat)
        for rank in 0..<3 {
            #expect(relativeError(shared[rank].map(Double.init), flat[rank].map(Double.init)) < 1e-6)
        }
    }

    /// A ResNet: parameter names nest (`layer2.0.downsample.1.weight`), and each block runs the
    /// backward of its shortcut after its main branch, so leaves do not finish in reverse
    /// registration order. 8 × 8 images, depth 8, width 4, local BN.
    static func resnet() throws -> Model {
        try ModelConfiguration(architecture: .resnet, inputShape: [1, 8, 8], depth: 8, width: 4, classes: 3, norm: .bn)
            .build(seed: 1)
    }

    /// One real forward and backward of rank `rank`'s own seeded batch, its gradients averaged
    /// by `mode` (nil: not averaged); returns the gradients.
    static func resnetGradients(group: any ProcessGroup, mode: GradientSyncMode?, bucketBytes: Int) throws -> [Float] {
        let model = try resnet()
        let sync = try mode.map { try $0.make(model: model, group: group, bucketBytes: bucketBytes).sync }
        model.onGradientsReady = { leaf in try sync?.gradientsReady(leaf: leaf) }
        var rng = TestRandom(seed: 7 + UInt64(group.rank))
        var x = rng.uniform(5 * 64, 0, 1), dy = rng.normal(5 * 3)
        try x.withUnsafeMutableBufferPointer { input in
            _ = try model.forward(Matrix(base: input.baseAddress!, rows: 5, cols: 64), training: true)
            _ = try dy.withUnsafeMutableBufferPointer { g in
                try model.backward(Matrix(base: g.baseAddress!, rows: 5, cols: 3))
            }
        }
        try sync?.finish(wholeGradients: true)
        return Array(model.store.gradients)
    }

    @Test("bucketed sync of a ResNet (nested names, shortcut after main branch) sums every gradient, as flat does",
          arguments: [0, 64, 800, 1 << 20])
    func bucketedNestedNames(bucketBytes: Int) throws {
        let bucketed = try LocalProcessGroup.run(worldSize: 2) {
            try Self.resnetGradients(group: $0, mode: .bucketed, bucketBytes: bucketBytes)
        }
        let flat = try LocalProcessGroup.run(worldSize: 2) {
            try Self.resnetGradients(group: $0, mode: .flat, bucketBytes: bucketBytes)
        }
        let local = try LocalProcessGroup.run(worldSize: 2) {
            try Self.resnetGradients(group: $0, mode: nil, bucketBytes: bucketBytes)
        }
        let sum = zip(local[0], local[1]).map { Double($0 + $1) }
        #expect(local[0] != local[1], "the ranks' own gradients differ")
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

    // Across simulated hosts, each host's sum is all-reduced 1/L per rank.
    @Test("shared memory: every rank ends with the rank-ordered sum, on one host and across hosts, bit for bit",
          arguments: [(2, 2), (3, 3), (4, 4), (4, 2), (6, 3), (6, 2)])
    func sharedSum(worldSize: Int, ranksPerHost: Int) throws {
        let results = try LocalProcessGroup.run(worldSize: worldSize, ranksPerHost: ranksPerHost) { group in
            let model = try Self.model()
            let sync = try GradientSyncMode.shared.make(model: model, group: group).sync
            let n = model.store.parameterCount
            // two steps: the second proves the buffers are reusable after the final barrier
            for step in 0..<2 {
                _ = model.store.gradients.update(
                    fromContentsOf: Self.gradients(rank: group.rank, count: n).map { $0 * Float(step + 1) })
                try sync.finish(wholeGradients: true)
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

    @Test("sharded: each rank updates its part of one shared copy per host, the same bits on every rank; NaN stops all",
          arguments: [(3, 3, 1),  // one host (NaN in rank 0's part)
                      (4, 2, 3)])  // 2 hosts × 2 (summed by rank 2, updated by ranks 0 and 2)
    func shardedUpdate(worldSize: Int, ranksPerHost: Int, poisonedRank: Int) throws {
        let results = try LocalProcessGroup.run(worldSize: worldSize, ranksPerHost: ranksPerHost) {
            group -> (parameters: [Float], finite: [Bool]) in
            let model = try Self.model()
            let sgd = try SGD(store: model.store, learningRate: 0.5, momentum: 0.9)
            let (sync, stepped) = try GradientSyncMode.sharded.make(model: model, group: group, optimizer: sgd)
            let sharded = try #require(stepped as? ShardedOptimizer)
            #expect(sharded.range.count < model.store.parameterCount)
            #expect(sync.isHierarchical == (ranksPerHost < worldSize))
            let n = model.store.parameterCount
            var finite: [Bool] = [], afterTwoSteps: [Float] = []
            for step in 0..<3 {
                var g = Self.gradients(rank: group.rank, count: n).map { $0 * Float(step + 1) }
                if step == 2 && group.rank == poisonedRank { g[0] = .nan }  // lands in part 0
                _ = model.store.gradients.update(fromContentsOf: g)
                try sync.finish(wholeGradients: step == 1)  // this rank's part only, or all sums
                try sharded.step()
                finite.append(sharded.lastStepWasFinite)
                if step == 1 { afterTwoSteps = Array(model.store.parameters) }
            }
            return (afterTwoSteps, finite)
        }
        // Reference: one process, whole-model SGD on the sums in the same order.
        let model = try Self.model()
        let sgd = try SGD(store: model.store, learningRate: 0.5, momentum: 0.9)
        let n = model.store.parameterCount
        for step in 0..<2 {
            let all = (0..<worldSize).map { Self.gradients(rank: $0, count: n).map { $0 * Float(step + 1) } }
            _ = model.store.gradients.update(fromContentsOf: Self.hierarchicalSums(all, ranksPerHost: ranksPerHost))
            sgd.step()
        }
        for (rank, result) in results.enumerated() {
            #expect(result.parameters.map(\.bitPattern) == Array(model.store.parameters).map(\.bitPattern),
                    "rank \(rank)")
            #expect(result.finite == [true, true, false], "rank \(rank) agrees on the non-finite step")
        }
    }

    @Test("hosts with different numbers of ranks, or one rank each: one all-reduce, and why",
          arguments: [(3, 2, "different numbers of ranks"), (3, 1, nil as String?)])
    func hierarchicalFallback(worldSize: Int, ranksPerHost: Int, reason: String?) throws {
        let results = try LocalProcessGroup.run(worldSize: worldSize, ranksPerHost: ranksPerHost) { group in
            let model = try Self.model()
            let sync = try GradientSyncMode.sharded.make(model: model, group: group,
                                                         optimizer: try SGD(store: model.store, learningRate: 0.1)).sync
            _ = model.store.gradients.update(
                fromContentsOf: Self.gradients(rank: group.rank, count: model.store.parameterCount))
            try sync.finish(wholeGradients: true)
            return (sync.usesSharedMemory, sync.sharedMemoryUnavailable, Array(model.store.gradients))
        }
        let n = results[0].2.count
        let all = (0..<worldSize).map { Self.gradients(rank: $0, count: n) }
        let expected = (0..<n).map { i in all.dropFirst().reduce(all[0][i]) { $0 + $1[i] } }
        for (rank, (shared, why, values)) in results.enumerated() {
            #expect(!shared, "rank \(rank)")
            if let reason {
                #expect(why?.contains(reason) == true, "rank \(rank): \(why ?? "no reason")")
            } else {
                #expect(why == nil)
            }
            #expect(values.map(\.bitPattern) == expected.map(\.bitPattern), "rank \(rank)")
        }
    }

    @Test("one rank: shared mode needs no shared memory")
    func singleRank() throws {
        let model = try Self.model()
        let sync = try GradientSyncMode.shared.make(model: model, group: LocalProcessGroup.single()).sync
        #expect(!sync.usesSharedMemory)
        _ = model.store.gradients.update(fromContentsOf: Self.gradients(rank: 0, count: model.store.parameterCount))
        try sync.finish(wholeGradients: true)
        #expect(Array(model.store.gradients) == Self.gradients(rank: 0, count: model.store.parameterCount))
    }
}
