/// Seconds spent in each kind of leaf layer, forward and backward, and the input each leaf last
/// ran on: the per-layer breakdown of `ddp bench train` and the inputs its floor measurement
/// replays. Set it as a model's `runner.timer`; with none set the runner times nothing.
public final class LayerTimer {
    public enum Kind: String, CaseIterable, Sendable {
        case convolution, linear, normalization, pooling, activation, other

        public init(of layer: any Layer) {
            switch layer {
            case is Conv2d: self = .convolution
            case is Linear: self = .linear
            case is BatchNorm, is GroupNorm: self = .normalization
            case is MaxPool2d, is AvgPool2d, is GlobalAvgPool2d: self = .pooling
            case is Activation: self = .activation
            default: self = .other
            }
        }
    }

    /// Seconds per kind (indexed by `Kind.allCases` order).
    public private(set) var forwardSeconds: [Double]
    public private(set) var backwardSeconds: [Double]
    /// Per leaf (registration order): the batch rows and sample shape of its last forward input.
    public private(set) var lastInput: [(rows: Int, shape: SampleShape)?]
    /// Per leaf: whether its last backward was asked for the input gradient.
    public private(set) var lastNeededInputGradient: [Bool]
    /// Per leaf: its kind.
    public let kinds: [Kind]
    private let kindIndex: [Int]

    public init(leaves: [any Layer]) {
        kinds = leaves.map(Kind.init(of:))
        kindIndex = kinds.map { kind in Kind.allCases.firstIndex(of: kind) ?? 0 }
        forwardSeconds = Array(repeating: 0, count: Kind.allCases.count)
        backwardSeconds = forwardSeconds
        lastInput = Array(repeating: nil, count: leaves.count)
        lastNeededInputGradient = Array(repeating: false, count: leaves.count)
    }

    /// Zeroes the totals (the inputs seen stay).
    public func reset() {
        for i in forwardSeconds.indices { forwardSeconds[i] = 0; backwardSeconds[i] = 0 }
    }

    /// The totals by kind name.
    public var forwardByKind: [String: Double] { byKind(forwardSeconds) }
    public var backwardByKind: [String: Double] { byKind(backwardSeconds) }

    private func byKind(_ seconds: [Double]) -> [String: Double] {
        Dictionary(uniqueKeysWithValues: zip(Kind.allCases.map(\.rawValue), seconds))
    }

    func addForward(leaf: Int, input: Matrix, seconds: Double) {
        forwardSeconds[kindIndex[leaf]] += seconds
        lastInput[leaf] = (input.rows, input.shape)
    }

    func addBackward(leaf: Int, neededInputGradient: Bool, seconds: Double) {
        backwardSeconds[kindIndex[leaf]] += seconds
        lastNeededInputGradient[leaf] = neededInputGradient
    }
}
