import ArgumentParser
import Collectives
import Datasets
import Foundation
import NN
import Study
import Training

/// `ddp study vanishing|syncbn|normalization|residual`: a grid of training runs inside one MPI job, with
/// machine-readable results, a Markdown report and gnuplot figures.
struct StudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study",
        abstract: "Run a study grid as one MPI job and write results.jsonl, report.md and figures/.",
        subcommands: [Vanishing.self, SyncBN.self, Normalization.self, Residual.self])

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

extension StudyCommand {
    struct Normalization: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Conv nets, per-rank batches × {local BN, SyncBN, SyncBN groups of 2, GroupNorm, "
                + "BN in 1 process}: "
                + "test error with running and precise BN statistics, statistics noise, loss spread.")
        @OptionGroup var common: Common
        @Option(help: "Model: cnn, resnet, plain (default resnet; --quick: cnn).")
        var model: Architecture?
        @Option(help: "resnet, plain: depth 6n+2 (default 8).")
        var depth: Int?
        @Option(help: "Channels of the first conv (cnn 32, resnet 16; --quick: 8).")
        var width: Int?
        @Option(parsing: .upToNextOption, help: "Per-rank batch sizes (default 1 2 4 8 16 32).")
        var batches: [Int] = []
        @Option(help: "Training samples per configuration (default 60000).")
        var samples: Int?
        @Option(help: "GroupNorm's groups (default 8; --quick: 4).")
        var groups: Int?
        @Option(help: "Learning rate (default 0.05).")
        var lr: Float?
        @Option(name: .customLong("precise-bn"),
                help: "Training samples precise BN statistics are recomputed over (default 4096).")
        var preciseBN: Int?

        func validate() throws {
            if batches.contains(where: { $0 < 1 }) { throw ValidationError("--batches must be at least 1") }
            if let samples, samples < 1 { throw ValidationError("--samples must be at least 1, got \(samples)") }
            if let preciseBN, preciseBN < 1 {
                throw ValidationError("--precise-bn must be at least 1, got \(preciseBN)")
            }
            if model == .mlp { throw ValidationError("--model must be a conv net: cnn, resnet or plain") }
            if model == .cnn, depth != nil { throw ValidationError("--depth does not apply to --model cnn") }
            if let lr, !(lr > 0 && lr.isFinite) { throw ValidationError("--lr must be a positive number") }
        }

        func run() throws {
            var study = common.quick ? NormalizationStudy.quick : NormalizationStudy()
            if let model {
                study.architecture = model
                if model == .cnn { study.depth = nil }
            }
            if let depth { study.depth = depth }
            if let width { study.width = width }
            if !batches.isEmpty { study.batchesPerRank = batches }
            if let samples { study.samples = samples }
            if let groups { study.groups = groups }
            if let lr { study.learningRate = lr }
            if let preciseBN { study.preciseSamples = preciseBN }
            study.seed = common.seed
            study.seeds = common.seeds
            do { try study.validate(worldSize: 1) } catch { throw ValidationError("\(error)") }
            let s = study
            try runStudy(common) { try s.run($0) }
        }
    }

    struct Residual: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "ResNet vs the same net without shortcuts × depths × {none, bn, syncbn}: first/last gradient "
                + "ratio, training and test error per epoch.")
        @OptionGroup var common: Common
        @Option(parsing: .upToNextOption, help: "Depths, 6n+2 (default 20 56).")
        var depths: [Int] = []
        @Option(parsing: .upToNextOption, help: "Normalizations (default none bn syncbn).")
        var norms: [NormKind] = []
        @Option(help: "Epochs per configuration (default 3; --quick: 2 of 1,024 samples).")
        var epochs: Int?
        @Option(help: "Per-rank batch size (default 32).")
        var batchSize: Int?
        @Option(help: "Train on the first N training samples (default: all; --quick: 1024).")
        var trainSamples: Int?
        @Option(help: "Channels of the first stage (default 16).")
        var width: Int?
        @Option(help: "Learning rate (default 0.05).")
        var lr: Float?

        func validate() throws {
            if let epochs, epochs < 1 { throw ValidationError("--epochs must be at least 1, got \(epochs)") }
            if let trainSamples, trainSamples < 1 {
                throw ValidationError("--train-samples must be at least 1, got \(trainSamples)")
            }
            if let batchSize, batchSize < 1 {
                throw ValidationError("--batch-size must be at least 1, got \(batchSize)")
            }
            if let lr, !(lr > 0 && lr.isFinite) { throw ValidationError("--lr must be a positive number") }
        }

        func run() throws {
            var study = common.quick ? ResidualStudy.quick : ResidualStudy()
            if !depths.isEmpty { study.depths = depths }
            if !norms.isEmpty { study.norms = norms }
            if let epochs { study.epochs = epochs; study.maxSteps = nil }
            if let batchSize { study.batchPerRank = batchSize }
            if let trainSamples { study.trainSamples = trainSamples }
            if let width { study.width = width }
            if let lr { study.learningRate = lr }
            study.seed = common.seed
            study.seeds = common.seeds
            do { try study.validate() } catch { throw ValidationError("\(error)") }
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
