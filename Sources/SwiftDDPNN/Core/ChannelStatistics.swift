/// Per-channel batch statistics in the form SyncBatchNorm exchanges: a block of 1 + 2C doubles
/// [n, mean(C), M2(C)] with M2 = Σ(x − mean)². One implementation, shared by BatchNorm and the
/// diagnostics, because this is where float32 precision is won or lost.
public enum ChannelStatistics {
    /// Fills `block` (1 + 2C doubles) with the statistics of the columns of `m` in one pass:
    /// moments about the first row (`Kernels.shiftedMoments`), so M2 keeps its precision when
    /// |mean| ≫ std, as a two-pass computation would.
    public static func compute(_ m: Matrix, into block: UnsafeMutablePointer<Double>) {
        let C = m.cols, n = m.rows
        let mean = block + 1, m2 = block + 1 + C
        block.update(repeating: 0, count: 1 + 2 * C)
        block[0] = Double(n)
        guard n > 0 else { return }
        let shift = m.row(0)
        Kernels.shiftedMoments(x: m.base, rows: n, cols: C, shift: shift, s1: mean, s2: m2)
        let count = Double(n)
        for c in 0..<C {
            let s1 = mean[c]
            mean[c] = Double(shift[c]) + s1 / count
            m2[c] = max(m2[c] - s1 * s1 / count, 0)
        }
    }

    /// Chan et al.'s parallel merge of `ranks` consecutive blocks, in rank order (so every rank
    /// computing it gets identical bits). Empty blocks are skipped.
    /// - Returns: the total count; `mean` and `m2` (C doubles each) receive the merged values.
    @discardableResult
    public static func merge(_ blocks: UnsafePointer<Double>, ranks: Int, channels C: Int,
                             mean: UnsafeMutablePointer<Double>, m2: UnsafeMutablePointer<Double>) -> Int
    {
        mean.update(repeating: 0, count: C)
        m2.update(repeating: 0, count: C)
        var total = 0
        for r in 0..<ranks {
            let s = blocks + r * (1 + 2 * C)
            let nr = Int(s[0])
            guard nr > 0 else { continue }
            let newTotal = total + nr
            let wNew = Double(nr) / Double(newTotal)
            let cross = Double(total) * Double(nr) / Double(newTotal)
            for c in 0..<C {
                let delta = s[1 + c] - mean[c]
                mean[c] += delta * wNew
                m2[c] += s[1 + C + c] + delta * delta * cross
            }
            total = newTotal
        }
        return total
    }
}
