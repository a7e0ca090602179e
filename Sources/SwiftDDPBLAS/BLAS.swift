import CSwiftDDPOpenBLAS
/// Typed wrappers over the CBLAS routines SwiftDDP uses (OpenBLAS). All matrices are
/// row-major, as in PyTorch; leading dimensions are row strides in elements.
///
/// Thread count: OpenBLAS reads `OPENBLAS_NUM_THREADS` at start-up; under `mpirun` each rank
/// should use 1 (the launcher sets it) so ranks do not oversubscribe the cores.
public enum BLAS {
    /// Whether an operand is used as stored or transposed.
    public enum Transpose: Sendable {
        case none, transpose
        var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
    }

    /// C ← alpha · op(A) · op(B) + beta · C, with op(A) of shape m×k, op(B) k×n and C m×n
    /// (`cblas_sgemm`, row-major).
    /// - Parameters:
    ///   - transA, transB: whether A and B are stored transposed.
    ///   - lda, ldb, ldc: row strides of the stored A, B and C; at least their column counts.
    ///   - beta: 0 overwrites C (its prior contents, even NaN, are ignored by BLAS).
    @inline(__always)
    public static func sgemm(
        transA: Transpose = .none, transB: Transpose = .none,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        precondition(m >= 0 && n >= 0 && k >= 0, "sgemm: negative dimension")
        precondition(lda >= max(1, transA == .none ? k : m), "sgemm: lda \(lda) too small")
        precondition(ldb >= max(1, transB == .none ? n : k), "sgemm: ldb \(ldb) too small")
        precondition(ldc >= max(1, n), "sgemm: ldc \(ldc) too small")
        cblas_sgemm(CblasRowMajor, transA.cblas, transB.cblas, blasint(m), blasint(n), blasint(k),
                    alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    /// y ← alpha · x + y (`cblas_saxpy`).
    @inline(__always)
    public static func saxpy(_ n: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        cblas_saxpy(blasint(n), alpha, x, 1, y, 1)
    }

    /// x ← alpha · x (`cblas_sscal`).
    @inline(__always)
    public static func sscal(_ n: Int, alpha: Float, x: UnsafeMutablePointer<Float>) {
        cblas_sscal(blasint(n), alpha, x, 1)
    }

    /// Σ x·y (`cblas_sdot`).
    @inline(__always)
    public static func sdot(_ n: Int, x: UnsafePointer<Float>, y: UnsafePointer<Float>) -> Float {
        cblas_sdot(blasint(n), x, 1, y, 1)
    }

    /// Σ|x| (`cblas_sasum`).
    @inline(__always)
    public static func sasum(_ n: Int, x: UnsafePointer<Float>) -> Float {
        cblas_sasum(blasint(n), x, 1)
    }

    /// Euclidean norm of x (`cblas_snrm2`, computed without overflow).
    @inline(__always)
    public static func snrm2(_ n: Int, x: UnsafePointer<Float>) -> Float {
        cblas_snrm2(blasint(n), x, 1)
    }

    /// y ← x (`cblas_scopy`).
    @inline(__always)
    public static func scopy(_ n: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        cblas_scopy(blasint(n), x, 1, y, 1)
    }

    /// y ← alpha · op(A) · x + beta · y with A of shape m×n stored row-major (`cblas_sgemv`).
    @inline(__always)
    public static func sgemv(
        trans: Transpose = .none, m: Int, n: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, x: UnsafePointer<Float>,
        beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) {
        cblas_sgemv(CblasRowMajor, trans.cblas, blasint(m), blasint(n), alpha, a, blasint(lda), x, 1, beta, y, 1)
    }

    /// The number of threads OpenBLAS uses.
    public static var threadCount: Int { Int(openblas_get_num_threads()) }

    /// The CPU kernel set OpenBLAS chose at load time (e.g. "Cooperlake", "Haswell"): its own
    /// detection, or the `OPENBLAS_CORETYPE` environment variable where set. Benchmarks report
    /// it because the same machine can run 2× apart depending on it.
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// Sets the number of threads OpenBLAS uses.
    public static func setThreadCount(_ n: Int) { openblas_set_num_threads(Int32(n)) }
}
