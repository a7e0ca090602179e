import RealModule
/// Softmax followed by the negative log-likelihood, like `torch.nn.CrossEntropyLoss()` with
/// `reduction='mean'`: loss = mean over rows of (logsumexp(z) − z[label]), computed with the
/// max-shifted log-sum-exp so large logits do not overflow.
///
/// Shapes: logits [B, K], labels [B] in 0..<K, gradient [B, K] = (softmax(z) − onehot) / B.
public final class SoftmaxCrossEntropy {
    private let gradient = Workspace()
    private var lastRows = 0
    private var lastClasses = 0

    public init() {}

    /// Computes the loss and keeps the gradient for `backward()`.
    /// - Parameters:
    ///   - logits: [B, K] scores.
    ///   - labels: B class indices.
    ///   - normalizer: divide the summed loss (and gradient) by this instead of B.
    ///   - gradientScale: extra factor on the gradient only. Data-parallel training passes 1/W,
    ///     so that summing the ranks' gradients averages them: the division is folded into this
    ///     [B, K] gradient instead of a pass over every parameter gradient after the all-reduce.
    /// - Returns: (loss, number of rows whose arg-max equals the label).
    public func forward(logits: Matrix, labels: UnsafeBufferPointer<Int32>, normalizer: Int? = nil,
                        gradientScale: Float = 1) throws
        -> (loss: Double, correct: Int)
    {
        let B = logits.rows, K = logits.cols
        guard labels.count == B else {
            throw NNError("CrossEntropy: \(labels.count) labels for \(B) rows")
        }
        let scale = 1 / Double(max(normalizer ?? B, 1))
        let grad = gradient.matrix(rows: B, cols: K)
        var total = 0.0
        var correct = 0
        for r in 0..<B {
            let z = logits.row(r), g = grad.row(r)
            let label = Int(labels[r])
            guard label >= 0 && label < K else { throw NNError("CrossEntropy: label \(label) outside 0..<\(K)") }
            var maxValue = z[0], argmax = 0
            for k in 1..<K where z[k] > maxValue { maxValue = z[k]; argmax = k }
            if argmax == label { correct += 1 }
            var sum = 0.0
            for k in 0..<K {
                let e = Float.exp(z[k] - maxValue)
                g[k] = e
                sum += Double(e)
            }
            total += Double.log(sum) + Double(maxValue) - Double(z[label])
            let inv = Float(1 / sum), s = Float(scale) * gradientScale
            for k in 0..<K { g[k] = g[k] * inv * s }
            g[label] -= s
        }
        lastRows = B
        lastClasses = K
        return (total * scale, correct)
    }

    /// dL/dlogits for the last forward.
    public func backward() -> Matrix { gradient.matrix(rows: lastRows, cols: lastClasses) }
}
