import SwiftDDPNN

/// Where the time of the training steps went (seconds, summed over steps).
public struct StepTimings: Sendable, Codable, Equatable {
    public var data = 0.0
    public var forward = 0.0
    public var backward = 0.0
    public var gradientSync = 0.0
    public var syncBNCommunication = 0.0
    public var optimizer = 0.0
    public var bufferBroadcast = 0.0
    public var total = 0.0
    /// Time spent in diagnostics (not part of `total`; the trainer fills it in).
    public var diagnostics = 0.0

    public init() {}
}

/// Times each phase of every updated step. The gradient collectives that run inside backward
/// (bucketed) count as gradient sync, not backward; SyncBN's exchanges are also summed apart
/// (they stay inside forward and backward); observers' own work (`observerSeconds`) is left out.
/// Must be the first observer, so that the others' work at a phase falls after its clock read.
public final class StepTimer: TrainingObserver {
    public private(set) var timings = StepTimings()
    private let ddp: DistributedDataParallel
    private let batchNorms: [BatchNorm]
    private var last = 0.0, observerSecondsAtLast = 0.0

    public init(_ ddp: DistributedDataParallel) {
        self.ddp = ddp
        batchNorms = ddp.model.batchNormLayers
    }

    public func reset() { timings = StepTimings() }

    public func didRun(_ phase: StepPhase, of step: TrainingStep) throws {
        let now = monotonicSeconds()
        if phase == .gather { (last, observerSecondsAtLast) = (step.startSeconds, 0) }
        let elapsed = now - last - (step.observerSeconds - observerSecondsAtLast)
        (last, observerSecondsAtLast) = (now, step.observerSeconds)
        switch phase {
        case .gather:
            timings.data += elapsed
            for bn in batchNorms { bn.resetTimers() }
            ddp.resetTimers()
        case .forward, .loss:
            let broadcast = phase == .forward ? ddp.bufferBroadcastSeconds : 0
            timings.bufferBroadcast += broadcast
            timings.forward += elapsed - broadcast
        case .backward:
            timings.backward += elapsed - ddp.gradientSync.communicationSeconds
        case .reduce:
            timings.gradientSync += ddp.gradientSync.communicationSeconds
            for bn in batchNorms { timings.syncBNCommunication += bn.communicationSeconds }
        case .update:
            timings.optimizer += elapsed
            timings.total += now - step.startSeconds - step.observerSeconds
        }
    }
}
