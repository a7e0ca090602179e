import Foundation
import SwiftDDPCollectives
import SwiftDDPMPI

/// Persistent point-to-point transfers (`Communicator.persistentTransfers`), and the
/// gradient all-reduce built on them (`MPIProcessGroup.persistentAllReduce` of float sums):
/// runs reuse their requests on new values, results are summed in rank order on every rank,
/// every length from empty up (parts left empty when there are fewer elements than ranks), two
/// all-reduces in flight completed in either order, argument errors.
func checkPersistentTransfers(_ c: Checks, group: MPIProcessGroup, world: Communicator) throws {
    let rank = world.rank, size = world.size
    let next = (rank + 1) % size, previous = (rank + size - 1) % size

    // A ring: every rank sends to the next and receives from the previous, three runs.
    var outgoing = [Int64](repeating: 0, count: 300), incoming = [Int64](repeating: -1, count: 300)
    try outgoing.withUnsafeMutableBufferPointer { send in
        try incoming.withUnsafeMutableBufferPointer { receive in
            let ring = try world.persistentTransfers(sends: [(UnsafeBufferPointer(send), next)],
                                                     receives: [(receive, previous)], tag: 9)
            let idle = try ring.test()
            c.expect(!ring.isActive && idle, "persistent transfers start inactive")
            for run in 0..<3 {
                for i in send.indices { send[i] = Int64(run * 1_000_000 + rank * 1000 + i) }
                try ring.start()
                var threw = false
                do { try ring.start() } catch { threw = true }
                c.expect(threw, "persistent transfers cannot start twice in one run")
                if run == 1 {
                    let clock = ContinuousClock(), deadline = clock.now + .seconds(60)
                    while !(try ring.test()) && clock.now < deadline {}
                }
                try ring.wait()
                c.expect(!ring.isActive, "persistent transfers run \(run) completes")
                c.expect(receive.indices.allSatisfy { receive[$0] == Int64(run * 1_000_000 + previous * 1000 + $0) },
                         "persistent transfers run \(run) deliver that run's values")
            }
        }
    }
    c.expectMPIError("persistent send to a rank outside the communicator", errorClass: MPIError.Class.rank) {
        _ = try world.persistentTransfers(sends: [(UnsafeBufferPointer<Float>(start: nil, count: 0), size)],
                                          receives: [], tag: 1)
    }
    c.expectMPIError("persistent transfers with a negative tag", errorClass: MPIError.Class.tag) {
        _ = try world.persistentTransfers(sends: [(UnsafeBufferPointer<Float>(start: nil, count: 0), rank)],
                                          receives: [], tag: -1)
    }

    // The gradient all-reduce. Values whose float sum depends on the order of the additions:
    // every rank must hold ((x₀ + x₁) + x₂) + …, the shared-memory reduction's order, bit for bit.
    func value(_ member: Int, _ i: Int, _ run: Int) -> Float {
        Float(sin(Double(i &* 7919 + member * 104_729 + run * 13))) * Float(1 << (member % 3 * 8))
    }
    func expected(_ i: Int, _ run: Int) -> Float {
        var sum = value(0, i, run)
        for m in 1..<size { sum += value(m, i, run) }
        return sum
    }
    /// Σ|xₘ|: what rounding errors scale with, in another order of the additions.
    func magnitude(_ i: Int, _ run: Int) -> Float { (0..<size).reduce(0) { $0 + abs(value($1, i, run)) } }
    // 0 and size − 1 elements leave parts empty; 40,000 floats (160 KB) and more go past the
    // mailbox, to the pairwise exchange.
    let ownOrder = ProcessInfo.processInfo.environment["SWIFTDDP_GRADIENT_ALLREDUCE"] != "mpi"
    for n in [0, 1, max(size - 1, 1), 1000, 40_000, 262_147] {
        var buffer = [Float](repeating: 0, count: n)
        try buffer.withUnsafeMutableBufferPointer { b in
            let allReduce = try group.persistentAllReduce(b, op: .sum)
            for run in 0..<3 {
                for i in b.indices { b[i] = value(rank, i, run) }
                try allReduce.start()
                if run == 1 {
                    let clock = ContinuousClock(), deadline = clock.now + .seconds(60)
                    var done = false
                    while !done && clock.now < deadline { done = try allReduce.test() }
                    c.expect(done, "persistent allReduce n=\(n): test alone completes the run")
                }
                try allReduce.wait()
                // MPI's own all-reduce (asked for by the environment) adds in an order of its choosing.
                let wrong = b.indices.first {
                    ownOrder ? b[$0].bitPattern != expected($0, run).bitPattern
                        : abs(b[$0] - expected($0, run)) > 1e-6 * magnitude($0, run)
                }
                c.expect(wrong == nil, "persistent allReduce n=\(n) run \(run): the rank-order sum"
                         + (wrong.map { " (element \($0): \(b[$0]), expected \(expected($0, run)))" } ?? ""))
            }
        }
    }
    // Ranks whose buffers differ in length all refuse, instead of summing the wrong elements.
    if size > 1 {
        var uneven = [Float](repeating: 1, count: rank == 0 ? 3 : 4)
        var refused = false
        try uneven.withUnsafeMutableBufferPointer { b in
            do { _ = try group.persistentAllReduce(b, op: .sum) } catch let error as ProcessGroupError {
                refused = error.message.contains("3 to 4 elements")
            }
        }
        c.expect(refused, "persistent allReduce refuses buffers of different lengths on every rank")
    }
    // Two in flight, as gradient buckets are: started in one order, completed in the other.
    var first = [Float](repeating: 0, count: 70_001), second = [Float](repeating: 0, count: 50_000)
    try first.withUnsafeMutableBufferPointer { a in
        try second.withUnsafeMutableBufferPointer { b in
            let ra = try group.persistentAllReduce(a, op: .sum), rb = try group.persistentAllReduce(b, op: .sum)
            for run in 0..<2 {
                for i in a.indices { a[i] = value(rank, i, run) }
                for i in b.indices { b[i] = value(rank, i + 5, run) }
                try ra.start()
                try rb.start()
                if run == 0 {
                    try rb.wait()
                    try ra.wait()
                } else {
                    _ = try ra.test()
                    try ra.wait()
                    try rb.wait()
                }
                func close(_ x: Float, _ i: Int) -> Bool {
                    ownOrder ? x == expected(i, run) : abs(x - expected(i, run)) <= 1e-6 * magnitude(i, run)
                }
                c.expect(a.indices.allSatisfy { close(a[$0], $0) } && b.indices.allSatisfy { close(b[$0], $0 + 5) },
                         "two persistent allReduces in flight, run \(run): both sums right")
            }
        }
    }
}
