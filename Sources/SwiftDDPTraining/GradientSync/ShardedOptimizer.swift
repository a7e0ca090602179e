import SwiftDDPCollectives
import SwiftDDPNN
import SwiftDDPSafeTensors

/// An optimizer whose parameters and state live once per host, in memory the host's ranks
/// share: each rank updates its 1/L of the elements (`range`), and after one barrier every rank
/// reads the whole updated model (ZeRO stage 1 within a host, with the same bits as every rank
/// updating everything). `GradientSyncMode.sharded` builds it around the model's optimizer;
/// step it in that optimizer's place.
public final class ShardedOptimizer: Optimizer {
    /// The optimizer doing the arithmetic, on this rank's part.
    public let base: any Optimizer
    /// The flat-buffer range of the parameters this rank updates.
    public let range: Range<Int>
    private let memory: any SharedSegments
    private let hostRank: Int, hostRanks: Int
    public private(set) var lastStepWasFinite = true

    /// Moves `store`'s parameters and `base`'s state into the common shared region (every rank
    /// holds the same values after the initial broadcast; host rank 0 copies them in).
    init(_ base: any Optimizer, store: ParameterStore, reduction: HostReduction) throws {
        self.base = base
        memory = reduction.memory
        hostRank = reduction.host.rank
        hostRanks = reduction.host.worldSize
        let n = store.parameterCount
        range = memberPart(hostRank, of: n, members: hostRanks)
        store.relocateParameters(to: memory.common, owner: memory, copyingValues: hostRank == 0)
        base.relocateState(to: memory.common + n, owner: memory, copyingValues: hostRank == 0)
        try memory.synchronize()
    }

    public var learningRate: Float {
        get { base.learningRate }
        set { base.learningRate = newValue }
    }

    /// Updates this rank's part, then waits for the host's other ranks (collective). Afterwards
    /// `lastStepWasFinite` says whether every rank's part was finite, agreed by all ranks.
    public func step() throws {
        base.step(range: range)
        // Flags in shared memory, not an all-reduce: Open MPI's allocates a temporary per call.
        // A rank rewrites its flag only after the next step's first barrier, which every rank
        // passes after reading these. Across hosts the host's flags suffice: part k holds the
        // same sums on every host, so every host sees the same flags.
        let flags = memory.common + (memory.commonCount - hostRanks)
        flags[hostRank] = base.lastStepWasFinite ? 0 : 1
        try memory.synchronize()
        lastStepWasFinite = (0..<hostRanks).allSatisfy { flags[$0] == 0 }
    }

    /// Updates `range` of the shared copy as the base optimizer would, without the barrier.
    public func step(range: Range<Int>) { base.step(range: range) }

    public var stateVectors: Int { base.stateVectors }

    public func relocateState(to storage: UnsafeMutablePointer<Float>, owner: AnyObject, copyingValues: Bool) {
        base.relocateState(to: storage, owner: owner, copyingValues: copyingValues)
    }

    public func stateDict() -> [String: TensorData] { base.stateDict() }

    /// Every rank of a host writes the same values into the one shared copy; callers end the
    /// load with a barrier before the next step reads it.
    public func loadStateDict(_ dict: [String: TensorData]) throws { try base.loadStateDict(dict) }
}
