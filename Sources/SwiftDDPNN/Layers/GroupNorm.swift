/// `torch.nn.GroupNorm(num_groups, num_channels, eps=1e-5, affine=True)`: each sample's
/// channels are split into G groups of C/G, and each group is normalized by its own mean and
/// biased variance over its channels and positions, then scaled by γ and shifted by β per
/// channel. No batch statistics: the same in training and evaluation, on every rank, for any
/// batch size (the normalization Wu & He 2018 propose for small per-device batches).
/// Takes images [C, H, W] or feature vectors [C] (one position). Keys: `weight`, `bias`.
public final class GroupNorm: InitializableLayer {
    public let groups: Int
    public let channels: Int
    public let eps: Double
    public private(set) var weightSlot = TensorSlot.unregistered
    public private(set) var biasSlot = TensorSlot.unregistered
    public var parameterSlots: [TensorSlot] { [weightSlot, biasSlot] }
    private var store: ParameterStore!
    private let output = Workspace()
    private let gradInput = Workspace()
    /// Per (sample, group): mean and 1/sqrt(var + eps) of the last forward.
    private let statistics = Scratch<Double>()
    /// Per (sample, group): the backward's sums Σdx̂ and Σdx̂·x̂.
    private let sums = Scratch<Double>()
    private var lastInput: Matrix?

    public init(groups: Int, channels: Int, eps: Double = 1e-5) {
        precondition(groups > 0 && channels > 0, "GroupNorm needs positive sizes")
        self.groups = groups
        self.channels = channels
        self.eps = eps
    }

    public func registerState(in scope: ParameterScope) {
        store = scope.store
        weightSlot = scope.parameter("weight", shape: [channels])
        biasSlot = scope.parameter("bias", shape: [channels])
    }

    public var description: String { "GroupNorm(\(groups), \(channels), eps=\(eps), affine=True)" }

    public func outputShape(for input: SampleShape) throws -> SampleShape {
        guard input.channels == channels else {
            throw NNError("GroupNorm(\(groups), \(channels)): expected \(channels) channels, got \(input)")
        }
        guard channels % groups == 0 else {
            throw NNError("GroupNorm: \(channels) channels do not split into \(groups) groups")
        }
        return input
    }

    /// γ = 1, β = 0 (PyTorch's reset).
    public func resetParameters(scheme: InitScheme, using generator: inout SeededGenerator) {
        store.parameter(weightSlot).update(repeating: 1, count: channels)
        store.parameter(biasSlot).update(repeating: 0, count: channels)
    }

    public func forward(_ input: Matrix, training: Bool) throws -> Matrix {
        _ = try outputShape(for: input.shape)
        let y = output.matrix(rows: input.rows, shape: input.shape)
        let C = channels, G = groups, per = C / G, P = input.shape.positions
        let count = Double(per * P)
        let stats = statistics.elements(2 * input.rows * G)
        let gamma = store.parameter(weightSlot), beta = store.parameter(biasSlot)
        for n in 0..<input.rows {
            let x = input.row(n), out = y.row(n)
            for g in 0..<G {
                let c0 = g * per
                // Two passes in Double: the group's values are few and can have |mean| ≫ std.
                var sum = 0.0
                for p in 0..<P {
                    for c in c0..<c0 + per { sum += Double(x[p * C + c]) }
                }
                let mean = sum / count
                var m2 = 0.0
                for p in 0..<P {
                    for c in c0..<c0 + per { let d = Double(x[p * C + c]) - mean; m2 += d * d }
                }
                let inv = 1 / (m2 / count + eps).squareRoot()
                stats[2 * (n * G + g)] = mean
                stats[2 * (n * G + g) + 1] = inv
                for p in 0..<P {
                    for c in c0..<c0 + per {
                        let xhat = Float((Double(x[p * C + c]) - mean) * inv)
                        out[p * C + c] = gamma[c] * xhat + beta[c]
                    }
                }
            }
        }
        lastInput = input
        return y
    }

    public func backward(_ gradOutput: Matrix, needsInputGradient: Bool) throws -> Matrix? {
        guard let x = lastInput else { throw NNError("GroupNorm.backward called before forward") }
        try checkGradient(gradOutput, rows: x.rows, shape: x.shape, layer: "GroupNorm")
        let C = channels, G = groups, per = C / G, P = x.shape.positions
        let stats = statistics.elements(2 * x.rows * G), s = sums.elements(2 * x.rows * G)
        let gamma = store.parameter(weightSlot)
        let dgamma = store.gradient(weightSlot), dbeta = store.gradient(biasSlot)
        dgamma.update(repeating: 0, count: C)
        dbeta.update(repeating: 0, count: C)
        // dγ[c] = Σ dy·x̂, dβ[c] = Σ dy over samples and positions; per group, with dx̂ = dy·γ:
        // S1 = Σ dx̂, S2 = Σ dx̂·x̂.
        for n in 0..<x.rows {
            let xn = x.row(n), g = gradOutput.row(n)
            for grp in 0..<G {
                let mean = stats[2 * (n * G + grp)], inv = stats[2 * (n * G + grp) + 1]
                var s1 = 0.0, s2 = 0.0
                for p in 0..<P {
                    for c in grp * per..<(grp + 1) * per {
                        let xhat = Float((Double(xn[p * C + c]) - mean) * inv)
                        let dy = g[p * C + c]
                        dgamma[c] += dy * xhat
                        dbeta[c] += dy
                        let dxhat = Double(dy * gamma[c])
                        s1 += dxhat
                        s2 += dxhat * Double(xhat)
                    }
                }
                s[2 * (n * G + grp)] = s1
                s[2 * (n * G + grp) + 1] = s2
            }
        }
        guard needsInputGradient else { return nil }
        // dx = inv·(dx̂ − S1/M − x̂·S2/M), M = values per group
        let dx = gradInput.matrix(rows: x.rows, shape: x.shape)
        let M = Double(per * P)
        for n in 0..<x.rows {
            let xn = x.row(n), g = gradOutput.row(n), d = dx.row(n)
            for grp in 0..<G {
                let mean = stats[2 * (n * G + grp)], inv = stats[2 * (n * G + grp) + 1]
                let a = s[2 * (n * G + grp)] / M, b = s[2 * (n * G + grp) + 1] / M
                for p in 0..<P {
                    for c in grp * per..<(grp + 1) * per {
                        let xhat = (Double(xn[p * C + c]) - mean) * inv
                        let dxhat = Double(g[p * C + c] * gamma[c])
                        d[p * C + c] = Float(inv * (dxhat - a - xhat * b))
                    }
                }
            }
        }
        return dx
    }
}
