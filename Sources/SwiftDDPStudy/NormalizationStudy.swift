import SwiftDDPCollectives
import Foundation
import SwiftDDPNN
import SwiftDDPTraining
/// `ddp study normalization`: conv nets at per-rank batches from 1 up, normalized by local BN,
/// SyncBN over all ranks, SyncBN over groups of 2, GroupNorm, and BN in one process with the
/// global batch; test error with BatchNorm's running averages and with precise statistics
/// recomputed after training (Wu & Johnson 2021), statistics noise and loss spread. The
/// published shape to compare with is Wu & He 2018 (BN's error rises as the batch per GPU
/// shrinks, GN's stays flat).
public struct NormalizationStudy: Sendable {
    public var architecture = Architecture.resnet
    public var depth: Int? = 8
    public var width: Int? = nil
    public var batchesPerRank = [1, 2, 4, 8, 16, 32]
    /// Training samples per configuration (all ranks together).
    public var samples = 60_000
    public var learningRate: Float = 0.05
    public var groups = 8
    /// Training samples the precise statistics are recomputed over.
    public var preciseSamples = 4096
    public var diagnosticsPerRun = 10
    public var seed: UInt64 = 0
    public var seeds = 1

    public init() {}

    /// A smoke run: a few minutes at most on 4 ranks sharing 2 cores.
    public static var quick: NormalizationStudy {
        var s = NormalizationStudy()
        s.architecture = .cnn
        s.depth = nil
        s.width = 8
        s.groups = 4
        s.batchesPerRank = [1, 4]
        s.samples = 2048
        s.preciseSamples = 512
        s.diagnosticsPerRun = 3
        return s
    }

    enum Mode: CaseIterable {
        case local, sync, subgroups, groupNorm, single

        func label(world: Int, group: Int) -> String {
            switch self {
            case .local: "local BN"
            case .sync: "SyncBN (\(world) ranks)"
            case .subgroups: "SyncBN groups of \(group)"
            case .groupNorm: "GroupNorm"
            case .single: "BN, 1 process"
            }
        }

        var norm: NormKind {
            switch self {
            case .local, .single: .bn
            case .sync, .subgroups: .syncbn
            case .groupNorm: .groupnorm
            }
        }
    }

    func model(norm: NormKind, data: StudyContext) -> ModelConfiguration {
        ModelConfiguration(architecture: architecture, depth: depth, width: width, classes: data.train.classes,
                           norm: norm, groups: groups)
    }

    func configuration(batch: Int, mode: Mode, ranks: Int, data: StudyContext) -> TrainingConfiguration {
        let steps = max(1, samples / (batch * ranks))
        var c = StudyContext.runConfiguration(model: model(norm: mode.norm, data: data), batch: batch, epochs: 1000,
                                              maxSteps: steps, learningRate: learningRate, seed: seed,
                                              diagnosticsEvery: max(1, steps / diagnosticsPerRun))
        if mode.norm.usesBatchStatistics { c.preciseBNSamples = preciseSamples }
        return c
    }

    /// Checks the model once, before any run (sizes, GroupNorm's groups); a `ConfigurationError`
    /// names the runs' fields (`model.depth`).
    public func validate(worldSize: Int) throws {
        guard architecture != .mlp else {
            throw ConfigurationError(field: "model.architecture", message: """
                study normalization: \(field: "model.architecture") must be a conv net (cnn, resnet, plain)
                """)
        }
        var m = ModelConfiguration(architecture: architecture, depth: depth, width: width, norm: .groupnorm,
                                   groups: groups)
        do {
            try m.validate()
            m.norm = .bn
            try m.validate()
        } catch let error as ConfigurationError {
            throw error.nested(in: "model")
        }
    }

    public func run(_ context: StudyContext) throws -> [RunResult] {
        let group = context.group
        let W = group.worldSize
        let G = W >= 4 && W % 2 == 0 ? 2 : nil
        let summary = model(norm: .bn, data: context).summary
        context.log("study normalization: \(summary), per-rank batches \(batchesPerRank) on \(W) ranks, "
                    + "\(context.overrides.epochs.map { "\($0) epochs" } ?? "\(samples) samples") each"
                    + "\(seeds > 1 ? ", \(seeds) seeds" : ""), \(context.dataDescription)")
        let solo = try group.split(color: group.rank == 0 ? 0 : nil, key: 0)
        var results: [RunResult] = []
        for batch in batchesPerRank {
            for mode in Mode.allCases {
                let label = mode.label(world: W, group: G ?? 0)
                let ranks = mode == .single ? 1 : W
                let perRank = mode == .single ? batch * W : batch
                var c = configuration(batch: perRank, mode: mode, ranks: ranks, data: context)
                if mode == .subgroups {
                    guard let G else { continue }
                    c.syncBNGroupSize = G
                }
                if mode == .sync && W == 1 { continue }
                let name = "batch \(batch) × \(W): \(label)"
                // A configuration that cannot train (one value per channel in a BatchNorm1d, e.g.
                // the cnn's hidden layer at batch 1 with local BN) is skipped, and the report says so.
                do {
                    try c.validate(worldSize: ranks)
                } catch {
                    context.log("  \(name): skipped (\(context.describe(error)))")
                    continue
                }
                if mode == .single {
                    if let solo {
                        results += try context.run(c, seeds: seeds, study: "normalization", name: name, mode: label,
                                                   on: solo)
                    }
                    try group.barrier()
                } else {
                    results += try context.run(c, seeds: seeds, study: "normalization", name: name, mode: label,
                                               on: group)
                }
            }
        }
        if group.rank == 0 { try report(results, context, groupSize: G, summary: summary) }
        return results
    }

    func report(_ runs: [RunResult], _ context: StudyContext, groupSize: Int?, summary: String) throws {
        let results = RunResult.combinedBySetting(runs)
        let W = context.group.worldSize
        let modes = Mode.allCases.filter { ($0 != .subgroups || groupSize != nil) && ($0 != .sync || W > 1) }
        let labels = modes.map { $0.label(world: W, group: groupSize ?? 0) }
        func pick(_ batch: Int, _ mode: Mode) -> RunResult? {
            results.first { $0.name == "batch \(batch) × \(W): \(mode.label(world: W, group: groupSize ?? 0))" }
        }
        func rows(_ value: (RunResult) -> Double?) -> [[Double?]] {
            batchesPerRank.map { b in [Double(b)] + modes.map { m in pick(b, m).flatMap(value) } }
        }
        let fig = context.figuresDirectory
        let bnModes = modes.filter { $0.norm.usesBatchStatistics }
        let bnLabels = bnModes.map { $0.label(world: W, group: groupSize ?? 0) }
        let error = Figure(name: "normalization_error",
                           title: "Test error vs per-rank batch (\(W) ranks; BN: precise statistics)",
                           xLabel: "per-rank batch (1 process: batch × \(W))", yLabel: "test error", logX: true,
                           series: labels, rows: rows { 1 - $0.testAccuracy }).draw(in: fig)
        let gap = Figure(name: "normalization_precise_bn",
                         title: "Test error with BN's running averages (EMA) and precise statistics",
                         xLabel: "per-rank batch", yLabel: "test error", logX: true,
                         series: bnLabels.flatMap { ["\($0): EMA", "\($0): precise"] },
                         rows: batchesPerRank.map { b in
                             [Double(b)] + bnModes.flatMap { m -> [Double?] in
                                 let r = pick(b, m)
                                 return [r?.testAccuracyEMA.map { 1 - $0 }, r.map { 1 - $0.testAccuracy }]
                             }
                         }).draw(in: fig)
        let noise = Figure(name: "normalization_noise",
                           title: "Noise of the statistics BN normalizes with (vs the global batch)",
                           xLabel: "per-rank batch", yLabel: "RMS (mu_used - mu)/sigma", logY: true, logX: true,
                           series: bnLabels, rows: batchesPerRank.map { b in
                               [Double(b)] + bnModes.map { m in pick(b, m)?.bnNoiseMean.flatMap { $0 > 0 ? $0 : nil } }
                           }).draw(in: fig)
        let spread = Figure(name: "normalization_loss_spread",
                            title: "Training-loss spread (std over the last 20% of steps)",
                            xLabel: "per-rank batch", yLabel: "loss std", logX: true, series: labels,
                            rows: rows { $0.lossSpread }).draw(in: fig)
        var md = """
            # Normalization with small per-rank batches

            Generated by `ddp study normalization` on \(W) ranks (\(context.dataDescription)): \(summary)\(
                context.overrides.epochs == nil ? "; every configuration trains on \(samples) samples" : "").
            GroupNorm uses \(groups) groups. "BN, 1 process" trains BatchNorm with the same global batch
            on a one-rank sub-communicator. BatchNorm runs are tested twice: with the running averages of
            training (EMA, momentum 0.1) and with precise statistics recomputed over \(preciseSamples) training
            samples in training-size batches (`--precise-bn`). Results: `results.jsonl`.

            \(StudyContext.studiedLine(runs, varying: "the per-rank batch and the normalization"))
            \(seeds > 1 ? "Every configuration ran with \(seeds) seeds (\(seed)…\(seed &+ UInt64(seeds &- 1))); "
                + "tables show means ± the standard deviation over the seeds.\n" : "")

            BN statistics noise: RMS over channels of (μ_used − μ_global)/σ_global for the statistics each
            BN layer normalized with, averaged over layers, ranks and diagnostic steps.

            \(Markdown.figure(error, "test error"))
            \(Markdown.figure(gap, "EMA vs precise statistics"))
            \(Markdown.figure(noise, "BN statistics noise"))
            \(Markdown.figure(spread, "loss spread"))

            """
        md += Markdown.table(
            ["per-rank batch", "mode", "global batch", "steps", "test error", "test error (EMA)", "loss spread",
             "diverged", "BN noise", "per-rank noise", "SyncBN ms/step", "step ms"],
            batchesPerRank.flatMap { b in
                modes.compactMap { m in pick(b, m) }.map { r in
                    [String(b), r.mode, String(r.globalBatch), String(r.steps),
                     Markdown.error(r.testAccuracy, std: r.testAccuracyStd, seeds: r.seeds),
                     Markdown.error(r.testAccuracyEMA, std: r.testAccuracyEMAStd, seeds: r.seeds),
                     Markdown.number(r.lossSpread), Markdown.diverged(r), Markdown.number(r.bnNoiseMean),
                     Markdown.number(r.rankNoiseMean), Markdown.number(r.syncBNSecondsPerStep * 1000, "%.3f"),
                     Markdown.number(r.stepSeconds * 1000, "%.3f")]
                }
            })
        let missing = batchesPerRank.flatMap { b in
            modes.filter { pick(b, $0) == nil }.map { "batch \(b): \($0.label(world: W, group: groupSize ?? 0))" }
        }
        if !missing.isEmpty {
            md += "\nNot run (the configuration cannot train, e.g. a BatchNorm1d with one value per channel): "
                + missing.joined(separator: "; ") + ".\n"
        }
        try context.writeReport("report.md", md)
    }
}
