import SwiftDDPCollectives
import SwiftDDPDatasets
import SwiftDDPNN
import Testing
@testable import SwiftDDPTraining
@testable import SwiftDDPTestSupport

/// The trainer's step as observers see it (in-process ranks).
@Suite("Training observers", .timeLimit(.minutes(5)))
struct TrainingObserverTests {
    /// Records every call, and can skip the update of some steps.
    final class Recorder: TrainingObserver {
        var calls: [(phase: StepPhase?, step: Int)] = []
        var losses: [Double] = [], indices: [[Int]] = []
        var skipping: Set<Int> = []
        func didRun(_ phase: StepPhase, of step: TrainingStep) throws {
            calls.append((phase, step.index))
            if phase == .gather { indices.append(Array(step.indices)) }
            if phase == .reduce {
                losses.append(step.loss)
                if skipping.contains(step.index) { step.skipReason = "the test skips it" }
            }
        }
        func didSkip(_ step: TrainingStep) throws { calls.append((nil, step.index)) }
    }

    struct Seen: Sendable {
        var calls: [(phase: StepPhase?, step: Int)]
        var losses: [Double], indices: [[Int]]
        var stepLosses: [Double], steps: Int
        var order: [Int]
    }

    static func run(skipping: Set<Int>) throws -> [Seen] {
        var config = TrainerTests.configuration(norm: .syncbn, batch: 8, sync: .sharded)
        config.maxSteps = 6
        let frozen = config
        let data = try SyntheticData.make(count: 100, features: 20, classes: 4, noise: 0.4, seed: 2)
        return try LocalProcessGroup.run(worldSize: 2) { group in
            let trainer = try Trainer(config: frozen, group: group, train: data, test: data)
            let recorder = Recorder()
            recorder.skipping = skipping
            trainer.observers.append(recorder)
            let summary = try trainer.run()
            return Seen(calls: recorder.calls, losses: recorder.losses, indices: recorder.indices,
                        stepLosses: summary.stepLosses, steps: summary.steps, order: trainer.sampler.indices(epoch: 0))
        }
    }

    @Test("every step calls the observers after gather, forward, loss, backward, reduce and update, in order")
    func phasesInOrder() throws {
        for (rank, recorder) in try Self.run(skipping: []).enumerated() {
            let order = recorder.order
            let phases: [StepPhase?] = [.gather, .forward, .loss, .backward, .reduce, .update]
            #expect(recorder.calls.map(\.phase) == Array((0..<6).map { _ in phases }.joined()), "rank \(rank)")
            #expect(recorder.calls.map(\.step) == (0..<6).flatMap { Array(repeating: $0, count: 6) }, "rank \(rank)")
            #expect(recorder.indices == (0..<6).map { Array(order[8 * $0..<8 * $0 + 8]) }, "rank \(rank)'s shard")
            #expect(recorder.losses == recorder.stepLosses, "rank \(rank): the global loss after reduce")
        }
    }

    @Test("an observer that skips a step at reduce: no update, didSkip instead, on every rank")
    func skip() throws {
        let all = try Self.run(skipping: []), skipped = try Self.run(skipping: [2])
        for rank in 0..<2 {
            let recorder = skipped[rank]
            #expect(!recorder.calls.contains { $0.phase == .update && $0.step == 2 }, "rank \(rank)")
            #expect(recorder.calls.contains { $0.phase == nil && $0.step == 2 }, "rank \(rank)")
            #expect(recorder.stepLosses.count == 5 && recorder.steps == 6, "rank \(rank)")
            // Steps 0-2 trained the same model; from step 3 on the skipped update shows.
            #expect(Array(recorder.losses[0...2]) == Array(all[rank].losses[0...2]), "rank \(rank)")
            #expect(recorder.losses[3] != all[rank].losses[3], "rank \(rank)")
        }
    }
}
