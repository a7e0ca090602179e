/// Element-wise kernels written with explicit SIMD vectors: the compiler does not vectorize the
/// scalar loops with selects (ReLU's mask, SGD's branches) on its own, and these loops run over
/// every activation and every parameter each step. Each has a scalar tail for the remainder.
enum Kernels {
    typealias V = SIMD16<Float>
    static let width = V.scalarCount

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }

    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }

    /// y = max(x, 0)
    static func relu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        let zero = V(repeating: 0)
        while i + width <= n {
            let v = load(x + i)
            store(v.replacing(with: zero, where: v .< zero), y + i)
            i += width
        }
        while i < n { y[i] = max(x[i], 0); i += 1 }
    }

    /// dx = y > 0 ? dy : slope·dy  (slope 0 for ReLU)
    static func reluBackward(output y: UnsafePointer<Float>, gradOutput g: UnsafePointer<Float>,
                             gradInput d: UnsafeMutablePointer<Float>, count n: Int, slope: Float)
    {
        var i = 0
        let zero = V(repeating: 0)
        let slopes = V(repeating: slope)
        while i + width <= n {
            let gv = load(g + i)
            store(gv.replacing(with: gv * slopes, where: load(y + i) .<= zero), d + i)
            i += width
        }
        while i < n { d[i] = y[i] > 0 ? g[i] : slope * g[i]; i += 1 }
    }

    /// y = x > 0 ? x : slope·x
    static func leakyRelu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int, slope: Float) {
        var i = 0
        let zero = V(repeating: 0)
        let slopes = V(repeating: slope)
        while i + width <= n {
            let v = load(x + i)
            store(v.replacing(with: v * slopes, where: v .<= zero), y + i)
            i += width
        }
        while i < n { y[i] = x[i] > 0 ? x[i] : slope * x[i]; i += 1 }
    }

    /// SGD with momentum (PyTorch's rule), one pass over the flat buffers:
    /// g ← ∇ + λp; b ← first ? g : μb + (1 − τ)g; p ← p − lr·(nesterov ? g + μb : b).
    /// - Returns: whether every g was finite (accumulating g·0 keeps NaN and turns ±∞ into NaN),
    ///   so the trainer learns of non-finite gradients without another pass over memory.
    @discardableResult
    static func sgdMomentum(parameters p: UnsafeMutablePointer<Float>, gradients grad: UnsafePointer<Float>,
                            buffer b: UnsafeMutablePointer<Float>, count n: Int, lr: Float, momentum mu: Float,
                            dampening: Float, weightDecay wd: Float, nesterov: Bool, first: Bool) -> Bool
    {
        let keep = 1 - dampening
        let vlr = V(repeating: lr), vmu = V(repeating: mu), vkeep = V(repeating: keep), vwd = V(repeating: wd)
        let zero = V(repeating: 0)
        var poison = zero
        var i = 0
        // Four specialized loops: no branch inside the vector loop.
        switch (first, nesterov) {
        case (true, false):
            while i + width <= n {
                let pv = load(p + i), gv = load(grad + i) + vwd * pv
                poison += gv * zero
                store(gv, b + i)
                store(pv - vlr * gv, p + i)
                i += width
            }
        case (true, true):
            while i + width <= n {
                let pv = load(p + i), gv = load(grad + i) + vwd * pv
                poison += gv * zero
                store(gv, b + i)
                store(pv - vlr * (gv + vmu * gv), p + i)
                i += width
            }
        case (false, false):
            while i + width <= n {
                let pv = load(p + i), gv = load(grad + i) + vwd * pv
                poison += gv * zero
                let bv = vmu * load(b + i) + vkeep * gv
                store(bv, b + i)
                store(pv - vlr * bv, p + i)
                i += width
            }
        case (false, true):
            while i + width <= n {
                let pv = load(p + i), gv = load(grad + i) + vwd * pv
                poison += gv * zero
                let bv = vmu * load(b + i) + vkeep * gv
                store(bv, b + i)
                store(pv - vlr * (gv + vmu * bv), p + i)
                i += width
            }
        }
        var tail: Float = 0
        while i < n {
            let g = grad[i] + wd * p[i]
            tail += g * 0
            let buf = first ? g : mu * b[i] + keep * g
            b[i] = buf
            p[i] -= lr * (nesterov ? g + mu * buf : buf)
            i += 1
        }
        return tail == 0 && all(poison .== zero)
    }

    /// out[c] = (x[c] − mean[c])·inv[c], y[c] = γ[c]·out[c] + β[c] over one row of C channels.
    @inline(__always)
    static func normalizeRow(x: UnsafePointer<Float>, mean: UnsafePointer<Float>, inv: UnsafePointer<Float>,
                             gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, xhat: UnsafeMutablePointer<Float>,
                             y: UnsafeMutablePointer<Float>, count C: Int)
    {
        var c = 0
        while c + width <= C {
            let h = (load(x + c) - load(mean + c)) * load(inv + c)
            store(h, xhat + c)
            store(load(gamma + c) * h + load(beta + c), y + c)
            c += width
        }
        while c < C {
            let h = (x[c] - mean[c]) * inv[c]
            xhat[c] = h
            y[c] = gamma[c] * h + beta[c]
            c += 1
        }
    }

    /// d[c] = k[c]·(g[c] − a[c] − h[c]·s[c]) over one row (BatchNorm's input gradient).
    @inline(__always)
    static func batchNormBackwardRow(g: UnsafePointer<Float>, h: UnsafePointer<Float>, k: UnsafePointer<Float>,
                                     a: UnsafePointer<Float>, s: UnsafePointer<Float>, d: UnsafeMutablePointer<Float>,
                                     count C: Int)
    {
        var c = 0
        while c + width <= C {
            store(load(k + c) * (load(g + c) - load(a + c) - load(h + c) * load(s + c)), d + c)
            c += width
        }
        while c < C {
            d[c] = k[c] * (g[c] - a[c] - h[c] * s[c])
            c += 1
        }
    }
}
