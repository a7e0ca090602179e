import Collectives

/// Which normalization follows each hidden Linear layer.
public enum NormKind: String, CaseIterable, Sendable, Codable {
    /// No normalization.
    case none
    /// BatchNorm1d with per-rank statistics (`torch.nn.BatchNorm1d` under DDP).
    case bn
    /// BatchNorm1d with statistics synchronized over a process group (`torch.nn.SyncBatchNorm`).
    case syncbn
}

/// A multi-layer perceptron: `depth` hidden blocks [Linear, BatchNorm1d (unless norm is none),
/// activation, Dropout (when dropout > 0)], then the output Linear.
///
/// The equivalent PyTorch model (depth 2, width 256, BN, ReLU) is
/// `nn.Sequential(nn.Linear(784,256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256,256),
/// nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256,10))`, with identical state-dict keys.
public struct MLPConfiguration: Sendable, Equatable, Codable {
    public var inputFeatures = 784
    public var depth = 2
    public var width = 256
    public var classes = 10
    public var activation: String = ActivationKind.relu.rawValue
    public var norm: NormKind = .syncbn
    public var initialization: String = InitScheme.default.rawValue
    public var dropout: Float = 0

    public init(inputFeatures: Int = 784, depth: Int = 2, width: Int = 256, classes: Int = 10,
                activation: ActivationKind = .relu, norm: NormKind = .syncbn, initialization: InitScheme = .default,
                dropout: Float = 0)
    {
        self.inputFeatures = inputFeatures
        self.depth = depth
        self.width = width
        self.classes = classes
        self.activation = activation.rawValue
        self.norm = norm
        self.initialization = initialization.rawValue
        self.dropout = dropout
    }

    /// Learnable parameters (weights, biases, BatchNorm's γ and β), in Double so that absurd
    /// sizes can be refused before anything is allocated.
    public var parameterCount: Double {
        let sizes = [Double(inputFeatures)] + Array(repeating: Double(width), count: max(depth, 0)) + [Double(classes)]
        let linear = zip(sizes, sizes.dropFirst()).reduce(0) { $0 + $1.0 * $1.1 + $1.1 }
        return linear + (norm == .none ? 0 : 2 * Double(width) * Double(max(depth, 0)))
    }

    public var activationKind: ActivationKind { ActivationKind(rawValue: activation) ?? .relu }
    public var initScheme: InitScheme { InitScheme(rawValue: initialization) ?? .default }
}

extension Sequential {
    /// Builds and initializes an MLP.
    /// - Parameters:
    ///   - config: the architecture.
    ///   - seed: seeds the weight initialization (ranks are made identical by a broadcast later).
    ///   - syncGroup: the group SyncBatchNorm layers synchronize over (used when norm is syncbn).
    ///   - rank: this rank's index, so each rank draws its own dropout masks.
    public static func mlp(_ config: MLPConfiguration, seed: UInt64, syncGroup: (any ProcessGroup)? = nil,
                           rank: Int = 0) -> Sequential {
        let store = ParameterStore()
        var layers: [any Layer] = []
        var features = config.inputFeatures
        for _ in 0..<config.depth {
            layers.append(Linear(inFeatures: features, outFeatures: config.width, store: store, prefix: "\(layers.count)"))
            features = config.width
            switch config.norm {
            case .none: break
            case .bn:
                layers.append(BatchNorm1d(features: features, store: store, prefix: "\(layers.count)"))
            case .syncbn:
                layers.append(BatchNorm1d(features: features, store: store, prefix: "\(layers.count)", group: syncGroup))
            }
            layers.append(Activation(config.activationKind))
            if config.dropout > 0 {
                layers.append(Dropout(probability: config.dropout, seed: seed &+ UInt64(layers.count) &+ UInt64(rank) &* 0x9E37_79B9))
            }
        }
        layers.append(Linear(inFeatures: features, outFeatures: config.classes, store: store, prefix: "\(layers.count)"))
        let model = Sequential(layers: layers, store: store, inputFeatures: config.inputFeatures)
        var generator = SeededGenerator(seed: seed)
        for layer in layers {
            if let linear = layer as? InitializableLayer {
                linear.resetParameters(scheme: config.initScheme, using: &generator)
            } else if let bn = layer as? BatchNorm1d {
                bn.resetParameters()
            }
        }
        return model
    }
}
