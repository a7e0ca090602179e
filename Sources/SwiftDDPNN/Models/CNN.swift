import SwiftDDPCollectives
extension ModelConfiguration {
    /// The small CNN of `--model cnn`, with C = `width`:
    /// `nn.Sequential(Conv2d(1,C,3,padding=1), Norm(C), act, MaxPool2d(2), Conv2d(C,2C,3,padding=1),
    /// Norm(2C), act, MaxPool2d(2), Flatten(), Linear(2C·H/4·W/4, 128), Norm1d(128), act,
    /// Linear(128, classes))`; without normalization the norm layers are left out and the
    /// indices shift as `nn.Sequential`'s would (scripts/peers/models.py `cnn`).
    func cnnLayers(syncGroup: (any ProcessGroup)?) -> Sequential {
        let C = width, channels = inputShape[0], height = inputShape[1], side = inputShape[2]
        var layers: [any Layer] = []
        func block(_ input: Int, _ output: Int) {
            layers.append(Conv2d(input, output, kernel: 3, padding: 1))
            if let norm = normLayer(output, images: true, syncGroup: syncGroup) { layers.append(norm) }
            layers.append(Activation(activationKind))
            layers.append(MaxPool2d(kernel: 2))
        }
        block(channels, C)
        block(C, 2 * C)
        layers.append(Flatten())
        layers.append(Linear(inFeatures: 2 * C * (height / 2 / 2) * (side / 2 / 2), outFeatures: 128))
        if let norm = normLayer(128, images: false, syncGroup: syncGroup) { layers.append(norm) }
        layers.append(Activation(activationKind))
        layers.append(Linear(inFeatures: 128, outFeatures: classes))
        return Sequential(layers)
    }
}
