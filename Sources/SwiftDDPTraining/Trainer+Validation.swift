import SwiftDDPDatasets
import SwiftDDPNN

extension Trainer {
    /// The checks that need no communication: run them on every rank before any collective,
    /// so a bad option cannot leave some ranks waiting in a collective the others never reach.
    /// A failure is a `ConfigurationError` naming the field (or `train`, `test`, `model`: the data
    /// or the model given).
    public static func validate(_ config: TrainingConfiguration, worldSize: Int, train: Dataset, test: Dataset,
                                model: Model? = nil) throws
    {
        try config.validate(worldSize: worldSize)
        if let model {
            try validate(config, worldSize: worldSize, train: train, test: test, custom: model)
            return
        }
        guard train.features == config.model.inputFeatures, test.features == train.features else {
            throw ConfigurationError(field: "model.inputShape", message: """
                the model expects \(config.model.inputFeatures) input features, the data has \(train.features)
                """)
        }
        if config.model.architecture != .mlp, train.sampleShape != config.model.sampleShape {
            throw ConfigurationError("model.architecture", """
                \(config.model.architecture.rawValue) expects images \(config.model.inputShape), \
                the data has samples of shape \(train.sampleShape)
                """)
        }
        guard train.classes == config.model.classes else {
            throw ConfigurationError(field: "model.classes", message: """
                the model has \(config.model.classes) outputs, the data has \(train.classes) classes
                """)
        }
        guard train.count > 0 else { throw ConfigurationError(field: "train", message: "the training set is empty") }
        if config.shuffle && train.count > DistributedSampler.maximumShuffledSize {
            throw ConfigurationError(field: "shuffle", message: """
                \(train.count) training samples: shuffling as PyTorch does supports at most \
                \(DistributedSampler.maximumShuffledSize) (or \(setting: "shuffle", false))
                """)
        }
        if config.evaluate && test.count == 0 {
            throw ConfigurationError(field: "test", message: """
                the test set is empty (\(setting: "evaluate", false) to train without one)
                """)
        }
        let perRank = DistributedSampler(datasetSize: train.count, worldSize: worldSize, rank: 0,
                                         shuffle: false, dropLast: config.dropLast).samplesPerRank
        guard perRank > 0 else {
            throw ConfigurationError("dropLast",
                                     "leaves no training sample: \(train.count) samples over \(worldSize) ranks")
        }
        // PyTorch fails inside the epoch when a BatchNorm layer sees one value per channel; an
        // epoch's last, partial batch would do that here after a whole epoch of work, so say it
        // before. (A BatchNorm2d counts every position: one image is enough for the ResNet.)
        let tail = perRank % config.batchSize
        let normalizedTogether = config.model.norm == .syncbn ? config.syncBNGroupSize ?? worldSize : 1
        let reachesTail = totalSteps(config: config, datasetSize: train.count, worldSize: worldSize)
            > perRank / config.batchSize
        let values = tail * normalizedTogether * config.model.batchNormPositions
        if config.model.norm.usesBatchStatistics, tail > 0, values < 2, reachesTail {
            throw ConfigurationError(field: "batchSize", message: """
                BatchNorm needs more than one sample per batch, but each epoch ends with a batch of \(tail) sample \
                per rank (\(perRank) per rank, \(field: "batchSize") \(config.batchSize)): \
                choose another \(field: "batchSize") or \(field: "maxSteps")
                """)
        }
    }

    /// The data checks for a model given to `init`: its input and output shapes.
    private static func validate(_ config: TrainingConfiguration, worldSize: Int, train: Dataset, test: Dataset,
                                 custom model: Model) throws
    {
        guard train.sampleShape.count == model.inputShape.count, test.features == train.features,
              train.sampleShape.isImage == model.inputShape.isImage || !model.inputShape.isImage else {
            throw ConfigurationError(field: "model", message: """
                the model takes samples of shape \(model.inputShape), the data has \(train.sampleShape)
                """)
        }
        guard model.outputFeatures == train.classes else {
            throw ConfigurationError(field: "model", message: """
                the model has \(model.outputFeatures) outputs, the data has \(train.classes) classes
                """)
        }
        guard train.count > 0 else { throw ConfigurationError(field: "train", message: "the training set is empty") }
        if config.evaluate && test.count == 0 {
            throw ConfigurationError(field: "test", message: """
                the test set is empty (\(setting: "evaluate", false) to train without one)
                """)
        }
    }
}
