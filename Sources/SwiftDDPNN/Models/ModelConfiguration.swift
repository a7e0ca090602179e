import SwiftDDPCollectives
/// Which normalization the model uses after its weight layers.
public enum NormKind: String, CaseIterable, Sendable, Codable {
    /// No normalization.
    case none
    /// BatchNorm1d/2d with per-rank statistics (`torch.nn.BatchNorm1d/2d` under DDP).
    case bn
    /// BatchNorm with statistics synchronized over a process group (`torch.nn.SyncBatchNorm`).
    case syncbn
    /// GroupNorm(G, C) (`torch.nn.GroupNorm`): per-sample statistics, no communication.
    case groupnorm

    /// Whether the layers normalize with batch statistics (and need two samples per batch).
    public var usesBatchStatistics: Bool { self == .bn || self == .syncbn }
}

/// The networks `ddp train --model` builds; each has an exact PyTorch twin in
/// scripts/peers/models.py with the same state-dict keys.
public enum Architecture: String, CaseIterable, Sendable, Codable {
    /// `depth` hidden blocks [Linear, norm, activation, Dropout], then the output Linear.
    case mlp
    /// Two conv blocks [Conv2d 3×3, norm, activation, MaxPool2d(2)] of C and 2C channels, then
    /// [Flatten, Linear(·, 128), norm, activation, Linear(128, classes)].
    case cnn
    /// The CIFAR ResNet of He et al. (2016, section 4.2), depth 6n + 2.
    case resnet
    /// He et al.'s plain baseline: the ResNet without its shortcuts (no sums, no projections).
    case plain

    /// Whether the network is the ResNet or its plain twin (the same layers but the shortcuts).
    public var isResNetFamily: Bool { self == .resnet || self == .plain }

    /// Default (depth, width) when the options leave them out.
    public var defaultSize: (depth: Int, width: Int) {
        switch self {
        case .mlp: (2, 256)
        case .cnn: (0, 32)
        case .resnet, .plain: (20, 16)
        }
    }
}

/// Everything that defines a model: architecture, sizes, normalization, activation and
/// initialization.
public struct ModelConfiguration: Sendable, Equatable, Codable {
    public var architecture = Architecture.mlp
    /// The shape of one input sample in PyTorch's terms: `[F]` or `[C, H, W]`.
    public var inputShape = [784]
    /// MLP: hidden layers; ResNet: 6n + 2 layers; unused by the CNN.
    public var depth = 2
    /// MLP: hidden units; CNN: C, the first conv's channels; ResNet: the first stage's channels.
    public var width = 256
    public var classes = 10
    public var activation: String = ActivationKind.relu.rawValue
    public var norm: NormKind = .syncbn
    /// GroupNorm's number of groups (`--groups`).
    public var groups = 8
    public var initialization: String = InitScheme.default.rawValue
    public var dropout: Float = 0

    public init(architecture: Architecture = .mlp, inputShape: [Int]? = nil, inputFeatures: Int = 784,
                depth: Int? = nil, width: Int? = nil, classes: Int = 10, activation: ActivationKind = .relu,
                norm: NormKind = .syncbn, groups: Int = 8, initialization: InitScheme = .default, dropout: Float = 0)
    {
        self.architecture = architecture
        // Conv nets default to Fashion-MNIST's images; the trainer checks the data against it.
        self.inputShape = inputShape ?? (architecture == .mlp ? [inputFeatures] : [1, 28, 28])
        self.depth = depth ?? architecture.defaultSize.depth
        self.width = width ?? architecture.defaultSize.width
        self.classes = classes
        self.activation = activation.rawValue
        self.norm = norm
        self.groups = groups
        self.initialization = initialization.rawValue
        self.dropout = dropout
    }

    public var activationKind: ActivationKind { ActivationKind(rawValue: activation) ?? .relu }
    public var initScheme: InitScheme { InitScheme(rawValue: initialization) ?? .default }
    public var inputFeatures: Int { inputShape.reduce(1, *) }

    /// The input as a `SampleShape` (nil when `inputShape` has neither 1 nor 3 positive sizes).
    public var sampleShape: SampleShape? {
        guard inputShape.allSatisfy({ $0 > 0 }) else { return nil }
        switch inputShape.count {
        case 1: return .features(inputShape[0])
        case 3: return .image(channels: inputShape[0], height: inputShape[1], width: inputShape[2])
        default: return nil
        }
    }

    /// One line naming the network, e.g. `MLP 784-256-256-10`, `CNN 32-64-128`, `ResNet-20 16-32-64`.
    public var summary: String {
        switch architecture {
        case .mlp: "MLP " + ([inputFeatures] + Array(repeating: width, count: depth) + [classes]).map(String.init)
            .joined(separator: "-")
        case .cnn: "CNN \(width)-\(2 * width)-128 on \(inputShape)"
        case .resnet: "ResNet-\(depth) \(width)-\(2 * width)-\(4 * width) on \(inputShape)"
        case .plain: "Plain-\(depth) (no shortcuts) \(width)-\(2 * width)-\(4 * width) on \(inputShape)"
        }
    }

    /// Checks the sizes, with one clear line naming the field (`ConfigurationError`, its names
    /// relative to this configuration: `depth`; `model.depth` when a `TrainingConfiguration` checks).
    public func validate() throws {
        func fail(_ field: String, _ rest: ConfigurationError.Message) throws -> Never {
            throw ConfigurationError(field, rest)
        }
        if width < 1 { try fail("width", "must be at least 1, got \(width)") }
        if norm == .groupnorm && groups < 1 { try fail("groups", "must be at least 1, got \(groups)") }
        if !(0..<1).contains(dropout) { try fail("dropout", "must be in [0, 1), got \(dropout)") }
        if architecture != .mlp && dropout > 0 { try fail("dropout", "applies to \(field: "architecture") mlp") }
        switch architecture {
        case .mlp:
            if depth < 0 { try fail("depth", "must be ≥ 0, got \(depth)") }
        case .cnn:
            break
        case .resnet, .plain:
            if depth < 8 || (depth - 2) % 6 != 0 {
                throw ConfigurationError(field: "depth", message: """
                    \(field: "architecture") \(architecture.rawValue) needs \(field: "depth") 6n+2 with n ≥ 1 \
                    (8, 14, 20, 32, 44, 56, 110), got \(depth)
                    """)
            }
        }
        if architecture != .mlp, sampleShape?.isImage != true {
            throw ConfigurationError(field: "inputShape", message: """
                \(field: "architecture") \(architecture.rawValue) needs image samples [C, H, W], \
                the data has \(inputShape)
                """)
        }
        if norm == .groupnorm {
            for c in normalizedChannels where c % groups != 0 {
                try fail("groups", "\(groups) must divide every normalized channel count (\(c) does not)")
            }
        }
    }

    /// Learnable parameters (weights, biases, normalization's γ and β), in Double so that
    /// absurd sizes can be refused before anything is allocated.
    public var parameterCount: Double {
        let w = Double(width), k = Double(classes), normed = norm == .none ? 0.0 : 2
        let image = (c: Double(inputShape.first ?? 1), h: Double(inputShape.count == 3 ? inputShape[1] : 1),
                     w: Double(inputShape.count == 3 ? inputShape[2] : 1))
        switch architecture {
        case .mlp:
            let sizes = [Double(inputFeatures)] + Array(repeating: w, count: max(depth, 0)) + [k]
            let linear = zip(sizes, sizes.dropFirst()).reduce(0) { $0 + $1.0 * $1.1 + $1.1 }
            return linear + normed * w * Double(max(depth, 0))
        case .cnn:
            let convs = (image.c * w * 9 + w) + (w * 2 * w * 9 + 2 * w)
            let flat = 2 * w * (image.h / 4).rounded(.down) * (image.w / 4).rounded(.down)
            return convs + (flat * 128 + 128) + (128 * k + k) + normed * (w + 2 * w + 128)
        case .resnet, .plain:
            let n = Double(max(depth - 2, 0) / 6)
            var total = image.c * w * 9 + normed * w + 4 * w * k + k
            var channels = w
            for (stage, planes) in [w, 2 * w, 4 * w].enumerated() {
                // n blocks of two 3×3 convolutions and two norms; the first conv1 reads `channels`
                total += n * (planes * planes * 9 * 2 + 2 * normed * planes) - planes * planes * 9
                    + channels * planes * 9
                if stage > 0 && architecture == .resnet { total += channels * planes + normed * planes }
                channels = planes
            }
            return total
        }
    }

    /// Floats of activations and their gradients one training sample keeps alive (a bound,
    /// to refuse a batch that cannot fit before training).
    public var activationFloatsPerSample: Double {
        let w = Double(width)
        let h = Double(inputShape.count == 3 ? inputShape[1] : 1), x = Double(inputShape.count == 3 ? inputShape[2] : 1)
        let perLayer: Double
        switch architecture {
        case .mlp: perLayer = 4 * w * Double(max(depth, 1)) + Double(inputFeatures + classes)
        case .cnn: perLayer = 4 * w * h * x + 1.5 * w * h * x + 128 * 4 + Double(classes)
        case .resnet, .plain:
            let n = Double(max(depth - 2, 0) / 6)
            perLayer = 4 * w * h * x + (7 * n + 2) * w * h * x * (1 + 0.5 + 0.25)
        }
        return 2 * perLayer  // outputs and input gradients
    }

    /// The fewest values per channel and sample that any BatchNorm layer of the model sees: 1
    /// where a BatchNorm1d normalizes features (mlp, cnn), the last stage's H·W for the ResNet,
    /// whose BatchNorm2d layers count every position (so it trains with one image per batch).
    public var batchNormPositions: Int {
        guard architecture.isResNetFamily, inputShape.count == 3 else { return 1 }
        // two stride-2 stages: ⌈H/4⌉ × ⌈W/4⌉ (3×3 convolutions with padding 1)
        return ((inputShape[1] + 1) / 2 + 1) / 2 * (((inputShape[2] + 1) / 2 + 1) / 2)
    }

    /// The channel counts of the model's normalization layers (for the GroupNorm check).
    var normalizedChannels: [Int] {
        switch architecture {
        case .mlp: depth > 0 ? [width] : []
        case .cnn: [width, 2 * width, 128]
        case .resnet, .plain: [width, 2 * width, 4 * width]
        }
    }

    /// Builds and initializes the model.
    /// - Parameters:
    ///   - seed: seeds the weight initialization (ranks are made identical by a broadcast later).
    ///   - syncGroup: the group SyncBatchNorm layers synchronize over (used when norm is syncbn).
    ///   - rank: this rank's index, so each rank draws its own dropout masks.
    public func build(seed: UInt64, syncGroup: (any ProcessGroup)? = nil, rank: Int = 0) throws -> Model {
        try validate()
        guard let shape = sampleShape else {
            throw NNError("the input shape \(inputShape) is neither [F] nor [C, H, W]")
        }
        let model: Model
        switch architecture {
        case .mlp:
            let layers = mlpLayers(seed: seed, syncGroup: syncGroup, rank: rank)
            model = try Model(layers, inputShape: .features(shape.count))
            model.initialize(scheme: initScheme, seed: seed)
        case .cnn:
            model = try Model(cnnLayers(syncGroup: syncGroup), inputShape: shape)
            model.initialize(scheme: initScheme, seed: seed)
        case .resnet, .plain:
            model = try Model(resnetLayers(syncGroup: syncGroup, shortcuts: architecture == .resnet), inputShape: shape)
            model.initialize(scheme: initScheme, seed: seed)
            // torchvision's ResNet: kaiming-normal (fan-out) convolutions; Linear keeps its default.
            var generator = SeededGenerator(seed: seed ^ 0xC0_4E7)
            for case let conv as Conv2d in model.leaves { conv.resetKaimingNormalFanOut(using: &generator) }
        }
        return model
    }

    /// A normalization layer for `channels` of a feature vector or an image, or nil for none.
    func normLayer(_ channels: Int, images: Bool, syncGroup: (any ProcessGroup)?) -> (any Layer)? {
        switch norm {
        case .none: nil
        case .bn: images ? BatchNorm2d(channels: channels) : BatchNorm1d(features: channels)
        case .syncbn: images ? BatchNorm2d(channels: channels, group: syncGroup)
                             : BatchNorm1d(features: channels, group: syncGroup)
        case .groupnorm: GroupNorm(groups: groups, channels: channels)
        }
    }
}
