import SwiftDDPBLAS
import Testing
@testable import SwiftDDPTestSupport
/// BLAS wrappers against naive loops (the reference, never used outside tests).
@Suite("BLAS wrapper")
struct BLASTests {
    struct LCG {
        var state: UInt64
        mutating func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24) * 2 - 1
        }
        mutating func array(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
    }

    /// Reference C = alpha·op(A)·op(B) + beta·C on padded, row-major storage.
    func naiveGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], lda: Int,
                   b: [Float], ldb: Int, beta: Float, c: inout [Float], ldc: Int)
    {
        for i in 0..<m {
            for j in 0..<n {
                var acc = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    acc += Double(av) * Double(bv)
                }
                c[i * ldc + j] = alpha * Float(acc) + beta * c[i * ldc + j]
            }
        }
    }

    @Test("sgemm matches the naive product for every transpose and padded strides",
          arguments: [(false, false), (true, false), (false, true), (true, true)])
    func sgemm(transpose: (Bool, Bool)) {
        let (tA, tB) = transpose
        var rng = LCG(state: 42)
        let m = 7, n = 5, k = 9, pad = 3
        let lda = (tA ? m : k) + pad, ldb = (tB ? k : n) + pad, ldc = n + pad
        let a = rng.array((tA ? k : m) * lda), b = rng.array((tB ? n : k) * ldb)
        var expected = rng.array(m * ldc)
        var actual = expected
        naiveGemm(transA: tA, transB: tB, m: m, n: n, k: k, alpha: 0.75, a: a, lda: lda, b: b, ldb: ldb,
                  beta: 0.5, c: &expected, ldc: ldc)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                actual.withUnsafeMutableBufferPointer { pc in
                    BLAS.sgemm(transA: tA ? .transpose : .none, transB: tB ? .transpose : .none, m: m, n: n, k: k,
                               alpha: 0.75, a: pa.baseAddress!, lda: lda, b: pb.baseAddress!, ldb: ldb, beta: 0.5,
                               c: pc.baseAddress!, ldc: ldc)
                }
            }
        }
        for i in 0..<expected.count {
            #expect(abs(expected[i] - actual[i]) <= 1e-5 * max(1, abs(expected[i])), "element \(i)")
        }
    }

    @Test("level-1 routines and gemv")
    func level1() {
        var rng = LCG(state: 7)
        let n = 37
        let x = rng.array(n)
        var y = rng.array(n)
        let y0 = y
        x.withUnsafeBufferPointer { px in
            y.withUnsafeMutableBufferPointer { py in
                BLAS.saxpy(n, alpha: -1.5, x: px.baseAddress!, y: py.baseAddress!)
            }
        }
        for i in 0..<n { #expect(abs(y[i] - (y0[i] - 1.5 * x[i])) < 1e-6) }
        let dot = x.withUnsafeBufferPointer { px in
            y0.withUnsafeBufferPointer { BLAS.sdot(n, x: px.baseAddress!, y: $0.baseAddress!) }
        }
        let naiveDot = zip(x, y0).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(abs(Double(dot) - naiveDot) < 1e-5)
        let norm = x.withUnsafeBufferPointer { BLAS.snrm2(n, x: $0.baseAddress!) }
        #expect(abs(Double(norm) - x.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot()) < 1e-5)
        var z = x
        z.withUnsafeMutableBufferPointer { BLAS.sscal(n, alpha: 2, x: $0.baseAddress!) }
        #expect(z == x.map { $0 * 2 })
        var copy = [Float](repeating: 0, count: n)
        x.withUnsafeBufferPointer { px in
            copy.withUnsafeMutableBufferPointer { BLAS.scopy(n, x: px.baseAddress!, y: $0.baseAddress!) }
        }
        #expect(copy == x)
        // gemv: 3×4 matrix times vector, both orientations
        let a = rng.array(12), v4 = rng.array(4), v3 = rng.array(3)
        var out3 = [Float](repeating: 0, count: 3), out4 = [Float](repeating: 0, count: 4)
        a.withUnsafeBufferPointer { pa in
            v4.withUnsafeBufferPointer { pv in out3.withUnsafeMutableBufferPointer {
                BLAS.sgemv(m: 3, n: 4, a: pa.baseAddress!, lda: 4, x: pv.baseAddress!, y: $0.baseAddress!) } }
            v3.withUnsafeBufferPointer { pv in out4.withUnsafeMutableBufferPointer {
                BLAS.sgemv(trans: .transpose, m: 3, n: 4, a: pa.baseAddress!, lda: 4, x: pv.baseAddress!,
                           y: $0.baseAddress!) } }
        }
        for i in 0..<3 { #expect(abs(out3[i] - (0..<4).reduce(0) { $0 + a[i * 4 + $1] * v4[$1] }) < 1e-5) }
        for j in 0..<4 { #expect(abs(out4[j] - (0..<3).reduce(0) { $0 + a[$1 * 4 + j] * v3[$1] }) < 1e-5) }
    }
}
