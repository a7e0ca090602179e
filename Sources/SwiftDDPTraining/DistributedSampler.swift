import SwiftDDPNN
/// Splits a data set's indices among ranks with the semantics of PyTorch's
/// `torch.utils.data.distributed.DistributedSampler`:
///
/// - with shuffling, one permutation seeded by `seed + epoch`, identical on every rank and
///   equal to PyTorch's (`torch.randperm` with a generator seeded `seed + epoch`); without,
///   the identity order;
/// - without `dropLast`, the order is padded by wrapping around so every rank gets
///   ceil(n / W) samples; with it, the tail that does not divide evenly is dropped;
/// - rank r takes positions r, r + W, r + 2W, ... of that order.
///
/// Batching the rank's indices in order (as a DataLoader does) means that at step t the union
/// of the ranks' batches is exactly positions [t·B·W, (t+1)·B·W) of the global order.
/// So the same `seed` gives the same sample order, rank for rank, as a PyTorch job.
public struct DistributedSampler: Sendable {
    public let datasetSize: Int
    public let worldSize: Int
    public let rank: Int
    public let shuffle: Bool
    public let seed: UInt64
    public let dropLast: Bool

    public init(datasetSize: Int, worldSize: Int, rank: Int, shuffle: Bool = true, seed: UInt64 = 0,
                dropLast: Bool = false)
    {
        precondition(worldSize > 0 && (0..<worldSize).contains(rank), "invalid rank \(rank) of \(worldSize)")
        self.datasetSize = datasetSize
        self.worldSize = worldSize
        self.rank = rank
        self.shuffle = shuffle
        self.seed = seed
        self.dropLast = dropLast
    }

    /// The largest data set shuffled as PyTorch does (past it PyTorch draws 64-bit numbers).
    public static let maximumShuffledSize = Int(UInt32.max) / 20 - 1

    /// Samples per rank per epoch.
    public var samplesPerRank: Int {
        if dropLast && datasetSize % worldSize != 0 {
            return (datasetSize - worldSize + worldSize - 1) / worldSize  // ceil((n − W) / W)
        }
        return (datasetSize + worldSize - 1) / worldSize
    }

    /// The global order of one epoch, padded or cut to `samplesPerRank × worldSize`.
    public func globalOrder(epoch: Int) -> [Int] {
        var order = shuffle ? torchRandperm(datasetSize, seed: seed &+ UInt64(epoch)) : Array(0..<datasetSize)
        let total = samplesPerRank * worldSize
        if total <= order.count {
            order.removeSubrange(total...)
        } else if !order.isEmpty {
            let base = order
            while order.count < total { order.append(contentsOf: base.prefix(total - order.count)) }
        }
        return order
    }

    /// This rank's indices for `epoch`.
    public func indices(epoch: Int) -> [Int] {
        let order = globalOrder(epoch: epoch)
        return Array(stride(from: rank, to: order.count, by: worldSize).map { order[$0] })
    }
}
