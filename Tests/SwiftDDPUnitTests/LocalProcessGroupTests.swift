import SwiftDDPCollectives
import SwiftDDPMPI
import Testing
@testable import SwiftDDPTestSupport
@Suite("In-process process groups", .timeLimit(.minutes(5)))
struct LocalProcessGroupTests {
    @Test("single-rank group is the identity", arguments: [ReductionOp.sum, .max, .min, .product])
    func single(op: ReductionOp) throws {
        let group = LocalProcessGroup.single()
        var values: [Float] = [1.5, -2, 3]
        try group.allReduce(&values, op: op)
        #expect(values == [1.5, -2, 3])
        #expect(group.rank == 0 && group.worldSize == 1)
        #expect(try group.allGather([7.0]) == [7.0])
    }

    @Test("a rank that leaves without a collective fails the others with a deadlock error instead of hanging")
    func deadlock() throws {
        #expect {
            _ = try LocalProcessGroup.run(worldSize: 3, deadlockSeconds: 2) { group in
                var x = [Float(group.rank)]
                if group.rank != 1 { try group.allReduce(&x, op: .sum) }  // rank 1 never joins
            }
        } throws: { "\($0)".contains("deadlock: rank") && "\($0)".contains(" of 3 reached") }
    }

    @Test("ranks calling different collectives fail on every rank (no crash, no hang)")
    func mismatch() throws {
        let results = try LocalProcessGroup.run(worldSize: 2) { group -> String in
            var x = [Float(group.rank)]
            do {
                if group.rank == 0 { try group.allReduce(&x, op: .sum) } else { try group.barrier() }
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        #expect(results[0].contains("collective mismatch: rank 0 called allReduce of Float, rank 1 called barrier"),
                "\(results)")
        #expect(results[1].contains("collective mismatch: rank 1 called barrier, rank 0 called allReduce"),
                "\(results)")
    }

    @Test("all-reduce over threads", arguments: [1, 2, 3, 4, 8])
    func allReduce(worldSize: Int) throws {
        let results = try LocalProcessGroup.run(worldSize: worldSize) { group -> [[Double]] in
            let mine = [Double(group.rank), Double(group.rank * group.rank), -1]
            var sum = mine, max = mine, min = mine
            try group.allReduce(&sum, op: .sum)
            try group.allReduce(&max, op: .max)
            try group.allReduce(&min, op: .min)
            return [sum, max, min]
        }
        let n = Double(worldSize)
        let squares = (0..<worldSize).reduce(0.0) { $0 + Double($1 * $1) }
        for r in results {
            #expect(r[0] == [n * (n - 1) / 2, squares, -n])
            #expect(r[1] == [n - 1, (n - 1) * (n - 1), -1])
            #expect(r[2] == [0, 0, -1])
        }
    }

    @Test("broadcast, all-gather, barrier and non-blocking all-reduce")
    func otherCollectives() throws {
        let results = try LocalProcessGroup.run(worldSize: 4) { group -> ([Int64], [Int32], [Float]) in
            var b: [Int64] = group.rank == 2 ? [9, 8, 7] : [0, 0, 0]
            try group.broadcast(&b, root: 2)
            let gathered = try group.allGather([Int32(group.rank), 10])
            try group.barrier()
            var f = [Float](repeating: 1, count: 3)
            try f.withUnsafeMutableBufferPointer { try group.startAllReduce($0, op: .sum).wait() }
            return (b, gathered, f)
        }
        for (b, gathered, f) in results {
            #expect(b == [9, 8, 7])
            #expect(gathered == [0, 10, 1, 10, 2, 10, 3, 10])
            #expect(f == [4, 4, 4])
        }
    }

    @Test("rank-to-rank round trip: measured between ranks 0 and 1, the same figure on every rank, none for one rank")
    func roundTrip() throws {
        #expect(try LocalProcessGroup.single().rankRoundTripNanoseconds() == nil)
        for size in [2, 3] {
            // Generous timeout: other suites may be using both cores.
            let figures = try LocalProcessGroup.run(worldSize: size) {
                try $0.rankRoundTripNanoseconds(rounds: 1_000, timeoutSeconds: 60)
            }
            #expect(figures.allSatisfy { $0 != nil && $0! > 0 && $0 == figures[0] }, "\(figures)")
        }
    }

    @Test("split into subgroups ordered by key")
    func split() throws {
        let results = try LocalProcessGroup.run(worldSize: 6) { group -> [Int] in
            // groups of 3 consecutive ranks, reversed order inside each
            let sub = try group.split(color: group.rank / 3, key: -group.rank)!
            var members = [Int64(group.rank)]
            let all = try sub.allGather(members)
            members = all
            return [sub.rank, sub.worldSize] + all.map(Int.init)
        }
        #expect(results[0] == [2, 3, 2, 1, 0])
        #expect(results[1] == [1, 3, 2, 1, 0])
        #expect(results[3] == [2, 3, 5, 4, 3])
        #expect(results[5] == [0, 3, 5, 4, 3])
        // members passing nil join no group
        let joined = try LocalProcessGroup.run(worldSize: 3) { group -> Int in
            try group.split(color: group.rank == 1 ? nil : 0, key: group.rank)?.worldSize ?? -1
        }
        #expect(joined == [2, -1, 2])
    }

    @Test("mismatched lengths and invalid roots throw on every rank")
    func errors() throws {
        let outcomes = try LocalProcessGroup.run(worldSize: 3) { group -> [String] in
            var messages: [String] = []
            var v = [Float](repeating: 1, count: group.rank == 1 ? 2 : 3)
            do { try group.allReduce(&v) } catch { messages.append("\(error)") }
            var w: [Float] = [1]
            do { try group.broadcast(&w, root: 3) } catch { messages.append("\(error)") }
            var out = [Double](repeating: 0, count: 2)
            do {
                try [1.0].withUnsafeBufferPointer { s in
                    try out.withUnsafeMutableBufferPointer { try group.allGather(s, into: $0) }
                }
            } catch { messages.append("\(error)") }
            return messages
        }
        for messages in outcomes {
            #expect(messages.count == 3)
            #expect(messages[0].contains("passed"))
            #expect(messages[1].contains("root 3"))
            #expect(messages[2].contains("expected 1 × 3"))
        }
    }

    @Test("a failing rank releases the others instead of hanging")
    func failurePropagates() throws {
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            _ = try LocalProcessGroup.run(worldSize: 3) { group -> Int in
                if group.rank == 1 { throw Boom() }
                try group.barrier()
                try group.barrier()
                return 0
            }
        }
    }
}
