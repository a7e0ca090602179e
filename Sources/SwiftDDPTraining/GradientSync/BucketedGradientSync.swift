import SwiftDDPCollectives
import SwiftDDPNN

/// PyTorch DDP's gradient buckets: the parameters of consecutive leaf layers, in registration
/// order (never by their names), form buckets of at least `bucketBytes`, built from the last
/// leaf backwards (roughly the order backward produces them). A bucket is a contiguous range of
/// the flat buffer because leaves own consecutive slots; its non-blocking all-reduce starts
/// when the backward of every leaf in it has run, in whatever order (a residual block runs its
/// shortcut after its main branch). Each bucket's all-reduce is set up once (persistent) and
/// started every step; every element is summed in rank order, as in flat, so the two give the
/// same bits.
public final class BucketedGradientSync: GradientSync {
    public var mode: GradientSyncMode { .bucketed }
    private let group: any ProcessGroup
    private let store: ParameterStore
    /// Buckets: flat-buffer range and the number of leaves whose parameters it holds.
    public let buckets: [(range: Range<Int>, leaves: Int)]
    /// The bucket of each leaf (`Model.leaves` order); nil for leaves without parameters.
    private let leafBucket: [Int?]
    /// Leaves of each bucket whose backward has not run yet this step.
    private var remaining: [Int]
    /// Each bucket's all-reduce (empty on one rank), and whether it has started this step.
    private let allReduces: [any PersistentCollective]
    private var started: [Bool]
    /// Where the gradients were when the all-reduces were set up (they must not move).
    private let gradientBase: UnsafeMutablePointer<Float>?
    public private(set) var communicationSeconds = 0.0

    public init(model: Model, group: any ProcessGroup, bucketBytes: Int = 1 << 20) throws {
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
        if covered != model.store.parameterCount {
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
        let gradients = store.gradients
        gradientBase = gradients.baseAddress
        allReduces = group.worldSize > 1
            ? try built.map { try group.persistentAllReduce(UnsafeMutableBufferPointer(rebasing: gradients[$0.range]),
                                                            op: .sum) }
            : []
        started = Array(repeating: false, count: built.count)
    }

    deinit {
        // MPI may still write into the gradients of a step that ended with an error
        for b in allReduces.indices where started[b] { try? allReduces[b].wait() }
    }

    public func resetTimers() { communicationSeconds = 0 }

    /// Starts the all-reduce of `leaf`'s bucket once every leaf in it is done, and lets
    /// started ones progress.
    public func gradientsReady(leaf: Int) throws {
        guard group.worldSize > 1, let b = leafBucket[leaf] else { return }
        let start = monotonicSeconds()
        remaining[b] -= 1
        guard remaining[b] >= 0 else {
            throw NNError("gradient bucket \(b): more backward passes than its \(buckets[b].leaves) leaves "
                          + "(is a layer used twice in the model?)")
        }
        if remaining[b] == 0 {
            guard store.gradients.baseAddress == gradientBase else {
                throw NNError("bucketed gradient sync: the gradient buffer moved after the all-reduces were set up")
            }
            if started[b] {  // left running by a step that ended with an error
                started[b] = false
                try allReduces[b].wait()
            }
            try allReduces[b].start()
            started[b] = true
        }
        for s in allReduces.indices where started[s] { _ = try allReduces[s].test() }
        communicationSeconds += monotonicSeconds() - start
    }

    /// Waits for every bucket's all-reduce.
    public func finish(wholeGradients: Bool = true) throws {
        guard group.worldSize > 1 else { return }
        let start = monotonicSeconds()
        // Counts start over for the next step, however this one ends.
        defer { for b in buckets.indices { remaining[b] = buckets[b].leaves } }  // in place: no new array
        var neverStarted: Int?
        var firstError: (any Error)?
        for b in allReduces.indices {  // every started run is waited for, even after one failed
            if started[b] {
                started[b] = false
                do { try allReduces[b].wait() } catch { firstError = firstError ?? error }
            } else if neverStarted == nil {
                neverStarted = b
            }
        }
        if let firstError { throw firstError }
        if let b = neverStarted {
            throw NNError("gradient bucket \(b) was never started: the model skipped a layer's backward")
        }
        communicationSeconds += monotonicSeconds() - start
    }
}
