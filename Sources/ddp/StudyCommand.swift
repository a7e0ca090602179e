import ArgumentParser
import Collectives
import Datasets
import Foundation
import Study
import Training

/// `ddp study vanishing|syncbn`: a grid of training runs inside one MPI job, with
/// machine-readable results, a Markdown report and gnuplot figures.
struct StudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study",
        abstract: "Run a study grid as one MPI job and write results.jsonl, report.md and figures/.",
        subcommands: [Vanishing.self, SyncBN.self])

    /// Options every study takes.
    struct Common: ParsableArguments {
        @Option(help: "Output directory (created).")
        var out: String

        @Flag(help: "A reduced grid that finishes in a few minutes.")
        var quick = false

        @Option(help: "Fashion-MNIST directory.")
        var data = "/usr/share/datasets/fashion-mnist"

        @Flag(help: "Use synthetic data.")
        var synthetic = false

        @Option(help: "Seed (of the first run of each configuration).")
        var seed: UInt64 = 0

        @Option(help: "Runs per configuration, with seeds --seed, --seed + 1, …; the report shows means and the test accuracy's standard deviation.")
        var seeds = 1

        func validate() throws {
            if !(1...100).contains(seeds) { throw ValidationError("--seeds must be between 1 and 100, got \(seeds)") }
        }
    }

    struct Vanishing: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deep MLPs × {sigmoid, tanh, relu} × {none, bn, syncbn} × init: gradient profiles, saturation, covariate shift, accuracy.")
        @OptionGroup var common: Common
        @Option(parsing: .upToNextOption, help: "Depths (default 10 20).")
        var depths: [Int] = []
        @Option(help: "Epochs per configuration (default 2; --quick: 60 steps).")
        var epochs: Int?

        func validate() throws {
            // Depth 0 has a single Linear layer: no gradient profile, nothing to vanish.
            if depths.contains(where: { $0 < 1 }) { throw ValidationError("--depths must be at least 1 (hidden layers)") }
            if let epochs, epochs < 1 { throw ValidationError("--epochs must be at least 1, got \(epochs)") }
        }

        func run() throws {
            var study = common.quick ? VanishingStudy.quick : VanishingStudy()
            if !depths.isEmpty { study.depths = depths }
            if let epochs { study.epochs = epochs; study.maxSteps = nil }
            study.seed = common.seed
            study.seeds = common.seeds
            let s = study
            try runStudy(common) { try s.run($0) }
        }
    }

    struct SyncBN: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "syncbn",
            abstract: "Per-rank batches × {local BN, SyncBN, SyncBN subgroups, 1 process}: accuracy, stability, statistics noise, communication.")
        @OptionGroup var common: Common
        @Option(parsing: .upToNextOption, help: "Per-rank batch sizes (default 2 4 8 16 32).")
        var batches: [Int] = []
        @Option(help: "Training samples per configuration (default 60000).")
        var samples: Int?

        func validate() throws {
            // Local BN, one of the compared configurations, needs two samples per rank.
            if batches.contains(where: { $0 < 2 }) { throw ValidationError("--batches must be at least 2 (local BatchNorm needs two samples per rank)") }
            if let samples, samples < 1 { throw ValidationError("--samples must be at least 1, got \(samples)") }
        }

        func run() throws {
            var study = common.quick ? SyncBNStudy.quick : SyncBNStudy()
            if !batches.isEmpty { study.batchesPerRank = batches }
            if let samples { study.samples = samples }
            study.seed = common.seed
            study.seeds = common.seeds
            let s = study
            try runStudy(common) { try s.run($0) }
        }
    }
}

/// Loads the data once, runs the study as an MPI job, and reports where the results went.
func runStudy(_ common: StudyCommand.Common, _ body: @escaping (StudyContext) throws -> [RunResult]) throws {
    let start = Date()
    try Job.run(setUp: { group -> StudyContext in
        var config = TrainingConfiguration()
        config.dataDirectory = common.synthetic ? nil : common.data
        config.seed = common.seed
        let (train, test) = try loadData(config)
        let description = common.synthetic ? "synthetic data" : "Fashion-MNIST"
        return try StudyContext(group: group, train: train, test: test, outputDirectory: common.out,
                                dataDescription: description, log: { if group.rank == 0 { print($0); fflush(nil) } })
    }, work: { group, context in
        let results = try body(context)
        if group.rank == 0 {
            print(String(format: "study done: %d runs in %.0f s; results in %@/results.jsonl, report in %@/report.md",
                         results.count, Date().timeIntervalSince(start), common.out, common.out))
        }
        try group.barrier()
    })
}
