import SwiftDDPMPI
/// Small collectives among ranks that share a host, through shared memory instead of MPI
/// messages: each rank stores its contribution in its own slot of a shared mapping, all pass
/// one barrier, and every rank reads the slots it needs in rank order.
///
/// Why: a training step with SyncBatchNorm makes about nine collectives of a few KB (the
/// per-layer statistics and gradient sums, the loss). Through Open MPI each costs a few
/// microseconds of protocol, and its all-reduce `malloc`s a temporary every call (5 per step);
/// here each is one barrier plus the loads, and allocates nothing. Reductions run in rank
/// order, so every rank gets the same bits.
///
/// Two slots per rank alternate between calls: a rank writes slot `p` at call k only after
/// passing call k−1's barrier, which no rank reaches before it has finished reading slot `p`
/// at call k−2. One barrier per call is therefore enough.
final class HostMailbox {
    /// The largest payload per rank that goes through the mailbox (a SyncBatchNorm layer of
    /// up to 4,095 channels); larger ones go through MPI, whose algorithms are built for bandwidth.
    static let slotBytes = 64 * 1024

    private let memory: any SharedSegments
    private let rank: Int
    private let size: Int
    /// Each rank's segment start, cached so a call touches no Swift array.
    private let bases: UnsafeMutablePointer<UnsafeMutableRawPointer>
    private var parity = 0

    /// - Parameters:
    ///   - memory: one segment of at least `2 · slotBytes` bytes per member.
    ///   - rank: this member's index into `memory.segments`.
    init(memory: any SharedSegments, rank: Int) {
        precondition(memory.count * MemoryLayout<Float>.size >= 2 * Self.slotBytes, "mailbox segments too small")
        self.memory = memory
        self.rank = rank
        size = memory.segments.count
        bases = .allocate(capacity: size)
        for (m, segment) in memory.segments.enumerated() { bases[m] = UnsafeMutableRawPointer(segment) }
    }

    deinit { bases.deallocate() }

    /// Floats per member segment that `init` needs.
    static var segmentFloats: Int { 2 * slotBytes / MemoryLayout<Float>.size }

    private func slot(_ member: Int, _ parity: Int) -> UnsafeMutableRawPointer {
        bases[member] + parity * Self.slotBytes
    }

    /// Stores `bytes` in this rank's next slot and waits until every rank has stored its own;
    /// returns the slot parity to read.
    private func post(_ bytes: UnsafeRawBufferPointer) throws -> Int {
        precondition(bytes.count <= Self.slotBytes, "payload larger than a mailbox slot")
        parity ^= 1
        if let source = bytes.baseAddress, bytes.count > 0 {
            slot(rank, parity).copyMemory(from: source, byteCount: bytes.count)
        }
        try memory.synchronize()
        return parity
    }

    func allReduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp) throws {
        let p = try post(UnsafeRawBufferPointer(buffer))
        guard let out = buffer.baseAddress else { return }
        let raw = UnsafeMutableRawPointer(out), n = buffer.count
        // Concrete element types get specialized loops; the generic fallback is the same code.
        if T.self == Double.self {
            reduce(raw.assumingMemoryBound(to: Double.self), n, p, op)
        } else if T.self == Float.self {
            reduce(raw.assumingMemoryBound(to: Float.self), n, p, op)
        } else if T.self == Int32.self {
            reduce(raw.assumingMemoryBound(to: Int32.self), n, p, op)
        } else if T.self == Int64.self {
            reduce(raw.assumingMemoryBound(to: Int64.self), n, p, op)
        } else {
            reduce(out, n, p, op)
        }
    }

    /// `out[i] = slot₀[i] ∘ slot₁[i] ∘ …`, left to right in rank order.
    private func reduce<U: MPIScalar>(_ out: UnsafeMutablePointer<U>, _ n: Int, _ p: Int, _ op: ReductionOp) {
        out.update(from: UnsafeRawPointer(slot(0, p)).assumingMemoryBound(to: U.self), count: n)
        for m in 1..<size {
            let other = UnsafeRawPointer(slot(m, p)).assumingMemoryBound(to: U.self)
            // One loop per operation (chosen once), so each loop vectorizes.
            func accumulate(_ f: (U, U) -> U) { for i in 0..<n { out[i] = f(out[i], other[i]) } }
            switch op {
            case .sum: accumulate(+)
            case .product: accumulate(*)
            case .max: accumulate(Swift.max)
            case .min: accumulate(Swift.min)
            }
        }
    }

    func allGather<T: MPIScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>) throws {
        let bytes = send.count * MemoryLayout<T>.stride
        let p = try post(UnsafeRawBufferPointer(send))
        guard bytes > 0, let out = receive.baseAddress else { return }
        for m in 0..<size {
            UnsafeMutableRawPointer(out + m * send.count).copyMemory(from: slot(m, p), byteCount: bytes)
        }
    }

    func broadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        let p = try post(rank == root ? UnsafeRawBufferPointer(buffer) : UnsafeRawBufferPointer(start: nil, count: 0))
        guard rank != root, let out = buffer.baseAddress else { return }
        UnsafeMutableRawPointer(out).copyMemory(from: slot(root, p), byteCount: buffer.count * MemoryLayout<T>.stride)
    }
}
