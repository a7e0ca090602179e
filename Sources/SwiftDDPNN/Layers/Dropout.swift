/// `nn.Dropout(p)`: in training, zeroes each element with probability p and scales the rest by
/// 1/(1−p); in evaluation, the identity. Each rank draws its own mask from its generator.
public final class Dropout: Layer {
    public let probability: Float
    public var generator: SeededGenerator
    private let output = Workspace()
    private let mask = Workspace()
    private let gradInput = Workspace()
    private var lastShape: (rows: Int, shape: SampleShape)?

    public init(probability: Float, seed: UInt64 = 0) {
        precondition(probability >= 0 && probability < 1, "dropout probability must be in [0, 1)")
        self.probability = probability
        generator = SeededGenerator(seed: seed)
    }

    public var description: String { "Dropout(p=\(probability), inplace=False)" }
    public func outputShape(for input: SampleShape) throws -> SampleShape { input }

    public func forward(_ input: Matrix, training: Bool) throws -> Matrix {
        let y = output.matrix(rows: input.rows, shape: input.shape)
        let m = mask.matrix(rows: input.rows, shape: input.shape)
        let scale = 1 / (1 - probability)
        for i in 0..<input.count {
            let keep: Float = !training || probability == 0 || generator.nextUnitFloat() >= probability ? 1 : 0
            m.base[i] = training ? keep * scale : 1
            y.base[i] = input.base[i] * m.base[i]
        }
        lastShape = (input.rows, input.shape)
        return y
    }

    public func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        guard let shape = lastShape else { throw NNError("Dropout.backward called before forward") }
        guard needsInputGradient else { return nil }
        let dx = gradInput.matrix(rows: shape.rows, shape: shape.shape)
        let m = mask.matrix(rows: shape.rows, shape: shape.shape)
        for i in 0..<dx.count { dx.base[i] = gradOutput.base[i] * m.base[i] }
        return dx
    }
}
