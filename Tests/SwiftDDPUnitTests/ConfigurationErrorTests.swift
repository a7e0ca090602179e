import Foundation
import SwiftDDPDatasets
import SwiftDDPNN
import SwiftDDPStudy
import SwiftDDPTraining
import Testing
@testable import ddp

/// One check of the library's validation, failed on purpose: the field the error names, its
/// message in the library's names, and the start of the same message as `ddp` reports it.
struct FailedCheck: Sendable, CustomTestStringConvertible {
    let field: String
    let library: String
    let cli: String
    let fail: @Sendable () throws -> Void

    var testDescription: String { library }

    /// A `TrainingConfiguration` (changed by `change` from a valid one) that its own
    /// `validate(worldSize:)` refuses.
    static func configuration(_ field: String, _ library: String, _ cli: String, worldSize: Int = 1,
                              _ change: @escaping @Sendable (inout TrainingConfiguration) -> Void) -> FailedCheck
    {
        FailedCheck(field: field, library: library, cli: cli) {
            var c = valid
            change(&c)
            try c.validate(worldSize: worldSize)
        }
    }

    /// A configuration `Trainer.validate` refuses with this data (`model`: a model of the user's).
    static func trainer(_ field: String, _ library: String, _ cli: String, worldSize: Int = 1,
                        train: @escaping @Sendable () throws -> Dataset = { try data(64) },
                        test: @escaping @Sendable () throws -> Dataset = { try data(16) },
                        model: (@Sendable () throws -> Model)? = nil,
                        change: @escaping @Sendable (inout TrainingConfiguration) -> Void = { _ in })
        -> FailedCheck
    {
        FailedCheck(field: field, library: library, cli: cli) {
            var c = valid
            change(&c)
            try Trainer.validate(c, worldSize: worldSize, train: train(), test: test(), model: model?())
        }
    }

    /// A small MLP on 20 features and 4 classes that every check accepts.
    static var valid: TrainingConfiguration {
        var c = TrainingConfiguration()
        c.model = ModelConfiguration(inputFeatures: 20, depth: 2, width: 16, classes: 4, norm: .bn)
        c.dataDirectory = nil
        c.batchSize = 8
        c.epochs = 1
        return c
    }

    /// Feature vectors (`SyntheticData` makes 784 values images of 28 × 28).
    static func data(_ count: Int, features: Int = 20) throws -> Dataset {
        let data = try SyntheticData.make(count: count, features: features, classes: 4, seed: 3)
        return try Dataset(features: features, classes: 4, inputs: data.inputs, labels: data.labels)
    }
}

/// Every check the library makes, one failure each (the shuffled-size limit apart: it takes
/// 2·10⁸ samples to reach).
let failedChecks: [FailedCheck] = [
    .configuration("batchSize", "batchSize must be at least 1, got 0", "--batch-size must be at least 1, got 0") {
        $0.batchSize = 0
    },
    .configuration("epochs", "epochs must be at least 1, got 0", "--epochs must be at least 1, got 0") {
        $0.epochs = 0
    },
    .configuration("maxSteps", "maxSteps must be at least 1, got 0", "--max-steps must be at least 1, got 0") {
        $0.maxSteps = 0
    },
    .configuration("learningRate", "learningRate must be a positive number, got -1.0",
                   "--lr must be a positive number, got -1.0") { $0.learningRate = -1 },
    .configuration("momentum", "momentum must be ≥ 0, got -1.0", "--momentum must be ≥ 0, got -1.0") {
        $0.momentum = -1
    },
    .configuration("weightDecay", "weightDecay must be ≥ 0, got nan", "--weight-decay must be ≥ 0, got nan") {
        $0.weightDecay = .nan
    },
    .configuration("nesterov", "nesterov applies to optimizer sgd, not adam",
                   "--nesterov applies to --optimizer sgd, not adam") {
        $0.nesterov = true
        $0.optimizer = .adam
    },
    .configuration("nesterov", "nesterov needs momentum > 0 and no dampening",
                   "--nesterov needs --momentum > 0 and no dampening") {
        $0.nesterov = true
        $0.momentum = 0
    },
    .configuration("model.width", "model.width must be at least 1, got 0", "--width must be at least 1, got 0") {
        $0.model.width = 0
    },
    .configuration("model.groups", "model.groups must be at least 1, got 0", "--groups must be at least 1, got 0") {
        $0.model.norm = .groupnorm
        $0.model.groups = 0
    },
    .configuration("model.dropout", "model.dropout must be in [0, 1), got 1.0",
                   "--dropout must be in [0, 1), got 1.0") { $0.model.dropout = 1 },
    .configuration("model.dropout", "model.dropout applies to model.architecture mlp",
                   "--dropout applies to --model mlp") {
        $0.model = ModelConfiguration(architecture: .cnn, dropout: 0.5)
    },
    .configuration("model.depth", "model.depth must be ≥ 0, got -1", "--depth must be ≥ 0, got -1") {
        $0.model.depth = -1
    },
    .configuration("model.depth", "model.architecture resnet needs model.depth 6n+2 with n ≥ 1 (8, 14, 20, 32, "
                       + "44, 56, 110), got 10", "--model resnet needs --depth 6n+2 with n ≥ 1") {
        $0.model = ModelConfiguration(architecture: .resnet, depth: 10)
    },
    .configuration("model.inputShape", "model.architecture cnn needs image samples [C, H, W], the data has [784]",
                   "--model cnn needs image samples [C, H, W], the data has [784]") {
        $0.model = ModelConfiguration(architecture: .cnn, inputShape: [784])
    },
    .configuration("model.groups", "model.groups 5 must divide every normalized channel count (8 does not)",
                   "--groups 5 must divide every normalized channel count") {
        $0.model = ModelConfiguration(architecture: .cnn, width: 8, norm: .groupnorm, groups: 5)
    },
    .configuration("augment", "augment needs image samples (model.architecture cnn or resnet)",
                   "--augment needs image samples (--model cnn or resnet)") { $0.augment = true },
    .configuration("logEvery", "logEvery must be at least 1, got 0", "--log-every must be at least 1, got 0") {
        $0.logEvery = 0
    },
    // No ddp command sets it: ddp's message names it as the library does.
    .configuration("evalBatchSize", "evalBatchSize must be at least 1", "evalBatchSize must be at least 1") {
        $0.evalBatchSize = 0
    },
    .configuration("preciseBNSamples", "preciseBNSamples must be at least 1 sample, got 0",
                   "--precise-bn must be at least 1 sample, got 0") { $0.preciseBNSamples = 0 },
    .configuration("preciseBNSamples", "preciseBNSamples needs BatchNorm (model.norm bn or syncbn)",
                   "--precise-bn needs BatchNorm (--norm bn or syncbn)") {
        $0.preciseBNSamples = 100
        $0.model.norm = .none
    },
    .configuration("diagnosticsEvery", "diagnosticsEvery must be at least 1, got 0",
                   "--diagnostics-every must be at least 1, got 0") { $0.diagnosticsEvery = 0 },
    .configuration("covariateShift", "covariateShift needs diagnosticsEvery",
                   "--covariate-shift needs --diagnostics-every") { $0.covariateShift = true },
    .configuration("covariateShift", "covariateShift needs a chain of layers (model.architecture mlp or cnn), "
                       + "not model.architecture resnet",
                   "--covariate-shift needs a chain of layers (--model mlp or cnn), not --model resnet") {
        $0.covariateShift = true
        $0.diagnosticsEvery = 1
        $0.model = ModelConfiguration(architecture: .resnet)
    },
    .configuration("probeSize", "probeSize must be at least 2, got 1", "--probe-size must be at least 2, got 1") {
        $0.probeSize = 1
    },
    .configuration("syncBNGroupSize", "syncBNGroupSize must be at least 1, got 0",
                   "--syncbn-group-size must be at least 1, got 0") { $0.syncBNGroupSize = 0 },
    .configuration("syncBNGroupSize", "syncBNGroupSize 3 must divide the world size 4",
                   "--syncbn-group-size 3 must divide the world size 4", worldSize: 4) { $0.syncBNGroupSize = 3 },
    .configuration("warmupSteps", "warmupSteps must be ≥ 0, got -3", "--warmup-steps must be ≥ 0, got -3") {
        $0.warmupSteps = -3
    },
    .configuration("stepSize", "stepSize must be at least 1, got 0", "--step-size must be at least 1, got 0") {
        $0.schedule = .step
        $0.stepSize = 0
    },
    .configuration("gamma", "gamma must be a number ≥ 0, got -1.0", "--gamma must be a number ≥ 0, got -1.0") {
        $0.schedule = .step
        $0.gamma = -1
    },
    .configuration("bucketBytes", "bucketBytes must be ≥ 0", "--bucket-mb must be ≥ 0") { $0.bucketBytes = -1 },
    .configuration("model.width", "the model needs ", "the model needs ") {
        $0.model.width = 100_000
        $0.model.depth = 3
    },
    .configuration("batchSize", "BatchNorm needs more than one sample per batch: raise batchSize (got 1)",
                   "BatchNorm needs more than one sample per batch: raise --batch-size (got 1)") { $0.batchSize = 1 },

    .trainer("model.inputShape", "the model expects 20 input features, the data has 20",
             "the model expects 20 input features, the data has 20", test: { try FailedCheck.data(16, features: 10) }),
    .trainer("model.architecture", "model.architecture cnn expects images [1, 28, 28], the data has samples of "
                 + "shape [784]", "--model cnn expects images [1, 28, 28], the data has samples of shape [784]",
             train: { try FailedCheck.data(64, features: 784) }, test: { try FailedCheck.data(16, features: 784) },
             change: { $0.model = ModelConfiguration(architecture: .cnn, classes: 4) }),
    .trainer("model.classes", "the model has 5 outputs, the data has 4 classes",
             "the model has 5 outputs, the data has 4 classes", change: { $0.model.classes = 5 }),
    .trainer("train", "the training set is empty", "the training set is empty", train: { try FailedCheck.data(0) }),
    .trainer("test", "the test set is empty (set evaluate = false to train without one)",
             "the test set is empty (pass --no-eval to train without one)", test: { try FailedCheck.data(0) }),
    .trainer("dropLast", "dropLast leaves no training sample: 1 samples over 2 ranks",
             "--drop-last leaves no training sample: 1 samples over 2 ranks", worldSize: 2,
             train: { try FailedCheck.data(1) }, change: { $0.dropLast = true }),
    .trainer("batchSize", "BatchNorm needs more than one sample per batch, but each epoch ends with a batch of 1 "
                 + "sample per rank (3 per rank, batchSize 2): choose another batchSize or maxSteps",
             "BatchNorm needs more than one sample per batch, but each epoch ends with a batch of 1 sample per rank "
                 + "(3 per rank, --batch-size 2): choose another --batch-size or --max-steps",
             worldSize: 2, train: { try FailedCheck.data(6) }, change: { $0.batchSize = 2 }),

    .trainer("model", "the model takes samples of shape [6], the data has [20]",
             "the model takes samples of shape [6], the data has [20]",
             model: { try ModelConfiguration(inputFeatures: 6, classes: 4, norm: .none).build(seed: 0) }),
    .trainer("model", "the model has 3 outputs, the data has 4 classes", "the model has 3 outputs, the data has 4",
             model: { try ModelConfiguration(inputFeatures: 20, classes: 3, norm: .none).build(seed: 0) }),
    .trainer("train", "the training set is empty", "the training set is empty", train: { try FailedCheck.data(0) },
             model: { try ModelConfiguration(inputFeatures: 20, classes: 4, norm: .none).build(seed: 0) }),
    .trainer("test", "the test set is empty (set evaluate = false to train without one)",
             "the test set is empty (pass --no-eval to train without one)", test: { try FailedCheck.data(0) },
             model: { try ModelConfiguration(inputFeatures: 20, classes: 4, norm: .none).build(seed: 0) }),

    FailedCheck(field: "model.architecture", library: "study normalization: model.architecture must be a conv net",
                cli: "study normalization: --model must be a conv net") {
        var study = NormalizationStudy()
        study.architecture = .mlp
        try study.validate(worldSize: 1)
    },
    FailedCheck(field: "model.depth", library: "model.architecture resnet needs model.depth 6n+2",
                cli: "--model resnet needs --depth 6n+2") {
        var study = NormalizationStudy()
        study.depth = 9
        try study.validate(worldSize: 1)
    },
    FailedCheck(field: "model.depth", library: "model.architecture resnet needs model.depth 6n+2",
                cli: "--model resnet needs --depth 6n+2") {
        var study = ResidualStudy()
        study.depths = [10]
        try study.validate()
    },
]

@Suite("Configuration errors: the library's names, ddp's flags")
struct ConfigurationErrorTests {
    static func error(_ check: FailedCheck) throws -> ConfigurationError {
        do { try check.fail() } catch let error as ConfigurationError { return error } catch {
            Issue.record("not a ConfigurationError: \(error)")
            throw error
        }
        Issue.record("no error")
        throw CancellationError()
    }

    @Test("the library names the field as a Swift user writes it, never a flag", arguments: failedChecks)
    func libraryNames(check: FailedCheck) throws {
        let error = try Self.error(check)
        #expect(error.field == check.field)
        #expect(error.description.hasPrefix(check.library), "\(error)")
        #expect(!error.description.contains("--"), "\(error)")
    }

    @Test("ddp names every field the library reports by its flag, from the one table", arguments: failedChecks)
    func cliNames(check: FailedCheck) throws {
        let error = try Self.error(check)
        for field in error.namedFields {
            let name = try #require(OptionNames.flags[field], "\(field) is not in OptionNames.flags")
            #expect(name.hasPrefix("--") || name == field, "\(field): \(name)")
        }
        let reported = OptionNames.describe(error)
        #expect(reported.hasPrefix(check.cli), "\(reported)")
        // A message that starts with its field starts with the flag.
        if case .field(let field)? = error.message.parts.first, OptionNames.flags[field] != field {
            #expect(reported.hasPrefix("--"), "\(reported)")
        }
        #expect(Job.message(error) == reported)
    }

    /// The fields each validating source names (`fail("x"`, `ConfigurationError("x"`,
    /// `\(field: "x")`, `\(setting: "x"`), as property paths of a `TrainingConfiguration`.
    static var fieldsInSources: [String: Set<String>] {
        get throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent()
            let sources = ["Sources/SwiftDDPTraining/TrainingConfiguration.swift": "",
                           "Sources/SwiftDDPTraining/Trainer+Validation.swift": "",
                           "Sources/SwiftDDPNN/Models/ModelConfiguration.swift": "model.",
                           "Sources/SwiftDDPStudy/NormalizationStudy.swift": "",
                           "Sources/SwiftDDPStudy/ResidualStudy.swift": ""]
            let pattern = try NSRegularExpression(
                pattern: #"(?:fail\(|ConfigurationError\(|\\\(field: |\\\(setting: )"([A-Za-z.]+)""#)
            var fields: [String: Set<String>] = [:]
            for (path, prefix) in sources {
                let text = try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
                for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    let name = String(text[Range(match.range(at: 1), in: text)!])
                    fields[prefix + name, default: []].insert(path)
                }
            }
            return fields
        }
    }

    @Test("every field named in the library's checks is in ddp's table and failed above")
    func everyFieldInTable() throws {
        let named = try Self.fieldsInSources
        #expect(named.count > 25, "the pattern finds the checks: \(named.keys.sorted())")
        for (field, paths) in named {
            #expect(OptionNames.flags[field] != nil, "\(field) (\(paths.sorted())) is not in OptionNames.flags")
        }
        var failed: Set<String> = []
        for check in failedChecks {
            failed.formUnion(try Self.error(check).namedFields)
        }
        // Only reached with 2·10⁸ training samples: `shuffle`'s message is checked below.
        let unreachable: Set<String> = ["shuffle"]
        #expect(Set(named.keys).subtracting(failed).subtracting(unreachable).isEmpty,
                "checks not failed above: \(Set(named.keys).subtracting(failed).sorted())")
    }

    @Test("a nested configuration's fields, and a suggested setting in each front end's words")
    func nestingAndSettings() {
        let inner = ConfigurationError(field: "depth",
                                       message: "\(field: "architecture") resnet needs \(field: "depth") 8")
        let outer = inner.nested(in: "model")
        #expect(outer.field == "model.depth" && outer.namedFields == ["model.architecture", "model.depth"])
        #expect(outer.description == "model.architecture resnet needs model.depth 8")
        let shuffle = ConfigurationError(field: "shuffle",
                                         message: "too many samples (or \(setting: "shuffle", false))")
        #expect(shuffle.description == "too many samples (or set shuffle = false)")
        #expect(OptionNames.describe(shuffle) == "too many samples (or pass --no-shuffle)")
        let dropLast = ConfigurationError(field: "dropLast", message: "\(setting: "dropLast", true)")
        #expect(OptionNames.describe(dropLast) == "pass --drop-last")
        let eval = ConfigurationError(field: "evaluate", message: "\(setting: "evaluate", true)")
        #expect(OptionNames.describe(eval) == "leave out --no-eval")
        let optimizer = ConfigurationError(field: "optimizer", message: "\(setting: "optimizer", "sgd")")
        #expect(OptionNames.describe(optimizer) == "pass --optimizer sgd")
    }
}
