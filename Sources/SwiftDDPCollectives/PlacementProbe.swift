import CSwiftDDPKernels
extension ProcessGroup {
    /// How far apart ranks 0 and 1 sit in the machine: the mean round trip, in nanoseconds, of
    /// one cache line bounced between them through shared memory (`ddp_cache_line_round_trip`),
    /// or nil when there is one member or the members do not share a host. Collective; every
    /// member gets rank 0's figure.
    ///
    /// Why it matters: every byte the ranks exchange — gradient sums, the sharded update's
    /// parameters, SyncBN statistics — travels the same path. On one test VM the two vCPUs
    /// answered in ≈ 55 ns (one L3) or ≈ 330 ns (the hypervisor had put them on different
    /// dies), and the sharded update took 0.25 or 0.7–1.3 ms accordingly. Benchmarks record it
    /// before and after timing, so a result can be read with the placement it ran under.
    ///
    /// - Parameters:
    ///   - rounds: round trips to average.
    ///   - timeoutSeconds: give up (and return nil) if the partner does not answer in time, e.g.
    ///     when oversubscribed ranks 0 and 1 share a CPU and the scheduler starves one.
    public func rankRoundTripNanoseconds(rounds: Int = 5_000, timeoutSeconds: Double = 1) throws -> Double? {
        guard worldSize > 1, let memory = try sharedSegments(floats: 1, common: 16) else { return nil }
        let line = UnsafeMutableRawPointer(memory.common).assumingMemoryBound(to: Int32.self)
        try memory.synchronize()  // the line reads 0 everywhere before anyone starts
        var result = [-1.0]
        if rank < 2 {
            result[0] = ddp_cache_line_round_trip(line, rank == 0 ? 1 : 0, Int32(rounds), timeoutSeconds)
        }
        try broadcast(&result, root: 0)
        return result[0] > 0 ? result[0] : nil
    }
}
