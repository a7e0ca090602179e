@testable import Study
import Testing

/// Study bookkeeping that needs no MPI.
@Suite("Study logic")
struct StudyLogicTests {
    @Test("the residual study's last convolution is layer3's last conv2, not a projection after it")
    func lastConvolution() {
        // ResNet-8 in registration order: stem, [conv1, conv2] per block, a projection after the
        // first block of stages 2 and 3, fc — the last block's projection follows its conv2
        let resnet8 = (1...10).map(Double.init)
        #expect(ResidualStudy.firstOverLastConv(resnet8, model: "resnet", depth: 8) == 1.0 / 8)
        // ResNet-14: the last block has no projection; Plain-8 has none at all
        let resnet14 = (1...16).map(Double.init)
        #expect(ResidualStudy.firstOverLastConv(resnet14, model: "resnet", depth: 14) == 1.0 / 15)
        let plain8 = (1...8).map(Double.init)
        #expect(ResidualStudy.firstOverLastConv(plain8, model: "plain", depth: 8) == 1.0 / 7)
    }
}
