import SwiftDDPNN
#if canImport(Glibc)
import Glibc
#endif

/// A deliberate failure of one rank at one step, for testing failure handling.
public struct FaultInjection: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        /// Throw an error (the job must end with the rank and the message).
        case `throw`
        /// SIGKILL itself, like `kill -9`.
        case kill
        /// Put NaN into this rank's gradients (all ranks must agree to stop or skip).
        case nan
    }
    public var kind: Kind
    public var rank: Int
    public var step: Int
    public init(kind: Kind, rank: Int, step: Int) {
        self.kind = kind
        self.rank = rank
        self.step = step
    }
}

/// Fires a `FaultInjection` on its rank after the backward pass of its step, before the
/// gradients are averaged: what the other ranks then see is what a real failure would show.
final class FaultInjector: TrainingObserver {
    private let fault: FaultInjection
    private let store: ParameterStore

    init?(_ fault: FaultInjection?, rank: Int, store: ParameterStore) {
        guard let fault, fault.rank == rank else { return nil }
        self.fault = fault
        self.store = store
    }

    func didRun(_ phase: StepPhase, of step: TrainingStep) throws {
        guard phase == .backward, step.index == fault.step else { return }
        switch fault.kind {
        case .throw:
            throw TrainingError("injected failure at step \(fault.step + 1)")
        case .kill:
            kill(getpid(), SIGKILL)
        case .nan:
            store.gradients[0] = .nan
        }
    }
}
