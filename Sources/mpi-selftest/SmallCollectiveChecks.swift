import SwiftDDPCollectives
import Foundation
import SwiftDDPMPI
/// `MPIProcessGroup`'s small collectives (shared memory on one host, `HostMailbox`) against
/// MPI's own on the same values: every type and reduction, back-to-back calls that reuse the
/// two slots, the size limit on both sides, rank-ordered float sums, argument errors.
func checkSmallCollectives(_ c: Checks, group: MPIProcessGroup, world: Communicator) throws {
    let rank = world.rank, size = world.size
    let forcedMPI = ProcessInfo.processInfo.environment["SWIFTDDP_SMALL_COLLECTIVES"] == "mpi"
    // The group above already ran small collectives, which decided the path.
    let expected: Bool? = size == 1 ? nil : !forcedMPI
    c.expect(group.smallCollectivesUseSharedMemory == expected,
             "small collectives path: \(String(describing: group.smallCollectivesUseSharedMemory)), "
                 + "expected \(String(describing: expected))")

    func checkType<T: MPIScalar>(_ type: T.Type, _ name: String) throws {
        for (call, n) in [1, 7, 300, 2].enumerated() {
            let mine = (0..<n).map { T(exactly: (rank + 1) * (call + 2) + $0 % 5)! }
            for op in ReductionOp.allCases {
                var ours = mine
                try group.allReduce(&ours, op: op)
                let reference = try world.allreduce(mine, op: op)
                c.expect(ours == reference, "small allReduce \(op) \(name) n=\(n) equals MPI_Allreduce")
            }
        }
    }
    try checkType(Float.self, "Float")
    try checkType(Double.self, "Double")
    try checkType(Int32.self, "Int32")
    try checkType(Int64.self, "Int64")

    // Many calls in a row, mixing the three collectives, lengths and roots: a rank that
    // overwrote a slot another rank was still reading would show up as a wrong value.
    var allRight = true
    for call in 0..<200 {
        let n = 1 + (call * 37) % 900
        let value = Double(call * 1000 + rank)
        switch call % 3 {
        case 0:
            var buffer = [Double](repeating: value, count: n)
            try group.allReduce(&buffer, op: .max)
            allRight = allRight && buffer.allSatisfy { $0 == Double(call * 1000 + size - 1) }
        case 1:
            let gathered = try group.allGather([Double](repeating: value, count: n))
            allRight = allRight && (0..<size).allSatisfy { m in
                gathered[(m * n)..<((m + 1) * n)].allSatisfy { $0 == Double(call * 1000 + m) }
            }
        default:
            let root = call % size
            var buffer = [Double](repeating: rank == root ? value : -1, count: n)
            try group.broadcast(&buffer, root: root)
            allRight = allRight && buffer.allSatisfy { $0 == Double(call * 1000 + root) }
        }
        if call % 50 == 7 && rank == 0 { usleep(2000) }  // let the others run ahead to the barrier
    }
    c.expect(allRight, "200 back-to-back small collectives")

    // At the limit (shared memory) and just past it (MPI): both right.
    let limit = MPIProcessGroup.smallCollectiveBytes / MemoryLayout<Float>.stride
    for n in [limit, limit + 1] {
        var buffer = [Float](repeating: Float(rank + 1), count: n)
        try group.allReduce(&buffer, op: .sum)
        c.expect(buffer.allSatisfy { $0 == Float(size * (size + 1) / 2) }, "allReduce of \(n) floats (limit \(limit))")
        let gathered = try group.allGather([Float](repeating: Float(rank), count: n))
        c.expect((0..<size).allSatisfy { gathered[$0 * n] == Float($0) && gathered[($0 + 1) * n - 1] == Float($0) },
                 "allGather of \(n) floats per rank")
    }

    // Float sums in rank order on every member: the same bits everywhere, equal to the
    // left-to-right sum of the contributions.
    let contributions: [Float] = (0..<size).map { m in m % 2 == 0 ? 1e8 + Float(m) : -1e8 + 0.75 * Float(m) }
    var sum = [contributions[rank]]
    try group.allReduce(&sum, op: .sum)
    let leftToRight = contributions.dropFirst().reduce(contributions[0], +)
    let everyone = try world.allgather([Int32(bitPattern: sum[0].bitPattern)])
    c.expect(everyone.allSatisfy { $0 == everyone[0] }, "float sum: same bits on every rank")
    if expected == true { c.expect(sum[0] == leftToRight, "float sum in rank order") }

    // Arguments MPI would reject are still rejected (through MPI, with its error class).
    c.expectMPIError("group broadcast with root == size", errorClass: MPIError.Class.root) {
        var v: [Float] = [1]
        try group.broadcast(&v, root: size)
    }
    c.expectMPIError("group allGather with wrong receive size", errorClass: MPIError.Class.count) {
        var out = [Double](repeating: 0, count: size + 1)
        try [Double(1)].withUnsafeBufferPointer { s in
            try out.withUnsafeMutableBufferPointer { try group.allGather(s, into: $0) }
        }
    }
    var after = [Int32(1)]
    try group.allReduce(&after, op: .sum)
    c.expect(after == [Int32(size)], "group usable after errors")
}
