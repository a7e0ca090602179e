/// Splits one rank's time in a sequence of collectives into the exchange itself and waiting
/// for the other members. It assumes the members leave each collective together, as they do
/// from a barrier or an all-gather: then the member that arrived last waited for no one, and its
/// time (the group's shortest) is what the exchange took, its transfer; the rest of every
/// member's time is waiting for that member, which only evener ranks, or other work to fill it,
/// would remove. Where members leave apart (the sharded gradient sync returns as soon as a rank
/// has summed its own part), differences in that last work count as waiting too.
public struct ExchangeSplit: Equatable, Sendable {
    /// Seconds, summed over the collectives: the group's shortest time at each.
    public var transfer: Double
    /// Seconds, summed over the collectives: this rank's time beyond the transfer.
    public var waiting: Double
    /// The part of `waiting` at collectives whose members' times differed by more than the
    /// stall threshold (one rank held up at one point, not an even drift).
    public var waitingInStalls: Double
    /// How many collectives those were.
    public var stalls: Int

    public init(transfer: Double, waiting: Double, waitingInStalls: Double, stalls: Int) {
        (self.transfer, self.waiting, self.waitingInStalls, self.stalls) = (transfer, waiting, waitingInStalls, stalls)
    }

    /// - Parameters:
    ///   - durations: this rank's seconds in each collective, in call order.
    ///   - fastest, slowest: the shortest and longest of the group's members at each (an element-wise
    ///     min and max over the group; every member calls the same collectives in the same order).
    ///   - stallThreshold: seconds of difference between the members that mark a stall.
    public init(durations: [Double], fastest: [Double], slowest: [Double], stallThreshold: Double) {
        precondition(durations.count == fastest.count && durations.count == slowest.count,
                     "one duration, minimum and maximum per collective")
        (transfer, waiting, waitingInStalls, stalls) = (0, 0, 0, 0)
        for i in durations.indices {
            transfer += fastest[i]
            waiting += durations[i] - fastest[i]
            if slowest[i] - fastest[i] > stallThreshold {
                waitingInStalls += durations[i] - fastest[i]
                stalls += 1
            }
        }
    }
}
