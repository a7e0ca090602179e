// A layer of your own: implement `Layer` (shapes, parameters, forward, backward), check its
// gradients with `GradientCheck` as the library checks its own, and train a model with it.
//
//   mpirun -np 2 .build/release/custom-layer
import Foundation
import SwiftDDP

/// y = a ⊙ x² + b per feature, with learnable a and b (PyTorch names: `a`, `b`).
final class ScaledSquare: InitializableLayer {
    let features: Int
    private(set) var aSlot = TensorSlot.unregistered, bSlot = TensorSlot.unregistered
    var parameterSlots: [TensorSlot] { [aSlot, bSlot] }
    private var store: ParameterStore!
    private let output = Workspace(), gradInput = Workspace()
    private var lastInput: Matrix?

    init(features: Int) { self.features = features }

    var description: String { "ScaledSquare(features=\(features))" }

    // Parameters live in the model's flat buffer: reserve them here, read them through `store`.
    func registerState(in scope: ParameterScope) {
        store = scope.store
        aSlot = scope.parameter("a", shape: [features])
        bSlot = scope.parameter("b", shape: [features])
    }

    func outputShape(for input: SampleShape) throws -> SampleShape {
        guard !input.isImage, input.count == features else {
            throw NNError("ScaledSquare(\(features)): expected samples of shape [\(features)], got \(input)")
        }
        return input
    }

    func resetParameters(scheme: InitScheme, using generator: inout SeededGenerator) {
        for i in 0..<features {
            store.parameter(aSlot)[i] = generator.uniform(0.5, 1.5)
            store.parameter(bSlot)[i] = 0
        }
    }

    // y[B,F] = a ⊙ x² + b
    func forward(_ x: Matrix, training: Bool) throws -> Matrix {
        let y = output.matrix(rows: x.rows, shape: x.shape)
        let a = store.parameter(aSlot), b = store.parameter(bSlot)
        for r in 0..<x.rows {
            for f in 0..<features { y.row(r)[f] = a[f] * x.row(r)[f] * x.row(r)[f] + b[f] }
        }
        lastInput = x
        return y
    }

    // da[F] = Σ_B dy ⊙ x², db[F] = Σ_B dy (written, not accumulated), dx[B,F] = 2 a ⊙ x ⊙ dy
    func backward(_ dy: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        guard let x = lastInput else { throw NNError("ScaledSquare.backward before forward") }
        let a = store.parameter(aSlot), da = store.gradient(aSlot), db = store.gradient(bSlot)
        da.update(repeating: 0, count: features)
        db.update(repeating: 0, count: features)
        let dx = gradInput.matrix(rows: x.rows, shape: x.shape)
        for r in 0..<x.rows {
            for f in 0..<features {
                let g = dy.row(r)[f], v = x.row(r)[f]
                da[f] += g * v * v
                db[f] += g
                dx.row(r)[f] = 2 * a[f] * v * g
            }
        }
        return needsInputGradient ? dx : nil
    }
}

do {
    // 1. The gradient check, in one process.
    let check = try GradientCheck.run(layer: ScaledSquare(features: 8), inputShape: .features(8), rows: 4)
    guard check.passes() else { throw NNError("ScaledSquare's gradients are wrong: \(check)") }

    // 2. Training a model with it, data-parallel.
    try MPIRuntime.withRuntime { _ in
        let world = try MPIProcessGroup.world()
        if world.rank == 0 { print("gradient check passed: \(check)") }
        let train = try SyntheticData.make(count: 2048, seed: 3)
        // tanh keeps the square's inputs in [-1, 1]
        let layers: [any Layer] = [Linear(inFeatures: train.features, outFeatures: 16), Activation(.tanh),
                                   ScaledSquare(features: 16), Linear(inFeatures: 16, outFeatures: train.classes)]
        let model = try Model(Sequential(layers), inputShape: .features(train.features))
        model.initialize(scheme: .default, seed: 0)
        let ddp = try DistributedDataParallel(model, optimizer: try SGD(store: model.store, learningRate: 0.02,
                                                                         momentum: 0.9), group: world)
        let loss = SoftmaxCrossEntropy()
        let sampler = DistributedSampler(datasetSize: train.count, worldSize: world.worldSize, rank: world.rank)
        let batch = Workspace()
        var labels = [Int32](repeating: 0, count: 32)
        var first = 0.0, last = 0.0
        for epoch in 0..<3 {
            let indices = sampler.indices(epoch: epoch)
            for start in stride(from: 0, to: indices.count - 31, by: 32) {
                let x = batch.matrix(rows: 32, cols: train.features)
                labels.withUnsafeMutableBufferPointer {
                    train.gather(indices[start..<start + 32], inputs: x.base, labels: $0.baseAddress!)
                }
                let logits = try ddp.forward(x)
                let (value, _) = try labels.withUnsafeBufferPointer {
                    try loss.forward(logits: logits, labels: $0, gradientScale: ddp.gradientScale)
                }
                try ddp.backward(loss.backward())
                guard try ddp.step() else { throw NNError("non-finite gradients in epoch \(epoch + 1)") }
                if epoch == 0 && start == 0 { first = value }
                last = value
            }
        }
        var losses = [first, last]
        try world.allReduce(&losses, op: .sum)
        if world.rank == 0 {
            print(String(format: "ScaledSquare model: loss %.4f at the first step, %.4f at the last (mean of %d ranks)",
                         losses[0] / Double(world.worldSize), losses[1] / Double(world.worldSize), world.worldSize))
        }
    }
} catch {
    FileHandle.standardError.write(Data("custom-layer: \(error)\n".utf8))
    exit(1)
}
