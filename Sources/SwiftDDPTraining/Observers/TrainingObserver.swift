import SwiftDDPNN

/// The parts of a training step, in order.
public enum StepPhase: Sendable, CaseIterable {
    /// This rank's samples of the global batch are in the input matrix.
    case gather
    /// The training forward pass ran (SyncBatchNorm layers exchanged statistics inside it).
    case forward
    /// The loss and its gradient (scaled by 1/W) are computed.
    case loss
    /// The backward pass ran (bucketed gradient all-reduces started inside it).
    case backward
    /// The gradients are averaged over the ranks and `TrainingStep.loss` is the global loss.
    case reduce
    /// The optimizer updated the parameters.
    case update
}

/// One optimizer step as observers see it; the trainer fills it in phase by phase (one
/// instance, reused from step to step: observers must not keep it).
public final class TrainingStep {
    /// 0-based index of the step in the whole run (resumed runs continue the count).
    public private(set) var index = 0
    public private(set) var epoch = 0
    /// This rank's samples (data-set indices) in this step.
    public private(set) var indices: ArraySlice<Int> = []
    /// When the step started (before `.gather`).
    public private(set) var startSeconds = 0.0
    /// This rank's batch mean loss (after `.loss`).
    public internal(set) var localLoss = Double.nan
    /// Samples of this rank's batch the model classified right in the training forward.
    public internal(set) var correct = 0
    /// The mean loss over all ranks (after `.reduce`).
    public internal(set) var loss = Double.nan
    /// Whether the update found every gradient finite, agreed by all ranks (after `.update`).
    public internal(set) var updateWasFinite = true
    /// Set before `.reduce` by an observer that reads the averaged gradients: every rank then
    /// gets all of them (a sharded update needs only its own part).
    public var needsWholeGradients = false
    /// Set at `.reduce` to skip the update, with the reason (observers then get `didSkip`).
    public var skipReason: String?
    /// Seconds observers spent on work outside training (diagnostics): left out of the timings.
    public var observerSeconds = 0.0

    init() {}

    func begin(index: Int, epoch: Int, indices: ArraySlice<Int>) {
        self.index = index
        self.epoch = epoch
        self.indices = indices
        startSeconds = monotonicSeconds()
        localLoss = .nan
        correct = 0
        loss = .nan
        updateWasFinite = true
        needsWholeGradients = false
        skipReason = nil
        observerSeconds = 0
    }

    /// Steps done once this one is: its 1-based number.
    public var number: Int { index + 1 }
    public var rows: Int { indices.count }
}

/// Watches the training loop from the side: timing, diagnostics, fault injection, the policy
/// for non-finite values, progress lines and checkpoints are observers. The trainer calls them
/// in order after each phase of each step; an error thrown ends training.
public protocol TrainingObserver: AnyObject {
    /// `phase` of `step` has run.
    func didRun(_ phase: StepPhase, of step: TrainingStep) throws
    /// `step` ended after `.reduce` without an update (`step.skipReason` says why).
    func didSkip(_ step: TrainingStep) throws
}

extension TrainingObserver {
    public func didRun(_ phase: StepPhase, of step: TrainingStep) throws {}
    public func didSkip(_ step: TrainingStep) throws {}
}

/// An observer made of a closure called after one phase of every step.
public final class PhaseObserver: TrainingObserver {
    public let phase: StepPhase
    private let body: (TrainingStep) throws -> Void

    public init(after phase: StepPhase, _ body: @escaping (TrainingStep) throws -> Void) {
        self.phase = phase
        self.body = body
    }

    public func didRun(_ phase: StepPhase, of step: TrainingStep) throws {
        if phase == self.phase { try body(step) }
    }
}
