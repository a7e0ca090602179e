import SwiftDDPBLAS
/// A fully connected layer, y = x·Wᵀ + b, like `torch.nn.Linear`.
///
/// Shapes: input [B, in], weight [out, in] (PyTorch's layout), bias [out], output [B, out].
/// State-dict keys: `weight`, `bias` under the layer's name.
public final class Linear: InitializableLayer {
    public let inFeatures: Int
    public let outFeatures: Int
    public private(set) var weightSlot = TensorSlot.unregistered
    public private(set) var biasSlot = TensorSlot.unregistered
    public var parameterSlots: [TensorSlot] { [weightSlot, biasSlot] }
    private var store: ParameterStore!
    private let output = Workspace()
    private let gradInput = Workspace()
    private var lastInput: Matrix?

    /// - Parameters:
    ///   - inFeatures: size of each input sample.
    ///   - outFeatures: size of each output sample.
    public init(inFeatures: Int, outFeatures: Int) {
        precondition(inFeatures > 0 && outFeatures > 0, "Linear needs positive sizes")
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
    }

    public func registerState(in scope: ParameterScope) {
        store = scope.store
        weightSlot = scope.parameter("weight", shape: [outFeatures, inFeatures])
        biasSlot = scope.parameter("bias", shape: [outFeatures])
    }

    public var description: String { "Linear(in_features=\(inFeatures), out_features=\(outFeatures), bias=True)" }

    public func outputShape(for input: SampleShape) throws -> SampleShape {
        guard !input.isImage, input.count == inFeatures else {
            throw NNError("Linear(\(inFeatures), \(outFeatures)): expected samples of shape [\(inFeatures)], "
                          + "got \(input)"
                          + (input.isImage ? " (add a Flatten)" : ""))
        }
        return .features(outFeatures)
    }

    public func resetParameters(scheme: InitScheme, using generator: inout SeededGenerator) {
        let w = store.parameter(weightSlot), b = store.parameter(biasSlot)
        let bounds = scheme.bounds(fanIn: inFeatures, fanOut: outFeatures)
        for i in 0..<weightSlot.count { w[i] = generator.uniform(-bounds.weight, bounds.weight) }
        for i in 0..<outFeatures { b[i] = bounds.bias == 0 ? 0 : generator.uniform(-bounds.bias, bounds.bias) }
    }

    public func forward(_ input: Matrix, training: Bool) throws -> Matrix {
        try checkInput(input, features: inFeatures, layer: "Linear")
        let y = output.matrix(rows: input.rows, cols: outFeatures)
        let b = store.parameter(biasSlot)
        for r in 0..<input.rows { y.row(r).update(from: b, count: outFeatures) }
        if input.rows > 0 {
            // Y[B,out] = X[B,in] · W[out,in]ᵀ + Y (Y holds the bias rows)
            BLAS.sgemm(transA: .none, transB: .transpose, m: input.rows, n: outFeatures, k: inFeatures,
                       a: input.base, lda: inFeatures, b: store.parameter(weightSlot), ldb: inFeatures,
                       beta: 1, c: y.base, ldc: outFeatures)
        }
        lastInput = input
        return y
    }

    public func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        guard let x = lastInput else { throw NNError("Linear.backward called before forward") }
        guard gradOutput.rows == x.rows, gradOutput.cols == outFeatures else {
            throw NNError("Linear.backward: gradient is [\(gradOutput.rows), \(gradOutput.cols)], "
                          + "expected [\(x.rows), \(outFeatures)]")
        }
        let dW = store.gradient(weightSlot), db = store.gradient(biasSlot)
        let batch = x.rows
        if batch == 0 {
            dW.update(repeating: 0, count: weightSlot.count)
            db.update(repeating: 0, count: outFeatures)
        } else {
            // dW[out,in] = dYᵀ[out,B] · X[B,in]
            BLAS.sgemm(transA: .transpose, transB: .none, m: outFeatures, n: inFeatures, k: batch,
                       a: gradOutput.base, lda: outFeatures, b: x.base, ldb: inFeatures, c: dW, ldc: inFeatures)
            // db[out] = Σ_rows dY
            db.update(repeating: 0, count: outFeatures)
            for r in 0..<batch {
                let g = gradOutput.row(r)
                for j in 0..<outFeatures { db[j] += g[j] }
            }
        }
        guard needsInputGradient else { return nil }
        let dx = gradInput.matrix(rows: batch, cols: inFeatures)
        if batch > 0 {
            // dX[B,in] = dY[B,out] · W[out,in]
            BLAS.sgemm(m: batch, n: inFeatures, k: outFeatures, a: gradOutput.base, lda: outFeatures,
                       b: store.parameter(weightSlot), ldb: inFeatures, c: dx.base, ldc: inFeatures)
        }
        return dx
    }
}
