import SwiftDDPCollectives
import SwiftDDPNN

/// How gradients are averaged across ranks.
public enum GradientSyncMode: String, CaseIterable, Sendable, Codable {
    /// One all-reduce of the whole flat gradient buffer after backward (`FlatGradientSync`).
    case flat
    /// Buckets of consecutive layers whose non-blocking all-reduces start as soon as backward
    /// has produced their gradients, overlapping communication with the rest of backward
    /// (PyTorch DDP's gradient buckets; `BucketedGradientSync`).
    case bucketed
    /// Ranks on one host reduce through shared memory, and hosts join by one all-reduce of a
    /// part per rank (`SharedMemoryGradientSync`, `HostReduction`). Falls back to `flat` when
    /// there is one rank per host, hosts run different numbers of ranks, or the shared memory
    /// cannot be set up.
    case shared
    /// `shared`, and the parameters and optimizer state are kept once per host in the shared
    /// memory as well: each rank sums *and updates* its part (`ShardedOptimizer`; ZeRO stage 1
    /// within a host). Same bits as `shared` and `flat`. Without an optimizer to shard it is
    /// `shared`, and it falls back like it.
    case sharded
}

/// A way of averaging the model's flat gradient buffer over the ranks of a process group, so
/// N ranks with per-rank batch B take the same step as one process with batch N·B. The loss
/// gradient carries 1/W (everything after it is linear in it), so summing the ranks'
/// gradients *is* the average: no extra pass over the parameters.
///
/// The model calls `gradientsReady(leaf:)` after each leaf's backward; `finish` completes the
/// averaging. `GradientSyncMode.make` builds the one a mode asks for.
public protocol GradientSync: AnyObject {
    /// The mode asked for (the one in effect can be simpler: see `usesSharedMemory`).
    var mode: GradientSyncMode { get }
    /// Seconds spent starting, testing and waiting on gradient collectives since `resetTimers`.
    var communicationSeconds: Double { get }
    func resetTimers()
    /// Leaf `leaf` (`Model.leaves` order) has its gradients; communication may start.
    func gradientsReady(leaf: Int) throws
    /// Completes the averaging after backward.
    ///
    /// - Parameter wholeGradients: whether every rank needs all the averaged gradients; a sharded
    ///   update needs only its own part unless something else reads them (diagnostics, a check
    ///   for non-finite gradients before the update).
    func finish(wholeGradients: Bool) throws
    /// Whether gradients are reduced through shared memory.
    var usesSharedMemory: Bool { get }
    /// Whether the reduction spans hosts in two levels: shared memory, then one all-reduce of a
    /// part per rank between hosts.
    var isHierarchical: Bool { get }
    /// The ranks one shared mapping joins (1 without shared memory).
    var ranksPerHost: Int { get }
    /// Why a shared-memory mode fell back to one all-reduce (nil: it did not, or nothing to share).
    var sharedMemoryUnavailable: String? { get }
}

extension GradientSync {
    public func gradientsReady(leaf: Int) throws {}
    public var usesSharedMemory: Bool { false }
    public var isHierarchical: Bool { false }
    public var ranksPerHost: Int { 1 }
    public var sharedMemoryUnavailable: String? { nil }
}

extension GradientSyncMode {
    /// Sets up this mode's gradient averaging for `model` over `group` (collective).
    ///
    /// - Parameters:
    ///   - optimizer: the model's optimizer; `sharded` moves its state, and the parameters, into
    ///     the host's shared memory and returns it wrapped in a `ShardedOptimizer`, which the
    ///     caller must step instead. Nil: nothing is sharded.
    ///   - bucketBytes: the smallest bucket in `bucketed` mode.
    /// - Returns: the synchronizer, and the optimizer to step (`optimizer` itself unless sharded).
    public func make(model: Model, group: any ProcessGroup, optimizer: (any Optimizer)? = nil,
                     bucketBytes: Int = 1 << 20) throws -> (sync: any GradientSync, optimizer: (any Optimizer)?)
    {
        switch self {
        case .flat:
            return (try FlatGradientSync(mode: self, store: model.store, group: group), optimizer)
        case .bucketed:
            return (try BucketedGradientSync(model: model, group: group, bucketBytes: bucketBytes), optimizer)
        case .shared, .sharded:
            let n = model.store.parameterCount
            let sharding = self == .sharded ? optimizer : nil
            // common memory: parameters and optimizer state (sharded), one finiteness flag per rank
            let (reduction, reason) = group.worldSize > 1
                ? try HostReduction.make(group: group, floats: n, common: { ranks in
                    sharding.map { n * (1 + $0.stateVectors) + ranks } ?? 0 })
                : (nil, nil)
            guard let reduction else {
                let flat = try FlatGradientSync(mode: self, store: model.store, group: group)
                flat.sharedMemoryUnavailable = reason
                return (flat, optimizer)
            }
            let sync = try SharedMemoryGradientSync(mode: self, store: model.store, reduction: reduction,
                                                sharded: sharding != nil)
            guard let sharding else { return (sync, optimizer) }
            return (sync, try ShardedOptimizer(sharding, store: model.store, reduction: reduction))
        }
    }
}
