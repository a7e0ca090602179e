/// `nn.Dropout(p)`: in training, zeroes each element with probability p and scales the rest by
/// 1/(1−p); in evaluation, the identity.
///
/// Where the masks come from: with `sampleKeys` set (the trainer sets them to each row's epoch
/// and data-set index), row r's mask is drawn from a generator seeded by (`seed`, its key), so a
/// sample gets the same mask whichever rank trains it and however many ranks there are; without,
/// from the layer's own `generator`, in order.
public final class Dropout: Layer {
    public let probability: Float
    public let seed: UInt64
    public var generator: SeededGenerator
    /// One key per row of the next training forward; nil: draw from `generator`.
    public var sampleKeys: UnsafeBufferPointer<UInt64>?
    private let output = Workspace()
    private let mask = Workspace()
    private let gradInput = Workspace()
    private var lastShape: (rows: Int, shape: SampleShape)?

    public init(probability: Float, seed: UInt64 = 0) {
        precondition(probability >= 0 && probability < 1, "dropout probability must be in [0, 1)")
        self.probability = probability
        self.seed = seed
        generator = SeededGenerator(seed: seed)
    }

    public var description: String { "Dropout(p=\(probability), inplace=False)" }
    public func outputShape(for input: SampleShape) throws -> SampleShape { input }

    public func forward(_ input: Matrix, training: Bool) throws -> Matrix {
        let y = output.matrix(rows: input.rows, shape: input.shape)
        let m = mask.matrix(rows: input.rows, shape: input.shape)
        let scale = 1 / (1 - probability), cols = input.cols
        if training, let keys = sampleKeys {
            guard keys.count >= input.rows else {
                throw NNError("Dropout: \(keys.count) sample keys for \(input.rows) rows")
            }
            for r in 0..<input.rows {
                var rowGenerator = SeededGenerator(seed: seed ^ (keys[r] &* 0x9E37_79B9_7F4A_7C15))
                for i in r * cols..<(r + 1) * cols {
                    m.base[i] = rowGenerator.nextUnitFloat() >= probability ? scale : 0
                    y.base[i] = input.base[i] * m.base[i]
                }
            }
        } else {
            for i in 0..<input.count {
                let keep: Float = !training || probability == 0 || generator.nextUnitFloat() >= probability ? 1 : 0
                m.base[i] = training ? keep * scale : 1
                y.base[i] = input.base[i] * m.base[i]
            }
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
