/// A classification loss the trainer can use: the mean over a batch of a per-sample loss of the
/// logits and an integer label, with its gradient. `SoftmaxCrossEntropy` is one; write your own
/// for `Trainer(…, loss:)` the same way.
public protocol Loss: AnyObject {
    /// The batch's mean loss (sum over rows / `normalizer ?? rows`) and the number of rows whose
    /// arg-max equals the label; keeps dL/d(logits) · `gradientScale` for `backward()`.
    /// Data-parallel training passes `gradientScale` = 1/W so that summing the ranks' gradients
    /// averages them.
    func forward(logits: Matrix, labels: UnsafeBufferPointer<Int32>, normalizer: Int?, gradientScale: Float) throws
        -> (loss: Double, correct: Int)
    /// dL/d(logits) of the last forward, [B, K].
    func backward() -> Matrix
}

extension Loss {
    /// The mean over the rows, unscaled gradient.
    public func forward(logits: Matrix, labels: UnsafeBufferPointer<Int32>) throws -> (loss: Double, correct: Int) {
        try forward(logits: logits, labels: labels, normalizer: nil, gradientScale: 1)
    }

    public func forward(logits: Matrix, labels: UnsafeBufferPointer<Int32>, gradientScale: Float) throws
        -> (loss: Double, correct: Int)
    {
        try forward(logits: logits, labels: labels, normalizer: nil, gradientScale: gradientScale)
    }
}

extension SoftmaxCrossEntropy: Loss {}
