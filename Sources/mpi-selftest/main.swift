// mpi-selftest: exercises every binding of the MPI and Collectives modules with known values.
// Run it under mpirun with any number of ranks; it prints one summary line from rank 0
// ("N passed, M failed") and exits non-zero if any check failed on any rank.
import SwiftDDPCollectives
import SwiftDDPMPI
#if canImport(Glibc)
import Glibc
#endif

/// Records checks on this rank.
final class Checks {
    let rank: Int
    var passed = 0
    var failures: [String] = []
    init(rank: Int) { self.rank = rank }

    func expect(_ condition: @autoclosure () throws -> Bool, _ name: String) {
        do {
            if try condition() { passed += 1 } else { failures.append(name) }
        } catch {
            failures.append("\(name): threw \(error)")
        }
    }

    /// Expects `body` to throw an `MPIError` of the given class with a non-empty message.
    func expectMPIError(_ name: String, errorClass: Int32?, _ body: () throws -> Void) {
        do {
            try body()
            failures.append("\(name): did not throw")
        } catch let error as MPIError {
            let classOK = errorClass.map { error.errorClass == $0 } ?? true
            if classOK && !error.message.isEmpty { passed += 1 } else {
                failures.append("\(name): wrong error \(error) (class \(error.errorClass))")
            }
        } catch {
            failures.append("\(name): threw a non-MPI error \(error)")
        }
    }
}

func runChecks(_ c: Checks, world: Communicator) throws {
    let rank = world.rank, size = world.size

    // Runtime and communicator basics
    c.expect(MPIRuntime.isActive, "runtime is active")
    c.expect(MPIRuntime.providedThreadLevel != nil, "provided thread level recorded")
    c.expect(rank >= 0 && rank < size, "rank in range")
    c.expect(!(try Communicator.processorName()).isEmpty, "processor name")
    let me = try Communicator.selfOnly()
    c.expect(me.size == 1 && me.rank == 0, "MPI_COMM_SELF has one rank")
    try world.barrier()

    // All-reduce, every type and op, arrays and buffer pointers, in place and out of place
    func checkAllreduce<T: MPIScalar>(_ type: T.Type, name: String) throws {
        let n = 5
        let mine = (0..<n).map { T(exactly: rank * 10 + $0)! }
        var sum = mine
        try world.allreduce(&sum, op: .sum)
        let expectedSum = (0..<n).map { i in T(exactly: (0..<size).reduce(0) { $0 + $1 * 10 + i })! }
        c.expect(sum == expectedSum, "allreduce sum \(name)")
        var maxBuffer = mine
        try maxBuffer.withUnsafeMutableBufferPointer { try world.allreduce($0, op: .max) }
        c.expect(maxBuffer == (0..<n).map { T(exactly: (size - 1) * 10 + $0)! }, "allreduce max \(name)")
        let minResult = try world.allreduce(mine, op: .min)
        c.expect(minResult == (0..<n).map { T(exactly: $0)! }, "allreduce min out-of-place \(name)")
        c.expect(mine == (0..<n).map { T(exactly: rank * 10 + $0)! }, "out-of-place leaves input \(name)")
        var out = [T](repeating: 0, count: n)
        try mine.withUnsafeBufferPointer { s in
            try out.withUnsafeMutableBufferPointer { try world.allreduce(s, into: $0, op: .sum) }
        }
        c.expect(out == expectedSum, "allreduce sum into buffer \(name)")
    }
    try checkAllreduce(Float.self, name: "Float")
    try checkAllreduce(Double.self, name: "Double")
    try checkAllreduce(Int32.self, name: "Int32")
    try checkAllreduce(Int64.self, name: "Int64")

    // Large buffer (exercises the pipelined/segmented algorithms)
    var big = [Float](repeating: Float(rank + 1), count: 1 << 20)
    try world.allreduce(&big)
    let bigExpected = Float(size * (size + 1) / 2)
    c.expect(big.allSatisfy { $0 == bigExpected }, "allreduce 1M floats")

    // Broadcast from every root
    for root in 0..<size {
        var values: [Double] = rank == root ? [Double(root), 2.5, -1] : [0, 0, 0]
        try world.broadcast(&values, root: root)
        c.expect(values == [Double(root), 2.5, -1], "broadcast from root \(root)")
        var ints: [Int64] = rank == root ? [Int64.max, Int64(root)] : [0, 0]
        try ints.withUnsafeMutableBufferPointer { try world.broadcast($0, root: root) }
        c.expect(ints == [Int64.max, Int64(root)], "broadcast Int64 buffer from root \(root)")
    }

    // All-gather, all-gather-v, gather
    let gathered = try world.allgather([Int32(rank), Int32(rank * rank)])
    c.expect(gathered == (0..<size).flatMap { [Int32($0), Int32($0 * $0)] }, "allgather")
    let varying = try world.allgatherv([Float](repeating: Float(rank), count: rank + 1))
    c.expect(varying.count == size
                 && (0..<size).allSatisfy { varying[$0] == [Float](repeating: Float($0), count: $0 + 1) },
             "allgatherv with per-rank lengths")
    let empty = try world.allgatherv(rank % 2 == 0 ? [Int64]() : [Int64(rank)])
    c.expect((0..<size).allSatisfy { empty[$0] == ($0 % 2 == 0 ? [] : [Int64($0)]) },
             "allgatherv with empty contributions")
    let root = size - 1
    let atRoot = try world.gather([Double(rank) + 0.5], root: root)
    c.expect(rank == root ? atRoot == (0..<size).map { Double($0) + 0.5 } : atRoot.isEmpty, "gather at root")

    // Non-blocking all-reduce: wait and test
    var pending = [Double](repeating: Double(rank), count: 1000)
    try pending.withUnsafeMutableBufferPointer { buffer in
        let request = try world.iallreduce(buffer, op: .sum)
        try request.wait()
        c.expect(request.isComplete, "iallreduce wait completes")
    }
    c.expect(pending.allSatisfy { $0 == Double(size * (size - 1) / 2) }, "iallreduce result")
    var polled = [Int32](repeating: 1, count: 64)
    try polled.withUnsafeMutableBufferPointer { buffer in
        let request = try world.iallreduce(buffer, op: .sum)
        // Polling alone must drive the collective to completion (no wait() call), in bounded time.
        let clock = ContinuousClock(), deadline = clock.now + .seconds(60)
        var completed = false
        while !completed && clock.now < deadline { completed = try request.test() }
        c.expect(completed && request.isComplete, "iallreduce test polls to completion within 60 s")
        if !completed { try request.wait() }  // never leave the buffer while MPI may still write it
        c.expect(try request.test(), "a completed request stays complete when tested again")
    }
    c.expect(polled.allSatisfy { $0 == Int32(size) }, "iallreduce (test) result")

    // Persistent all-reduce: set up once, run three times on new values (wait, then test, then wait)
    var runs = [Float](repeating: 0, count: 1000)
    try runs.withUnsafeMutableBufferPointer { buffer in
        let persistent = try world.persistentAllreduce(buffer, op: .sum)
        let idle = try persistent.test()
        c.expect(!persistent.isActive && idle, "a persistent request starts inactive")
        for run in 1...3 {
            for i in buffer.indices { buffer[i] = Float(run * (rank + 1) + i % 7) }
            try persistent.start()
            var threw = false
            do { try persistent.start() } catch { threw = true }
            c.expect(threw, "a persistent request cannot start twice in one run")
            if run == 2 {
                let clock = ContinuousClock(), deadline = clock.now + .seconds(60)
                while !(try persistent.test()) && clock.now < deadline {}
            }
            try persistent.wait()
            c.expect(!persistent.isActive, "persistent run \(run) completes")
            let expected = (0..<buffer.count).allSatisfy {
                buffer[$0] == Float(run * size * (size + 1) / 2 + size * ($0 % 7))
            }
            c.expect(expected, "persistent all-reduce run \(run) sums that run's values")
        }
    }

    // Duplicate and split
    let dup = try world.duplicate()
    c.expect(dup.rank == rank && dup.size == size, "duplicate keeps rank and size")
    c.expect(try dup.allreduce([Int32(1)]) == [Int32(size)], "collective on duplicate")
    let parity = try world.split(color: rank % 2, key: -rank)!  // reversed order inside each group
    let members = (0..<size).filter { $0 % 2 == rank % 2 }
    c.expect(parity.size == members.count, "split group size")
    c.expect(parity.rank == members.count - 1 - members.firstIndex(of: rank)!, "split key orders ranks")
    c.expect(try parity.allreduce([Int64(rank)]) == [Int64(members.reduce(0, +))], "collective on split")
    let none = try world.split(color: rank == 0 ? nil : 0, key: rank)
    c.expect(rank == 0 ? none == nil : none?.size == size - 1, "split with MPI_UNDEFINED color")

    // Error paths: MPI errors come back as thrown MPIError with class and text
    c.expectMPIError("broadcast with root == size", errorClass: MPIError.Class.root) {
        var v: [Float] = [1]
        try world.broadcast(&v, root: size)
    }
    c.expectMPIError("broadcast with negative root", errorClass: MPIError.Class.root) {
        var v: [Float] = [1]
        try world.broadcast(&v, root: -1)
    }
    c.expectMPIError("gather with invalid root", errorClass: MPIError.Class.root) {
        _ = try world.gather([Float(1)], root: size + 3)
    }
    c.expectMPIError("out-of-place allreduce with mismatched counts", errorClass: MPIError.Class.count) {
        var out = [Float](repeating: 0, count: 3)
        try [Float](repeating: 1, count: 4).withUnsafeBufferPointer { s in
            try out.withUnsafeMutableBufferPointer { try world.allreduce(s, into: $0) }
        }
    }
    c.expectMPIError("allgather with wrong receive size", errorClass: MPIError.Class.count) {
        var out = [Double](repeating: 0, count: size + 1)
        try [Double(1)].withUnsafeBufferPointer { s in
            try out.withUnsafeMutableBufferPointer { try world.allgather(s, into: $0) }
        }
    }
    c.expectMPIError("split with negative color", errorClass: nil) {
        _ = try world.split(color: -5, key: 0)
    }
    // The communicator still works after the errors above.
    c.expect(try world.allreduce([Int32(1)]) == [Int32(size)], "communicator usable after errors")

    // The ProcessGroup seam over MPI
    let group = try MPIProcessGroup.world()
    c.expect(group.rank == rank && group.worldSize == size, "MPIProcessGroup rank/size")
    var g = [Float](repeating: 1.5, count: 7)
    try group.allReduce(&g)
    c.expect(g.allSatisfy { $0 == 1.5 * Float(size) }, "MPIProcessGroup allReduce")
    var b: [Int64] = rank == 0 ? [42, 7] : [0, 0]
    try group.broadcast(&b, root: 0)
    c.expect(b == [42, 7], "MPIProcessGroup broadcast")
    c.expect(try group.allGather([Double(rank)]) == (0..<size).map(Double.init), "MPIProcessGroup allGather")
    var overlapped = [Float](repeating: Float(rank), count: 4096)
    try overlapped.withUnsafeMutableBufferPointer { buffer in
        let pendingCollective = try group.startAllReduce(buffer, op: .sum)
        try pendingCollective.wait()
    }
    c.expect(overlapped.allSatisfy { $0 == Float(size * (size - 1) / 2) }, "MPIProcessGroup startAllReduce")
    let halves = try group.split(color: rank < size / 2 ? 0 : 1, key: rank)!
    c.expect(halves.worldSize == (rank < size / 2 ? size / 2 : size - size / 2), "MPIProcessGroup split size")
    let onlyRoot = try group.split(color: rank == 0 ? 0 : nil, key: 0)
    c.expect(rank == 0 ? onlyRoot?.worldSize == 1 : onlyRoot == nil, "MPIProcessGroup split with nil color")
    try group.barrier()

    // Small collectives through shared memory (every member on this host): the same results
    // as MPI's, in rank order on every member, with slots reused call after call.
    try checkSmallCollectives(c, group: group, world: world)

    // Persistent point-to-point transfers, and the gradient all-reduce on them
    try checkPersistentTransfers(c, group: group, world: world)

    // SyncBatchNorm over MPI with uneven and empty per-rank batches
    if size > 1 { try checkSyncBatchNorm(c, group: group) }
}

// MARK: main

var exitCode: Int32 = 0
do {
    let level = try MPIRuntime.initialize(required: .funneled)
    let world = try Communicator.world()
    let checks = Checks(rank: world.rank)
    if world.rank == 0 {
        print("mpi-selftest: world size \(world.size), thread level \(level)")
    }
    do {
        try runChecks(checks, world: world)
    } catch {
        checks.failures.append("unexpected error: \(error)")
    }
    for failure in checks.failures { print("rank \(world.rank): FAILED \(failure)") }
    let totals = try world.allreduce([Int64(checks.passed), Int64(checks.failures.count)])
    if world.rank == 0 {
        print("mpi-selftest: \(totals[0]) passed, \(totals[1]) failed")
    }
    exitCode = totals[1] == 0 ? 0 : 1
    try MPIRuntime.finalize()
    try MPIRuntime.finalize()  // finalize is idempotent
    if MPIRuntime.isActive { print("rank \(world.rank): FAILED runtime still active after finalize"); exitCode = 1 }
} catch {
    print("mpi-selftest: \(error)")
    try? MPIRuntime.finalize()
    exitCode = 2
}
exit(exitCode)
