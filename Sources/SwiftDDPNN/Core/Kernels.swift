import CSwiftDDPKernels
/// Which build of the training step's element-wise kernels this CPU runs ("x86-64-v4" with
/// AVX-512, "x86-64-v3" with AVX2, or "baseline"); recorded by `ddp info` and `ddp bench`.
public var elementwiseKernelLevel: String { String(cString: ddp_kernels_level()) }

/// The training step's element-wise and per-channel loops. They run in C (the `CSwiftDDPKernels`
/// target), compiled for x86-64-v4 (AVX-512), x86-64-v3 (AVX2) and baseline SSE2 and chosen
/// when the library loads, because these loops touch every activation and every parameter each
/// step and Swift can only be compiled for one CPU level per build (baseline, without
/// `unsafeFlags`). The C code contracts no multiply-adds and reduces in a fixed order, so every
/// level gives the same bits.
///
/// Fused activations: a ReLU or LeakyReLU that follows a BatchNorm can run inside BatchNorm's
/// passes (see `Sequential`): forward clamps the output, backward scales the incoming gradient
/// by the activation's derivative, decided from γ·x̂ + β (≤ 0 exactly where the output is). `slope` is the
/// derivative where the output is ≤ 0 (0 for ReLU, 0.01 for LeakyReLU); nil means none. The
/// results are bit-identical to running the layers one after the other.
enum Kernels {
    /// y = max(x, 0) (slope 0), or LeakyReLU: y = x > 0 ? x : slope·x.
    static func relu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int, slope: Float = 0) {
        ddp_relu(x, y, n, slope)
    }

    /// y = relu(a + b), or LeakyReLU(a + b) with slope > 0.
    static func addReLU(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                        count n: Int, slope: Float) {
        ddp_add_relu(a, b, y, n, slope)
    }

    /// y = a + b.
    static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                    count n: Int) {
        ddp_add(a, b, y, n)
    }

    /// dx = y > 0 ? dy : slope·dy, from the activation's output y.
    static func reluBackward(output y: UnsafePointer<Float>, gradOutput g: UnsafePointer<Float>,
                             gradInput d: UnsafeMutablePointer<Float>, count n: Int, slope: Float)
    {
        ddp_relu_backward(y, g, d, n, slope)
    }

    /// SGD with momentum (PyTorch's rule), one pass over the flat buffers:
    /// g ← ∇ + λp; b ← first ? g : μb + (1 − τ)g; p ← p − lr·(nesterov ? g + μb : b).
    /// - Returns: whether every g was finite, so the trainer learns of non-finite gradients
    ///   without another pass over memory.
    @discardableResult
    static func sgdMomentum(parameters p: UnsafeMutablePointer<Float>, gradients grad: UnsafePointer<Float>,
                            buffer b: UnsafeMutablePointer<Float>, count n: Int, lr: Float, momentum mu: Float,
                            dampening: Float, weightDecay wd: Float, nesterov: Bool, first: Bool) -> Bool
    {
        ddp_sgd_momentum(p, grad, b, n, lr, mu, dampening, wd, nesterov ? 1 : 0, first ? 1 : 0) != 0
    }

    /// Per-channel moments about a shift, BatchNorm's statistics in one read of x:
    /// s1[c] = Σ_r (x[r,c] − k[c]) and s2[c] = Σ_r (x[r,c] − k[c])² over a row-major [rows, C]
    /// matrix. Shifting by a sample of the channel keeps the terms O(std) even when |mean| ≫
    /// std, so mean = k + s1/n and M2 = s2 − s1²/n lose nothing to cancellation. Sixteen rows
    /// at a time are summed in float32 (rounding near 1e-6 of a partial sum of O(std) terms),
    /// then added into Double accumulators; channels go 16 at a time, partial sums in registers.
    static func shiftedMoments(x: UnsafePointer<Float>, rows: Int, cols C: Int, shift k: UnsafePointer<Float>,
                               s1: UnsafeMutablePointer<Double>, s2: UnsafeMutablePointer<Double>)
    {
        ddp_shifted_moments(x, rows, C, k, s1, s2)
    }

    /// BatchNorm's per-channel float32 constants of one forward pass (each points to C floats):
    /// x̂ = (x − mean)·inv, y = γ·x̂ + β. Backward recomputes x̂ and the fused activation's
    /// derivative from the input x with the forward's own operations (the same bits), so the
    /// layer stores only its output.
    struct BatchNormConstants {
        var mean, inv, gamma, beta: UnsafePointer<Float>
        var slope: Float?
        var activationCode: Int32 { slope == nil ? 0 : slope == 0 ? 1 : 2 }
    }

    /// y = act(γ·x̂ + β) over a row-major [rows, C] matrix, or act((γ·x̂ + β) + residual).
    static func batchNormForward(x: UnsafePointer<Float>, residual: UnsafePointer<Float>? = nil, rows: Int,
                                 cols C: Int, _ k: BatchNormConstants, y: UnsafeMutablePointer<Float>)
    {
        ddp_batchnorm_forward(x, residual, rows, C, k.mean, k.inv, k.gamma, k.beta, y, k.activationCode, k.slope ?? 0)
    }

    /// The gradient reaching a BatchNorm: dense over its [rows, C] output, or the output gradient
    /// of a max pooling fused into it (`ddp_pooled_gradient`: zero except where an input was its
    /// window's maximum), which the kernels read through each row's window instead of reading a
    /// full-size array.
    enum BatchNormGradient {
        case dense(UnsafePointer<Float>)
        case pooled(ddp_pooled_gradient)

        func withDescriptor<R>(_ body: (UnsafePointer<Float>?, UnsafePointer<ddp_pooled_gradient>?) -> R) -> R {
            switch self {
            case let .dense(g): return body(g, nil)
            case var .pooled(p): return withUnsafePointer(to: &p) { body(nil, $0) }
            }
        }
    }

    /// BatchNorm backward's two per-channel sums, summed like `shiftedMoments`:
    /// s1[c] = Σ_r g'[r,c] and s2[c] = Σ_r g'[r,c]·x̂[r,c], where g' is the incoming gradient g
    /// times the fused activation's derivative (g itself without one).
    static func batchNormGradientSums(g: BatchNormGradient, x: UnsafePointer<Float>, rows: Int, cols C: Int,
                                      _ k: BatchNormConstants, s1: UnsafeMutablePointer<Double>,
                                      s2: UnsafeMutablePointer<Double>)
    {
        g.withDescriptor { dense, pooled in
            ddp_gradient_sums(dense, pooled, x, rows, C, k.mean, k.inv, k.gamma, k.beta, k.activationCode,
                              k.slope ?? 0, s1, s2)
        }
    }

    /// BatchNorm's input gradient d = scale·(g' − a − x̂·s) with per-channel scale, a and s, and
    /// g' as in `batchNormGradientSums`.
    static func batchNormBackward(g: BatchNormGradient, x: UnsafePointer<Float>, rows: Int, cols C: Int,
                                  _ k: BatchNormConstants, scale: UnsafePointer<Float>, a: UnsafePointer<Float>,
                                  s: UnsafePointer<Float>, d: UnsafeMutablePointer<Float>)
    {
        g.withDescriptor { dense, pooled in
            ddp_batchnorm_backward(dense, pooled, x, rows, C, k.mean, k.inv, k.gamma, k.beta, k.activationCode,
                                   k.slope ?? 0, scale, a, s, d)
        }
    }
}
