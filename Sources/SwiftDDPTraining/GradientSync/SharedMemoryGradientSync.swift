import CSwiftDDPKernels
import SwiftDDPCollectives
import SwiftDDPNN

/// The ranks of a host reduce through shared memory: their gradient buffers live in memory all
/// of them map, each rank sums its 1/L of the elements straight from the L buffers, then copies
/// the other sums back — no messages, half the memory traffic of Open MPI's all-reduce. Across
/// hosts the summed part goes through one all-reduce with the same part's ranks on the other
/// hosts (`HostReduction`). Sharded, the copy back is left out: each rank updates only its
/// part (`ShardedOptimizer`).
final class SharedMemoryGradientSync: GradientSync {
    let mode: GradientSyncMode
    private let store: ParameterStore
    private let reduction: HostReduction
    /// Each rank needs only its own part of the sums (the update is sharded).
    private let sharded: Bool
    /// A scratch array of source pointers for the summing kernel.
    private let sources: UnsafeMutablePointer<UnsafePointer<Float>?>
    /// Across hosts: the all-reduce of this rank's part with the same part on the other hosts.
    private let peerAllReduce: (any PersistentCollective)?
    private(set) var communicationSeconds = 0.0

    /// Moves `store`'s gradients into this rank's shared segment. Collective.
    init(mode: GradientSyncMode, store: ParameterStore, reduction: HostReduction, sharded: Bool) throws {
        self.mode = mode
        self.store = store
        self.reduction = reduction
        self.sharded = sharded
        let host = reduction.host
        sources = .allocate(capacity: host.worldSize)
        sources.initialize(repeating: nil, count: host.worldSize)
        store.relocateGradients(to: reduction.memory.segments[host.rank], owner: reduction.memory)
        let mine = memberPart(host.rank, of: store.parameterCount, members: host.worldSize)
        do {
            peerAllReduce = try reduction.peers?.persistentAllReduce(
                UnsafeMutableBufferPointer(rebasing: store.gradients[mine]), op: .sum)
        } catch {
            sources.deallocate()
            throw error
        }
    }

    deinit {
        try? peerAllReduce?.wait()  // MPI may still write into the part of a step that ended with an error
        sources.deallocate()
    }

    var usesSharedMemory: Bool { true }
    var isHierarchical: Bool { reduction.peers != nil }
    var ranksPerHost: Int { reduction.host.worldSize }

    func resetTimers() { communicationSeconds = 0 }

    /// Reduce-scatter and all-gather by loads and stores: rank r of a host of L ranks sums
    /// elements [n·r/L, n·(r+1)/L) of every host rank's buffer (in rank order, so the result
    /// does not depend on who computes it) into its own, all-reduces that part with rank r of
    /// the other hosts, then copies the other ranks' sums from their buffers.
    func finish(wholeGradients: Bool = true) throws {
        let start = monotonicSeconds()
        defer { communicationSeconds += monotonicSeconds() - start }
        let shared = reduction.memory
        let L = reduction.host.worldSize, r = reduction.host.rank, n = store.parameterCount
        let segments = shared.segments
        let own = segments[r]
        func chunk(_ m: Int) -> Range<Int> { memberPart(m, of: n, members: L) }
        try shared.synchronize()  // every rank's gradients are complete
        let mine = chunk(r)
        for m in 0..<L { sources[m] = UnsafePointer(segments[m] + mine.lowerBound) }
        ddp_sum_members(own + mine.lowerBound, sources, Int32(L), mine.count)
        // The other ranks of this host read this part only after the next barrier.
        if let peerAllReduce {
            try peerAllReduce.start()
            try peerAllReduce.wait()
        }
        guard !sharded || wholeGradients else { return }  // the sharded update ends with the next barrier
        try shared.synchronize()  // every chunk is summed
        for m in 0..<L where m != r {
            let theirs = chunk(m)
            (own + theirs.lowerBound).update(from: segments[m] + theirs.lowerBound, count: theirs.count)
        }
        try shared.synchronize()  // no rank overwrites its buffer (next backward) while another copies from it
    }
}
