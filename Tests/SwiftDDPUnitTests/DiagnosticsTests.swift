import SwiftDDPCollectives
import SwiftDDPDatasets
import SwiftDDPNN
import Testing
import SwiftDDPTraining
@testable import SwiftDDPTestSupport
/// The study measurements: correct values, and no effect on training.
@Suite("Diagnostics and covariate-shift probe", .timeLimit(.minutes(5)))
struct DiagnosticsTests {
    static func config(norm: NormKind, activation: ActivationKind = .tanh, diagnostics: Int?, probe: Bool = false)
        -> TrainingConfiguration
    {
        var c = TrainerTests.configuration(norm: norm, batch: 8)
        c.model = ModelConfiguration(inputFeatures: 20, depth: 3, width: 12, classes: 4, activation: activation,
                                     norm: norm)
        c.diagnosticsEvery = diagnostics
        c.covariateShift = probe
        return c
    }

    static func run(worldSize: Int, _ config: TrainingConfiguration) throws -> [([Float], [DiagnosticsRecord])] {
        let data = try SyntheticData.make(count: 600, features: 20, classes: 4, noise: 0.4, seed: 2)
        return try LocalProcessGroup.run(worldSize: worldSize) { group in
            let trainer = try Trainer(config: config, group: group, train: data, test: data)
            let summary = try trainer.run()
            return (Array(trainer.model.store.parameters), summary.diagnostics)
        }
    }

    @Test("diagnostics and the probe leave training bit-for-bit unchanged", arguments: [NormKind.bn, .syncbn])
    func noSideEffects(norm: NormKind) throws {
        let plain = try Self.run(worldSize: 2, Self.config(norm: norm, diagnostics: nil))
        let measured = try Self.run(worldSize: 2, Self.config(norm: norm, diagnostics: 3, probe: true))
        #expect(plain[0].0 == measured[0].0)
        #expect(plain[0].1.isEmpty)
        #expect(measured[0].1.map(\.step) == [0, 3, 6, 9], "from step 0 (initialization) every 3 steps")
        #expect(measured[0].1 == measured[1].1, "identical on every rank")
    }

    @Test("sharded sync: diagnostics read the whole averaged gradient and leave training unchanged")
    func shardedSync() throws {
        var flatConfig = Self.config(norm: .syncbn, diagnostics: 2)
        flatConfig.gradSync = .flat
        var shardedConfig = flatConfig
        shardedConfig.gradSync = .sharded
        var plainConfig = shardedConfig
        plainConfig.diagnosticsEvery = nil
        let flat = try Self.run(worldSize: 3, flatConfig)
        let sharded = try Self.run(worldSize: 3, shardedConfig), plain = try Self.run(worldSize: 3, plainConfig)
        #expect(sharded[0].0 == plain[0].0, "measuring does not change the sharded run")
        #expect(sharded[0].1.count == 6 && sharded[0].1 == sharded[2].1)
        for (a, b) in zip(sharded[0].1, flat[0].1) {
            #expect(relativeError(a.weightGradNorm, b.weightGradNorm) < 1e-5, "step \(a.step)")
        }
    }

    @Test("recorded values: gradient norms, saturation, statistics noise, covariate shift")
    func values() throws {
        let sync = try Self.run(worldSize: 2, Self.config(norm: .syncbn, diagnostics: 4, probe: true))[0].1
        let local = try Self.run(worldSize: 2, Self.config(norm: .bn, diagnostics: 4, probe: true))[0].1
        let first = sync[0]
        #expect(first.weightGradNorm.count == 4 && first.inputGradNorm.count == 4, "4 Linear layers")
        #expect(first.weightGradNorm.allSatisfy { $0 > 0 && $0.isFinite })
        #expect(first.saturation.count == 3 && first.preactStd.count == 3)
        // BN output feeds the activation: standardized pre-activations
        #expect(first.preactStd.allSatisfy { abs($0 - 1) < 0.05 }, "\(first.preactStd)")
        // SyncBN normalizes with the global statistics; local BN with each rank's own
        #expect(first.batchStatNoiseMean.allSatisfy { $0 < 1e-9 })
        #expect(local[0].batchStatNoiseMean.allSatisfy { $0 > 1e-3 })
        #expect(local[0].batchStatNoiseMean == local[0].rankStatNoiseMean)
        // covariate shift: measured from the second measurement on; gradient ICS is 0 for layer 1
        #expect(sync[0].distributionShift == nil && sync[1].distributionShift?.count == 3)
        let icsGradient = try #require(sync[1].icsGradientRelative)
        #expect(icsGradient.first == 0 && icsGradient.dropFirst().allSatisfy { $0 > 0 })
    }

    @Test("the reported weight-gradient norm is the norm of the averaged gradient")
    func gradientNormMatches() throws {
        let data = try SyntheticData.make(count: 64, features: 20, classes: 4, seed: 2)
        var c = Self.config(norm: .none, diagnostics: 1)
        c.maxSteps = 1
        c.learningRate = 1e-30  // the step does not move the weights noticeably
        let trainer = try Trainer(config: c, group: LocalProcessGroup.single(), train: data, test: data)
        let summary = try trainer.run()
        let linear = trainer.model.leaves.compactMap { $0 as? Linear }
        let direct = linear.map { l -> Double in
            let g = trainer.model.store.gradient(l.weightSlot)
            return (0..<l.weightSlot.count).reduce(0.0) { $0 + Double(g[$1]) * Double(g[$1]) }.squareRoot()
        }
        #expect(relativeError(summary.diagnostics[0].weightGradNorm, direct) < 1e-12)
    }

    @Test("sigmoid units driven far from zero count as saturated")
    func saturation() throws {
        var c = Self.config(norm: .none, activation: .sigmoid, diagnostics: 1)
        c.maxSteps = 1
        let data = try SyntheticData.make(count: 64, features: 20, classes: 4, seed: 2)
        let trainer = try Trainer(config: c, group: LocalProcessGroup.single(), train: data, test: data)
        // huge first-layer weights push every pre-activation of block 1 deep into saturation
        let w = trainer.model.store.parameter(try #require(trainer.model.leaves[0] as? Linear).weightSlot)
        for i in 0..<(20 * 12) { w[i] = 50 }  // inputs are in [0, 1]: pre-activations far above 0
        let summary = try trainer.run()
        #expect(summary.diagnostics[0].saturation[0] > 0.95, "\(summary.diagnostics[0].saturation)")
    }
}
