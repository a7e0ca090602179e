import SwiftDDPNN
@testable import SwiftDDPStudy
import Testing
import SwiftDDPTraining
@testable import SwiftDDPTestSupport
/// Study bookkeeping that needs no MPI.
@Suite("Study logic")
struct StudyLogicTests {
    @Test("a study's run settings: another architecture gets its own default sizes; --epochs replaces the length")
    func overrides() {
        var c = TrainingConfiguration()
        c.model = ModelConfiguration(inputFeatures: 784, depth: 3, width: 128, activation: .tanh, norm: .bn,
                                     dropout: 0.2)
        c.maxSteps = 300
        c.momentum = 0.9
        var o = RunOverrides()
        o.architecture = .resnet
        o.width = 8
        o.optimizer = .adam
        o.epochs = 2
        o.apply(to: &c)
        #expect(c.model.architecture == .resnet && c.model.inputShape == [1, 28, 28])
        #expect(c.model.depth == 20 && c.model.width == 8, "resnet's default depth, the given width")
        #expect(c.model.activation == "tanh" && c.model.norm == .bn, "kept: the activation, the study's norm")
        #expect(c.model.dropout == 0, "dropout is for MLPs")
        #expect(c.optimizer == .adam && c.momentum == 0 && c.epochs == 2 && c.maxSteps == nil)
        var unchanged = c
        RunOverrides().apply(to: &unchanged)
        #expect(unchanged == c, "nothing given, nothing changed")
    }

    @Test("seeds that diverged are left out of a configuration's means, and counted in the report")
    func divergedSeeds() {
        func run(_ seed: UInt64, _ accuracy: Double?) -> RunResult {
            var c = TrainingConfiguration()
            c.seed = seed
            var r = RunResult(study: "s", name: "n", mode: "m", ranks: 1, config: c, summary: TrainingSummary())
            r.testAccuracy = accuracy ?? .nan
            r.diverged = accuracy == nil
            return r
        }
        let two = RunResult.combined([run(0, 0.8), run(1, nil), run(2, 0.9)])
        #expect(abs(two.testAccuracy - 0.85) < 1e-12 && two.seeds == 3 && two.divergedSeeds == 1 && two.diverged)
        #expect(Markdown.error(of: two) == "15.00% ± 7.07 (2 of 3 seeds)" && Markdown.diverged(two) == "1 of 3 seeds")
        let one = RunResult.combined([run(0, nil), run(1, 0.9), run(2, nil)])
        #expect(Markdown.error(of: one) == "10.00% (1 of 3 seeds)" && Markdown.diverged(one) == "2 of 3 seeds")
        let none = RunResult.combined([run(0, nil), run(1, nil)])
        #expect(Markdown.error(of: none) == "–" && Markdown.diverged(none) == "yes")
        let all = RunResult.combined([run(0, 0.8), run(1, 0.9)])
        #expect(Markdown.error(of: all) == "15.00% ± 7.07" && Markdown.diverged(all) == "no")
    }

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
