import SwiftDDPNN
import SwiftDDPTraining
/// The `ddp train` model and optimizer settings a user gave a study (nil: the study's default).
/// They apply to every run of the study; the settings the study varies (its grid) are not here.
public struct RunOverrides: Sendable, Equatable {
    public var architecture: Architecture?
    public var depth: Int?
    public var width: Int?
    public var activation: ActivationKind?
    public var initialization: InitScheme?
    public var dropout: Float?
    public var groups: Int?
    public var augment: Bool?
    public var optimizer: TrainingConfiguration.OptimizerKind?
    public var learningRate: Float?
    public var momentum: Float?
    public var nesterov: Bool?
    public var weightDecay: Float?
    public var schedule: TrainingConfiguration.ScheduleKind?
    public var warmupSteps: Int?
    /// Replaces the study's length (samples or steps) by whole epochs.
    public var epochs: Int?
    public var batchSize: Int?

    public init() {}

    /// `c` with every setting given here.
    public func apply(to c: inout TrainingConfiguration) {
        var m = c.model
        if let architecture, architecture != m.architecture {
            // Another network on the same data: the new architecture's default sizes, the rest kept.
            m = ModelConfiguration(architecture: architecture,
                                   inputShape: architecture == .mlp ? [m.inputFeatures]
                                       : m.inputShape.count == 3 ? m.inputShape : nil,
                                   classes: m.classes, activation: m.activationKind, norm: m.norm, groups: m.groups,
                                   initialization: m.initScheme, dropout: architecture == .mlp ? m.dropout : 0)
        }
        if let depth { m.depth = depth }
        if let width { m.width = width }
        if let activation { m.activation = activation.rawValue }
        if let initialization { m.initialization = initialization.rawValue }
        if let dropout { m.dropout = dropout }
        if let groups { m.groups = groups }
        c.model = m
        if let augment { c.augment = augment }
        if let optimizer {
            c.optimizer = optimizer
            if optimizer != .sgd { c.momentum = 0 }
        }
        if let learningRate { c.learningRate = learningRate }
        if let momentum, c.optimizer == .sgd { c.momentum = momentum }
        if let nesterov { c.nesterov = nesterov }
        if let weightDecay { c.weightDecay = weightDecay }
        if let schedule { c.schedule = schedule }
        if let warmupSteps { c.warmupSteps = warmupSteps }
        if let epochs {
            c.epochs = epochs
            c.maxSteps = nil
        }
        if let batchSize { c.batchSize = batchSize }
    }
}

extension TrainingConfiguration {
    /// One line for a report: the network, the optimizer and the length of a run.
    public var studySummary: String {
        var optimizerText = "\(optimizer.rawValue) lr \(learningRate)"
        if optimizer == .sgd { optimizerText += " momentum \(momentum)\(nesterov ? " (Nesterov)" : "")" }
        if weightDecay > 0 { optimizerText += " weight decay \(weightDecay)" }
        optimizerText += ", \(schedule.rawValue) schedule"
        if warmupSteps > 0 { optimizerText += " after \(warmupSteps) warm-up steps" }
        let length = maxSteps.map { "\($0) steps" } ?? "\(epochs) epoch\(epochs == 1 ? "" : "s")"
        let details = [model.activation, "init \(model.initialization)",
                       model.dropout > 0 ? "dropout \(model.dropout)" : nil, augment ? "augmented" : nil]
        return "\(model.summary) (\(details.compactMap { $0 }.joined(separator: ", "))); \(optimizerText); "
            + "batch \(batchSize) per rank; \(length)"
    }
}
