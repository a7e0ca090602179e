import SwiftDDPCollectives
import SwiftDDPNN

/// Data parallelism for a model, like PyTorch's `DistributedDataParallel(model)`: every rank
/// holds the whole model; `init` makes the replicas equal (rank 0's parameters and buffers are
/// broadcast), `backward` runs the model's backward with the gradient all-reduce overlapped
/// where the mode allows, `reduceGradients` finishes the averaging and `update` applies the
/// optimizer (`step` does both). N ranks with per-rank batch B then train the model one
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
    /// The optimizer to step: the one given, or in `.sharded` mode a `ShardedOptimizer` around it.
    public let optimizer: any Optimizer
    public let group: any ProcessGroup
    public let gradientSync: any GradientSync
    /// Before each training forward, copy rank 0's buffers (BatchNorm running statistics) to
    /// every rank, as PyTorch DDP's `broadcast_buffers`. Default: when some BatchNorm layer
    /// normalizes on its own rank (synchronized layers' buffers are equal anyway).
    public var broadcastBuffers: Bool
    /// Seconds the last forward spent broadcasting buffers.
    public private(set) var bufferBroadcastSeconds = 0.0

    /// - Parameters:
    ///   - gradientSync: how the gradients are averaged (see `GradientSyncMode`); `.sharded`,
    ///     ranks on one host sharing one copy of the model, is the fastest on one machine.
    ///   - bucketBytes: bucket size for `.bucketed`.
    ///   - shardOptimizer: in `.sharded` mode, share the parameters and optimizer state among the
    ///     ranks of a host; false keeps a copy per rank (`.shared`'s reduction), for code that
    ///     rewrites the parameters on each rank.
    public init(_ model: Model, optimizer: any Optimizer, group: any ProcessGroup,
                gradientSync mode: GradientSyncMode = .sharded, bucketBytes: Int = 1 << 20,
                shardOptimizer: Bool = true) throws
    {
        self.model = model
        self.group = group
        try Self.broadcastState(model.store, from: 0, in: group, includeParameters: true)
        let (sync, stepped) = try mode.make(model: model, group: group, optimizer: shardOptimizer ? optimizer : nil,
                                            bucketBytes: bucketBytes)
        gradientSync = sync
        self.optimizer = stepped ?? optimizer
        broadcastBuffers = model.batchNormLayers.contains { !$0.isSynchronized }
        model.onGradientsReady = { leaf in try sync.gradientsReady(leaf: leaf) }
    }

    /// The factor for each rank's loss gradient: 1 / world size.
    public var gradientScale: Float { 1 / Float(group.worldSize) }

    /// The training forward pass (SyncBatchNorm layers exchange statistics inside it).
    public func forward(_ input: Matrix) throws -> Matrix {
        if broadcastBuffers && group.worldSize > 1 {
            let start = monotonicSeconds()
            try Self.broadcastState(model.store, from: 0, in: group, includeParameters: false)
            bufferBroadcastSeconds = monotonicSeconds() - start
        }
        return try model.forward(input, training: true)
    }

    /// The backward pass from dL/d(output), which must include `gradientScale`.
    public func backward(_ gradOutput: Matrix) throws { _ = try model.backward(gradOutput) }

    /// Finishes averaging the gradients (collective).
    ///
    /// - Parameter whole: whether every rank needs all the averaged gradients; after a sharded
    ///   reduction a rank holds only the part it updates unless asked.
    public func reduceGradients(whole: Bool = false) throws { try gradientSync.finish(wholeGradients: whole) }

    /// Applies the optimizer to the averaged gradients. Returns false, leaving the parameters
    /// partly updated, when a gradient is not finite (on every rank alike).
    public func update() throws -> Bool {
        try optimizer.step()
        return optimizer.lastStepWasFinite
    }

    /// `reduceGradients()`, then `update()`.
    @discardableResult
    public func step() throws -> Bool {
        try reduceGradients()
        return try update()
    }

    /// Clears the per-step communication timers.
    public func resetTimers() {
        gradientSync.resetTimers()
        bufferBroadcastSeconds = 0
    }

    /// Copies rank `root`'s buffers (and, if asked, parameters) to every rank: one collective
    /// per flat store.
    public static func broadcastState(_ store: ParameterStore, from root: Int, in group: any ProcessGroup,
                                      includeParameters: Bool) throws
    {
        guard group.worldSize > 1 else { return }
        if includeParameters { try group.broadcast(store.parameters, root: root) }
        try group.broadcast(store.buffers, root: root)
        if !store.counters.isEmpty { try group.broadcast(&store.counters, root: root) }
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
