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

    @Test("the rank that arrives last sets the transfer; the others wait for it")
    func twoRanks() {
        let ms = 1e-3
        // rank 0 arrives early at exchanges 0 and 2 (far: stalls) and 1 (by 0.1 ms: not a stall)
        let split = ExchangeSplit(durations: [[1.0 * ms, 0.3 * ms, 3.0 * ms], [0.1 * ms, 0.2 * ms, 0.4 * ms]],
                                  groupSize: 2, stallThreshold: 0.5 * ms)
        #expect(close(split.transfer, [0.7 * ms, 0.7 * ms]), "\(split)")
        #expect(close(split.waiting, [3.6 * ms, 0]), "\(split)")
        #expect(abs(split.waitingInStalls - 3.5 * ms) < 1e-12, "\(split)")
    }

    @Test("SyncBN groups: each rank's transfer comes from its own group's last arrival")
    func groups() {
        let ms = 1e-3
        let durations = [[1, 2], [3, 1], [5, 6], [7, 9]].map { $0.map { Double($0) * ms } }
        let split = ExchangeSplit(durations: durations, groupSize: 2, stallThreshold: 1.5 * ms)
        #expect(close(split.transfer, [2 * ms, 2 * ms, 11 * ms, 11 * ms]), "\(split)")
        #expect(close(split.waiting, [1 * ms, 2 * ms, 0, 5 * ms]), "\(split)")
        // stalls: group 0 at exchange 0 (2 ms apart), group 1 at both (2 and 3 ms)
        #expect(abs(split.waitingInStalls - 7 * ms) < 1e-12, "\(split)")
        // every rank's time is all accounted for
        let totals = durations.map { $0.reduce(0, +) }
        #expect(close(zip(split.transfer, split.waiting).map { $0 + $1 }, totals))
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
