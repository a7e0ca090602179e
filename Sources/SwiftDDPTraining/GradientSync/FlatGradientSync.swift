import SwiftDDPCollectives
import SwiftDDPNN

/// One all-reduce of the whole gradient buffer after backward: the simplest averaging, and
/// what the shared-memory modes fall back to.
public final class FlatGradientSync: GradientSync {
    public let mode: GradientSyncMode
    private let store: ParameterStore
    private let group: any ProcessGroup
    public private(set) var communicationSeconds = 0.0
    public internal(set) var sharedMemoryUnavailable: String?

    public init(mode: GradientSyncMode = .flat, store: ParameterStore, group: any ProcessGroup) {
        self.mode = mode
        self.store = store
        self.group = group
    }

    public func resetTimers() { communicationSeconds = 0 }

    public func finish(wholeGradients: Bool = true) throws {
        guard group.worldSize > 1 else { return }
        let start = monotonicSeconds()
        try group.allReduce(store.gradients, op: .sum)
        communicationSeconds += monotonicSeconds() - start
    }
}
