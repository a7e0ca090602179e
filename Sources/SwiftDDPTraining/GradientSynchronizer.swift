import CSwiftDDPKernels
import SwiftDDPCollectives
import SwiftDDPNN
/// How gradients are averaged across ranks.
public enum GradientSyncMode: String, CaseIterable, Sendable, Codable {
    /// One all-reduce of the whole flat gradient buffer after backward.
    case flat
    /// Buckets of consecutive layers whose non-blocking all-reduces start as soon as backward
    /// has produced their gradients, overlapping communication with the rest of backward
    /// (PyTorch DDP's gradient buckets).
    case bucketed
    /// Ranks on one host reduce through shared memory: the gradient buffers live in memory all
    /// of them map (`ProcessGroup.sharedSegments`), each rank sums its 1/L of the elements
    /// straight from the L buffers of its host, then copies the other sums back — no messages,
    /// half the memory traffic of Open MPI's all-reduce. Across hosts it is hierarchical: after
    /// the host sum, each rank all-reduces its 1/L with the ranks holding the same part on the
    /// other hosts (one MPI all-reduce of n/L elements per rank, so each host sends the gradient
    /// once, not once per rank). Falls back to `flat` when there is one rank per host, hosts
    /// run different numbers of ranks, or the shared memory cannot be set up
    /// (`sharedMemoryUnavailable` says why).
    case shared
    /// `shared`, and the parameters and optimizer state are kept once per host in the shared
    /// memory as well: each rank sums *and updates* its 1/L of the elements, so no rank copies
    /// the other sums back or repeats the others' updates (ZeRO stage 1 within a host, with
    /// every rank still reading the whole model). Same bits as `shared` and `flat`. Needs the
    /// optimizer (the trainer passes it); without one it is `shared`, and it falls back like it.
    case sharded
}

/// Averages the flat gradient buffer over the ranks of a process group, so N ranks with
/// per-rank batch B take the same step as one process with batch N·B. The trainer scales the
/// loss gradient by 1/W before backward (everything after it is linear in it), so summing the
/// ranks' gradients here *is* the average: no extra pass over the parameters.
///
/// Bucketed mode: the parameters of consecutive leaf layers, in registration order (as PyTorch
/// DDP buckets them, never by their names), form buckets of at least `bucketBytes`, built from
/// the last leaf backwards (roughly the order backward produces them). A bucket is a
/// contiguous range of the flat buffer because leaves own consecutive slots; it starts its
/// all-reduce when the backward of every leaf in it has run, in whatever order (a residual
/// block runs its shortcut after its main branch). Both modes sum the same values in the same
/// collective algorithm per element, and give the same result.
public final class GradientSynchronizer {
    public let mode: GradientSyncMode
    private let group: any ProcessGroup
    private let store: ParameterStore
    /// Buckets: flat-buffer range and the number of leaves whose parameters it holds.
    public let buckets: [(range: Range<Int>, leaves: Int)]
    /// The bucket of each leaf (`Model.leaves` order); nil for leaves without parameters.
    private let leafBucket: [Int?]
    /// Leaves of each bucket whose backward has not run yet this step.
    private var remaining: [Int]
    private var pending: [(any PendingCollective)?]
    /// Shared and sharded modes (nil in other modes, or when they fell back to `flat`).
    private let hostReduction: HostReduction?
    /// A scratch array of source pointers for the reduction.
    private let sources: UnsafeMutablePointer<UnsafePointer<Float>?>
    public var worldSize: Int { group.worldSize }
    /// Whether gradients are reduced through shared memory (`shared` or `sharded`).
    public var usesSharedMemory: Bool { hostReduction != nil }
    /// The ranks whose gradient buffers one shared mapping holds: the ranks of a host (the
    /// whole world on one host); 1 without shared memory.
    public var ranksPerHost: Int { hostReduction?.host.worldSize ?? 1 }
    /// Whether the shared-memory reduction is hierarchical: several hosts, each summing through
    /// its shared memory, joined by one all-reduce of 1/L of the elements per rank.
    public var isHierarchical: Bool { hostReduction?.peers != nil }
    /// Sharded mode in effect: the flat-buffer range of the parameters this rank updates (the
    /// others' updates reach it through the shared memory); nil when every rank updates all.
    public let updateRange: Range<Int>?
    /// Why mode `shared` fell back to one all-reduce on a single host (e.g. /dev/shm is full).
    public private(set) var sharedMemoryUnavailable: String?
    /// Seconds spent starting, testing and waiting on gradient collectives since `resetTimers`.
    public private(set) var communicationSeconds = 0.0

    /// - Parameters:
    ///   - model: the model whose gradient buffer is averaged (in `shared` and `sharded` modes
    ///     it is moved into the shared memory; in `sharded` mode its parameters too).
    ///   - group: the ranks to average over.
    ///   - mode: how (see `GradientSyncMode`).
    ///   - optimizer: the model's optimizer; `sharded` mode moves its state into the shared
    ///     memory, and `updateParameters(with:)` must then be given this optimizer.
    ///   - bucketBytes: the smallest bucket in bucketed mode.
    public init(model: Model, group: any ProcessGroup, mode: GradientSyncMode, optimizer: (any Optimizer)? = nil,
                bucketBytes: Int = 1 << 20) throws
    {
        self.mode = mode
        self.group = group
        store = model.store
        // Each leaf's slots, whatever their names: a nested name (`layer1.0.conv1.weight`)
        // must not leave its parameters out of every bucket.
        let leafRanges = model.leaves.map { leaf -> Range<Int>? in
            let slots = leaf.parameterSlots
            guard let lo = slots.map(\.offset).min(), let hi = slots.map({ $0.offset + $0.count }).max() else {
                return nil
            }
            return lo..<hi
        }
        let covered = leafRanges.compactMap { $0 }.reduce(0) { $0 + $1.count }
        if mode == .bucketed && covered != model.store.parameterCount {
            throw NNError("bucketed gradient sync: the layers own \(covered) of the model's "
                          + "\(model.store.parameterCount) parameters; the others would never be averaged")
        }
        var built: [(range: Range<Int>, leaves: Int)] = []
        var bucketOf = [Int?](repeating: nil, count: leafRanges.count)
        var current: (range: Range<Int>, leaves: Int)? = nil
        for i in leafRanges.indices.reversed() {
            guard let r = leafRanges[i] else { continue }
            let grown: (range: Range<Int>, leaves: Int) = current.map {
                (min(r.lowerBound, $0.range.lowerBound)..<max(r.upperBound, $0.range.upperBound), $0.leaves + 1)
            } ?? (r, 1)
            bucketOf[i] = built.count
            if grown.range.count * MemoryLayout<Float>.size >= bucketBytes {
                built.append(grown)
                current = nil
            } else {
                current = grown
            }
        }
        if let current { built.append(current) }
        buckets = built
        leafBucket = bucketOf
        remaining = built.map(\.leaves)
        pending = Array(repeating: nil, count: built.count)
        sources = .allocate(capacity: max(group.worldSize, 1))
        sources.initialize(repeating: nil, count: max(group.worldSize, 1))
        let n = model.store.parameterCount
        let sharding = mode == .sharded ? optimizer : nil
        var reduction: HostReduction? = nil
        if mode == .shared || mode == .sharded, group.worldSize > 1 {
            // common: parameters, optimizer state, one finiteness flag per rank of the host
            (reduction, sharedMemoryUnavailable) = try Self.hostReduction(
                group: group, floats: n, common: { ranks in sharding.map { n * (1 + $0.stateVectors) + ranks } ?? 0 })
        }
        hostReduction = reduction
        guard let reduction else { updateRange = nil; return }
        let host = reduction.host, segments = reduction.memory
        updateRange = sharding != nil ? Self.chunk(host.rank, of: n, ranks: host.worldSize) : nil
        model.store.relocateGradients(to: segments.segments[host.rank], owner: segments)
        if let sharding {
            // Every rank holds the same values (broadcast from rank 0); one per host copies them in.
            model.store.relocateParameters(to: segments.common, owner: segments, copyingValues: host.rank == 0)
            sharding.relocateState(to: segments.common + n, owner: segments, copyingValues: host.rank == 0)
            try segments.synchronize()
        }
    }

    /// Where the shared and sharded modes sum: the ranks of this host, their gradient buffers
    /// in shared memory, and, when the job spans hosts, the ranks holding the same part on
    /// every other host.
    private struct HostReduction {
        let host: any ProcessGroup
        let memory: any SharedSegments
        /// Rank k of every host (nil on one host): they all-reduce part k of the host sums.
        let peers: (any ProcessGroup)?
    }

    /// Sets up the shared-memory reduction, or returns why it cannot be used (nil reason: one
    /// rank per host, nothing to share). Collective; every rank of `group` gets the same kind of
    /// answer, so all of them take the same path.
    private static func hostReduction(group: any ProcessGroup, floats n: Int, common: (Int) -> Int) throws
        -> (HostReduction?, String?)
    {
        let splitHost = try group.hostGroup()
        let oneHost = splitHost.worldSize == group.worldSize
        let host = oneHost ? group : splitHost  // on one host, keep using the group itself
        if !oneHost {  // (every rank agrees on that: the hosts partition the group)
            // Part k of one host is reduced with part k of the others: every host needs the same L.
            var extremes: [Int32] = [Int32(host.worldSize), -Int32(host.worldSize)]
            try group.allReduce(&extremes, op: .min)
            guard extremes[0] == -extremes[1] else {
                return (nil, "hosts run different numbers of ranks, \(extremes[0]) to \(-extremes[1])")
            }
            guard host.worldSize > 1 else { return (nil, nil) }
        }
        var memory: (any SharedSegments)? = nil
        var failure: String? = nil
        do {
            memory = try host.sharedSegments(floats: n, common: common(host.worldSize))
        } catch let error as ProcessGroupError {
            failure = error.message  // agreed by the ranks of this host
        }
        if !oneHost {  // and by every host: the ranks of one host must not wait in a collective the others skip
            var ready: [Int32] = [memory != nil ? 1 : 0]
            try group.allReduce(&ready, op: .min)
            if ready[0] == 0 { return (nil, failure ?? "shared memory could not be set up on another host") }
        }
        guard let memory else { return (nil, failure ?? "the ranks cannot share memory") }
        let peers = oneHost ? nil : try group.split(color: host.rank, key: group.rank)
        return (HostReduction(host: host, memory: memory, peers: peers), nil)
    }

    deinit { sources.deallocate() }

    public func resetTimers() { communicationSeconds = 0 }

    /// Called by the model after leaf `leaf`'s backward (bucketed mode): starts the all-reduce
    /// of its bucket once every leaf in it is done, and lets started ones progress.
    public func gradientsReady(leaf: Int) throws {
        guard mode == .bucketed, group.worldSize > 1, let b = leafBucket[leaf] else { return }
        let start = monotonicSeconds()
        remaining[b] -= 1
        guard remaining[b] >= 0 else {
            throw NNError("gradient bucket \(b): more backward passes than its \(buckets[b].leaves) leaves "
                          + "(is a layer used twice in the model?)")
        }
        if remaining[b] == 0 {
            pending[b] = try group.startAllReduce(
                UnsafeMutableBufferPointer(rebasing: store.gradients[buckets[b].range]), op: .sum)
        }
        for p in pending { _ = try p?.test() }
        communicationSeconds += monotonicSeconds() - start
    }

    /// Completes the averaging after backward: waits for the buckets (bucketed), runs the
    /// single all-reduce (flat) or sums through shared memory.
    ///
    /// - Parameter wholeGradients: in sharded mode, whether every rank needs all the summed
    ///   gradients (diagnostics, `--skip-nonfinite`) and not only those of `updateRange`.
    public func finish(wholeGradients: Bool = true) throws {
        guard group.worldSize > 1 else { return }
        let start = monotonicSeconds()
        switch mode {
        case .shared where hostReduction != nil, .sharded where hostReduction != nil:
            try reduceThroughSharedMemory(hostReduction!, copyBack: updateRange == nil || wholeGradients)
        case .flat, .shared, .sharded:
            try group.allReduce(store.gradients, op: .sum)
        case .bucketed:
            // Counts start over for the next step, however this one ends.
            defer { remaining = buckets.map(\.leaves) }
            for b in pending.indices {
                guard let p = pending[b] else {
                    throw NNError("gradient bucket \(b) was never started: the model skipped a layer's backward")
                }
                try p.wait()
                pending[b] = nil
            }
        }
        communicationSeconds += monotonicSeconds() - start
    }

    /// The elements rank `m` of `W` sums (and, sharded, updates).
    static func chunk(_ m: Int, of n: Int, ranks W: Int) -> Range<Int> { (n * m / W)..<(n * (m + 1) / W) }

    /// Applies the optimizer step after `finish`: the whole model on every rank, or, sharded,
    /// `optimizer.step(range: updateRange!)` on this rank's part of the one shared copy followed
    /// by one barrier, after which every rank sees the whole updated model. Returns whether
    /// every gradient was finite, agreed by all ranks.
    public func updateParameters(with optimizer: any Optimizer) throws -> Bool {
        guard let part = updateRange, let reduction = hostReduction else {
            optimizer.step()
            return optimizer.lastStepWasFinite
        }
        optimizer.step(range: part)
        // Flags in shared memory, not an all-reduce: Open MPI's allocates a temporary per call.
        // A rank rewrites its flag only after the next step's first barrier, which every rank
        // passes after reading these. Across hosts the host's flags suffice: part k holds the
        // same sums on every host, so every host sees the same flags.
        let shared = reduction.memory, L = reduction.host.worldSize
        let flags = shared.common + (shared.commonCount - L)
        flags[reduction.host.rank] = optimizer.lastStepWasFinite ? 0 : 1
        try shared.synchronize()
        return (0..<L).allSatisfy { flags[$0] == 0 }
    }

    /// Reduce-scatter and all-gather by loads and stores: rank r of a host of L ranks sums
    /// elements [n·r/L, n·(r+1)/L) of every host rank's buffer (in rank order, so the result
    /// does not depend on who computes it) into its own, all-reduces that part with rank r of
    /// the other hosts (hierarchical), then (`copyBack`) copies the other ranks' sums from their
    /// buffers.
    private func reduceThroughSharedMemory(_ reduction: HostReduction, copyBack: Bool) throws {
        let shared = reduction.memory
        let W = reduction.host.worldSize, r = reduction.host.rank, n = store.parameterCount
        let segments = shared.segments
        let own = segments[r]
        func chunk(_ m: Int) -> Range<Int> { Self.chunk(m, of: n, ranks: W) }
        try shared.synchronize()  // every rank's gradients are complete
        let mine = chunk(r)
        for m in 0..<W { sources[m] = UnsafePointer(segments[m] + mine.lowerBound) }
        ddp_sum_members(own + mine.lowerBound, sources, Int32(W), mine.count)
        // The other ranks of this host read this part only after the next barrier.
        try reduction.peers?.allReduce(UnsafeMutableBufferPointer(start: own + mine.lowerBound, count: mine.count), op: .sum)
        guard copyBack else { return }  // sharded: `updateParameters` ends with the next barrier
        try shared.synchronize()  // every chunk is summed
        for m in 0..<W where m != r {
            let theirs = chunk(m)
            (own + theirs.lowerBound).update(from: segments[m] + theirs.lowerBound, count: theirs.count)
        }
        try shared.synchronize()  // no rank overwrites its buffer (next backward) while another copies from it
    }
}
