import SwiftDDPCollectives
import SwiftDDPDatasets
import Foundation
import SwiftDDPNN
import SwiftDDPTraining
/// What every study needs: the ranks, the data (loaded once), the output folder, and a log
/// that only rank 0 prints.
public final class StudyContext {
    public let group: any ProcessGroup
    /// The training set; a study may narrow it to a subset (`Dataset.prefix`) before its runs.
    public internal(set) var train: Dataset
    public let test: Dataset
    public let outputDirectory: String
    public let dataDescription: String
    public let log: (String) -> Void
    /// The user's model and optimizer settings, applied to every run (`ddp study … --width 64`).
    public var overrides = RunOverrides()
    /// How the study words an error in its log and its own errors: by default `"\(error)"`, the
    /// library's names; a front end that names the fields otherwise sets its own (`ddp`: flags).
    public var describe: (any Error) -> String = { "\($0)" }
    private var results: FileHandle?
    /// Report-only: the runs of an earlier study in this folder, used instead of training.
    private let recorded: [RunResult]?

    /// - Parameter reportOnly: write the report and figures from `outputDirectory`'s results.jsonl
    ///   (an earlier run of the same study and options) instead of training; the file is kept.
    public init(group: any ProcessGroup, train: Dataset, test: Dataset, outputDirectory: String,
                dataDescription: String, reportOnly: Bool = false, log: @escaping (String) -> Void) throws
    {
        self.group = group
        self.train = train
        self.test = test
        self.outputDirectory = outputDirectory
        self.dataDescription = dataDescription
        self.log = log
        let path = outputDirectory + "/results.jsonl"
        if reportOnly {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw TrainingError("report only: cannot read \(path)")
            }
            let decoder = JSONDecoder()
            decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf",
                                                                            negativeInfinity: "-inf", nan: "nan")
            recorded = try text.split(separator: "\n").enumerated().map { index, line in
                do {
                    return try decoder.decode(RunResult.self, from: Data(line.utf8))
                } catch {
                    throw TrainingError("report only: line \(index + 1) of \(path) is not a study result")
                }
            }
            if group.rank == 0 {  // the figures are drawn again
                try? FileManager.default.createDirectory(atPath: outputDirectory + "/figures",
                                                         withIntermediateDirectories: true)
            }
            return
        }
        recorded = nil
        if group.rank == 0 {
            do {
                try FileManager.default.createDirectory(atPath: outputDirectory + "/figures",
                                                        withIntermediateDirectories: true)
            } catch {
                throw TrainingError(
                    "cannot create output directory \(outputDirectory): \((error as NSError).localizedDescription)")
            }
            guard FileManager.default.createFile(atPath: path, contents: nil),
                  let handle = FileHandle(forWritingAtPath: path) else {
                throw TrainingError("cannot write \(path)")
            }
            results = handle
        }
    }

    /// Trains one configuration on `group` (all ranks of it take part) once per seed —
    /// `config.seed`, `config.seed + 1`, … — and returns the results; rank 0 of the study appends
    /// each to results.jsonl as it finishes.
    func run(_ config: TrainingConfiguration, seeds: Int, study: String, name: String, mode: String,
             on group: any ProcessGroup) throws -> [RunResult]
    {
        var config = config
        overrides.apply(to: &config)
        config.fit(to: train)
        do {
            try Trainer.validate(config, worldSize: group.worldSize, train: train, test: test)
        } catch {
            // Every rank checks the same configuration: one line from rank 0, then all stop.
            throw TrainingError("study \(study), \(name): \(describe(error))", agreed: true)
        }
        return try (0..<UInt64(seeds)).map { offset in
            var c = config
            c.seed = config.seed &+ offset
            if let recorded {
                guard let result = recorded.first(where: { $0.study == study && $0.name == name && $0.seed == c.seed })
                else {
                    throw TrainingError("report only: results.jsonl has no run \(name) with seed \(c.seed)",
                                        agreed: true)
                }
                return result
            }
            let trainer = try Trainer(config: c, group: group, train: train, test: test)
            let summary: TrainingSummary
            do {
                summary = try trainer.run()
            } catch let error as TrainingError where error.agreed && error.message.hasPrefix("non-finite") {
                // A configuration that blows up (a deep net without normalization, say) is a result
                // of the study, not the end of it: recorded as diverged, with no test accuracy.
                log("  \(name)\(seeds > 1 ? " (seed \(c.seed))" : ""): diverged (\(error.message))")
                summary = TrainingSummary()
            }
            let result = RunResult(study: study, name: name, mode: mode, ranks: group.worldSize, config: c,
                                   summary: summary)
            results?.write(Data((result.jsonLine + "\n").utf8))
            log(String(format: "  %@%@: test accuracy %.2f%%, %d steps, %.1f s", name,
                       seeds > 1 ? " (seed \(c.seed))" : "", result.testAccuracy * 100, result.steps,
                       result.trainingSeconds))
            return result
        }
    }

    /// What every study run shares: the data the study loaded once, no step log, and the run's
    /// model, per-rank batch, length, learning rate, seed and diagnostics interval.
    static func runConfiguration(model: ModelConfiguration, batch: Int, epochs: Int, maxSteps: Int?,
                                 learningRate: Float, seed: UInt64, diagnosticsEvery: Int) -> TrainingConfiguration
    {
        var c = TrainingConfiguration()
        c.model = model
        c.dataDirectory = nil
        c.batchSize = batch
        c.epochs = epochs
        c.maxSteps = maxSteps
        c.learningRate = learningRate
        c.seed = seed
        c.diagnosticsEvery = diagnosticsEvery
        c.logEvery = Int.max / 2
        return c
    }

    /// The report's line naming what was trained: the network, optimizer and length of the first
    /// run, with the settings the study varies named as such.
    static func studiedLine(_ results: [RunResult], varying: String) -> String {
        guard let first = results.first?.configuration else { return "" }
        return "Every run (the first shown): \(first); the study varies \(varying)."
    }

    func writeReport(_ name: String, _ text: String) throws {
        try text.write(toFile: outputDirectory + "/" + name, atomically: true, encoding: .utf8)
    }

    var figuresDirectory: String { outputDirectory + "/figures" }
}
