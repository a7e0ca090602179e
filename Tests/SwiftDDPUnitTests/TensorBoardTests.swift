import Foundation
import Testing
@testable import SwiftDDPTraining
@testable import SwiftDDPTestSupport
/// Why the read-back test cannot run (the project's Python lacks tensorboard), or nil.
private let tensorBoardMissing = Executables.pythonMissing("tensorboard.backend.event_processing.event_accumulator")
    .map { _ in "\(Executables.python) cannot import tensorboard: run scripts/setup.sh" }

@Suite("TensorBoard event files")
struct TensorBoardTests {
    @Test("CRC-32C of \"123456789\" is the standard check value 0xE3069283")
    func crcCheckValue() {
        #expect(crc32c(Array("123456789".utf8)) == 0xE306_9283)
        #expect(crc32c([]) == 0)
    }

    @Test("TensorBoard's own reader reads the scalars back: tags, steps, wall times, float32 values",
          .enabled(if: tensorBoardMissing == nil, Comment(rawValue: tensorBoardMissing ?? "")))
    func readBack() throws {
        let dir = TemporaryDirectory()
        let logdir = dir.path + "/runs/a"  // intermediate directories are created
        var expected: [String: [(step: Int, value: Double)]] = [:]
        do {
            let writer = try TensorBoardWriter(directory: logdir)
            writer.addScalar("custom/x", 0.1, step: 1, wallTime: 1_000.25)
            writer.addScalar("custom/x", -1.5e-3, step: 3_000_000_000)  // step needs a 5-byte varint
            expected["custom/x"] = [(1, 0.1), (3_000_000_000, -1.5e-3)]

            writer.write(["kind": "step", "step": 10, "epoch": 0, "loss": 0.7, "lr": 0.05,
                          "samples_per_second": 1234.5])
            var diagnostics = DiagnosticsRecord(step: 10, epoch: 0, loss: .nan)  // NaN: skipped
            diagnostics.weightGradNorm = [0.1, 0.2, 0.4]
            diagnostics.saturation = [0.25]
            diagnostics.distributionShift = [.infinity, 2.5]  // the infinity is skipped
            var record = diagnostics.json
            record["communication"] = ["syncbn_seconds": 0.125, "note": "not a number"] as [String: Any]
            record["flag"] = true  // not a number either
            writer.write(record)
            writer.write(["kind": "eval", "epoch": 0, "test_loss": 0.4, "test_accuracy": 0.9])
            writer.write(["kind": "step", "step": 20, "epoch": 1, "loss": 0.3, "lr": 0.025,
                          "samples_per_second": 2000])
            writer.write(["kind": "eval", "epoch": 1, "test_loss": 0.35, "test_accuracy": 0.91,
                          "statistics": "precise BN"])
            writer.write(["kind": "summary", "steps": 20, "final_loss": 0.3])
            writer.flush()
        }
        expected["train/loss"] = [(10, 0.7), (20, 0.3)]
        expected["train/lr"] = [(10, 0.05), (20, 0.025)]
        expected["train/samples_per_second"] = [(10, 1234.5), (20, 2000)]
        expected["diagnostics/weight_grad_norm/0"] = [(10, 0.1)]
        expected["diagnostics/weight_grad_norm/1"] = [(10, 0.2)]
        expected["diagnostics/weight_grad_norm/2"] = [(10, 0.4)]
        expected["diagnostics/saturation/0"] = [(10, 0.25)]
        expected["diagnostics/first_last_grad_ratio"] = [(10, 0.25)]
        expected["diagnostics/distribution_shift/1"] = [(10, 2.5)]
        expected["diagnostics/communication/syncbn_seconds"] = [(10, 0.125)]
        expected["eval/test_loss"] = [(10, 0.4)]
        expected["eval/test_accuracy"] = [(10, 0.9)]
        expected["eval/test_loss_precise_bn"] = [(20, 0.35)]
        expected["eval/test_accuracy_precise_bn"] = [(20, 0.91)]

        let script = """
            import json, sys
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
            acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
            acc.Reload()
            scalars = {t: [[e.wall_time, e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
            print(json.dumps({"file_version": acc.file_version, "scalars": scalars}))
            """
        let outcome = try Executables.run(Executables.python, ["-c", script, logdir], timeout: 120)
        expectEnded(outcome, status: 0)
        // stdout and stderr arrive together: the JSON is the last line, after any warning
        let report = try jsonObject(try #require(outcome.output.split(separator: "\n").last))
        #expect(report["file_version"] as? Double == 2, "the first event's \"brain.Event:2\":\n\(outcome.output)")
        let scalars: [String: [[Double]]] = try report.value("scalars")
        #expect(Set(scalars.keys) == Set(expected.keys), "\(outcome.output)")
        for (tag, points) in expected {
            let read = scalars[tag] ?? []
            #expect(read.map { Int($0[1]) } == points.map(\.step), "steps of \(tag)")
            // simple_value is a float32, so the float32 value must come back exactly (compared as Float:
            // Foundation's JSON parsing may miss the double by an ulp)
            #expect(read.map { Float($0[2]) } == points.map { Float($0.value) }, "values of \(tag)")
        }
        let now = Date().timeIntervalSince1970
        #expect(scalars["custom/x"]?.first?[0] == 1_000.25)
        #expect(try #require(scalars["train/loss"]?.first?[0]) > now - 600, "wall time defaults to now")
    }

    @Test("the file is named like TensorFlow's, and a second writer does not overwrite the first")
    func fileName() throws {
        let dir = TemporaryDirectory()
        let first = try TensorBoardWriter(directory: dir.path), second = try TensorBoardWriter(directory: dir.path)
        let name = URL(fileURLWithPath: first.path).lastPathComponent
        #expect(name.hasPrefix("events.out.tfevents."), "\(name)")
        #expect(name.hasSuffix(".\(getpid()).0"), "\(name)")
        #expect(first.path != second.path)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(files.count == 2, "\(files)")
    }

    @Test("a directory that cannot be created throws an error naming the path")
    func unwritableDirectory() throws {
        let dir = TemporaryDirectory()
        let file = dir.write("plain-file", [1, 2, 3])
        let error = #expect(throws: TrainingError.self) { try TensorBoardWriter(directory: file + "/tb") }
        #expect(error?.message.hasPrefix("cannot create TensorBoard event file \(file)/tb/") == true,
                "\(error?.message ?? "no error")")
    }
}
