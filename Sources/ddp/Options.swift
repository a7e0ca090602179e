import ArgumentParser
import SwiftDDPNN
import SwiftDDPTraining
extension ActivationKind: ExpressibleByArgument {}
extension NormKind: ExpressibleByArgument {}
extension InitScheme: ExpressibleByArgument {}
extension GradientSyncMode: ExpressibleByArgument {}
extension TrainingConfiguration.OptimizerKind: ExpressibleByArgument {}
extension TrainingConfiguration.ScheduleKind: ExpressibleByArgument {}
extension FaultInjection.Kind: ExpressibleByArgument {}
extension Architecture: ExpressibleByArgument {}

/// Where the data comes from.
struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Fashion-MNIST directory (IDX files, .gz or raw), or a safetensors file of your own: "
                               + "images [N, C, H, W] or [N, F] (uint8 or float32), labels [N], optionally "
                               + "test_images and test_labels (Docs/usage.md).", valueName: "dir|file"))
    var data = "/usr/share/datasets/fashion-mnist"

    @Flag(help: "Use seeded synthetic data instead of Fashion-MNIST.")
    var synthetic = false

    @Option(help: "Synthetic training samples.")
    var syntheticTrain = 4096

    @Option(help: "Synthetic test samples.")
    var syntheticTest = 1024
}

/// The network.
struct ModelOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Model: mlp, cnn (two conv blocks and two Linear layers), resnet (the CIFAR ResNet, "
                               + "depth 6n+2), plain (that ResNet without shortcuts, He et al.'s plain baseline)."))
    var model = Architecture.mlp

    @Option(help: "mlp: hidden layers (default 2); resnet, plain: layers, 6n+2 (default 20).")
    var depth: Int?

    @Option(help: """
        mlp: units per hidden layer (256); cnn: channels of the first conv (32); resnet, plain: of the first stage (16).
        """)
    var width: Int?

    @Option(help: "Hidden activation: \(ActivationKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var activation = ActivationKind.relu

    @Option(help: "Normalization: none, bn (per-rank BatchNorm1d/2d), syncbn (SyncBatchNorm), groupnorm (GroupNorm).")
    var norm = NormKind.syncbn

    @Option(help: "GroupNorm's number of groups (--norm groupnorm).")
    var groups = 8

    @Option(
        help: "Linear and Conv2d initialization: default (PyTorch's), xavier, kaiming (resnet, plain: torchvision's).")
    var `init` = InitScheme.default

    @Option(help: "Dropout probability after each activation (mlp; 0: none).")
    var dropout: Float = 0

    @Flag(help: "Augment training images: a random crop of the 2-pixel zero-padded image and a horizontal flip.")
    var augment = false

    func validate() throws {
        if model == .cnn, depth != nil { throw ValidationError("--depth does not apply to --model cnn") }
    }

    var configuration: ModelConfiguration {
        ModelConfiguration(architecture: model, depth: depth, width: width, activation: activation, norm: norm,
                           groups: groups, initialization: `init`, dropout: dropout)
    }
}

/// The optimizer and its schedule.
struct OptimizerOptions: ParsableArguments {
    @Option(help: "Optimizer: sgd, adam, adamw.")
    var optimizer = TrainingConfiguration.OptimizerKind.sgd

    @Option(help: "Learning rate.")
    var lr: Float = 0.05

    @Option(help: "SGD momentum.")
    var momentum: Float = 0.9

    @Flag(help: "Nesterov momentum (SGD).")
    var nesterov = false

    @Option(help: "Weight decay (L2 for sgd/adam, decoupled for adamw).")
    var weightDecay: Float = 0

    @Option(help: "Learning-rate schedule: constant, step, cosine (annealed to 0 over the run).")
    var schedule = TrainingConfiguration.ScheduleKind.cosine

    @Option(help: "Linear warm-up steps.")
    var warmupSteps = 0

    @Option(help: "StepLR: steps between decays.")
    var stepSize = 1000

    @Option(help: "StepLR: decay factor.")
    var gamma: Float = 0.1
}

/// How the ranks cooperate.
struct DistributedOptions: ParsableArguments {
    @Option(help: """
        Gradient averaging: sharded (through shared memory inside each host, each rank updating its 1/L of the host's \
        one copy of the model; across hosts, 1/L per rank all-reduced between hosts), shared (the same sum, every rank \
        updating the whole model), flat (one all-reduce) or bucketed (overlapped with backward).
        """)
    var gradSync = GradientSyncMode.sharded

    @Option(help: "Bucket size in MiB for --grad-sync bucketed.")
    var bucketMb: Double = 1

    @Option(help: "Synchronize SyncBN over consecutive groups of this many ranks (default: all).")
    var syncbnGroupSize: Int?

    @Flag(inversion: .prefixedNo, help: "Broadcast rank 0's BatchNorm buffers before each forward (--norm bn).")
    var broadcastBuffers = true

    func validate() throws {
        // Checked before the conversion to bytes, which traps on NaN or overflow.
        if !(0...1_048_576).contains(bucketMb) {
            throw ValidationError("--bucket-mb must be between 0 and 1048576, got \(bucketMb)")
        }
    }
}

extension TrainingConfiguration {
    init(data: DataOptions, model: ModelOptions, optimizer: OptimizerOptions, distributed: DistributedOptions) {
        self.init()
        self.model = model.configuration
        augment = model.augment
        dataDirectory = data.synthetic ? nil : data.data
        syntheticTrainCount = data.syntheticTrain
        syntheticTestCount = data.syntheticTest
        self.optimizer = optimizer.optimizer
        learningRate = optimizer.lr
        momentum = optimizer.optimizer == .sgd ? optimizer.momentum : 0
        nesterov = optimizer.nesterov
        weightDecay = optimizer.weightDecay
        schedule = optimizer.schedule
        warmupSteps = optimizer.warmupSteps
        stepSize = optimizer.stepSize
        gamma = optimizer.gamma
        gradSync = distributed.gradSync
        bucketBytes = Int(distributed.bucketMb * 1_048_576)
        syncBNGroupSize = distributed.syncbnGroupSize
        broadcastBuffers = distributed.broadcastBuffers
    }
}

/// What to measure while training (the study features).
struct DiagnosticsOptions: ParsableArguments {
    @Option(help: """
        Record gradient norms, pre-activation statistics, saturation and BN statistics noise every N steps \
        (from step 0) in the metrics file.
        """)
    var diagnosticsEvery: Int?

    @Flag(help: "At diagnostic steps, also measure internal covariate shift on a fixed probe batch.")
    var covariateShift = false

    @Option(help: "Samples in the covariate-shift probe batch.")
    var probeSize = 256

    func apply(to c: inout TrainingConfiguration) {
        c.diagnosticsEvery = diagnosticsEvery
        c.covariateShift = covariateShift
        c.probeSize = probeSize
    }
}
