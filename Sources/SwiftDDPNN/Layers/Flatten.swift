/// `torch.nn.Flatten()`: each [C, H, W] sample becomes [C·H·W] in PyTorch's (C, H, W) order,
/// so the Linear layer after it has PyTorch's weight layout. Images are stored channels-last,
/// so this transposes each sample's [H·W, C] block; with one channel or one position the
/// orders agree and the output is a view of the input. Feature batches pass unchanged.
public final class Flatten: Layer {
    private let output = Workspace()
    private let gradInput = Workspace()
    private var lastInput: (rows: Int, shape: SampleShape)?

    public init() {}

    public var description: String { "Flatten(start_dim=1, end_dim=-1)" }

    public func outputShape(for input: SampleShape) throws -> SampleShape { .features(input.count) }

    /// Whether the channels-last and PyTorch orders differ for this shape.
    private static func needsTranspose(_ shape: SampleShape) -> Bool { shape.channels > 1 && shape.positions > 1 }

    public func forward(_ input: Matrix, training: Bool) throws -> Matrix {
        let shape = input.shape
        lastInput = (input.rows, shape)
        guard Self.needsTranspose(shape) else { return input.reshaped(.features(shape.count)) }
        let y = output.matrix(rows: input.rows, shape: .features(shape.count))
        let C = shape.channels, P = shape.positions
        for n in 0..<input.rows {
            let x = input.row(n), out = y.row(n)
            // out[c·P + p] = x[p·C + c]
            for p in 0..<P {
                for c in 0..<C { out[c * P + p] = x[p * C + c] }
            }
        }
        return y
    }

    public func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        guard let last = lastInput else { throw NNError("Flatten.backward called before forward") }
        try checkGradient(gradOutput, rows: last.rows, shape: .features(last.shape.count), layer: "Flatten")
        guard needsInputGradient else { return nil }
        guard Self.needsTranspose(last.shape) else { return gradOutput.reshaped(last.shape) }
        let dx = gradInput.matrix(rows: last.rows, shape: last.shape)
        let C = last.shape.channels, P = last.shape.positions
        for n in 0..<last.rows {
            let g = gradOutput.row(n), d = dx.row(n)
            for p in 0..<P {
                for c in 0..<C { d[p * C + c] = g[c * P + p] }
            }
        }
        return dx
    }
}
