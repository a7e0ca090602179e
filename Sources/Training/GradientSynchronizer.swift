import CKernels
import Collectives
import NN

/// How gradients are averaged across ranks.
public enum GradientSyncMode: String, CaseIterable, Sendable, Codable {
    /// One all-reduce of the whole flat gradient buffer after backward.
    case flat
    /// Buckets of consecutive layers whose non-blocking all-reduces start as soon as backward
    /// has produced their gradients, overlapping communication with the rest of backward
    /// (PyTorch DDP's gradient buckets).
    case bucketed
    /// Ranks on one host reduce through shared memory: the gradient buffers live in memory all
    /// of them map (`ProcessGroup.sharedSegments`), each rank sums its 1/W of the elements
    /// straight from every rank's buffer, then copies the other sums back — no messages, half
    /// the memory traffic of Open MPI's all-reduce. Falls back to `flat` when the ranks span
    /// hosts or the shared memory cannot be set up (`sharedMemoryUnavailable` says why).
    case shared
}

/// Averages the flat gradient buffer over the ranks of a process group, so N ranks with
/// per-rank batch B take the same step as one process with batch N·B. The trainer scales the
/// loss gradient by 1/W before backward (everything after it is linear in it), so summing the
/// ranks' gradients here *is* the average: no extra pass over the parameters.
///
/// Bucketed mode: parameters of consecutive layers form buckets of at least `bucketBytes`,
/// built from the last layer backwards (the order backward produces them). A bucket is a
/// contiguous range of the flat buffer because layers own consecutive slots. Both modes sum
/// the same values in the same collective algorithm per element, and give the same result.
public final class GradientSynchronizer {
    public let mode: GradientSyncMode
    private let group: any ProcessGroup
    private let store: ParameterStore
    /// Flat-buffer range of each layer's parameters (nil for layers without parameters).
    private let layerRanges: [Range<Int>?]
    /// Buckets: flat-buffer range and the lowest layer index whose backward completes it.
    public let buckets: [(range: Range<Int>, firstLayer: Int)]
    private var pending: [(any PendingCollective)?]
    /// Shared mode: every rank's gradient buffer (nil when the mode is not shared or the ranks
    /// span hosts) and a scratch array of source pointers for the reduction.
    private let shared: (any SharedSegments)?
    private let sources: UnsafeMutablePointer<UnsafePointer<Float>?>
    /// Whether gradients are reduced through shared memory (mode `shared` on one host).
    public var usesSharedMemory: Bool { shared != nil }
    /// Why mode `shared` fell back to one all-reduce on a single host (e.g. /dev/shm is full).
    public private(set) var sharedMemoryUnavailable: String?
    /// Seconds spent starting, testing and waiting on gradient collectives since `resetTimers`.
    public private(set) var communicationSeconds = 0.0

    /// - Parameters:
    ///   - model: the model whose gradient buffer is averaged (in `shared` mode it is moved
    ///     into the shared memory).
    ///   - group: the ranks to average over.
    ///   - mode: how (see `GradientSyncMode`).
    ///   - bucketBytes: the smallest bucket in bucketed mode.
    public init(model: Sequential, group: any ProcessGroup, mode: GradientSyncMode, bucketBytes: Int = 1 << 20) throws {
        self.mode = mode
        self.group = group
        store = model.store
        let slotsByPrefix = Dictionary(grouping: model.store.parameterSlots) { String($0.name.split(separator: ".")[0]) }
        layerRanges = model.layers.indices.map { i in
            guard let slots = slotsByPrefix[String(i)], let lo = slots.map(\.offset).min(),
                  let hi = slots.map({ $0.offset + $0.count }).max() else { return nil }
            return lo..<hi
        }
        var built: [(Range<Int>, Int)] = []
        var current: Range<Int>? = nil
        var first = 0
        for i in stride(from: model.layers.count - 1, through: 0, by: -1) {
            guard let r = layerRanges[i] else { continue }
            current = current.map { r.lowerBound..<$0.upperBound } ?? r
            first = i
            if current!.count * MemoryLayout<Float>.size >= bucketBytes {
                built.append((current!, first))
                current = nil
            }
        }
        if let current { built.append((current, first)) }
        buckets = built.map { (range: $0.0, firstLayer: $0.1) }
        pending = Array(repeating: nil, count: built.count)
        sources = .allocate(capacity: max(group.worldSize, 1))
        sources.initialize(repeating: nil, count: max(group.worldSize, 1))
        var segments: (any SharedSegments)? = nil
        if mode == .shared, group.worldSize > 1 {
            do {
                segments = try group.sharedSegments(floats: model.store.parameterCount)
            } catch let error as ProcessGroupError {
                // Agreed by every rank of the host (the whole world here): all fall back alike.
                sharedMemoryUnavailable = error.message
            }
        }
        if let segments { model.store.relocateGradients(to: segments.segments[group.rank], owner: segments) }
        shared = segments
    }

    deinit { sources.deallocate() }

    public func resetTimers() { communicationSeconds = 0 }

    /// Called by the model after layer `layer`'s backward (bucketed mode): starts the
    /// all-reduce of every bucket that is now complete and lets earlier ones progress.
    public func gradientsReady(layer: Int) throws {
        guard mode == .bucketed, group.worldSize > 1 else { return }
        let start = monotonicSeconds()
        for (b, bucket) in buckets.enumerated() where bucket.firstLayer == layer && pending[b] == nil {
            let range = bucket.range
            pending[b] = try group.startAllReduce(
                UnsafeMutableBufferPointer(rebasing: store.gradients[range]), op: .sum)
        }
        for p in pending { _ = try p?.test() }
        communicationSeconds += monotonicSeconds() - start
    }

    /// Completes the averaging after backward: waits for the buckets (bucketed) or runs the
    /// single all-reduce (flat).
    public func finish() throws {
        guard group.worldSize > 1 else { return }
        let start = monotonicSeconds()
        switch mode {
        case .shared where shared != nil:
            try reduceThroughSharedMemory(shared!)
        case .flat, .shared:
            try group.allReduce(store.gradients, op: .sum)
        case .bucketed:
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

    /// Reduce-scatter and all-gather by loads and stores: rank r sums elements
    /// [n·r/W, n·(r+1)/W) of every rank's buffer (in rank order, so the result does not depend
    /// on who computes it) into its own, then copies the other ranks' sums from their buffers.
    private func reduceThroughSharedMemory(_ shared: any SharedSegments) throws {
        let W = group.worldSize, r = group.rank, n = store.parameterCount
        let segments = shared.segments
        let own = segments[r]
        func chunk(_ m: Int) -> Range<Int> { (n * m / W)..<(n * (m + 1) / W) }
        try shared.synchronize()  // every rank's gradients are complete
        let mine = chunk(r)
        for m in 0..<W { sources[m] = UnsafePointer(segments[m] + mine.lowerBound) }
        ddp_sum_members(own + mine.lowerBound, sources, Int32(W), mine.count)
        try shared.synchronize()  // every chunk is summed
        for m in 0..<W where m != r {
            let theirs = chunk(m)
            (own + theirs.lowerBound).update(from: segments[m] + theirs.lowerBound, count: theirs.count)
        }
        try shared.synchronize()  // no rank overwrites its buffer (next backward) while another copies from it
    }
}
