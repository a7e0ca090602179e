import Foundation
import SwiftDDPTraining
/// The outcome of one study configuration: what the reports and figures are made of, and one
/// line of the study's results.jsonl.
public struct RunResult: Codable, Sendable {
    public var study: String
    public var name: String
    public var mode: String
    public var ranks: Int
    /// The architecture (`mlp`, `cnn`, `resnet`, `plain`).
    public var model: String? = nil
    public var depth: Int
    public var width: Int
    public var activation: String
    public var norm: String
    public var initialization: String
    public var batchPerRank: Int
    public var globalBatch: Int
    public var syncBNGroupSize: Int?
    /// The seed of this run (initialization, shuffling, dropout).
    public var seed: UInt64
    /// Runs behind this result: 1 for one run; more for `combined(_:)` of several seeds, whose
    /// test accuracy then has a sample standard deviation.
    public var seeds = 1
    public var testAccuracyStd: Double? = nil
    public var steps: Int
    public var testAccuracy: Double
    /// With precise BN: the test accuracy with the running averages of training (`testAccuracy`
    /// is then the one with the recomputed statistics); its standard deviation over seeds.
    public var testAccuracyEMA: Double? = nil
    public var testAccuracyEMAStd: Double? = nil
    public var testLoss: Double
    /// (epoch, test error) after each evaluated epoch, and (epoch, training error) of each epoch.
    public var testErrorCurve: [[Double]] = []
    public var trainErrorCurve: [[Double]] = []
    public var finalLoss: Double
    public var diverged: Bool
    /// For `combined(_:)` of several seeds: how many of them diverged (the means leave them out).
    public var divergedSeeds: Int? = nil
    /// Standard deviation of the step losses over the last 20% of training.
    public var lossSpread: Double
    /// (step, loss) pairs, subsampled to at most 200.
    public var lossCurve: [[Double]]
    /// Weight-gradient norm per Linear layer (input to output) at initialization (step 0) and
    /// averaged over the later diagnostic steps.
    public var gradNormInit: [Double]
    public var gradNormTrain: [Double]
    public var inputGradNormInit: [Double]
    public var firstLastRatioInit: Double?
    public var firstLastRatioTrain: Double?
    /// Per hidden block: saturated fraction at initialization and averaged during training.
    public var saturationInit: [Double]
    public var saturationTrain: [Double]
    public var preactStdTrain: [Double]
    /// Statistics noise, averaged over layers and diagnostic steps (see Diagnostics).
    public var bnNoiseMean: Double?
    public var rankNoiseMean: Double
    /// Internal covariate shift per Linear layer, averaged over diagnostic steps.
    public var distributionShift: [Double]?
    public var icsGradientRelative: [Double]?
    /// Seconds per step: all, SyncBN communication, gradient all-reduce.
    public var stepSeconds: Double
    public var syncBNSecondsPerStep: Double
    public var gradSyncSecondsPerStep: Double
    public var trainingSeconds: Double
    /// What was trained, in one line (`TrainingConfiguration.studySummary`).
    public var configuration: String? = nil

    init(study: String, name: String, mode: String, ranks: Int, config: TrainingConfiguration,
         summary: TrainingSummary) {
        self.study = study
        self.name = name
        self.mode = mode
        self.ranks = ranks
        model = config.model.architecture.rawValue
        depth = config.model.depth
        width = config.model.width
        activation = config.model.activation
        norm = config.model.norm.rawValue
        initialization = config.model.initialization
        batchPerRank = config.batchSize
        globalBatch = config.batchSize * ranks
        syncBNGroupSize = config.model.norm == .syncbn ? (config.syncBNGroupSize ?? ranks) : nil
        seed = config.seed
        steps = summary.steps
        testAccuracy = summary.testAccuracy ?? .nan
        testAccuracyEMA = summary.testAccuracyEMA
        testLoss = summary.testLoss ?? .nan
        // the last evaluation of an epoch counts (with precise BN the final epoch has two)
        var byEpoch: [Int: Double] = [:]
        for e in summary.evaluations { byEpoch[e.epoch] = 1 - e.accuracy }
        testErrorCurve = byEpoch.keys.sorted().map { [Double($0 + 1), byEpoch[$0] ?? .nan] }
        trainErrorCurve = summary.trainAccuracyByEpoch.map { [Double($0.epoch + 1), 1 - $0.accuracy] }
        finalLoss = summary.finalLoss
        let losses = summary.stepLosses
        let initial = losses.prefix(5).reduce(0, +) / Double(max(1, min(5, losses.count)))
        diverged = losses.contains { !$0.isFinite } || !(summary.finalLoss < 2 * initial)
        let tail = losses.suffix(max(1, losses.count / 5))
        let tailMean = tail.reduce(0, +) / Double(tail.count)
        lossSpread = (tail.reduce(0) { $0 + ($1 - tailMean) * ($1 - tailMean) } / Double(tail.count)).squareRoot()
        let stride = max(1, losses.count / 200)
        lossCurve = Swift.stride(from: 0, to: losses.count, by: stride).map { [Double($0 + 1), losses[$0]] }

        let records = summary.diagnostics
        let first = records.first, later = records.count > 1 ? Array(records.dropFirst()) : records
        func average(_ pick: (DiagnosticsRecord) -> [Double]) -> [Double] {
            guard let n = later.first.map({ pick($0).count }), n > 0 else { return [] }
            return (0..<n).map { i in later.reduce(0) { $0 + pick($1)[i] } / Double(later.count) }
        }
        func scalarMean(_ values: [Double]) -> Double? {
            values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
        }
        gradNormInit = first?.weightGradNorm ?? []
        gradNormTrain = average(\.weightGradNorm)
        inputGradNormInit = first?.inputGradNorm ?? []
        firstLastRatioInit = first?.firstToLastGradientRatio
        firstLastRatioTrain = scalarMean(later.compactMap(\.firstToLastGradientRatio))
        saturationInit = first?.saturation ?? []
        saturationTrain = average(\.saturation)
        preactStdTrain = average(\.preactStd)
        bnNoiseMean = scalarMean(records.flatMap(\.batchStatNoiseMean))
        rankNoiseMean = scalarMean(records.flatMap(\.rankStatNoiseMean)) ?? .nan
        let shifts = records.compactMap(\.distributionShift)
        distributionShift = shifts.isEmpty ? nil
            : (0..<shifts[0].count).map { i in shifts.reduce(0) { $0 + $1[i] } / Double(shifts.count) }
        let ics = later.compactMap(\.icsGradientRelative)
        icsGradientRelative = ics.isEmpty ? nil
            : (0..<ics[0].count).map { i in ics.reduce(0) { $0 + $1[i] } / Double(ics.count) }
        let n = Double(max(summary.steps, 1))
        stepSeconds = summary.timings.total / n
        syncBNSecondsPerStep = summary.timings.syncBNCommunication / n
        gradSyncSecondsPerStep = summary.timings.gradientSync / n
        trainingSeconds = summary.trainingSeconds
        configuration = config.studySummary
    }

    /// One result for several seeds of the same configuration: arithmetic means, except for
    /// gradient norms and ratios, which span orders of magnitude and are averaged geometrically;
    /// `diverged` if any run diverged; `testAccuracyStd` over the runs. The means are over the
    /// seeds that did not diverge (a diverged run has no accuracy), over all when none finished.
    static func combined(_ all: [RunResult]) -> RunResult {
        guard all.count > 1 else { return all[0] }
        let finished = all.filter { !$0.diverged }
        let runs = finished.isEmpty ? all : finished
        guard runs.count > 1 else {
            var r = runs[0]
            r.seeds = all.count
            r.diverged = true
            r.divergedSeeds = all.count - finished.count
            return r
        }
        var r = runs[0]
        func arithmetic(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }
        func geometric(_ values: [Double]) -> Double {
            values.allSatisfy { $0 > 0 }
                ? Foundation.exp(arithmetic(values.map { Foundation.log($0) })) : arithmetic(values)
        }
        func each(_ pick: (RunResult) -> [Double]?, _ average: ([Double]) -> Double) -> [Double]? {
            let arrays = runs.compactMap(pick)
            guard arrays.count == runs.count, let n = arrays.map(\.count).min() else { return nil }
            return (0..<n).map { i in average(arrays.map { $0[i] }) }
        }
        func scalar(_ pick: (RunResult) -> Double?, _ average: ([Double]) -> Double) -> Double? {
            let values = runs.compactMap(pick)
            return values.count == runs.count ? average(values) : nil
        }
        r.seeds = all.count
        r.divergedSeeds = all.count - finished.count
        r.testAccuracy = arithmetic(runs.map(\.testAccuracy))
        r.testAccuracyStd = (runs.reduce(0) {
            $0 + ($1.testAccuracy - r.testAccuracy) * ($1.testAccuracy - r.testAccuracy)
        } / Double(runs.count - 1)).squareRoot()
        let emas = runs.compactMap(\.testAccuracyEMA)
        if emas.count == runs.count {
            let ema = arithmetic(emas)
            r.testAccuracyEMA = ema
            r.testAccuracyEMAStd = (emas.reduce(0) { $0 + ($1 - ema) * ($1 - ema) }
                / Double(emas.count - 1)).squareRoot()
        }
        r.testLoss = arithmetic(runs.map(\.testLoss))
        func curve(_ pick: (RunResult) -> [[Double]]) -> [[Double]] {
            let n = runs.map { pick($0).count }.min() ?? 0
            return (0..<n).map { i in [pick(r)[i][0], arithmetic(runs.map { pick($0)[i][1] })] }
        }
        r.testErrorCurve = curve(\.testErrorCurve)
        r.trainErrorCurve = curve(\.trainErrorCurve)
        r.finalLoss = arithmetic(runs.map(\.finalLoss))
        r.diverged = all.contains(where: \.diverged)
        r.lossSpread = arithmetic(runs.map(\.lossSpread))
        let points = runs.map(\.lossCurve.count).min() ?? 0
        r.lossCurve = (0..<points).map { i in [r.lossCurve[i][0], arithmetic(runs.map { $0.lossCurve[i][1] })] }
        r.gradNormInit = each(\.gradNormInit, geometric) ?? []
        r.gradNormTrain = each(\.gradNormTrain, geometric) ?? []
        r.inputGradNormInit = each(\.inputGradNormInit, geometric) ?? []
        r.firstLastRatioInit = scalar(\.firstLastRatioInit, geometric)
        r.firstLastRatioTrain = scalar(\.firstLastRatioTrain, geometric)
        r.saturationInit = each(\.saturationInit, arithmetic) ?? []
        r.saturationTrain = each(\.saturationTrain, arithmetic) ?? []
        r.preactStdTrain = each(\.preactStdTrain, arithmetic) ?? []
        r.bnNoiseMean = scalar(\.bnNoiseMean, arithmetic)
        r.rankNoiseMean = arithmetic(runs.map(\.rankNoiseMean))
        r.distributionShift = each(\.distributionShift, arithmetic)
        r.icsGradientRelative = each(\.icsGradientRelative, arithmetic)
        r.stepSeconds = arithmetic(runs.map(\.stepSeconds))
        r.syncBNSecondsPerStep = arithmetic(runs.map(\.syncBNSecondsPerStep))
        r.gradSyncSecondsPerStep = arithmetic(runs.map(\.gradSyncSecondsPerStep))
        r.trainingSeconds = arithmetic(runs.map(\.trainingSeconds))
        return r
    }

    /// `combined(_:)` per configuration (runs with the same `name`), in order of first appearance.
    static func combinedBySetting(_ results: [RunResult]) -> [RunResult] {
        var order: [String] = []
        var runs: [String: [RunResult]] = [:]
        for r in results {
            if runs[r.name] == nil { order.append(r.name) }
            runs[r.name, default: []].append(r)
        }
        return order.map { combined(runs[$0]!) }
    }

    /// One JSON line (NaN and infinities written as strings, which JSON lacks).
    public var jsonLine: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}
