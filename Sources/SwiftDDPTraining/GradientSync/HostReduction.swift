import SwiftDDPCollectives

/// Where the shared-memory modes sum, in two levels when the job spans hosts (hierarchical):
/// the ranks of this host with their gradient buffers in memory they all map, and the ranks
/// holding the same part on every other host, which all-reduce that part of the host sums —
/// one all-reduce of n/L elements per rank (persistent, over MPI), so each host sends the
/// gradient once, not once per rank.
struct HostReduction {
    /// The ranks of this host (the group itself when it lives on one host).
    let host: any ProcessGroup
    /// Every host rank's gradient segment, and the common region (`ShardedOptimizer`'s).
    let memory: any SharedSegments
    /// Rank k of every host (nil on one host): they all-reduce part k of the host sums.
    let peers: (any ProcessGroup)?

    /// Sets up the reduction for `floats` gradients per rank and `common(L)` shared floats (L:
    /// ranks on the host), or returns why it cannot be used (nil reason: one rank per host,
    /// nothing to share). Collective; every rank of `group` gets the same kind of answer, so all
    /// of them take the same path.
    static func make(group: any ProcessGroup, floats n: Int, common: (Int) -> Int) throws
        -> (HostReduction?, String?)
    {
        let splitHost = try group.hostGroup()
        let oneHost = splitHost.worldSize == group.worldSize
        let host = oneHost ? group : splitHost  // on one host, keep using the group itself
        if !oneHost {  // (every rank agrees on that: the hosts partition the group)
            // Part k of one host is reduced with part k of the others: every host needs the same L.
            var extremes: [Int32] = [Int32(host.worldSize), -Int32(host.worldSize)]
            try group.allReduce(&extremes, op: .min)
            guard extremes[0] == -extremes[1] else {
                return (nil, "hosts run different numbers of ranks, \(extremes[0]) to \(-extremes[1])")
            }
            guard host.worldSize > 1 else { return (nil, nil) }
        }
        var memory: (any SharedSegments)? = nil
        var failure: String? = nil
        do {
            memory = try host.sharedSegments(floats: n, common: common(host.worldSize))
        } catch let error as ProcessGroupError {
            failure = error.message  // agreed by the ranks of this host
        }
        if !oneHost {  // and by every host: the ranks of one host must not wait in a collective the others skip
            var ready: [Int32] = [memory != nil ? 1 : 0]
            try group.allReduce(&ready, op: .min)
            if ready[0] == 0 { return (nil, failure ?? "shared memory could not be set up on another host") }
        }
        guard let memory else { return (nil, failure ?? "the ranks cannot share memory") }
        let peers = oneHost ? nil : try group.split(color: host.rank, key: group.rank)
        return (HostReduction(host: host, memory: memory, peers: peers), nil)
    }
}
