import SwiftDDPCollectives
import SwiftDDPNN
import Testing
@testable import SwiftDDPTestSupport
/// BatchNorm1d semantics (PyTorch's) and SyncBatchNorm over in-process ranks.
@Suite("BatchNorm and SyncBatchNorm", .timeLimit(.minutes(5)))
struct BatchNormTests {
    /// Plain BatchNorm1d on a batch: returns (output, input gradient for dy, layer).
    func runBN(_ x: [Float], rows: Int, features: Int, dy: [Float], group: (any ProcessGroup)? = nil,
               gamma: [Float]? = nil) throws -> (y: [Float], dx: [Float], bn: BatchNorm1d, store: ParameterStore)
    {
        let bn = BatchNorm1d(features: features, group: group)
        let store = try Model(bn, inputShape: .features(features)).store
        bn.resetParameters()
        if let gamma { store.parameter(bn.weightSlot!).update(from: gamma, count: features) }
        var input = x, grad = dy
        let y = try input.withUnsafeMutableBufferPointer {
            try bn.forward(Matrix(base: $0.baseAddress!, rows: rows, cols: features), training: true).toArray()
        }
        let dx = try grad.withUnsafeMutableBufferPointer {
            try bn.backward(Matrix(base: $0.baseAddress!, rows: rows, cols: features),
                            needsInputGradient: true)!.toArray()
        }
        return (y, dx, bn, store)
    }

    @Test("training normalizes with the biased variance and updates running stats with the unbiased one")
    func pytorchSemantics() throws {
        // one channel: 1, 2, 3, 6 → mean 3, biased var 3.5, unbiased var 14/3
        let (y, _, bn, store) = try runBN([1, 2, 3, 6], rows: 4, features: 1, dy: [0, 0, 0, 0])
        let inv = 1 / (3.5 + 1e-5).squareRoot()
        for (i, v) in [1.0, 2, 3, 6].enumerated() { #expect(abs(Double(y[i]) - (v - 3) * inv) < 1e-6) }
        #expect(abs(store.buffer(bn.runningMeanSlot!)[0] - 0.3) < 1e-7)
        #expect(abs(Double(store.buffer(bn.runningVarSlot!)[0]) - (0.9 + 0.1 * 14.0 / 3)) < 1e-6)
        #expect(store.counters[bn.batchesTrackedIndex!] == 1)
        // evaluation uses the running statistics
        var x: [Float] = [1]
        let out = try x.withUnsafeMutableBufferPointer {
            try bn.forward(Matrix(base: $0.baseAddress!, rows: 1, cols: 1), training: false).toArray()
        }
        let rv = Double(store.buffer(bn.runningVarSlot!)[0])
        #expect(abs(Double(out[0]) - (1 - 0.3) / (rv + 1e-5).squareRoot()) < 1e-6)
        #expect(store.counters[bn.batchesTrackedIndex!] == 1, "evaluation does not count")
    }

    @Test("precise statistics: the equal-weight average of the batches since the start, then momentum again")
    func preciseStatistics() throws {
        let bn = BatchNorm1d(features: 1)
        let store = try Model(bn, inputShape: .features(1)).store
        bn.resetParameters()
        func feed(_ values: [Float]) throws {
            var x = values
            _ = try x.withUnsafeMutableBufferPointer {
                try bn.forward(Matrix(base: $0.baseAddress!, rows: values.count, cols: 1), training: true)
            }
        }
        try feed([5, 9, 1])  // running statistics away from the defaults, which precise BN must forget
        bn.beginPreciseStatistics()
        // batches of different sizes weigh equally (means 2, 7, 0)
        let batches: [[Double]] = [[1, 3], [5, 9, 7], [-1, 0, 1, 0]]
        for b in batches { try feed(b.map(Float.init)) }
        func unbiased(_ b: [Double]) -> Double {
            let m = b.reduce(0, +) / Double(b.count)
            return b.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(b.count - 1)
        }
        let mean = batches.map { $0.reduce(0, +) / Double($0.count) }.reduce(0, +) / 3
        let variance = batches.map(unbiased).reduce(0, +) / 3
        #expect(abs(Double(store.buffer(bn.runningMeanSlot!)[0]) - mean) < 1e-6)
        #expect(abs(Double(store.buffer(bn.runningVarSlot!)[0]) - variance) < 1e-5)
        #expect(store.counters[bn.batchesTrackedIndex!] == 4,
                "every training batch counts (fvcore's update_bn_stats; swa_utils.update_bn resets it)")
        bn.endPreciseStatistics()
        try feed([10, 12])  // momentum 0.1 again
        #expect(abs(Double(store.buffer(bn.runningMeanSlot!)[0]) - (0.9 * mean + 0.1 * 11)) < 1e-5)
    }

    @Test("without running statistics, evaluation normalizes with the batch statistics")
    func noRunningStats() throws {
        let bn = BatchNorm1d(features: 1, trackRunningStats: false)
        let store = try Model(bn, inputShape: .features(1)).store
        bn.resetParameters()
        #expect(bn.runningMeanSlot == nil && store.counterNames.isEmpty, "no buffers, as in PyTorch")
        var x: [Float] = [1, 3]
        let y = try x.withUnsafeMutableBufferPointer {
            try bn.forward(Matrix(base: $0.baseAddress!, rows: 2, cols: 1), training: false).toArray()
        }
        #expect(abs(y[0] + 1) < 1e-4 && abs(y[1] - 1) < 1e-4)
    }

    @Test("a single sample per channel in training is refused, as in PyTorch")
    func singleSample() throws {
        #expect(throws: NNError.self) { _ = try runBN([1, 2], rows: 1, features: 2, dy: [0, 0]) }
    }

    @Test("momentum nil gives a cumulative average")
    func cumulativeAverage() throws {
        let bn = BatchNorm1d(features: 1, momentum: nil)
        let store = try Model(bn, inputShape: .features(1)).store
        bn.resetParameters()
        for batch in [[Float(0), 2], [4, 6]] {
            var x = batch
            _ = try x.withUnsafeMutableBufferPointer {
                try bn.forward(Matrix(base: $0.baseAddress!, rows: 2, cols: 1), training: true)
            }
        }
        #expect(store.buffer(bn.runningMeanSlot!)[0] == 3, "mean of the batch means 1 and 5")
    }

    @Test("statistics stay exact in float32 when |mean| ≫ std (mean 1e4, std 0.1)")
    func largeMean() throws {
        var rng = TestRandom(seed: 21)
        let rows = 512, C = 3
        let x = rng.normal(rows * C, mean: 10_000, std: 0.1)
        let (y, _, _, _) = try runBN(x, rows: rows, features: C, dy: [Float](repeating: 0, count: rows * C))
        for c in 0..<C {
            let column = (0..<rows).map { Double(x[$0 * C + c]) }
            let mean = column.reduce(0, +) / Double(rows)
            let variance = column.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(rows)
            #expect(abs(variance - 0.01) < 0.002, "true variance is about 0.01")
            // normalized output has unit variance when the variance was computed right
            let out = (0..<rows).map { Double(y[$0 * C + c]) }
            let outVar = out.reduce(0) { $0 + $1 * $1 } / Double(rows)
            #expect(abs(outVar - variance / (variance + 1e-5)) < 1e-3, "channel \(c): output variance \(outVar)")
        }
    }

    @Test("SyncBN with uneven per-rank batches (5, 3, 0, 8) equals BatchNorm on the concatenation")
    func syncUneven() throws {
        let sizes = [5, 3, 0, 8], C = 4
        var rng = TestRandom(seed: 31)
        let total = sizes.reduce(0, +)
        let x = rng.normal(total * C, mean: 2, std: 3)
        let dy = rng.uniform(total * C)
        let gamma: [Float] = [1.5, 0.5, -1, 2]
        let reference = try runBN(x, rows: total, features: C, dy: dy, gamma: gamma)
        let starts = sizes.indices.map { sizes[..<$0].reduce(0, +) }
        typealias RankResult = ([Float], [Float], [Float], [Float], [Float], [Float])
        let results = try LocalProcessGroup.run(worldSize: 4) { group -> RankResult in
            let r = group.rank
            let slice = starts[r] * C..<(starts[r] + sizes[r]) * C
            let (y, dx, bn, store) = try runBN(Array(x[slice]), rows: sizes[r], features: C, dy: Array(dy[slice]),
                                                group: group, gamma: gamma)
            return (y, dx, Array(UnsafeBufferPointer(start: store.buffer(bn.runningMeanSlot!), count: C)),
                    Array(UnsafeBufferPointer(start: store.buffer(bn.runningVarSlot!), count: C)),
                    Array(UnsafeBufferPointer(start: store.gradient(bn.weightSlot!), count: C)),
                    Array(UnsafeBufferPointer(start: store.gradient(bn.biasSlot!), count: C)))
        }
        let y = results.flatMap(\.0), dx = results.flatMap(\.1)
        #expect(relativeError(y.map(Double.init), reference.y.map(Double.init)) < 1e-5)
        #expect(relativeError(dx.map(Double.init), reference.dx.map(Double.init)) < 1e-5)
        let refMean = Array(UnsafeBufferPointer(start: reference.store.buffer(reference.bn.runningMeanSlot!), count: C))
        let refVar = Array(UnsafeBufferPointer(start: reference.store.buffer(reference.bn.runningVarSlot!), count: C))
        for r in 0..<4 {
            #expect(relativeError(results[r].2.map(Double.init), refMean.map(Double.init)) < 1e-5,
                    "rank \(r) running mean")
            #expect(relativeError(results[r].3.map(Double.init), refVar.map(Double.init)) < 1e-5,
                    "rank \(r) running var (global unbiased)")
        }
        // dγ is local; the sum over ranks equals the single-process dγ
        let dGammaSum = (0..<C).map { c in results.reduce(0.0) { $0 + Double($1.4[c]) } }
        let refDGamma = Array(UnsafeBufferPointer(start: reference.store.gradient(reference.bn.weightSlot!), count: C))
            .map(Double.init)
        #expect(relativeError(dGammaSum, refDGamma) < 1e-5)
        // so is dβ (Σ dy per channel)
        let dBetaSum = (0..<C).map { c in results.reduce(0.0) { $0 + Double($1.5[c]) } }
        let refDBeta = Array(UnsafeBufferPointer(start: reference.store.gradient(reference.bn.biasSlot!), count: C))
            .map(Double.init)
        let dyColumnSums = (0..<C).map { c in (0..<total).reduce(0.0) { $0 + Double(dy[$1 * C + c]) } }
        #expect(relativeError(refDBeta, dyColumnSums) < 1e-5, "dβ is the per-channel sum of dy")
        #expect(relativeError(dBetaSum, refDBeta) < 1e-5)
    }

    @Test("SyncBN across ranks stays exact for mean 1e4, std 0.1")
    func syncLargeMean() throws {
        var rng = TestRandom(seed: 41)
        let rows = 64, C = 2
        let x = rng.normal(4 * rows * C, mean: 10_000, std: 0.1)
        let reference = try runBN(x, rows: 4 * rows, features: C, dy: [Float](repeating: 0, count: 4 * rows * C))
        let outputs = try LocalProcessGroup.run(worldSize: 4) { group in
            try runBN(Array(x[group.rank * rows * C..<(group.rank + 1) * rows * C]), rows: rows, features: C,
                      dy: [Float](repeating: 0, count: rows * C), group: group).y
        }
        #expect(relativeError(outputs.flatMap { $0 }.map(Double.init), reference.y.map(Double.init)) < 1e-4)
    }

    @Test("local BN (no group) on ranks differs from the global statistics")
    func localDiffers() throws {
        var rng = TestRandom(seed: 51)
        let x = rng.normal(2 * 6 * 2, mean: 0, std: 1).enumerated().map { $0.offset < 12 ? $0.element : $0.element + 3 }
        let reference = try runBN(x, rows: 12, features: 2, dy: [Float](repeating: 0, count: 24))
        let local = try LocalProcessGroup.run(worldSize: 2) { group in
            try runBN(Array(x[group.rank * 12..<(group.rank + 1) * 12]), rows: 6, features: 2,
                      dy: [Float](repeating: 0, count: 12), group: nil).y
        }
        #expect(relativeError(local.flatMap { $0 }.map(Double.init), reference.y.map(Double.init)) > 0.1)
    }

    /// Runs the same MLP with BatchNorm + activation fused and as separate layers; returns every
    /// output, gradient and buffer of one training and one evaluation pass.
    static func fusionRun(_ kind: ActivationKind, width: Int, rows: Int, fused: Bool, group: (any ProcessGroup)? = nil,
                          rank: Int = 0) throws -> [[Float]]
    {
        let config = ModelConfiguration(inputFeatures: 19, depth: 2, width: width, classes: 5, activation: kind,
                                      norm: group == nil ? .bn : .syncbn)
        let model = try config.build(seed: 3, syncGroup: group, rank: rank)
        let root = try #require(model.root as? Sequential)
        root.fusesBatchNormActivation = fused
        defer { #expect(root.lastForwardFused == fused) }
        var rng = TestRandom(seed: 40 + UInt64(rank))
        var x = rng.normal(rows * 19, mean: 0.3, std: 2)
        let gradOut = rng.normal(rows * 5)
        var g = gradOut
        let (y, dx): ([Float], [Float]) = try x.withUnsafeMutableBufferPointer { xb in
            try g.withUnsafeMutableBufferPointer { gb in
                let input = Matrix(base: xb.baseAddress!, rows: rows, cols: 19)
                let y = try model.forward(input, training: true).toArray()
                let dx = try model.backward(Matrix(base: gb.baseAddress!, rows: rows, cols: 5),
                                            needsInputGradient: true)!
                return (y, dx.toArray())
            }
        }
        let eval = try x.withUnsafeMutableBufferPointer { xb in
            try model.forward(Matrix(base: xb.baseAddress!, rows: rows, cols: 19), training: false).toArray()
        }
        return [y, dx, Array(model.store.gradients), Array(model.store.buffers), eval]
    }

    @Test("BatchNorm with a fused ReLU/LeakyReLU equals the separate layers bit for bit",
          arguments: [ActivationKind.relu, .leakyReLU], [16, 37])
    func fusedActivation(kind: ActivationKind, width: Int) throws {
        // 37 channels: a full block of 16 and a remainder; 21 rows: partial sums of 16 and 5.
        let fused = try Self.fusionRun(kind, width: width, rows: 21, fused: true)
        let separate = try Self.fusionRun(kind, width: width, rows: 21, fused: false)
        for (name, (a, b)) in zip(["output", "input gradient", "parameter gradients", "buffers", "evaluation output"],
                                  zip(fused, separate))
        {
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "\(name) differs")
        }
        #expect(fused[2].contains { $0 != 0 }, "no gradient flowed back")
    }

    @Test("SyncBN with a fused ReLU equals the separate layers bit for bit")
    func fusedActivationSynchronized() throws {
        let fused = try LocalProcessGroup.run(worldSize: 3) { group in
            try Self.fusionRun(.relu, width: 37, rows: 6 + group.rank, fused: true, group: group, rank: group.rank)
        }
        let separate = try LocalProcessGroup.run(worldSize: 3) { group in
            try Self.fusionRun(.relu, width: 37, rows: 6 + group.rank, fused: false, group: group, rank: group.rank)
        }
        for rank in 0..<3 {
            #expect(fused[rank].map { $0.map(\.bitPattern) } == separate[rank].map { $0.map(\.bitPattern) },
                    "rank \(rank)")
        }
    }

    /// Runs BatchNorm2d [+ activation] + MaxPool2d with the pooling fused into the BatchNorm or
    /// not; returns the training output, input gradient, parameter gradients, buffers and an
    /// evaluation output (evaluation never fuses the pooling).
    static func poolFusionRun(activation: ActivationKind?, pool: Int, channels C: Int, height: Int, width: Int,
                              rows: Int, fused: Bool, group: (any ProcessGroup)? = nil, rank: Int = 0) throws
        -> [[Float]]
    {
        var layers: [any Layer] = [BatchNorm2d(channels: C, group: group)]
        if let activation { layers.append(Activation(activation)) }
        layers.append(MaxPool2d(kernel: pool))
        let root = Sequential(layers)
        let model = try Model(root, inputShape: .image(channels: C, height: height, width: width))
        model.initialize(scheme: .default, seed: 9)
        // γ and β away from 1 and 0, so the activation's mask and the pooling's choice depend on them
        for case let bn as BatchNorm in root.layers {
            for c in 0..<C {
                model.store.parameter(bn.weightSlot!)[c] = 0.5 + Float(c % 5) * 0.3 * (c % 2 == 0 ? 1 : -1)
                model.store.parameter(bn.biasSlot!)[c] = Float(c % 3) * 0.2 - 0.2
            }
        }
        root.fusesBatchNormPooling = fused
        let outShape = try root.outputShape(for: .image(channels: C, height: height, width: width))
        var rng = TestRandom(seed: 70 + UInt64(rank))
        // in steps of 0.5: windows hold ties, which the first value in scan order must win
        var x = rng.normal(rows * C * height * width, mean: 0.5, std: 2).map { ($0 * 2).rounded() / 2 }
        var g = rng.normal(rows * outShape.count)
        let (y, dx): ([Float], [Float]) = try x.withUnsafeMutableBufferPointer { xb in
            try g.withUnsafeMutableBufferPointer { gb in
                let input = Matrix(base: xb.baseAddress!, rows: rows, shape: .image(channels: C, height: height,
                                                                                   width: width))
                let y = try model.forward(input, training: true).toArray()
                // the layers run inside the BatchNorm: the activation, and the pooling when fused
                #expect(root.lastForwardCovered == (activation == nil ? 0 : 1) + (fused ? 1 : 0))
                let dx = try model.backward(Matrix(base: gb.baseAddress!, rows: rows, shape: outShape),
                                            needsInputGradient: true)!
                return (y, dx.toArray())
            }
        }
        let eval = try x.withUnsafeMutableBufferPointer { xb in
            try model.forward(Matrix(base: xb.baseAddress!, rows: rows, shape: .image(channels: C, height: height,
                                                                                      width: width)),
                              training: false).toArray()
        }
        return [y, dx, Array(model.store.gradients), Array(model.store.buffers), eval]
    }

    static let poolFusionParts = ["output", "input gradient", "parameter gradients", "buffers", "evaluation output"]

    @Test("BatchNorm2d + activation + MaxPool2d fused equals the separate layers bit for bit",
          arguments: [ActivationKind.relu, .leakyReLU, nil], [2, 3])
    func fusedPooling(activation: ActivationKind?, pool: Int) throws {
        // 20 channels: a block of 16 and a remainder; 7×11 images: rows and columns outside every
        // window (floor mode) with both window sizes
        let fused = try Self.poolFusionRun(activation: activation, pool: pool, channels: 20, height: 7, width: 11,
                                           rows: 3, fused: true)
        let separate = try Self.poolFusionRun(activation: activation, pool: pool, channels: 20, height: 7, width: 11,
                                              rows: 3, fused: false)
        for (name, (a, b)) in zip(Self.poolFusionParts, zip(fused, separate)) {
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "\(name) differs")
        }
        #expect(fused[1].contains { $0 != 0 } && fused[2].contains { $0 != 0 }, "no gradient flowed back")
    }

    @Test("BatchNorm2d + LeakyReLU + MaxPool2d fused over 260 channels (16 blocks and 4) equals the separate layers")
    func fusedPoolingManyChannels() throws {
        let run = { (fused: Bool) in
            try Self.poolFusionRun(activation: .leakyReLU, pool: 2, channels: 260, height: 5, width: 4, rows: 2,
                                   fused: fused)
        }
        for (name, (a, b)) in zip(Self.poolFusionParts, zip(try run(true), try run(false))) {
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "\(name) differs")
        }
    }

    @Test("SyncBN + ReLU + MaxPool2d fused equals the separate layers bit for bit")
    func fusedPoolingSynchronized() throws {
        let run = { (fused: Bool) in
            try LocalProcessGroup.run(worldSize: 3) { group in
                try Self.poolFusionRun(activation: .relu, pool: 2, channels: 17, height: 6, width: 8,
                                       rows: 1 + group.rank, fused: fused, group: group, rank: group.rank)
            }
        }
        let fused = try run(true), separate = try run(false)
        for rank in 0..<3 {
            for (name, (a, b)) in zip(Self.poolFusionParts, zip(fused[rank], separate[rank])) {
                #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "rank \(rank): \(name) differs")
            }
        }
    }

    @Test("a MaxPool2d with overlapping windows is not fused, and the cnn fuses both of its pools")
    func poolFusionPlan() throws {
        let overlapping = Sequential([BatchNorm2d(channels: 3), Activation(.relu), MaxPool2d(kernel: 3, stride: 2)])
        let model = try Model(overlapping, inputShape: .image(channels: 3, height: 7, width: 7))
        var x = (0..<2 * 3 * 49).map { Float($0 % 7) }
        _ = try x.withUnsafeMutableBufferPointer {
            try model.forward(Matrix(base: $0.baseAddress!, rows: 2, shape: .image(channels: 3, height: 7, width: 7)),
                              training: true)
        }
        #expect(overlapping.lastForwardCovered == 1)  // the ReLU only
        let cnn = try ModelConfiguration(architecture: .cnn, inputShape: [1, 8, 8], width: 4, classes: 3, norm: .bn)
            .build(seed: 1)
        var images = (0..<2 * 64).map { Float($0 % 5) }
        _ = try images.withUnsafeMutableBufferPointer {
            try cnn.forward(Matrix(base: $0.baseAddress!, rows: 2, shape: .image(channels: 1, height: 8, width: 8)),
                            training: true)
        }
        // two ReLUs and two pools in the conv blocks, one ReLU after the BatchNorm1d
        #expect(try #require(cnn.root as? Sequential).lastForwardCovered == 5)
    }

    /// One training step of a BasicBlock, with its fused passes or (an observer installed) without.
    static func blockRun(activation: ActivationKind, inChannels: Int, channels: Int, stride: Int, fused: Bool,
                         group: (any ProcessGroup)? = nil, rank: Int = 0) throws -> [[Float]]
    {
        let block = BasicBlock(inChannels: inChannels, channels: channels, stride: stride, activation: activation,
                               norm: { BatchNorm2d(channels: $0, group: group) })
        let shape = SampleShape.image(channels: inChannels, height: 6, width: 5)
        let model = try Model(block, inputShape: shape)
        model.initialize(scheme: .default, seed: 4)
        for case let bn as BatchNorm in model.leaves {  // β away from 0: the sum's sign decides the mask
            for c in 0..<bn.features { model.store.parameter(bn.biasSlot!)[c] = Float(c % 3) * 0.3 - 0.3 }
        }
        if !fused { model.forwardObserver = { _, _ in } }
        defer { #expect(block.lastForwardFusedSum == fused) }
        let rows = 3 + rank
        var rng = TestRandom(seed: 90 + UInt64(rank))
        var x = rng.normal(rows * shape.count, mean: 0.2, std: 1.5)
        var g = rng.normal(rows * model.outputShape.count)
        let (y, dx): ([Float], [Float]) = try x.withUnsafeMutableBufferPointer { xb in
            try g.withUnsafeMutableBufferPointer { gb in
                let y = try model.forward(Matrix(base: xb.baseAddress!, rows: rows, shape: shape), training: true)
                let dx = try model.backward(Matrix(base: gb.baseAddress!, rows: rows, shape: model.outputShape),
                                            needsInputGradient: true)!
                return (y.toArray(), dx.toArray())
            }
        }
        return [y, dx, Array(model.store.gradients), Array(model.store.buffers)]
    }

    @Test("BasicBlock's bn2 + shortcut sum + activation fused equals the separate layers bit for bit",
          arguments: [ActivationKind.relu, .leakyReLU], [1, 2])
    func fusedResidual(activation: ActivationKind, stride: Int) throws {
        let channels = 2 * stride  // stride 2: a projection shortcut with its own BatchNorm
        let fused = try Self.blockRun(activation: activation, inChannels: 2, channels: channels, stride: stride,
                                      fused: true)
        let separate = try Self.blockRun(activation: activation, inChannels: 2, channels: channels, stride: stride,
                                         fused: false)
        let parts = ["output", "input gradient", "parameter gradients", "buffers"]
        for (name, (a, b)) in zip(parts, zip(fused, separate)) {
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "\(name) differs")
        }
        #expect(fused[0].contains { $0 == 0 } == (activation == .relu), "the activation did not run")
    }

    @Test("SyncBN BasicBlock with a projection, fused and not, over 3 ranks: the same bits")
    func fusedResidualSynchronized() throws {
        let run = { (fused: Bool) in
            try LocalProcessGroup.run(worldSize: 3) { group in
                try Self.blockRun(activation: .relu, inChannels: 2, channels: 4, stride: 2, fused: fused, group: group,
                                  rank: group.rank)
            }
        }
        let fused = try run(true), separate = try run(false)
        for rank in 0..<3 {
            #expect(fused[rank].map { $0.map(\.bitPattern) } == separate[rank].map { $0.map(\.bitPattern) },
                    "rank \(rank)")
        }
    }
}
