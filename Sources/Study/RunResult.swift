import Foundation
import Training

/// The outcome of one study configuration: what the reports and figures are made of, and one
/// line of the study's results.jsonl.
public struct RunResult: Codable, Sendable {
    public var study: String
    public var name: String
    public var mode: String
    public var ranks: Int
    public var depth: Int
    public var width: Int
    public var activation: String
    public var norm: String
    public var initialization: String
    public var batchPerRank: Int
    public var globalBatch: Int
    public var syncBNGroupSize: Int?
    public var steps: Int
    public var testAccuracy: Double
    public var testLoss: Double
    public var finalLoss: Double
    public var diverged: Bool
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

    init(study: String, name: String, mode: String, ranks: Int, config: TrainingConfiguration, summary: TrainingSummary) {
        self.study = study
        self.name = name
        self.mode = mode
        self.ranks = ranks
        depth = config.model.depth
        width = config.model.width
        activation = config.model.activation
        norm = config.model.norm.rawValue
        initialization = config.model.initialization
        batchPerRank = config.batchSize
        globalBatch = config.batchSize * ranks
        syncBNGroupSize = config.model.norm == .syncbn ? (config.syncBNGroupSize ?? ranks) : nil
        steps = summary.steps
        testAccuracy = summary.testAccuracy ?? .nan
        testLoss = summary.testLoss ?? .nan
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
        func scalarMean(_ values: [Double]) -> Double? { values.isEmpty ? nil : values.reduce(0, +) / Double(values.count) }
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
        distributionShift = shifts.isEmpty ? nil : (0..<shifts[0].count).map { i in shifts.reduce(0) { $0 + $1[i] } / Double(shifts.count) }
        let ics = later.compactMap(\.icsGradientRelative)
        icsGradientRelative = ics.isEmpty ? nil : (0..<ics[0].count).map { i in ics.reduce(0) { $0 + $1[i] } / Double(ics.count) }
        let n = Double(max(summary.steps, 1))
        stepSeconds = summary.timings.total / n
        syncBNSecondsPerStep = summary.timings.syncBNCommunication / n
        gradSyncSecondsPerStep = summary.timings.gradientSync / n
        trainingSeconds = summary.trainingSeconds
    }

    /// One JSON line (NaN and infinities written as strings, which JSON lacks).
    public var jsonLine: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}
