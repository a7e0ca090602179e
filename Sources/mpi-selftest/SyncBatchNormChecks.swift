import SwiftDDPCollectives
import SwiftDDPNN
/// SyncBatchNorm over real MPI ranks with uneven batches (5, 3, 0, 8 rows on 4 ranks; on other
/// sizes rank r has (3r + 5) mod 7 rows, which includes empty ranks): outputs, input
/// gradients and running statistics must equal plain BatchNorm on the concatenated batch,
/// which every rank computes locally from the same seeded data.
func checkSyncBatchNorm(_ c: Checks, group: MPIProcessGroup) throws {
    let W = group.worldSize, C = 6
    let sizes = W == 4 ? [5, 3, 0, 8] : (0..<W).map { (3 * $0 + 5) % 7 }
    let total = sizes.reduce(0, +)
    let starts = (0..<W).map { sizes[..<$0].reduce(0, +) }
    var generator = SeededGenerator(seed: 2024)
    // large offset: the merged statistics must stay exact in float32
    let x = (0..<total * C).map { _ in 1000 + 2 * generator.normal() }
    let dy = (0..<total * C).map { _ in generator.uniform(-1, 1) }

    typealias Result = (y: [Float], dx: [Float], mean: [Float], variance: [Float], dGamma: [Float], dBeta: [Float])
    func run(_ rows: Range<Int>, group: (any ProcessGroup)?) throws -> Result {
        let bn = BatchNorm1d(features: C, group: group)
        let model = try Model(bn, inputShape: .features(C))
        let store = model.store
        bn.resetParameters()
        for i in 0..<C { store.parameter(bn.weightSlot!)[i] = 0.5 + Float(i) * 0.25 }
        var input = Array(x[rows.lowerBound * C..<rows.upperBound * C])
        var grad = Array(dy[rows.lowerBound * C..<rows.upperBound * C])
        let y = try input.withUnsafeMutableBufferPointer {
            try bn.forward(Matrix(base: $0.baseAddress!, rows: rows.count, cols: C), training: true).toArray()
        }
        let dx = try grad.withUnsafeMutableBufferPointer {
            try bn.backward(Matrix(base: $0.baseAddress!, rows: rows.count, cols: C),
                            needsInputGradient: true)!.toArray()
        }
        func read(_ p: UnsafeMutablePointer<Float>) -> [Float] { Array(UnsafeBufferPointer(start: p, count: C)) }
        return (y, dx, read(store.buffer(bn.runningMeanSlot!)), read(store.buffer(bn.runningVarSlot!)),
                read(store.gradient(bn.weightSlot!)), read(store.gradient(bn.biasSlot!)))
    }

    let reference = try run(0..<total, group: nil)
    let mine = try run(starts[group.rank]..<starts[group.rank] + sizes[group.rank], group: group)
    func close(_ a: [Float], _ b: ArraySlice<Float>, _ tol: Float = 2e-4) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tol * max(1, abs($1)) }
    }
    let slice = starts[group.rank] * C..<(starts[group.rank] + sizes[group.rank]) * C
    c.expect(close(mine.y, reference.y[slice]), "SyncBN output with uneven batches \(sizes)")
    c.expect(close(mine.dx, reference.dx[slice]), "SyncBN input gradient with uneven batches \(sizes)")
    c.expect(close(mine.mean, reference.mean[...]), "SyncBN running mean")
    c.expect(close(mine.variance, reference.variance[...]), "SyncBN running variance (global unbiased)")
    // dγ and dβ are this rank's sums; the gradient all-reduce adds them up to the whole batch's.
    var dGamma = mine.dGamma, dBeta = mine.dBeta
    try group.allReduce(&dGamma, op: .sum)
    try group.allReduce(&dBeta, op: .sum)
    c.expect(close(dGamma, reference.dGamma[...]), "SyncBN dγ summed over ranks")
    c.expect(close(dBeta, reference.dBeta[...]), "SyncBN dβ summed over ranks")
}
