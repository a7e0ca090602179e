import CSwiftDDPKernels
import SwiftDDPMPI
/// A persistent all-reduce of a small buffer among the ranks of one host, through a shared
/// mapping of its own, in two halves: `start` copies this rank's buffer into its slot and
/// publishes it; `wait` waits until every rank has published and reduces the slots in rank
/// order (the same bits on every rank).
///
/// Why two halves: a rank that starts early does not wait there, but computes until `wait`
/// (SyncBatchNorm's backward exchange runs the weight gradient of the layer after it in
/// between), so the ranks' jitter is absorbed instead of each exchange waiting for the slowest.
/// Unlike the host mailbox, whose slots every small collective shares, the object's own slots
/// let several run at once in any interleaving.
///
/// Each rank's segment: a generation flag (its own cache line), then two slots used in turn.
/// A rank writes slot g mod 2 at generation g once it has finished generation g − 1, whose wait
/// needed every rank's flag at g − 1, which each rank publishes only after reading its slots of
/// generation g − 2: the slot written is no longer read by anyone.
final class SharedMemoryAllReduce<T: MPIScalar>: PersistentCollective {
    private let memory: HostSharedMemory
    private let buffer: UnsafeMutableBufferPointer<T>
    private let op: ReductionOp
    private let rank: Int
    private let members: Int
    private let slotBytes: Int
    /// Each member's flag and segment start, so a call touches no Swift array.
    private let flags: UnsafeMutablePointer<UnsafeMutablePointer<Int64>?>
    private let bases: UnsafeMutablePointer<UnsafeMutableRawPointer>
    private var generation: Int64 = 0
    private var running = false

    private static var flagBytes: Int { 64 }

    /// Floats per member segment for a buffer of `bytes`.
    static func segmentFloats(bytes: Int) -> Int { (flagBytes + 2 * slotBytes(bytes)) / MemoryLayout<Float>.size }

    private static func slotBytes(_ bytes: Int) -> Int { (max(bytes, 1) + 63) / 64 * 64 }

    /// - Parameter memory: segments of `segmentFloats(bytes:)` floats per member, zeroed.
    init(memory: HostSharedMemory, buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp) {
        let bytes = buffer.count * MemoryLayout<T>.stride
        precondition(memory.count >= Self.segmentFloats(bytes: bytes), "shared all-reduce segments too small")
        self.memory = memory
        self.buffer = buffer
        self.op = op
        rank = memory.communicator.rank
        members = memory.segments.count
        slotBytes = Self.slotBytes(bytes)
        flags = .allocate(capacity: members)
        bases = .allocate(capacity: members)
        for (m, segment) in memory.segments.enumerated() {
            let base = UnsafeMutableRawPointer(segment)
            flags[m] = base.assumingMemoryBound(to: Int64.self)
            bases[m] = base + Self.flagBytes
        }
    }

    deinit {
        flags.deallocate()
        bases.deallocate()
    }

    private func slot(_ member: Int, _ generation: Int64) -> UnsafeMutableRawPointer {
        bases[member] + Int(generation & 1) * slotBytes
    }

    func start() throws {
        guard !running else { throw ProcessGroupError("shared-memory all-reduce started twice without a wait") }
        generation += 1
        if let source = buffer.baseAddress, !buffer.isEmpty {
            slot(rank, generation).copyMemory(from: source, byteCount: buffer.count * MemoryLayout<T>.stride)
        }
        ddp_flag_publish(flags[rank], generation)
        running = true
    }

    /// Completes the all-reduce (the buffer holds the result) if every rank has published.
    func test() throws -> Bool {
        guard running else { return true }
        guard ddp_flags_reached(flags, Int32(members), generation) != 0 else { return false }
        finish()
        return true
    }

    func wait() throws {
        guard running else { return }
        ddp_flags_wait(flags, Int32(members), generation)
        finish()
    }

    private func finish() {
        running = false
        let g = generation
        reduceInRankOrder(into: buffer, members: members, op: op) { UnsafeRawPointer(slot($0, g)) }
    }
}
