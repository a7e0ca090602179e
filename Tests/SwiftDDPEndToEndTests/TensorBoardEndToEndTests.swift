import Foundation
@testable import SwiftDDPTestSupport
import Testing

/// Why the read-back test cannot run (the project's Python lacks tensorboard), or nil.
private let tensorBoardMissing = Executables.pythonMissing("tensorboard.backend.event_processing.event_accumulator")
    .map { _ in "\(Executables.python) cannot import tensorboard: run scripts/setup.sh" }

@Suite("TensorBoard event files from ddp train")
struct TensorBoardEndToEndTests {
    /// The whole route: 2 ranks train with --tensorboard; only rank 0 writes, and what TensorBoard
    /// reads equals the metrics file of the same run.
    @Test("ddp train --tensorboard: TensorBoard reads back the metrics file's losses, lr, timings and accuracy",
          .enabled(if: tensorBoardMissing == nil, Comment(rawValue: tensorBoardMissing ?? "")))
    func trainWritesEvents() throws {
        let dir = TemporaryDirectory()
        let logdir = dir.path + "/tb", metrics = dir.path + "/metrics.jsonl"
        let outcome = try Executables.mpirun(np: 2, "ddp", [
            "train", "--synthetic", "--synthetic-train", "512", "--width", "16", "--depth", "2", "--batch-size", "32",
            "--epochs", "2", "--log-every", "2", "--diagnostics-every", "4", "--tensorboard", logdir,
            "--metrics", metrics,
        ], timeout: 120)
        expectEnded(outcome, status: 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: logdir)
        #expect(files.count == 1 && files[0].hasPrefix("events.out.tfevents."), "rank 0 alone writes: \(files)")
        let script = """
            import json, sys
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
            acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
            acc.Reload()
            print(json.dumps({t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}))
            """
        let read = try Executables.run(Executables.python, ["-c", script, logdir], timeout: 120)
        expectEnded(read, status: 0)
        let last = try #require(read.output.split(separator: "\n").last)
        let object = try jsonObject(last)
        let scalars = try #require(object as? [String: [[Double]]], "\(read.output)")
        let records = try jsonLines(metrics)
        let steps = records.filter { $0["kind"] as? String == "step" }
        for key in ["loss", "mean_loss", "lr", "samples_per_second", "syncbn_ms", "grad_sync_ms"] {
            // float32 in the event file; the metrics file's JSON may round the double's last digit
            let expected = try steps.map { (Double(try $0.int("step")), try $0.double(key)) }
            let read = scalars["train/\(key)"] ?? []
            #expect(read.map { $0[0] } == expected.map(\.0), "steps of train/\(key)")
            #expect(zip(read, expected).allSatisfy { abs($0[1] - $1.1) <= 1e-6 * max(abs($1.1), 1e-30) },
                    "train/\(key): \(read) vs \(expected)")
        }
        #expect(scalars["train/syncbn_ms"]?.allSatisfy { $0[1] > 0 } == true, "2 ranks with SyncBN communicate")
        let evals = records.filter { $0["kind"] as? String == "eval" }
        #expect(evals.count == 2 && scalars["eval/test_accuracy"]?.count == 2, "one point per epoch")
        #expect(scalars["eval/test_accuracy"]?.last.map { Float($0[1]) } == Float(try evals[1].double("test_accuracy")))
        #expect(scalars["diagnostics/weight_grad_norm/0"]?.isEmpty == false, "\(scalars.keys.sorted())")
    }
}
