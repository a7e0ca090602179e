import SwiftDDPCollectives
import SwiftDDPDatasets
import Foundation
import SwiftDDPNN
import SwiftDDPSafeTensors
import Testing
@testable import SwiftDDPTestSupport
/// The image layers against PyTorch (scripts/peers/layer_reference.py, in float64) on fixed
/// tensors: outputs, input gradients, parameter gradients and BatchNorm's running statistics.
@Suite("Image layers against PyTorch", .serialized,
       .enabled(if: Executables.pythonMissing("torch, safetensors") == nil,
                Comment(rawValue: Executables.pythonMissing("torch, safetensors") ?? "")))
struct TorchLayerTests {
    /// Runs `layer` on seeded data and the same through PyTorch; returns the largest relative error.
    func compare(_ layer: any Layer, _ input: SampleShape, rows: Int, spec: [String: Any], training: Bool = true,
                 seed: UInt64 = 1, values: [Float]? = nil) throws
    {
        let model = try Model(layer, inputShape: input)
        model.initialize(scheme: .default, seed: seed)
        var rng = TestRandom(seed: seed + 10)
        for slot in model.store.parameterSlots where slot.shape.count == 1 {  // non-trivial γ, β, biases
            for i in 0..<slot.count { model.store.parameter(slot)[i] += rng.uniform(1, -0.5, 0.5)[0] }
        }
        for slot in model.store.bufferSlots {  // running statistics that are not the defaults
            for i in 0..<slot.count { model.store.buffer(slot)[i] = rng.uniform(1, 0.5, 1.5)[0] }
        }
        let output = model.outputShape
        let x = values ?? rng.normal(rows * input.count, mean: 0.2, std: 1.5), dy = rng.normal(rows * output.count)

        let dir = TemporaryDirectory()
        var tensors: [String: TensorData] = [
            "x": TensorData(floats: input.isImage ? permuted(x, rows, input, toChannelsFirst: true) : x,
                            shape: [rows] + (input.isImage ? [input.channels, input.height, input.width]
                                                           : [input.count])),
            "dy": TensorData(floats: output.isImage ? permuted(dy, rows, output, toChannelsFirst: true) : dy,
                             shape: [rows] + (output.isImage ? [output.channels, output.height, output.width]
                                                             : [output.count])),
        ]
        let state = model.stateDict()
        for (name, t) in state where t.dtype == .f32 { tensors[name] = t }
        var fullSpec = spec
        fullSpec["training"] = training
        let specJSON = String(decoding: try JSONSerialization.data(withJSONObject: fullSpec, options: [.sortedKeys]),
                              as: UTF8.self)
        try SafeTensors.write(tensors, metadata: ["spec": specJSON], to: dir.path + "/in.safetensors")
        let outcome = try Executables.run(Executables.python, [
            Executables.packageFile("scripts/peers/layer_reference.py"), dir.path + "/in.safetensors",
            dir.path + "/out.safetensors",
        ], timeout: 120)
        try #require(outcome.status == 0, "layer_reference.py: \(outcome.output)")
        let reference = try SafeTensors.read(dir.path + "/out.safetensors").tensors

        // Ours.
        var input_ = x, grad = dy
        var y: [Double] = [], dx: [Double] = []
        try input_.withUnsafeMutableBufferPointer { xb in
            y = try model.forward(Matrix(base: xb.baseAddress!, rows: rows, cols: input.count), training: training)
                .toArray().map(Double.init)
            try grad.withUnsafeMutableBufferPointer { gb in
                let dyMatrix = Matrix(base: gb.baseAddress!, rows: rows, shape: output)
                dx = try #require(try model.backward(dyMatrix, needsInputGradient: true)).toArray().map(Double.init)
            }
        }
        let name = spec["layer"] as? String ?? "?"
        func check(_ ours: [Double], _ key: String, image: SampleShape?) throws {
            var theirs = try doubles(try #require(reference[key], "\(name): the reference has no \(key)"))
            if let image, image.isImage { theirs = permuted(theirs, rows, image, toChannelsFirst: false) }
            #expect(relativeError(ours, theirs) < 1e-5, "\(name) \(key): \(relativeError(ours, theirs))")
        }
        try check(y, "y", image: output)
        try check(dx, "dx", image: input)
        for slot in model.store.parameterSlots {
            let key = "d" + slot.name
            try check(UnsafeBufferPointer(start: model.store.gradient(slot), count: slot.count).map(Double.init), key,
                      image: nil)
        }
        if training {
            for slot in model.store.bufferSlots {
                try check(UnsafeBufferPointer(start: model.store.buffer(slot), count: slot.count).map(Double.init),
                          slot.name, image: nil)
            }
        }
    }

    @Test("Conv2d: 3×3 with padding and bias, 3×3 stride 2 without bias, 1×1 stride 2")
    func conv2d() throws {
        try compare(Conv2d(3, 4, kernel: 3, padding: 1), .image(channels: 3, height: 7, width: 6), rows: 3,
                    spec: ["layer": "conv2d", "in": 3, "out": 4, "kernel": 3, "stride": 1, "padding": 1, "bias": true])
        try compare(Conv2d(4, 8, kernel: 3, stride: 2, padding: 1, bias: false),
                    .image(channels: 4, height: 8, width: 8),
                    rows: 2, spec: ["layer": "conv2d", "in": 4, "out": 8, "kernel": 3, "stride": 2, "padding": 1,
                                    "bias": false])
        try compare(Conv2d(8, 16, kernel: 1, stride: 2, bias: false), .image(channels: 8, height: 6, width: 6),
                    rows: 2, spec: ["layer": "conv2d", "in": 8, "out": 16, "kernel": 1, "stride": 2, "padding": 0,
                                    "bias": false])
        // 20 outputs with bias: the bias gradient's whole block of 16 channels and its rest
        try compare(Conv2d(3, 20, kernel: 3, stride: 2, padding: 1), .image(channels: 3, height: 7, width: 7), rows: 3,
                    spec: ["layer": "conv2d", "in": 3, "out": 20, "kernel": 3, "stride": 2, "padding": 1, "bias": true])
    }

    /// The ReLU paths run fused (bn1 with its ReLU; the sum with the last ReLU), which the
    /// finite-difference checks (tanh) do not reach.
    @Test("BasicBlock with ReLU and LeakyReLU: identity and projection shortcuts, BN and none, plain")
    func basicBlock() throws {
        for (activation, name) in [(ActivationKind.relu, "relu"), (.leakyReLU, "leaky-relu")] {
            try compare(BasicBlock(inChannels: 3, channels: 3, activation: activation,
                                   norm: { BatchNorm2d(channels: $0) }),
                        .image(channels: 3, height: 5, width: 4), rows: 3,
                        spec: ["layer": "basicblock", "in": 3, "out": 3, "stride": 1, "norm": "bn",
                               "activation": name])
            try compare(BasicBlock(inChannels: 2, channels: 4, stride: 2, activation: activation,
                                   norm: { BatchNorm2d(channels: $0) }),
                        .image(channels: 2, height: 6, width: 5), rows: 2,
                        spec: ["layer": "basicblock", "in": 2, "out": 4, "stride": 2, "norm": "bn",
                               "activation": name])
            try compare(BasicBlock(inChannels: 2, channels: 2, activation: activation, norm: nil),
                        .image(channels: 2, height: 4, width: 4), rows: 2,
                        spec: ["layer": "basicblock", "in": 2, "out": 2, "stride": 1, "norm": "none",
                               "activation": name])
            try compare(BasicBlock(inChannels: 2, channels: 4, stride: 2, activation: activation,
                                   norm: { BatchNorm2d(channels: $0) }, shortcut: false),
                        .image(channels: 2, height: 6, width: 5), rows: 2,
                        spec: ["layer": "basicblock", "in": 2, "out": 4, "stride": 2, "norm": "bn",
                               "activation": name, "shortcut": false])
        }
    }

    @Test("pooling and flatten")
    func pooling() throws {
        try compare(MaxPool2d(kernel: 2), .image(channels: 3, height: 6, width: 5), rows: 2,
                    spec: ["layer": "maxpool2d", "kernel": 2, "stride": 2])
        // ties in most windows (values 0, 1, 2, as after a ReLU of small integers): the first
        // maximum in scan order takes the gradient, as in PyTorch
        var rng = TestRandom(seed: 9)
        let ties = rng.uniform(2 * 3 * 6 * 5, 0, 3).map { Float(Int($0)) }
        try compare(MaxPool2d(kernel: 2), .image(channels: 3, height: 6, width: 5), rows: 2,
                    spec: ["layer": "maxpool2d", "kernel": 2, "stride": 2], values: ties)
        try compare(MaxPool2d(kernel: 3, stride: 2), .image(channels: 3, height: 6, width: 5), rows: 2,
                    spec: ["layer": "maxpool2d", "kernel": 3, "stride": 2], values: ties)
        // windows tiling the input exactly (the backward's one-pass path), with ties
        let tiled = rng.uniform(2 * 3 * 6 * 6, 0, 3).map { Float(Int($0)) }
        try compare(MaxPool2d(kernel: 2), .image(channels: 3, height: 6, width: 6), rows: 2,
                    spec: ["layer": "maxpool2d", "kernel": 2, "stride": 2], values: tiled)
        // 20 channels: a whole block of 16 (running maxima in registers) and a rest of 4
        let wide = rng.uniform(2 * 20 * 7 * 7, 0, 3).map { Float(Int($0)) }
        for (kernel, stride) in [(2, 2), (3, 2), (3, 1)] {
            try compare(MaxPool2d(kernel: kernel, stride: stride), .image(channels: 20, height: 7, width: 7), rows: 2,
                        spec: ["layer": "maxpool2d", "kernel": kernel, "stride": stride], values: wide)
        }
        try compare(AvgPool2d(kernel: 2), .image(channels: 3, height: 4, width: 6), rows: 2,
                    spec: ["layer": "avgpool2d", "kernel": 2, "stride": 2])
        try compare(GlobalAvgPool2d(), .image(channels: 5, height: 3, width: 4), rows: 2,
                    spec: ["layer": "adaptiveavgpool2d"])
        try compare(Flatten(), .image(channels: 3, height: 2, width: 4), rows: 2, spec: ["layer": "flatten"])
    }

    @Test("BatchNorm2d in training (running statistics too) and evaluation; GroupNorm")
    func normalization() throws {
        try compare(BatchNorm2d(channels: 3), .image(channels: 3, height: 4, width: 5), rows: 3,
                    spec: ["layer": "batchnorm2d", "channels": 3])
        try compare(BatchNorm2d(channels: 3), .image(channels: 3, height: 4, width: 5), rows: 3,
                    spec: ["layer": "batchnorm2d", "channels": 3], training: false)
        try compare(GroupNorm(groups: 2, channels: 6), .image(channels: 6, height: 3, width: 4), rows: 3,
                    spec: ["layer": "groupnorm", "groups": 2, "channels": 6])
    }
}

/// SyncBN in a conv net over in-process ranks with uneven and empty per-rank batches: every
/// rank's part of the outputs and input gradients, the summed parameter gradients and the
/// running statistics equal one process on the concatenated batch.
@Suite("Conv nets with SyncBN over uneven ranks", .timeLimit(.minutes(5)))
struct ConvSyncBNTests {
    @Test("cnn and resnet: 4 ranks with 5, 3, 0 and 8 images equal one process with 16",
          arguments: [Architecture.cnn, .resnet])
    func unevenRanks(architecture: Architecture) throws {
        let sizes = [5, 3, 0, 8], total = 16
        let config = ModelConfiguration(architecture: architecture, inputShape: [1, 8, 8], depth: 8, width: 4,
                                        classes: 3, norm: .syncbn)
        var rng = TestRandom(seed: 21)
        let x = rng.uniform(total * 64, 0, 1), dy = rng.normal(total * 3)
        let starts = sizes.indices.map { sizes[..<$0].reduce(0, +) }
        typealias Result = (dx: [Float], gradients: [Float], buffers: [Float])
        @Sendable func run(_ group: (any ProcessGroup)?, rows: Range<Int>) throws -> Result {
            let model = try config.build(seed: 4, syncGroup: group)
            var input = Array(x[rows.lowerBound * 64..<rows.upperBound * 64])
            var grad = Array(dy[rows.lowerBound * 3..<rows.upperBound * 3])
            var dx: [Float] = []
            try input.withUnsafeMutableBufferPointer { xb in
                _ = try model.forward(Matrix(base: xb.baseAddress!, rows: rows.count, cols: 64), training: true)
                try grad.withUnsafeMutableBufferPointer { gb in
                    dx = try #require(try model.backward(Matrix(base: gb.baseAddress!, rows: rows.count, cols: 3),
                                                         needsInputGradient: true)).toArray()
                }
            }
            return (dx, Array(model.store.gradients), Array(model.store.buffers))
        }
        let single = try run(nil, rows: 0..<total)
        let ranks = try LocalProcessGroup.run(worldSize: 4) { group in
            try run(group, rows: starts[group.rank]..<starts[group.rank] + sizes[group.rank])
        }
        let dx = ranks.flatMap(\.dx).map(Double.init)
        #expect(relativeError(dx, single.dx.map(Double.init)) < 1e-4, "input gradients")
        let summed = single.gradients.indices.map { i in ranks.reduce(0.0) { $0 + Double($1.gradients[i]) } }
        #expect(relativeError(summed, single.gradients.map(Double.init)) < 1e-4,
                "parameter gradients summed over ranks")
        for r in 0..<4 {
            #expect(relativeError(ranks[r].buffers.map(Double.init), single.buffers.map(Double.init)) < 1e-5,
                    "rank \(r): running statistics of the global batch")
        }
    }
}

/// `ddp train --model cnn|resnet` under mpirun: N ranks × batch B equal 1 rank × batch N·B.
@Suite("conv nets under mpirun", .serialized)
struct ConvTrainingTests {
    /// 200 synthetic 28×28 images, 7 steps an epoch at a global batch of 32 (the 7th holds the
    /// 8-image tail): 12 steps cross into epoch 2. Small models, so a run takes seconds. The
    /// ResNet gets lr 0.01: at 0.05 this 4-channel net amplifies float32 rounding step after
    /// step beyond the tolerance (Docs/results.md has the figures).
    static func arguments(_ architecture: Architecture) -> [String] {
        ["--synthetic", "--synthetic-train", "200", "--synthetic-test", "64", "--model", architecture.rawValue,
         "--width", "4", "--lr", architecture == .resnet ? "0.01" : "0.05", "--schedule", "constant", "--seed", "5",
         "--max-steps", "12",
         "--log-every", "1", "--norm", "syncbn"] + (architecture == .resnet ? ["--depth", "8"] : [])
    }

    static func train(np: Int, batch: Int, _ arguments: [String]) throws -> [String: TensorData] {
        let dir = TemporaryDirectory()
        let outcome = try Executables.mpirun(np: np, "ddp", ["train"] + arguments + [
            "--batch-size", String(batch), "--save", dir.path + "/model.safetensors",
        ], timeout: 300)
        try #require(outcome.status == 0 && !outcome.timedOut, "np \(np): \(outcome.output)")
        return try SafeTensors.read(dir.path + "/model.safetensors").tensors
    }

    @Test("SyncBN: 2 and 4 ranks equal 1 rank across an epoch boundary (parameters, running statistics)",
          arguments: [Architecture.cnn, .resnet], [2, 4])
    func equivalence(architecture: Architecture, np: Int) throws {
        let args = Self.arguments(architecture)
        let single = try Self.train(np: 1, batch: 32, args)
        let multi = try Self.train(np: np, batch: 32 / np, args + ["--debug-rank-seed-offset"])
        #expect(Set(single.keys) == Set(multi.keys))
        for key in single.keys.sorted() {
            let a = try #require(single[key]), b = try #require(multi[key])
            if a.dtype == .f32 {
                #expect(try relativeError(doubles(a), doubles(b)) < 1e-4, "\(key)")
            } else {
                #expect(try a.int64s() == b.int64s(), "\(key)")
            }
        }
    }

    @Test("--precise-bn with SyncBN: 2 ranks recompute the statistics of 1 rank; they replace the running averages")
    func preciseBN() throws {
        let args = Self.arguments(.cnn)
        let plain = try Self.train(np: 1, batch: 32, args)
        let single = try Self.train(np: 1, batch: 32, args + ["--precise-bn", "128"])
        let multi = try Self.train(np: 2, batch: 16, args + ["--precise-bn", "128"])
        let statistics = single.keys.filter { $0.hasSuffix("running_mean") || $0.hasSuffix("running_var") }.sorted()
        #expect(statistics.count == 6, "\(single.keys.sorted())")  // 2 BatchNorm2d, 1 BatchNorm1d
        for key in statistics {
            let a = try doubles(try #require(single[key])), b = try doubles(try #require(multi[key]))
            #expect(relativeError(a, b) < 1e-4, "\(key): 2 ranks vs 1")
            #expect(relativeError(a, try doubles(try #require(plain[key]))) > 1e-3, "\(key): unchanged by precise BN")
        }
        // the parameters are training's, untouched by the recomputation
        for key in single.keys where key.hasSuffix("weight") {
            #expect(try doubles(try #require(single[key])) == doubles(try #require(plain[key])), "\(key)")
        }
    }

    @Test("--augment: 2 ranks equal 1 rank (the crop and flip of a sample do not depend on its rank)")
    func augmentEquivalence() throws {
        let args = Self.arguments(.cnn) + ["--augment"]
        let single = try Self.train(np: 1, batch: 32, args)
        let multi = try Self.train(np: 2, batch: 16, args)
        let plain = try Self.train(np: 1, batch: 32, Self.arguments(.cnn))
        let keys = single.keys.sorted().filter { single[$0]?.dtype == .f32 }
        func values(_ state: [String: TensorData]) throws -> [Double] {
            try keys.flatMap { try doubles(#require(state[$0])) }
        }
        #expect(try relativeError(values(multi), values(single)) < 1e-4)
        #expect(try relativeError(values(plain), values(single)) > 1e-3, "augmentation changed the training")
    }

    @Test("a ResNet with --augment resumed from a checkpoint ends bit-identical to an uninterrupted run")
    func resume() throws {
        let dir = TemporaryDirectory()
        // 100 images per rank, batch 8: 13 steps an epoch, 26 in all; killed at step 17 (epoch 2)
        let args = ["train", "--synthetic", "--synthetic-train", "200", "--model", "resnet", "--depth", "8",
                    "--width", "4", "--augment", "--batch-size", "8", "--epochs", "2", "--no-eval", "--seed", "2"]
        expectEnded(try Executables.mpirun(np: 2, "ddp", args + ["--save", dir.path + "/full.st"], timeout: 300),
                    status: 0)
        let killed = try Executables.mpirun(np: 2, "ddp", args + [
            "--checkpoint-dir", dir.path + "/ck", "--checkpoint-every", "5", "--debug-fail", "kill",
            "--debug-fail-rank", "1", "--debug-fail-step", "17",
        ], timeout: 300)
        expectEnded(killed, status: ExitStatus.killed)
        let resumed = try Executables.mpirun(np: 2, "ddp", args + [
            "--checkpoint-dir", dir.path + "/ck", "--checkpoint-every", "5", "--resume",
            "--save", dir.path + "/resumed.st",
        ], timeout: 300)
        expectEnded(resumed, status: 0)
        #expect(resumed.output.contains("resuming from step 15 (epoch 2)"), "\(resumed.output)")
        let full = try SafeTensors.read(dir.path + "/full.st").tensors
        #expect(try full == SafeTensors.read(dir.path + "/resumed.st").tensors,
                "parameters, buffers and counters bit-identical")
    }

    @Test("diagnostics record a gradient norm for every convolution and Linear layer")
    func diagnostics() throws {
        let dir = TemporaryDirectory()
        let outcome = try Executables.mpirun(np: 2, "ddp", ["train"] + Self.arguments(.resnet) + [
            "--max-steps", "2", "--batch-size", "8", "--diagnostics-every", "1", "--metrics", dir.path + "/m.jsonl",
        ], timeout: 300)
        expectEnded(outcome, status: 0)
        let record = try #require(try jsonLines(dir.path + "/m.jsonl").first { $0["kind"] as? String == "diagnostics" })
        let norms = try #require(record["weight_grad_norm"] as? [Double])
        // ResNet-8: the stem, 2 per block × 3 blocks, 2 projections, fc
        #expect(norms.count == 10 && norms.allSatisfy { $0.isFinite && $0 > 0 }, "\(norms)")
    }

    @Test("one image per rank trains a ResNet with BatchNorm: a BatchNorm2d counts N·H·W values, as PyTorch does")
    func oneImagePerRank() throws {
        let outcome = try Executables.mpirun(np: 2, "ddp", ["train"] + Self.arguments(.resnet) + [
            "--batch-size", "1", "--norm", "bn", "--max-steps", "3",
        ], timeout: 300)
        expectEnded(outcome, status: 0)
    }

    @Test("bucketed gradient sync of a ResNet equals flat under mpirun")
    func bucketed() throws {
        let args = Self.arguments(.resnet) + ["--max-steps", "4"]
        let flat = try Self.train(np: 2, batch: 8, args + ["--grad-sync", "flat"])
        let bucketed = try Self.train(np: 2, batch: 8, args + ["--grad-sync", "bucketed", "--bucket-mb", "0.001"])
        for key in flat.keys.sorted() where flat[key]?.dtype == .f32 {
            #expect(try doubles(#require(flat[key])) == doubles(#require(bucketed[key])), "\(key)")
        }
    }

    @Test("conv options that make no sense: one clear line, no training", arguments: [
        (["--model", "resnet", "--depth", "10"], "--model resnet needs --depth 6n+2"),
        (["--model", "cnn", "--depth", "3"], "--depth does not apply to --model cnn"),
        (["--model", "cnn", "--norm", "groupnorm", "--groups", "5"], "--groups 5 must divide"),
        (["--model", "mlp", "--augment"], "--augment needs image samples"),
        (["--model", "cnn", "--dropout", "0.5"], "--dropout applies to --model mlp"),
        (["--model", "resnet", "--width", "100000"], "the model needs"),
        (["--model", "cnn", "--precise-bn", "0"], "--precise-bn must be at least 1 sample"),
        (["--model", "cnn", "--norm", "groupnorm", "--precise-bn", "100"], "--precise-bn needs BatchNorm"),
    ])
    func badOptions(arguments: [String], message: String) throws {
        let outcome = try Executables.mpirun(np: 2, "ddp", ["train", "--synthetic", "--max-steps", "1"] + arguments,
                                             timeout: 120)
        #expect(outcome.status != 0 && !outcome.timedOut)
        #expect(outcome.output.contains(message), "\(outcome.output)")
    }
}

/// The augmentation itself, on a known image.
@Suite("Augmentation")
struct AugmentationTests {
    @Test("a crop of the zero-padded image and a horizontal flip, the same for the same (seed, epoch, index)")
    func cropAndFlip() throws {
        let shape = SampleShape.image(channels: 1, height: 6, width: 6)
        let image = (0..<36).map { Float($0 + 1) }  // pixel (y, x) = 6y + x + 1, never 0
        let scratch = Workspace()
        func augmented(index: Int, epoch: Int) -> [Float] {
            var x = image
            x.withUnsafeMutableBufferPointer {
                Augmentation.cropAndFlip($0.baseAddress!, shape: shape, indices: [index], seed: 7, epoch: epoch,
                                         scratch: scratch)
            }
            return x
        }
        var seen = Set<[Float]>()
        var flips = Set<Bool>(), shifts = Set<Int>()
        for index in 0..<200 {
            let y = augmented(index: index, epoch: 0)
            #expect(y == augmented(index: index, epoch: 0), "deterministic")
            seen.insert(y)
            // Every output pixel is 0 (padding) or the input pixel at one shift (dy, dx), possibly mirrored.
            let found = (-2...2).flatMap { dy in (-2...2).flatMap { dx in [false, true].map { (dy, dx, $0) } } }
                .filter { dy, dx, flip in
                    (0..<6).allSatisfy { r in (0..<6).allSatisfy { c in
                        let sy = r + dy, sx = (flip ? 5 - c : c) + dx
                        let expected: Float = (0..<6).contains(sy) && (0..<6).contains(sx) ? image[sy * 6 + sx] : 0
                        return y[r * 6 + c] == expected
                    } }
                }
            #expect(found.count == 1, "index \(index): not one crop of the padded image, flipped or not")
            for (dy, dx, flip) in found {
                flips.insert(flip)
                shifts.formUnion([dy, dx])
            }
        }
        #expect(flips == [false, true] && shifts == Set(-2...2), "every flip and shift occurs")
        #expect(seen.count > 30, "the draws vary: \(seen.count) distinct results of 50 possible")
        #expect((0..<20).contains { augmented(index: $0, epoch: 0) != augmented(index: $0, epoch: 1) },
                "another epoch draws again")
    }
}

/// PyTorch loads the conv nets' checkpoints (scripts/peers/models.py) and evaluates them to ddp's
/// accuracy; ddp trains from torch-initialized state dicts.
@Suite("PyTorch interoperability of conv nets", .serialized,
       .enabled(if: Executables.pythonMissing("torch, safetensors") == nil,
                Comment(rawValue: Executables.pythonMissing("torch, safetensors") ?? "")))
struct TorchConvInteropTests {
    @Test("cnn and resnet checkpoints load into torch with strict=True and evaluate to ddp's accuracy",
          arguments: [["--model", "cnn", "--width", "8"], ["--model", "cnn", "--width", "8", "--norm", "none"],
                      ["--model", "cnn", "--width", "8", "--norm", "groupnorm", "--groups", "4"],
                      ["--model", "resnet", "--depth", "8", "--width", "8"],
                      ["--model", "resnet", "--depth", "8", "--width", "8", "--norm", "none"],
                      ["--model", "resnet", "--depth", "8", "--width", "8", "--norm", "groupnorm", "--groups", "4"],
                      ["--model", "plain", "--depth", "8", "--width", "8"]])
    func roundTrip(model: [String]) throws {
        let dir = TemporaryDirectory()
        let ours = dir.path + "/ours.safetensors", metrics = dir.path + "/m.jsonl", theirs = dir.path + "/t.safetensors"
        let trained = try Executables.mpirun(np: 2, "ddp", ["train", "--epochs", "1", "--max-steps", "60",
                                                            "--save", ours,
                                                            "--metrics", metrics] + model, timeout: 600)
        expectEnded(trained, status: 0)
        let summary = try #require(try jsonLines(metrics).last)
        let check = try Executables.run(Executables.python, [Executables.packageFile("scripts/torch_interop.py"), ours]
                                            + model + ["--export", theirs], timeout: 600)
        expectEnded(check, status: 0)
        let report = try jsonObject(try #require(check.output.split(separator: "\n").first))
        let ours_ = try SafeTensors.read(ours).tensors
        #expect(try report.int("loaded_keys") == ours_.count)
        // Both evaluate in float32 with different kernels: an image's logits may differ in the last
        // bits, so allow two of the 10,000 predictions to differ.
        #expect(abs(try report.double("test_accuracy") - summary.double("test_accuracy")) <= 2e-4,
                "torch evaluates the checkpoint to ddp's accuracy")
        let fromTorch = try Executables.mpirun(np: 2, "ddp",
                                               ["train", "--max-steps", "3", "--init-from", theirs] + model,
                                               timeout: 300)
        expectEnded(fromTorch, status: 0)
    }
}
