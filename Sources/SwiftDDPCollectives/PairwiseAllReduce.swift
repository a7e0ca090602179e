import CSwiftDDPKernels
import SwiftDDPMPI

/// A sum all-reduce of one float buffer, set up once and run every step, built on persistent
/// point-to-point transfers instead of MPI's collectives:
///
/// 1. reduce-scatter: rank r sends part q of its buffer to rank q and receives part r of
///    every other rank's;
/// 2. rank r sums part r over all ranks, in rank order, into its buffer;
/// 3. all-gather: rank r sends its summed part to every rank and receives theirs in place.
///
/// "Pairwise": every pair of ranks exchanges directly, all pairs at once (not Open MPI's
/// pairwise-exchange algorithm of W−1 rounds).
///
/// Why not `MPI_Allreduce`: Open MPI's allocates temporaries on every call (its persistent
/// variant too), and which algorithm it picks — hence the order of the additions — depends on
/// the message size and the number of ranks. Here every run reuses the same requests and
/// buffers (no heap allocation once Open MPI's own free lists are warm), and each element is
/// summed rank 0 first, up to rank W−1, exactly as the shared-memory reduction and the mailbox
/// do: on one host every gradient-sync mode gives the same bits. Each rank sends and receives
/// 2·(W−1)/W of the buffer, as a ring does, but in two rounds of W−1 concurrent messages
/// instead of 2·(W−1) rounds of one; it keeps (W−1)/W of the buffer as scratch.
///
/// `test` moves from the first round to the second when it sees the first complete, so a run
/// started early (a gradient bucket) progresses while backward goes on. Only `test` and `wait`
/// on this object start its second round: members must complete their all-reduces in the same
/// order (a member blocked on one waits for the others' second round of it).
final class PairwiseAllReduce: PersistentCollective {
    private let buffer: UnsafeMutableBufferPointer<Float>
    private let rank: Int
    private let ranks: Int
    private let scatter: PersistentTransfers
    private let gather: PersistentTransfers
    /// Part `rank` of every other rank, in rank order (this rank's slot left out).
    private let received: UnsafeMutablePointer<Float>
    /// What `ddp_sum_members` sums: part `rank` of every rank, in rank order.
    private let sources: UnsafeMutablePointer<UnsafePointer<Float>?>
    private enum Phase { case idle, scattering, gathering }
    private var phase = Phase.idle

    /// Collective over `communicator`, which must carry no other messages with tags `tag` and
    /// `tag + 1`.
    init(buffer: UnsafeMutableBufferPointer<Float>, communicator: Communicator, tag: Int) throws {
        self.buffer = buffer
        rank = communicator.rank
        ranks = communicator.size
        let n = buffer.count, W = ranks, r = rank
        // An empty buffer sets up no transfers and sums nothing: the placeholder is never used.
        let base = buffer.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!
        func slice(_ range: Range<Int>) -> UnsafeMutableBufferPointer<Float> {
            UnsafeMutableBufferPointer(start: base + range.lowerBound, count: range.count)
        }
        let mine = memberPart(r, of: n, members: W)
        let peers = (0..<W).filter { $0 != r }
        let received = UnsafeMutablePointer<Float>.allocate(capacity: max(1, mine.count * peers.count))
        let sources = UnsafeMutablePointer<UnsafePointer<Float>?>.allocate(capacity: W)
        sources.initialize(repeating: nil, count: W)
        for m in 0..<W {
            let slot = m < r ? m : m - 1
            sources[m] = m == r ? UnsafePointer(base + mine.lowerBound) : UnsafePointer(received + slot * mine.count)
        }
        self.received = received
        self.sources = sources
        // Empty parts (fewer elements than ranks) travel in neither direction, on both sides.
        let scatterSends = peers.filter { !memberPart($0, of: n, members: W).isEmpty }
            .map { (buffer: UnsafeBufferPointer(slice(memberPart($0, of: n, members: W))), to: $0) }
        let scatterReceives = mine.isEmpty ? [] : peers.enumerated().map { slot, peer in
            (buffer: UnsafeMutableBufferPointer(start: received + slot * mine.count, count: mine.count), from: peer)
        }
        let gatherSends = mine.isEmpty ? [] : peers.map { (buffer: UnsafeBufferPointer(slice(mine)), to: $0) }
        let gatherReceives = peers.filter { !memberPart($0, of: n, members: W).isEmpty }
            .map { (buffer: slice(memberPart($0, of: n, members: W)), from: $0) }
        do {
            scatter = try communicator.persistentTransfers(sends: scatterSends, receives: scatterReceives, tag: tag)
            gather = try communicator.persistentTransfers(sends: gatherSends, receives: gatherReceives,
                                                          tag: tag + 1)
        } catch {
            received.deallocate()
            sources.deallocate()
            throw error
        }
    }

    deinit {
        // MPI may still read or write the buffers of a run that ended with an error
        try? scatter.wait()
        try? gather.wait()
        received.deallocate()
        sources.deallocate()
    }

    func start() throws {
        guard phase == .idle else { throw ProcessGroupError("all-reduce started again before it completed") }
        try scatter.start()
        phase = .scattering
    }

    func test() throws -> Bool {
        switch phase {
        case .idle: return true
        case .scattering:
            guard try ending({ try scatter.test() }) else { return false }
            try sumAndGather()
            return try test()
        case .gathering:
            guard try ending({ try gather.test() }) else { return false }
            phase = .idle
            return true
        }
    }

    func wait() throws {
        if phase == .scattering {
            try ending { try scatter.wait() }
            try sumAndGather()
        }
        if phase == .gathering {
            phase = .idle
            try gather.wait()
        }
    }

    /// A run whose transfers failed is over: nothing is summed or sent after it.
    private func ending<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch {
            phase = .idle
            throw error
        }
    }

    /// Step 2, then starts step 3. Its receives could not have been posted with step 1's: they
    /// write the parts step 1's sends read.
    private func sumAndGather() throws {
        phase = .idle  // if starting the gather fails, the run is over
        let mine = memberPart(rank, of: buffer.count, members: ranks)
        if !mine.isEmpty { ddp_sum_members(buffer.baseAddress! + mine.lowerBound, sources, Int32(ranks), mine.count) }
        try gather.start()
        phase = .gathering
    }
}
