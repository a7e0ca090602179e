import SwiftDDPCollectives
extension ModelConfiguration {
    /// The CIFAR ResNet of He et al. (2016, section 4.2) on [C, H, W] images, w = `width`:
    /// conv3×3(C→w, no bias), norm, activation; three stages of n = (depth − 2)/6 BasicBlocks
    /// with w, 2w and 4w channels, the first block of stages 2 and 3 with stride 2 and a
    /// projection shortcut [1×1 conv, norm]; global average pooling; Linear(4w, classes).
    /// Names as torchvision's ResNet (`conv1`, `bn1`, `layer2.0.downsample.1`, `fc`), so a
    /// checkpoint loads into scripts/peers/models.py `resnet` with `strict=True`.
    /// Without `shortcuts`, He et al.'s plain baseline: the same layers and names, minus the
    /// sums and the `downsample` projections (scripts/peers/models.py `plain`).
    func resnetLayers(syncGroup: (any ProcessGroup)?, shortcuts: Bool = true) -> Sequential {
        let n = (depth - 2) / 6, w = width
        let norm = self.norm == .none ? nil : { (c: Int) -> any Layer in
            self.normLayer(c, images: true, syncGroup: syncGroup)!
        }
        var named: [(name: String, layer: any Layer)] = [("conv1", Conv2d(inputShape[0], w, kernel: 3, padding: 1,
                                                                          bias: false))]
        if let norm { named.append(("bn1", norm(w))) }
        named.append(("relu", Activation(activationKind)))
        var channels = w
        for (stage, planes) in [w, 2 * w, 4 * w].enumerated() {
            let blocks = (0..<n).map { i -> any Layer in
                let block = BasicBlock(inChannels: channels, channels: planes, stride: stage > 0 && i == 0 ? 2 : 1,
                                       activation: activationKind, norm: norm, shortcut: shortcuts)
                channels = planes
                return block
            }
            named.append(("layer\(stage + 1)", Sequential(blocks)))
        }
        named.append(("avgpool", GlobalAvgPool2d()))
        named.append(("flatten", Flatten()))
        named.append(("fc", Linear(inFeatures: 4 * w, outFeatures: classes)))
        return Sequential(named: named, typeName: shortcuts ? "ResNet" : "PlainNet")
    }
}
