import ArgumentParser
import SwiftDDPCollectives
import SwiftDDPDatasets
import Foundation
import SwiftDDPNN
import SwiftDDPStudy
import SwiftDDPTraining
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

        @Option(help: "Fashion-MNIST directory, or a safetensors data file (as for train).")
        var data = "/usr/share/datasets/fashion-mnist"

        @Flag(help: "Use synthetic data.")
        var synthetic = false

        @Option(help: "Seed (of the first run of each configuration).")
        var seed: UInt64 = 0

        @Option(help: """
            Runs per configuration, with seeds --seed, --seed + 1, …; the report shows means and the test accuracy's \
            standard deviation.
            """)
        var seeds = 1

        @Flag(help: """
            Write the report and figures again from --out's results.jsonl (a run with the same options), \
            without training.
            """)
        var reportOnly = false

        func validate() throws {
            if !(1...100).contains(seeds) { throw ValidationError("--seeds must be between 1 and 100, got \(seeds)") }
        }
    }

    /// `ddp train`'s model, optimizer and length options, for every run of a study; unset ones
    /// keep the study's defaults, and those the study varies are refused (its grid options set them).
    struct RunOptions: ParsableArguments {
        @Option(help: "Model: mlp, cnn, resnet, plain (default: the study's).")
        var model: Architecture?
        @Option(help: "mlp: hidden layers; resnet, plain: 6n+2 layers (default: the study's).")
        var depth: Int?
        @Option(help: "mlp: units per hidden layer; cnn: channels of the first conv; resnet, plain: first stage's.")
        var width: Int?
        @Option(help: "Hidden activation: \(ActivationKind.allCases.map(\.rawValue).joined(separator: ", ")).")
        var activation: ActivationKind?
        @Option(help: "Initialization: default, xavier, kaiming.")
        var `init`: InitScheme?
        @Option(help: "Dropout after each activation (mlp).")
        var dropout: Float?
        @Option(help: "GroupNorm's groups.")
        var groups: Int?
        @Flag(help: "Augment training images (random crop and flip).")
        var augment = false
        @Option(help: "Optimizer: sgd, adam, adamw.")
        var optimizer: TrainingConfiguration.OptimizerKind?
        @Option(help: "Learning rate (default: the study's, mostly 0.05).")
        var lr: Float?
        @Option(help: "SGD momentum (default 0.9).")
        var momentum: Float?
        @Flag(help: "Nesterov momentum (SGD).")
        var nesterov = false
        @Option(help: "Weight decay.")
        var weightDecay: Float?
        @Option(help: "Learning-rate schedule: constant, step, cosine (default cosine).")
        var schedule: TrainingConfiguration.ScheduleKind?
        @Option(help: "Linear warm-up steps.")
        var warmupSteps: Int?
        @Option(help: "Epochs per configuration (instead of the study's length in samples or steps).")
        var epochs: Int?
        @Option(help: "Per-rank batch size (studies that do not vary it).")
        var batchSize: Int?

        func validate() throws {
            func check(_ ok: Bool, _ message: @autoclosure () -> String) throws {
                if !ok { throw ValidationError(message()) }
            }
            try check(depth.map { $0 >= 0 } ?? true, "--depth must be ≥ 0, got \(depth ?? 0)")
            try check(width.map { $0 >= 1 } ?? true, "--width must be at least 1, got \(width ?? 0)")
            try check(groups.map { $0 >= 1 } ?? true, "--groups must be at least 1, got \(groups ?? 0)")
            try check(dropout.map { (0..<1).contains($0) } ?? true, "--dropout must be in [0, 1), got \(dropout ?? 0)")
            try check(lr.map { $0 > 0 && $0.isFinite } ?? true, "--lr must be a positive number, got \(lr ?? 0)")
            try check(momentum.map { (0...1).contains($0) } ?? true,
                      "--momentum must be in [0, 1], got \(momentum ?? 0)")
            try check(weightDecay.map { $0 >= 0 } ?? true, "--weight-decay must be ≥ 0, got \(weightDecay ?? 0)")
            try check(warmupSteps.map { $0 >= 0 } ?? true, "--warmup-steps must be ≥ 0, got \(warmupSteps ?? 0)")
            try check(epochs.map { $0 >= 1 } ?? true, "--epochs must be at least 1, got \(epochs ?? 0)")
            try check(batchSize.map { $0 >= 1 } ?? true, "--batch-size must be at least 1, got \(batchSize ?? 0)")
            try check(model != .cnn || depth == nil, "--depth does not apply to --model cnn")
        }

        /// Refuses the options that set what `study` varies: (option given, the grid option to use instead).
        func refuse(_ varied: [(set: Bool, option: String, instead: String)], study: String) throws {
            for v in varied where v.set {
                throw ValidationError("the \(study) study varies \(v.option) itself: \(v.instead)")
            }
        }

        var overrides: RunOverrides {
            var o = RunOverrides()
            o.architecture = model
            o.depth = depth
            o.width = width
            o.activation = activation
            o.initialization = `init`
            o.dropout = dropout
            o.groups = groups
            o.augment = augment ? true : nil
            o.optimizer = optimizer
            o.learningRate = lr
            o.momentum = momentum
            o.nesterov = nesterov ? true : nil
            o.weightDecay = weightDecay
            o.schedule = schedule
            o.warmupSteps = warmupSteps
            o.epochs = epochs
            o.batchSize = batchSize
            return o
        }
    }

    struct Vanishing: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deep MLPs × {sigmoid, tanh, relu} × {none, bn, syncbn} × init: gradient profiles, saturation, "
                + "covariate shift, accuracy.")
        @OptionGroup var common: Common
        @OptionGroup(title: "Every run (ddp train's options)") var runs: RunOptions
        @Option(parsing: .upToNextOption, help: "Depths (default 10 20).")
        var depths: [Int] = []

        func validate() throws {
            // Depth 0 has a single Linear layer: no gradient profile, nothing to vanish.
            if depths.contains(where: { $0 < 1 }) {
                throw ValidationError("--depths must be at least 1 (hidden layers)")
            }
            try runs.refuse([(runs.depth != nil, "the depth", "give --depths"),
                             (runs.activation != nil, "the activation", "it runs sigmoid, tanh and relu"),
                             (runs.`init` != nil, "the initialization", "it runs default and kaiming")],
                            study: "vanishing")
        }

        func run() throws {
            var study = common.quick ? VanishingStudy.quick : VanishingStudy()
            if !depths.isEmpty { study.depths = depths }
            if let epochs = runs.epochs { study.epochs = epochs; study.maxSteps = nil }
            if let width = runs.width { study.width = width }
            if let lr = runs.lr { study.learningRate = lr }
            if let batch = runs.batchSize { study.batchPerRank = batch }
            study.seed = common.seed
            study.seeds = common.seeds
            let s = study
            try runStudy(common, runs.overrides) { try s.run($0) }
        }
    }

    struct SyncBN: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "syncbn",
            abstract: "Per-rank batches × {local BN, SyncBN, SyncBN subgroups, 1 process}: accuracy, stability, "
                + "statistics noise, communication.")
        @OptionGroup var common: Common
        @Option(parsing: .upToNextOption, help: "Per-rank batch sizes (default 2 4 8 16 32).")
        var batches: [Int] = []
        @Option(help: "Training samples per configuration (default 60000).")
        var samples: Int?

        @OptionGroup(title: "Every run (ddp train's options)") var runs: RunOptions

        func validate() throws {
            // Local BN, one of the compared configurations, needs two samples per rank.
            if batches.contains(where: { $0 < 2 }) {
                throw ValidationError("--batches must be at least 2 (local BatchNorm needs two samples per rank)")
            }
            if let samples, samples < 1 { throw ValidationError("--samples must be at least 1, got \(samples)") }
            if samples != nil, runs.epochs != nil { throw ValidationError("give --samples or --epochs, not both") }
            try runs.refuse([(runs.batchSize != nil, "the per-rank batch", "give --batches")], study: "syncbn")
        }

        func run() throws {
            var study = common.quick ? SyncBNStudy.quick : SyncBNStudy()
            if !batches.isEmpty { study.batchesPerRank = batches }
            if let samples { study.samples = samples }
            if let depth = runs.depth { study.depth = depth }
            if let width = runs.width { study.width = width }
            if let activation = runs.activation { study.activation = activation }
            if let lr = runs.lr { study.learningRate = lr }
            study.seed = common.seed
            study.seeds = common.seeds
            let s = study
            try runStudy(common, runs.overrides) { try s.run($0) }
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
        @OptionGroup(title: "Every run (ddp train's options; default: resnet --depth 8, --quick: cnn --width 8)")
        var runs: RunOptions
        @Option(parsing: .upToNextOption, help: "Per-rank batch sizes (default 1 2 4 8 16 32).")
        var batches: [Int] = []
        @Option(help: "Training samples per configuration (default 60000).")
        var samples: Int?
        @Option(name: .customLong("precise-bn"),
                help: "Training samples precise BN statistics are recomputed over (default 4096).")
        var preciseBN: Int?

        func validate() throws {
            if batches.contains(where: { $0 < 1 }) { throw ValidationError("--batches must be at least 1") }
            if let samples, samples < 1 { throw ValidationError("--samples must be at least 1, got \(samples)") }
            if let preciseBN, preciseBN < 1 {
                throw ValidationError("--precise-bn must be at least 1, got \(preciseBN)")
            }
            if runs.model == .mlp { throw ValidationError("--model must be a conv net: cnn, resnet or plain") }
            if samples != nil, runs.epochs != nil { throw ValidationError("give --samples or --epochs, not both") }
            try runs.refuse([(runs.batchSize != nil, "the per-rank batch", "give --batches")], study: "normalization")
        }

        func run() throws {
            var study = common.quick ? NormalizationStudy.quick : NormalizationStudy()
            if let model = runs.model {
                study.architecture = model
                if model == .cnn { study.depth = nil }
            }
            if let depth = runs.depth { study.depth = depth }
            if let width = runs.width { study.width = width }
            if !batches.isEmpty { study.batchesPerRank = batches }
            if let samples { study.samples = samples }
            if let groups = runs.groups { study.groups = groups }
            if let lr = runs.lr { study.learningRate = lr }
            if let preciseBN { study.preciseSamples = preciseBN }
            study.seed = common.seed
            study.seeds = common.seeds
            do { try study.validate(worldSize: 1) } catch { throw ValidationError(OptionNames.describe(error)) }
            let s = study
            try runStudy(common, runs.overrides) { try s.run($0) }
        }
    }

    struct Residual: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "ResNet vs the same net without shortcuts × depths × {none, bn, syncbn}: first/last gradient "
                + "ratio, training and test error per epoch.")
        @OptionGroup var common: Common
        @OptionGroup(title: "Every run (ddp train's options; default: 3 epochs, batch 32, width 16)")
        var runs: RunOptions
        @Option(parsing: .upToNextOption, help: "Depths, 6n+2 (default 20 56).")
        var depths: [Int] = []
        @Option(parsing: .upToNextOption, help: "Normalizations (default none bn syncbn).")
        var norms: [NormKind] = []
        @Option(help: "Train on the first N training samples (default: all; --quick: 1024).")
        var trainSamples: Int?

        func validate() throws {
            if let trainSamples, trainSamples < 1 {
                throw ValidationError("--train-samples must be at least 1, got \(trainSamples)")
            }
            try runs.refuse([(runs.model != nil, "the model", "it trains resnet and plain"),
                             (runs.depth != nil, "the depth", "give --depths")], study: "residual")
        }

        func run() throws {
            var study = common.quick ? ResidualStudy.quick : ResidualStudy()
            if !depths.isEmpty { study.depths = depths }
            if !norms.isEmpty { study.norms = norms }
            if let epochs = runs.epochs { study.epochs = epochs; study.maxSteps = nil }
            if let batchSize = runs.batchSize { study.batchPerRank = batchSize }
            if let trainSamples { study.trainSamples = trainSamples }
            if let width = runs.width { study.width = width }
            if let lr = runs.lr { study.learningRate = lr }
            study.seed = common.seed
            study.seeds = common.seeds
            do { try study.validate() } catch { throw ValidationError(OptionNames.describe(error)) }
            let s = study
            try runStudy(common, runs.overrides) { try s.run($0) }
        }
    }
}

/// Loads the data once, runs the study as an MPI job, and reports where the results went.
func runStudy(_ common: StudyCommand.Common, _ overrides: RunOverrides,
              _ body: @escaping (StudyContext) throws -> [RunResult]) throws {
    let start = Date()
    try Job.run(setUp: { group -> StudyContext in
        var config = TrainingConfiguration()
        config.dataDirectory = common.synthetic ? nil : common.data
        config.seed = common.seed
        let (train, test) = try loadData(config)
        let description = common.synthetic ? "synthetic data" : "Fashion-MNIST"
        let context = try StudyContext(group: group, train: train, test: test, outputDirectory: common.out,
                                       dataDescription: description, reportOnly: common.reportOnly,
                                       log: { if group.rank == 0 { print($0); fflush(nil) } })
        context.overrides = overrides
        context.describe = OptionNames.describe
        return context
    }, work: { group, context in
        let results = try body(context)
        if group.rank == 0 {
            print(String(format: "study done: %d runs in %.0f s; results in %@/results.jsonl, report in %@/report.md",
                         results.count, Date().timeIntervalSince(start), common.out, common.out))
        }
        try group.barrier()
    })
}
