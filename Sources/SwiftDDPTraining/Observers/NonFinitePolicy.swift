import SwiftDDPCollectives
import SwiftDDPNN
import SwiftDDPBLAS

/// True when no element is NaN or infinite: Σ|x| (BLAS sasum, vectorized) propagates NaN and
/// infinity. (A finite sum beyond Float.greatestFiniteMagnitude also reads as non-finite; such
/// a gradient has diverged anyway.)
func allFinite(_ values: UnsafeMutableBufferPointer<Float>) -> Bool {
    guard let base = values.baseAddress, values.count > 0 else { return true }
    return BLAS.sasum(values.count, x: base).isFinite
}

/// What a non-finite loss or gradient does: stop training (default), or skip the step's update
/// (`skip`). The averaged gradients and the global loss are the same on every rank, so every
/// rank decides alike without another collective (a NaN on any rank reaches all through the
/// sums). Skipping checks the gradients before the update (a pass over memory); stopping lets
/// the optimizer's own pass find them.
final class NonFinitePolicy: TrainingObserver {
    private let skip: Bool
    private let store: ParameterStore
    private let warn: (String) -> Void
    private(set) var skippedSteps = 0

    init(skip: Bool, store: ParameterStore, warn: @escaping (String) -> Void) {
        self.skip = skip
        self.store = store
        self.warn = warn
    }

    func didRun(_ phase: StepPhase, of step: TrainingStep) throws {
        switch phase {
        case .gather:
            step.needsWholeGradients = step.needsWholeGradients || skip
        case .reduce:
            guard !step.loss.isFinite || (skip && !allFinite(store.gradients)) else { return }
            let what = step.loss.isFinite ? "gradients" : "loss (\(step.loss))"
            guard skip else { throw stop(what, step) }
            skippedSteps += 1
            step.skipReason = "non-finite \(what)"
            warn("warning: skipped step \(step.number): non-finite \(what)")
        case .update:
            // Training stops here, so the partly non-finite parameters are never saved.
            guard step.updateWasFinite else { throw stop("gradients", step) }
        default:
            break
        }
    }

    private func stop(_ what: String, _ step: TrainingStep) -> TrainingError {
        TrainingError("non-finite \(what) at step \(step.number); stopping (--skip-nonfinite skips such steps)",
                      agreed: true)
    }
}
