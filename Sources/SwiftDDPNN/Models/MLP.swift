import SwiftDDPCollectives
extension ModelConfiguration {
    /// The MLP: `depth` hidden blocks [Linear, norm (unless none), activation, Dropout (when
    /// dropout > 0)], then the output Linear.
    ///
    /// The equivalent PyTorch model (depth 2, width 256, BN, ReLU) is
    /// `nn.Sequential(nn.Linear(784,256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256,256),
    /// nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256,10))`, with identical state-dict keys.
    func mlpLayers(seed: UInt64, syncGroup: (any ProcessGroup)?, rank: Int) -> Sequential {
        var layers: [any Layer] = []
        var features = inputFeatures
        for _ in 0..<depth {
            layers.append(Linear(inFeatures: features, outFeatures: width))
            features = width
            if let norm = normLayer(width, images: false, syncGroup: syncGroup) { layers.append(norm) }
            layers.append(Activation(activationKind))
            if dropout > 0 {
                // One stream per layer, the same on every rank: the trainer keys each row's mask by
                // its sample, so the masks do not depend on the rank that trains it.
                let stream = seed &+ UInt64(layers.count)
                layers.append(Dropout(probability: dropout, seed: stream))
            }
        }
        layers.append(Linear(inFeatures: features, outFeatures: classes))
        return Sequential(layers)
    }
}
