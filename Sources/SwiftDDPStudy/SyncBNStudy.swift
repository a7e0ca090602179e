import SwiftDDPCollectives
import Foundation
import SwiftDDPNN
import SwiftDDPTraining
/// `ddp study syncbn`: on a fixed number of ranks, per-rank batch sizes from tiny to moderate,
/// compare local BN, SyncBN over all ranks, SyncBN over subgroups, and one process with the same
/// global batch (run on a one-rank sub-communicator while the other ranks wait). Every
/// configuration sees the same number of training samples.
public struct SyncBNStudy: Sendable {
    public var batchesPerRank = [2, 4, 8, 16, 32]
    public var depth = 3
    public var width = 128
    public var activation = ActivationKind.relu
    /// Training samples per configuration (all ranks together).
    public var samples = 60_000
    public var learningRate: Float = 0.05
    public var diagnosticsPerRun = 20
    public var seed: UInt64 = 0
    /// Runs per configuration, with seeds `seed`, `seed + 1`, …; the report averages them.
    public var seeds = 1

    public init() {}

    public static var quick: SyncBNStudy {
        var s = SyncBNStudy()
        s.batchesPerRank = [4, 16]
        s.depth = 2
        s.width = 64
        s.samples = 16_384
        s.diagnosticsPerRun = 4
        return s
    }

    enum Mode: CaseIterable {
        case local, sync, subgroups, single
        func label(world: Int, group: Int) -> String {
            switch self {
            case .local: "local BN"
            case .sync: "SyncBN (\(world) ranks)"
            case .subgroups: "SyncBN groups of \(group)"
            case .single: "1 process"
            }
        }
    }

    func configuration(batch: Int, norm: NormKind, ranks: Int, data: StudyContext) -> TrainingConfiguration {
        let steps = max(1, samples / (batch * ranks))
        let model = ModelConfiguration(inputFeatures: data.train.features, depth: depth, width: width,
                                       classes: data.train.classes, activation: activation, norm: norm)
        return StudyContext.runConfiguration(model: model, batch: batch, epochs: 1000, maxSteps: steps,
                                             learningRate: learningRate, seed: seed,
                                             diagnosticsEvery: max(1, steps / diagnosticsPerRun))
    }

    public func run(_ context: StudyContext) throws -> [RunResult] {
        let group = context.group
        let W = group.worldSize
        let G = W >= 4 && W % 2 == 0 ? 2 : nil
        let length = context.overrides.epochs.map { "\($0) epochs" } ?? "\(samples) samples"
        context.log("study syncbn: per-rank batches \(batchesPerRank) on \(W) ranks, \(length) each"
                    + "\(seeds > 1 ? ", \(seeds) seeds" : ""), \(context.dataDescription)")
        // The one-process baseline runs on rank 0 alone.
        let solo = try group.split(color: group.rank == 0 ? 0 : nil, key: 0)
        var results: [RunResult] = []
        for batch in batchesPerRank {
            for mode in Mode.allCases {
                let label = mode.label(world: W, group: G ?? 0)
                let name = "batch \(batch) × \(W): \(label)"
                switch mode {
                case .local, .sync:
                    guard mode == .local || W > 1 else { continue }
                    let c = configuration(batch: batch, norm: mode == .local ? .bn : .syncbn, ranks: W, data: context)
                    results += try context.run(c, seeds: seeds, study: "syncbn", name: name, mode: label, on: group)
                case .subgroups:
                    guard let G else { continue }
                    var c = configuration(batch: batch, norm: .syncbn, ranks: W, data: context)
                    c.syncBNGroupSize = G
                    results += try context.run(c, seeds: seeds, study: "syncbn", name: name, mode: label, on: group)
                case .single:
                    guard batch * W >= 2 else { continue }
                    if let solo {
                        let c = configuration(batch: batch * W, norm: .bn, ranks: 1, data: context)
                        results += try context.run(c, seeds: seeds, study: "syncbn",
                                                   name: "batch \(batch * W) × 1: 1 process", mode: label, on: solo)
                    }
                    try group.barrier()
                }
            }
        }
        if group.rank == 0 { try report(results, context, groupSize: G) }
        return results
    }

    func report(_ runs: [RunResult], _ context: StudyContext, groupSize: Int?) throws {
        let results = RunResult.combinedBySetting(runs)
        let W = context.group.worldSize
        let modes = [Mode.local, .sync, .subgroups, .single].filter { $0 != .subgroups || groupSize != nil }
        let labels = modes.map { $0.label(world: W, group: groupSize ?? 0) }
        func pick(_ batch: Int, _ mode: Mode) -> RunResult? {
            results.first { r in
                switch mode {
                case .local: r.norm == "bn" && r.ranks == W && r.batchPerRank == batch
                case .sync: r.norm == "syncbn" && r.ranks == W && r.syncBNGroupSize == W && r.batchPerRank == batch
                case .subgroups: r.norm == "syncbn" && r.syncBNGroupSize == groupSize && r.ranks == W
                    && r.batchPerRank == batch
                case .single: r.ranks == 1 && r.globalBatch == batch * W
                }
            }
        }
        func rows(_ value: (RunResult) -> Double?) -> [[Double?]] {
            batchesPerRank.map { b in [Double(b)] + modes.map { m in pick(b, m).flatMap(value) } }
        }
        let fig = context.figuresDirectory
        let accuracy = Figure(name: "syncbn_accuracy", title: "Test accuracy vs per-rank batch (\(W) ranks)",
                              xLabel: "per-rank batch (1 process: batch × \(W))", yLabel: "test accuracy", logX: true,
                              series: labels, rows: rows { $0.testAccuracy }).draw(in: fig)
        let noise = Figure(name: "syncbn_noise",
                           title: "Noise of the statistics BN normalizes with (vs the global batch)",
                           xLabel: "per-rank batch", yLabel: "RMS (mu_used - mu)/sigma", logY: true, logX: true,
                           series: labels, rows: rows { $0.bnNoiseMean.flatMap { $0 > 0 ? $0 : nil } }).draw(in: fig)
        let spread = Figure(name: "syncbn_loss_spread", title: "Training-loss spread (std over the last 20% of steps)",
                            xLabel: "per-rank batch", yLabel: "loss std", logX: true, series: labels,
                            rows: rows { $0.lossSpread }).draw(in: fig)
        let comm = Figure(name: "syncbn_communication",
                          title: "Time per step: SyncBN collectives and gradient all-reduce",
                          xLabel: "per-rank batch", yLabel: "milliseconds per step", logX: true,
                          series: labels.flatMap { ["\($0): SyncBN", "\($0): step"] },
                          rows: batchesPerRank.map { b in
                              [Double(b)] + modes.flatMap { m -> [Double?] in
                                  let r = pick(b, m)
                                  return [r.map { $0.syncBNSecondsPerStep * 1000 }, r.map { $0.stepSeconds * 1000 }]
                              }
                          }).draw(in: fig)
        var md = """
            # Local BN vs SyncBN vs one process

            Generated by `ddp study syncbn` on \(W) ranks (\(context.dataDescription))\(context.overrides.epochs == nil
                ? "; every configuration trains on \(samples) samples" : ""). "1 process" trains with the same global
            batch on a one-rank sub-communicator. Results: `results.jsonl`.

            \(StudyContext.studiedLine(runs, varying: "the per-rank batch and the normalization"))
            \(seeds > 1 ? "Every configuration ran with \(seeds) seeds (\(seed)…\(seed &+ UInt64(seeds &- 1))); "
                + "figures and tables show their means, test accuracy ± its standard deviation over the seeds; "
                + "\"diverged\" if any seed did.\n" : "")

            BN statistics noise: RMS over channels of (μ_used − μ_global)/σ_global for the statistics each
            BN layer normalized with, averaged over layers, ranks and diagnostic steps (SyncBN over all
            ranks normalizes with the global statistics, so its noise is float rounding; one process has
            the whole batch). "per-rank noise" is the same measure for each rank's own batch — what local
            BN uses.

            \(Markdown.figure(accuracy, "test accuracy"))
            \(Markdown.figure(noise, "BN statistics noise"))
            \(Markdown.figure(spread, "loss spread"))
            \(Markdown.figure(comm, "communication time"))

            """
        md += Markdown.table(
            ["per-rank batch", "mode", "global batch", "steps", "test accuracy", "loss spread", "diverged", "BN noise",
             "per-rank noise", "SyncBN ms/step", "grad sync ms/step", "step ms"],
            batchesPerRank.flatMap { b in
                modes.compactMap { m in pick(b, m) }.map { r in
                    [String(b), r.mode, String(r.globalBatch), String(r.steps), Markdown.accuracy(r),
                     Markdown.number(r.lossSpread), Markdown.diverged(r), Markdown.number(r.bnNoiseMean),
                     Markdown.number(r.rankNoiseMean), Markdown.number(r.syncBNSecondsPerStep * 1000, "%.3f"),
                     Markdown.number(r.gradSyncSecondsPerStep * 1000, "%.3f"),
                     Markdown.number(r.stepSeconds * 1000, "%.3f")]
                }
            })
        try context.writeReport("report.md", md)
    }
}
