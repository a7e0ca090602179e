import Foundation
import SwiftDDPMPI
/// A `ProcessGroup` whose members are threads of this process: N "ranks" in one process, for
/// tests of distributed logic without `mpirun`. Collectives are exact and deterministic
/// (reductions run in rank order) and check that every member passed the same length, so a
/// mismatch throws on every member instead of corrupting memory.
///
/// Use `LocalProcessGroup.run(worldSize:_:)` to start the members; a group of size 1
/// (`LocalProcessGroup.single()`) stands in for a one-process run. `run(worldSize:ranksPerHost:_:)`
/// simulates several hosts: consecutive ranks share a host name and shared memory, and
/// `sharedSegments` refuses a group that spans hosts, as over MPI.
public final class LocalProcessGroup: ProcessGroup, @unchecked Sendable {
    public let rank: Int
    public var worldSize: Int { world.size }
    public let hostName: String
    private let world: LocalWorld

    init(rank: Int, world: LocalWorld) {
        self.rank = rank
        self.world = world
        hostName = "localhost\(world.hosts[rank])"
    }

    /// A group with one member, this thread.
    public static func single() -> LocalProcessGroup {
        LocalProcessGroup(rank: 0, world: LocalWorld(size: 1))
    }

    /// Runs `body` once per rank, each on its own thread, and returns the results in rank
    /// order. Throws the lowest rank's error if any member threw.
    /// - Parameters:
    ///   - worldSize: the number of members.
    ///   - ranksPerHost: members per simulated host (ranks 0..<k on the first, and so on;
    ///     default: all on one host).
    ///   - deadlockSeconds: a member waiting this long in one collective fails the whole group
    ///     (a rank that skipped a collective would otherwise hang the test run); once the
    ///     group has failed, `run` waits at most two more such periods for every member.
    public static func run<R: Sendable>(
        worldSize: Int, ranksPerHost: Int? = nil, deadlockSeconds: Double = 120,
        _ body: @escaping @Sendable (LocalProcessGroup) throws -> R
    ) throws -> [R] {
        precondition(worldSize >= 1, "worldSize must be at least 1")
        let perHost = ranksPerHost ?? worldSize
        precondition(perHost >= 1, "ranksPerHost must be at least 1")
        let world = LocalWorld(size: worldSize, hosts: (0..<worldSize).map { $0 / perHost },
                               deadlockSeconds: deadlockSeconds)
        let results = ResultBox<R>(count: worldSize)
        let done = DispatchGroup()
        for rank in 0..<worldSize {
            done.enter()
            // One real thread per rank: members block on each other, so a thread pool capped at
            // the core count could deadlock.
            let thread = Thread {
                let group = LocalProcessGroup(rank: rank, world: world)
                let outcome = Result { try body(group) }
                if case .failure = outcome { world.poison() }
                results.set(rank, outcome)
                done.leave()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        // A member stuck outside the collectives (a livelock in its own code) cannot be woken;
        // once the group has failed, give the others one to two more periods, then report.
        var waitsSinceFailure = 0
        while done.wait(timeout: .now() + deadlockSeconds) == .timedOut {
            if world.isPoisoned { waitsSinceFailure += 1 }
            if waitsSinceFailure >= 2 {
                throw ProcessGroupError(
                    "a member of the local group did not return within \(deadlockSeconds) s of a failure")
            }
        }
        return try results.values()
    }

    // MARK: Collectives

    public func allReduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp) throws {
        if worldSize == 1 { return }  // the identity, without the rendezvous's copies
        let all = try exchangeSameLength(Array(buffer), what: "allReduce")
        for i in 0..<buffer.count {
            var acc = all[0][i]
            for r in 1..<all.count { acc = op.combine(acc, all[r][i]) }
            buffer[i] = acc
        }
    }

    public func startAllReduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp) throws
        -> any PendingCollective
    {
        // Completes before returning: every member issues its collectives in the same order,
        // so eager completion is a valid schedule of a non-blocking all-reduce.
        try allReduce(buffer, op: op)
        return CompletedCollective()
    }

    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        guard (0..<worldSize).contains(root) else {
            throw ProcessGroupError("broadcast root \(root) is outside 0..<\(worldSize)")
        }
        if worldSize == 1 { return }
        let all = try exchangeSameLength(Array(buffer), what: "broadcast")
        _ = buffer.update(fromContentsOf: all[root])
    }

    public func allGather<T: MPIScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>)
        throws
    {
        guard receive.count == send.count * worldSize else {
            throw ProcessGroupError(
                "allGather receive buffer has \(receive.count) elements, expected \(send.count) × \(worldSize)")
        }
        let all = try exchangeSameLength(Array(send), what: "allGather")
        _ = receive.update(fromContentsOf: all.joined())
    }

    public func barrier() throws {
        _ = try world.exchange(rank: rank, value: 0, what: "barrier")
    }

    /// Members are threads of one process: rank 0 allocates every segment and the common
    /// region in one object that all members keep alive (it is freed when the last lets go);
    /// the world's barrier orders memory (it synchronizes through a lock).
    public func sharedSegments(floats count: Int, common: Int) throws -> (any SharedSegments)? {
        if Set(world.hosts).count > 1 { return nil }
        let created = rank == 0 ? LocalSharedMemory(members: worldSize, count: count, common: common) : nil
        let all = try world.exchange(rank: rank, value: created as Any, what: "sharedSegments")
        let memory = all[0] as! LocalSharedMemory
        return LocalSharedSegments(group: self, memory: memory)
    }

    public func split(color: Int?, key: Int) throws -> (any ProcessGroup)? {
        if let color, color < 0 { throw ProcessGroupError("split color must be non-negative, got \(color)") }
        let requests = try world.exchange(rank: rank, value: [color ?? -1, key], what: "split").map { $0 as! [Int] }
        guard let color else {
            _ = try world.exchange(rank: rank, value: Optional<LocalWorld>.none as Any, what: "split")
            return nil
        }
        let members = (0..<worldSize).filter { requests[$0][0] == color }
            .sorted { (requests[$0][1], $0) < (requests[$1][1], $1) }
        // The first member of each new group creates its world; a second exchange hands it out.
        let leader = members[0]
        let created: LocalWorld? = rank == leader
            ? LocalWorld(size: members.count, hosts: members.map { world.hosts[$0] },
                         deadlockSeconds: world.deadlockSeconds)
            : nil
        let worlds = try world.exchange(rank: rank, value: created as Any, what: "split")
        let subWorld = worlds[leader] as! LocalWorld
        return LocalProcessGroup(rank: members.firstIndex(of: rank)!, world: subWorld)
    }

    public func hostGroup() throws -> any ProcessGroup {
        try split(color: world.hosts[rank], key: rank)!
    }

    /// Exchanges `values` with every member and checks that all passed the same length.
    private func exchangeSameLength<T>(_ values: [T], what: String) throws -> [[T]] {
        let all = try world.exchange(rank: rank, value: values, what: "\(what) of \(T.self)").map { $0 as! [T] }
        if let bad = all.firstIndex(where: { $0.count != values.count }) {
            throw ProcessGroupError(
                "\(what): rank \(rank) passed \(values.count) elements but rank \(bad) passed \(all[bad].count)")
        }
        return all
    }
}

/// Zero-filled memory for the members of a local group: one segment per member and a common
/// region.
final class LocalSharedMemory: @unchecked Sendable {
    let segments: [UnsafeMutablePointer<Float>]
    let common: UnsafeMutablePointer<Float>
    let count: Int, commonCount: Int

    init(members: Int, count: Int, common: Int) {
        func zeroed(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
            p.initialize(repeating: 0, count: max(n, 1))
            return p
        }
        segments = (0..<members).map { _ in zeroed(count) }
        self.common = zeroed(common)
        self.count = count
        commonCount = common
    }

    deinit {
        for s in segments { s.deallocate() }
        common.deallocate()
    }
}

final class LocalSharedSegments: SharedSegments {
    let group: LocalProcessGroup
    let memory: LocalSharedMemory
    var segments: [UnsafeMutablePointer<Float>] { memory.segments }
    var count: Int { memory.count }
    var common: UnsafeMutablePointer<Float> { memory.common }
    var commonCount: Int { memory.commonCount }

    init(group: LocalProcessGroup, memory: LocalSharedMemory) {
        self.group = group
        self.memory = memory
    }

    func synchronize() throws { try group.barrier() }
}

final class CompletedCollective: PendingCollective {
    func wait() throws {}
    func test() throws -> Bool { true }
}

/// The rendezvous shared by the members of one local group: each collective is an exchange in
/// which every member deposits a value and receives everybody's.
final class LocalWorld: @unchecked Sendable {
    let size: Int
    /// The simulated host of each member.
    let hosts: [Int]
    private let condition = NSCondition()
    private var slots: [Any?]
    private var arrived = 0
    private var generation = 0
    private var completed: [Any] = []
    private var poisoned = false
    let deadlockSeconds: Double

    init(size: Int, hosts: [Int]? = nil, deadlockSeconds: Double = 120) {
        self.size = size
        self.hosts = hosts ?? Array(repeating: 0, count: size)
        self.deadlockSeconds = deadlockSeconds
        slots = Array(repeating: nil, count: size)
    }

    var isPoisoned: Bool {
        condition.lock()
        defer { condition.unlock() }
        return poisoned
    }

    /// Deposits `value` for `rank`, waits for every member, and returns all values in rank order.
    /// Throws if another member failed, so the survivors do not wait forever, and on every
    /// member if they called different collectives (`what`: the collective and element type).
    func exchange(rank: Int, value: Any, what: String) throws -> [Any] {
        let all = try exchange(rank: rank, value: (what, value) as Any).map { $0 as! (String, Any) }
        if let odd = all.firstIndex(where: { $0.0 != what }) {
            throw ProcessGroupError(
                "collective mismatch: rank \(rank) called \(what), rank \(odd) called \(all[odd].0)")
        }
        return all.map(\.1)
    }

    private func exchange(rank: Int, value: Any) throws -> [Any] {
        condition.lock()
        defer { condition.unlock() }
        if poisoned { throw ProcessGroupError("another rank of the local group failed") }
        slots[rank] = value
        arrived += 1
        let myGeneration = generation
        if arrived == size {
            completed = slots.map { $0! }
            slots = Array(repeating: nil, count: size)
            arrived = 0
            generation += 1
            condition.broadcast()
            return completed
        }
        let deadline = Date().addingTimeInterval(deadlockSeconds)
        while generation == myGeneration && !poisoned {
            if !condition.wait(until: deadline) && generation == myGeneration && !poisoned {
                poisoned = true
                condition.broadcast()
                let waiting = (0..<size).filter { slots[$0] != nil }
                throw ProcessGroupError(
                    "deadlock: rank \(rank) waited \(deadlockSeconds) s in a collective "
                        + "that ranks \(waiting) of \(size) reached")
            }
        }
        if generation == myGeneration { throw ProcessGroupError("another rank of the local group failed") }
        return completed
    }

    /// Marks the world failed and wakes every waiting member.
    func poison() {
        condition.lock()
        poisoned = true
        condition.broadcast()
        condition.unlock()
    }
}

/// Per-rank results written from the member threads.
final class ResultBox<R>: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<R, any Error>?]
    init(count: Int) { results = Array(repeating: nil, count: count) }
    func set(_ rank: Int, _ result: Result<R, any Error>) {
        lock.lock(); results[rank] = result; lock.unlock()
    }
    func values() throws -> [R] {
        lock.lock(); defer { lock.unlock() }
        // Report the first real failure rather than a "another rank failed" echo.
        let failures = results.compactMap { r -> (any Error)? in
            if case .failure(let e)? = r { return e } else { return nil }
        }
        if let first = failures.first(where: { !("\($0)".hasPrefix("another rank")) }) ?? failures.first {
            throw first
        }
        return results.map { try! $0!.get() }
    }
}
