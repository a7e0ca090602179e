import SwiftDDPNN
import SwiftDDPSafeTensors
import Testing
@testable import SwiftDDPTestSupport
/// SGD and Adam against steps computed by hand from PyTorch's update rules.
@Suite("Optimizers and schedules")
struct OptimizerTests {
    /// A store with one parameter p = 1 whose gradient is set by the caller.
    func store() -> ParameterStore {
        let s = ParameterStore()
        _ = s.reserveParameter("p", shape: [1])
        s.allocate()
        s.parameters[0] = 1
        return s
    }

    func run(_ optimizer: any Optimizer, _ s: ParameterStore, steps: Int) throws -> [Float] {
        try (0..<steps).map { _ in
            s.gradients[0] = 0.5
            try optimizer.step()
            return s.parameters[0]
        }
    }

    func close(_ a: [Float], _ b: [Double], _ tol: Double = 1e-6) -> Bool {
        zip(a, b).allSatisfy { abs(Double($0) - $1) <= tol }
    }

    @Test("plain SGD") func plain() throws {
        let s = store()
        let p = try run(try SGD(store: s, learningRate: 0.1), s, steps: 2)
        #expect(close(p, [0.95, 0.9]))
    }

    @Test("SGD with momentum and weight decay") func momentum() throws {
        // g1 = 0.5 + 0.01·1 = 0.51, b = 0.51, p = 0.949
        // g2 = 0.5 + 0.01·0.949 = 0.50949, b = 0.9·0.51 + 0.50949 = 0.96849, p = 0.852151
        let s = store()
        let p = try run(try SGD(store: s, learningRate: 0.1, momentum: 0.9, weightDecay: 0.01), s, steps: 2)
        #expect(close(p, [0.949, 0.852151]))
    }

    @Test("SGD with dampening") func dampening() throws {
        // b1 = g1 = 0.5 (no dampening on the first step), p = 0.95
        // b2 = 0.9·0.5 + 0.5·0.5 = 0.7, p = 0.95 − 0.07 = 0.88
        let s = store()
        let p = try run(try SGD(store: s, learningRate: 0.1, momentum: 0.9, dampening: 0.5), s, steps: 2)
        #expect(close(p, [0.95, 0.88]))
    }

    @Test("SGD with Nesterov momentum") func nesterov() throws {
        // step 1: b = 0.5, update g + 0.9·b = 0.95, p = 0.905
        // step 2: b = 0.9·0.5 + 0.5 = 0.95, update 0.5 + 0.855 = 1.355, p = 0.7695
        let s = store()
        let p = try run(try SGD(store: s, learningRate: 0.1, momentum: 0.9, nesterov: true), s, steps: 2)
        #expect(close(p, [0.905, 0.7695]))
    }

    @Test("Nesterov without momentum is refused") func nesterovNeedsMomentum() {
        #expect(throws: NNError.self) { _ = try SGD(store: store(), learningRate: 0.1, nesterov: true) }
    }

    @Test("Adam") func adam() throws {
        // step 1: m = 0.05, v = 0.00025, m̂/sqrt(v̂) = 1 → p = 0.9
        // step 2: m = 0.095, v = 0.00049975; step size 0.1/0.19, denom 0.5·… → p = 0.8
        let s = store()
        let p = try run(try Adam(store: s, learningRate: 0.1), s, steps: 2)
        #expect(close(p, [0.9, 0.8], 1e-5))
    }

    @Test("AdamW decays decoupled from the gradient") func adamW() throws {
        // step 1: p = 1·(1 − 0.1·0.1) = 0.99, then − 0.1 → 0.89
        let s = store()
        let p = try run(try Adam(store: s, learningRate: 0.1, weightDecay: 0.1, decoupledWeightDecay: true), s,
                        steps: 1)
        #expect(close(p, [0.89], 1e-5))
    }

    @Test("Adam with L2 weight decay adds λ·p to the gradient") func adamL2() throws {
        // g = 0.5 + 0.1·1 = 0.6; the first Adam step moves by lr whatever g is → 0.9
        let s = store()
        let p = try run(try Adam(store: s, learningRate: 0.1, weightDecay: 0.1), s, steps: 1)
        #expect(close(p, [0.9], 1e-5))
    }

    @Test("optimizer state round-trips through its state dict") func stateRoundTrip() throws {
        let a = store(), b = store()
        let first = try SGD(store: a, learningRate: 0.1, momentum: 0.9)
        _ = try run(first, a, steps: 3)
        let second = try SGD(store: b, learningRate: 0.1, momentum: 0.9)
        // through the safetensors encoding, as --save-optimizer / --init-optimizer-from do
        try second.loadStateDict(try SafeTensors.decode(try SafeTensors.encode(first.stateDict())).tensors)
        b.parameters[0] = a.parameters[0]
        #expect(try run(first, a, steps: 2) == run(second, b, steps: 2))
        let adamA = try Adam(store: a, learningRate: 0.01), adamB = try Adam(store: b, learningRate: 0.01)
        _ = try run(adamA, a, steps: 4)
        try adamB.loadStateDict(try SafeTensors.decode(try SafeTensors.encode(adamA.stateDict())).tensors)
        b.parameters[0] = a.parameters[0]
        #expect(adamB.stepCount == 4)
        #expect(try run(adamA, a, steps: 2) == run(adamB, b, steps: 2))
    }

    @Test("learning-rate schedules") func schedules() {
        let constant = LearningRateSchedule(base: 0.1)
        #expect(constant.learningRate(at: 1000) == 0.1)
        let step = LearningRateSchedule(base: 1, kind: .step(stepSize: 10, gamma: 0.5))
        #expect([0, 9, 10, 25].map(step.learningRate(at:)) == [1, 1, 0.5, 0.25])
        let cosine = LearningRateSchedule(base: 1, kind: .cosine(totalSteps: 100, minimum: 0))
        #expect(cosine.learningRate(at: 0) == 1)
        #expect(abs(cosine.learningRate(at: 50) - 0.5) < 1e-6)
        #expect(abs(cosine.learningRate(at: 100)) < 1e-6)
        let warm = LearningRateSchedule(base: 1, kind: .constant, warmupSteps: 4)
        #expect([0, 1, 3, 4, 10].map(warm.learningRate(at:)) == [0.25, 0.5, 1, 1, 1])
    }
}
