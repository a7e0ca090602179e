import SwiftDDPCollectives
import SwiftDDPNN

/// One all-reduce of the whole gradient buffer after backward: the simplest averaging, and
/// what the shared-memory modes fall back to. The all-reduce is set up once (persistent) and
/// run every step.
public final class FlatGradientSync: GradientSync {
    public let mode: GradientSyncMode
    private let store: ParameterStore
    private let group: any ProcessGroup
    /// The all-reduce of the gradient buffer (nil on one rank).
    private let allReduce: (any PersistentCollective)?
    /// Where the gradients were when the all-reduce was set up (they must not move).
    private let gradientBase: UnsafeMutablePointer<Float>?
    public private(set) var communicationSeconds = 0.0
    public internal(set) var sharedMemoryUnavailable: String?

    /// Collective over `group`.
    public init(mode: GradientSyncMode = .flat, store: ParameterStore, group: any ProcessGroup) throws {
        self.mode = mode
        self.store = store
        self.group = group
        gradientBase = store.gradients.baseAddress
        allReduce = group.worldSize > 1 ? try group.persistentAllReduce(store.gradients, op: .sum) : nil
    }

    deinit {
        // MPI may still write into the gradients of a step that ended with an error
        try? allReduce?.wait()
    }

    public func resetTimers() { communicationSeconds = 0 }

    public func finish(wholeGradients: Bool = true) throws {
        guard let allReduce else { return }
        guard store.gradients.baseAddress == gradientBase else {
            throw NNError("flat gradient sync: the gradient buffer moved after the all-reduce was set up")
        }
        let start = monotonicSeconds()
        try allReduce.start()
        try allReduce.wait()
        communicationSeconds += monotonicSeconds() - start
    }
}
