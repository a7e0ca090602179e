import SwiftDDPCollectives
import SwiftDDPNN
import SwiftDDPTraining
import Testing
@testable import SwiftDDPTestSupport

/// Telling the exchange itself from waiting for other ranks (`ddp bench train`'s communication split).
@Suite("Exchange logs and their split into transfer and waiting")
struct ExchangeSplitTests {
    func close(_ a: [Double], _ b: [Double]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) < 1e-12 }
    }

    /// Each rank's split from its own durations and the group's element-wise minimum and maximum.
    func splits(_ durations: [[Double]], threshold: Double) -> [ExchangeSplit] {
        let count = durations[0].count
        let fastest = (0..<count).map { i in durations.map { $0[i] }.min()! }
        let slowest = (0..<count).map { i in durations.map { $0[i] }.max()! }
        return durations.map { ExchangeSplit(durations: $0, fastest: fastest, slowest: slowest,
                                             stallThreshold: threshold) }
    }

    @Test("the rank that arrives last sets the transfer; the others wait for it")
    func twoRanks() {
        let ms = 1e-3
        // rank 0 arrives early at exchanges 0 and 2 (far: stalls) and 1 (by 0.1 ms: not a stall)
        let split = splits([[1.0 * ms, 0.3 * ms, 3.0 * ms], [0.1 * ms, 0.2 * ms, 0.4 * ms]], threshold: 0.5 * ms)
        #expect(close(split.map(\.transfer), [0.7 * ms, 0.7 * ms]), "\(split)")
        #expect(close(split.map(\.waiting), [3.6 * ms, 0]), "\(split)")
        #expect(close(split.map(\.waitingInStalls), [3.5 * ms, 0]), "\(split)")
        #expect(split.map(\.stalls) == [2, 2], "\(split)")
    }

    @Test("three ranks: every rank's time is all accounted for; the last to arrive at every exchange never waits")
    func threeRanks() {
        let ms = 1e-3
        let durations = [[1, 2, 0.5], [3, 1, 0.25], [0.5, 0.75, 0.125]].map { $0.map { $0 * ms } }
        let split = splits(durations, threshold: 1.5 * ms)
        #expect(close(split.map(\.transfer), Array(repeating: 1.375 * ms, count: 3)), "\(split)")
        #expect(close(zip(split.map(\.transfer), split.map(\.waiting)).map { $0 + $1 },
                      durations.map { $0.reduce(0, +) }), "\(split)")
        #expect(split[2].waiting == 0 && split[1].waiting > 0, "\(split)")
        // a stall only at exchange 0 (2.5 ms apart); rank 1 waited 2.5 ms there, rank 0 0.5 ms
        #expect(close(split.map(\.waitingInStalls), [0.5 * ms, 2.5 * ms, 0]) && split.allSatisfy { $0.stalls == 1 },
                "\(split)")
    }

    @Test("a full log stops recording and says so until reset")
    func overflow() {
        let log = ExchangeLog(capacity: 2)
        for s in [0.5, 0.25, 0.125] { log.record(s) }
        #expect(log.count == 2 && log.overflowed && log.durations == [0.5, 0.25])
        log.reset()
        #expect(log.count == 0 && !log.overflowed && log.durations.isEmpty)
        log.record(1)
        #expect(log.durations == [1])
    }

    @Test("SyncBN logs each of its collectives (forward and backward); local BN logs none")
    func batchNormLogs() throws {
        let rows = 6, C = 3
        var rng = TestRandom(seed: 7)
        let x = rng.normal(2 * rows * C, mean: 0, std: 1), dy = rng.uniform(2 * rows * C)
        let logged = try LocalProcessGroup.run(worldSize: 2) { group -> [Bool] in
            try [group, nil].map { (g: (any ProcessGroup)?) -> Bool in
                let bn = BatchNorm1d(features: C, group: g)
                _ = try Model(bn, inputShape: .features(C))
                bn.resetParameters()
                let log = ExchangeLog(capacity: 8)
                bn.exchangeLog = log
                var input = Array(x[group.rank * rows * C..<(group.rank + 1) * rows * C])
                var grad = Array(dy[group.rank * rows * C..<(group.rank + 1) * rows * C])
                for _ in 0..<2 {
                    _ = try input.withUnsafeMutableBufferPointer {
                        try bn.forward(Matrix(base: $0.baseAddress!, rows: rows, cols: C), training: true)
                    }
                    _ = try grad.withUnsafeMutableBufferPointer {
                        try bn.backward(Matrix(base: $0.baseAddress!, rows: rows, cols: C), needsInputGradient: true)
                    }
                }
                let expected = g == nil ? 0 : 4
                return log.count == expected && !log.overflowed
                    && abs(log.durations.reduce(0, +) - bn.communicationSeconds) < 1e-12
            }
        }
        #expect(logged == [[true, true], [true, true]])
    }
}
