import SwiftDDPNN

/// Records `Diagnostics` at their steps: arms the model's hooks before the forward pass, asks
/// for the whole averaged gradients, collects after the reduction, and measures internal
/// covariate shift after the update when a probe is given. Its time is left out of the step
/// timings (`StepTimings.diagnostics`).
final class DiagnosticsObserver: TrainingObserver {
    let diagnostics: Diagnostics
    private let probe: CovariateShiftProbe?
    private let write: (DiagnosticsRecord) -> Void
    private var record: DiagnosticsRecord?
    private(set) var seconds = 0.0

    /// - Parameter write: gets every record, its loss filled in, after its step's update.
    init(_ diagnostics: Diagnostics, probe: CovariateShiftProbe?, write: @escaping (DiagnosticsRecord) -> Void) {
        self.diagnostics = diagnostics
        self.probe = probe
        self.write = write
    }

    func didRun(_ phase: StepPhase, of step: TrainingStep) throws {
        switch phase {
        case .gather:
            guard diagnostics.isDue(step: step.index) else { return }
            diagnostics.arm()
            step.needsWholeGradients = true
            record = DiagnosticsRecord(step: step.index, epoch: step.epoch)
        case .reduce where record != nil && step.skipReason == nil:
            let start = monotonicSeconds()
            record = try diagnostics.collect(step: step.index, epoch: step.epoch)
            probe?.rememberParametersBeforeStep()
            charge(since: start, step)
        case .update:
            guard var r = record else { return }
            record = nil
            let start = monotonicSeconds()
            try probe?.measure(into: &r)
            r.loss = step.loss
            write(r)
            charge(since: start, step)
        default:
            break
        }
    }

    func didSkip(_ step: TrainingStep) throws {
        guard record != nil else { return }
        record = nil
        diagnostics.disarm()
    }

    private func charge(since start: Double, _ step: TrainingStep) {
        let spent = monotonicSeconds() - start
        step.observerSeconds += spent
        seconds += spent
    }
}
