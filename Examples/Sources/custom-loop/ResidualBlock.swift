import SwiftDDP

/// y = x + branch(x), branch = Linear → BatchNorm1d → ReLU → Linear: a residual MLP block,
/// defined outside the library as a container layer. It names its child ("branch"), so the
/// parameters are `N.branch.0.weight` and so on, and runs it through the model's `runner`, so
/// the gradient all-reduce still sees each of the branch's layers as its gradients are ready.
final class ResidualBlock: ContainerLayer {
    let features: Int
    let branch: Sequential
    var runner = LayerRunner()
    private let output = Workspace()
    private let gradInput = Workspace()

    init(features: Int) {
        self.features = features
        branch = Sequential([Linear(inFeatures: features, outFeatures: features),
                             BatchNorm(.features, features: features), Activation(.relu),
                             Linear(inFeatures: features, outFeatures: features)])
    }

    var children: [(name: String, layer: any Layer)] { [("branch", branch)] }
    var description: String { "ResidualBlock(\(features))" }

    func outputShape(for input: SampleShape) throws -> SampleShape {
        guard try branch.outputShape(for: input) == input else {
            throw NNError("ResidualBlock(\(features)): expected samples of shape [\(features)], got \(input)")
        }
        return input
    }

    func forward(_ x: Matrix, training: Bool) throws -> Matrix {
        let h = try runner.forward(branch, x, training: training)
        let y = output.matrix(rows: x.rows, shape: x.shape)
        for i in 0..<y.count { y.base[i] = x.base[i] + h.base[i] }
        return y
    }

    // dL/dx = dL/dy + branch's dL/dx: the sum passes the gradient to both paths unchanged.
    func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        guard let dh = try runner.backward(branch, gradOutput, needsInputGradient: true) else {
            throw NNError("ResidualBlock: the branch returned no input gradient")
        }
        guard needsInputGradient else { return nil }
        let dx = gradInput.matrix(rows: gradOutput.rows, shape: gradOutput.shape)
        for i in 0..<dx.count { dx.base[i] = gradOutput.base[i] + dh.base[i] }
        return dx
    }
}
