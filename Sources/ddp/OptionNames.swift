import SwiftDDPNN
/// The library checks the settings (`TrainingConfiguration.validate`, `Trainer.validate`) and
/// names the fields as a Swift user writes them; `ddp` reports the same errors with its flags.
enum OptionNames {
    /// Every field a `ConfigurationError` can name, and the flag of `ddp train` (or a study) that
    /// sets it. A boolean's flag is the one that sets the value a message suggests: `--no-eval`
    /// sets `evaluate = false`. A field no command sets keeps its library name.
    static let flags: [String: String] = [
        "batchSize": "--batch-size",
        "epochs": "--epochs",
        "maxSteps": "--max-steps",
        "learningRate": "--lr",
        "momentum": "--momentum",
        "weightDecay": "--weight-decay",
        "nesterov": "--nesterov",
        "optimizer": "--optimizer",
        "warmupSteps": "--warmup-steps",
        "stepSize": "--step-size",
        "gamma": "--gamma",
        "augment": "--augment",
        "shuffle": "--no-shuffle",
        "dropLast": "--drop-last",
        "evaluate": "--no-eval",
        "logEvery": "--log-every",
        "preciseBNSamples": "--precise-bn",
        "diagnosticsEvery": "--diagnostics-every",
        "covariateShift": "--covariate-shift",
        "probeSize": "--probe-size",
        "syncBNGroupSize": "--syncbn-group-size",
        "bucketBytes": "--bucket-mb",
        "evalBatchSize": "evalBatchSize",  // no flag: ddp evaluates in batches of 1000
        "model.architecture": "--model",
        "model.depth": "--depth",
        "model.width": "--width",
        "model.norm": "--norm",
        "model.groups": "--groups",
        "model.dropout": "--dropout",
    ]

    /// `error` as ddp reports it: a `ConfigurationError` in flags (`--batch-size must be at least 1,
    /// got 0`, `pass --no-eval`), any other error as it describes itself.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? ConfigurationError else { return "\(error)" }
        return error.description(naming: { flags[$0] ?? $0 }, setting: { field, value in
            let flag = flags[field] ?? field
            guard let on = Bool(value) else { return "pass \(flag) \(value)" }
            // A flag sets its boolean: `--no-eval` false, `--drop-last` true.
            return on == !flag.hasPrefix("--no-") ? "pass \(flag)" : "leave out \(flag)"
        })
    }
}
