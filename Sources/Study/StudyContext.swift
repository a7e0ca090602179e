import Collectives
import Datasets
import Foundation
import NN
import Training

/// What every study needs: the ranks, the data (loaded once), the output folder, and a log
/// that only rank 0 prints.
public final class StudyContext {
    public let group: any ProcessGroup
    public let train: Dataset
    public let test: Dataset
    public let outputDirectory: String
    public let dataDescription: String
    public let log: (String) -> Void
    private var results: FileHandle?

    public init(group: any ProcessGroup, train: Dataset, test: Dataset, outputDirectory: String, dataDescription: String,
                log: @escaping (String) -> Void) throws
    {
        self.group = group
        self.train = train
        self.test = test
        self.outputDirectory = outputDirectory
        self.dataDescription = dataDescription
        self.log = log
        if group.rank == 0 {
            do {
                try FileManager.default.createDirectory(atPath: outputDirectory + "/figures", withIntermediateDirectories: true)
            } catch {
                throw TrainingError("cannot create output directory \(outputDirectory): \((error as NSError).localizedDescription)")
            }
            let path = outputDirectory + "/results.jsonl"
            guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
                throw TrainingError("cannot write \(path)")
            }
            results = handle
        }
    }

    /// Trains one configuration on `group` (all ranks of it take part) and returns its result.
    /// Rank 0 of the study appends it to results.jsonl.
    func run(_ config: TrainingConfiguration, study: String, name: String, mode: String, on group: any ProcessGroup)
        throws -> RunResult
    {
        let trainer = try Trainer(config: config, group: group, train: train, test: test)
        let summary = try trainer.run()
        return RunResult(study: study, name: name, mode: mode, ranks: group.worldSize, config: config, summary: summary)
    }

    func record(_ result: RunResult) {
        results?.write(Data((result.jsonLine + "\n").utf8))
        log(String(format: "  %@: test accuracy %.2f%%, %d steps, %.1f s", result.name, result.testAccuracy * 100,
                   result.steps, result.trainingSeconds))
    }

    func writeReport(_ name: String, _ text: String) throws {
        try text.write(toFile: outputDirectory + "/" + name, atomically: true, encoding: .utf8)
    }

    var figuresDirectory: String { outputDirectory + "/figures" }
}
