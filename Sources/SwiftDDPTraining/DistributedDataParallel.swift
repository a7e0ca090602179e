import SwiftDDPCollectives
import SwiftDDPNN

/// Data parallelism for a model you train with your own loop, like PyTorch's
/// `DistributedDataParallel(model)`: every rank holds the whole model; `init` makes the replicas
/// equal (rank 0's parameters and buffers are broadcast), `backward` runs the model's backward
/// with the gradient all-reduce overlapped where the mode allows, and `step` finishes the
/// averaging and updates the parameters. N ranks with per-rank batch B then train the model one
/// process would train with batch N·B.
///
/// ```swift
/// let ddp = try DistributedDataParallel(model, optimizer: SGD(store: model.store, learningRate: 0.05), group: world)
/// let logits = try ddp.forward(batch)
/// let (loss, _) = try lossFunction.forward(logits: logits, labels: labels, gradientScale: ddp.gradientScale)
/// try ddp.backward(lossFunction.backward())
/// try ddp.step()
/// ```
///
/// The loss gradient must carry `gradientScale` (1/N): the all-reduce sums the ranks' gradients,
/// so each contributes its N-th (SoftmaxCrossEntropy takes it as `gradientScale`).
public final class DistributedDataParallel {
    public let model: Model
    public let optimizer: any Optimizer
    public let group: any ProcessGroup
    public let synchronizer: GradientSynchronizer

    /// - Parameters:
    ///   - gradientSync: how the gradients are averaged (see `GradientSyncMode`); `.sharded`,
    ///     ranks on one host sharing one copy of the model, is the fastest on one machine.
    ///   - bucketBytes: bucket size for `.bucketed`.
    public init(_ model: Model, optimizer: any Optimizer, group: any ProcessGroup,
                gradientSync: GradientSyncMode = .sharded, bucketBytes: Int = 1 << 20) throws
    {
        self.model = model
        self.optimizer = optimizer
        self.group = group
        try Trainer.broadcastState(model.store, from: 0, in: group, includeParameters: true)
        let synchronizer = try GradientSynchronizer(model: model, group: group, mode: gradientSync,
                                                    optimizer: optimizer, bucketBytes: bucketBytes)
        self.synchronizer = synchronizer
        model.onGradientsReady = { leaf in try synchronizer.gradientsReady(leaf: leaf) }
    }

    /// The factor for each rank's loss gradient: 1 / world size.
    public var gradientScale: Float { 1 / Float(group.worldSize) }

    /// The training forward pass (SyncBatchNorm layers exchange statistics inside it).
    public func forward(_ input: Matrix) throws -> Matrix { try model.forward(input, training: true) }

    /// The backward pass from dL/d(output), which must include `gradientScale`.
    public func backward(_ gradOutput: Matrix) throws { _ = try model.backward(gradOutput) }

    /// Finishes averaging the gradients and updates the parameters. Returns false, leaving the
    /// parameters partly updated, when a gradient is not finite (on every rank alike).
    @discardableResult
    public func step() throws -> Bool {
        try synchronizer.finish(wholeGradients: false)
        return try synchronizer.updateParameters(with: optimizer)
    }
}

extension Model {
    /// Makes every BatchNorm layer of the model SyncBatchNorm over `group`, like PyTorch's
    /// `SyncBatchNorm.convert_sync_batchnorm`; nil makes them local again. Call it on every rank
    /// before training (and before `DistributedDataParallel`).
    public func convertSyncBatchNorm(group: (any ProcessGroup)?) {
        for bn in batchNormLayers { bn.synchronize(over: group) }
    }
}
