/// Splits the time ranks spent in the same collectives into the exchange itself and waiting for
/// one another. At each exchange, the member that arrived last waited for no one: its time is
/// what the exchange took (its transfer). Every other member's time beyond that is waiting for
/// the last one, which no faster interconnect or algorithm would remove: only evener ranks would.
public struct ExchangeSplit: Equatable, Sendable {
    /// Per rank, seconds summed over the exchanges: the transfer of its group at each exchange.
    public var transfer: [Double]
    /// Per rank, seconds summed over the exchanges: its time beyond the transfer.
    public var waiting: [Double]
    /// Seconds, summed over ranks: the waiting at exchanges where a group's members differed by
    /// more than the stall threshold (one rank held up at one point, not an even drift).
    public var waitingInStalls: Double

    /// - Parameters:
    ///   - durations: `durations[r][i]`, rank r's seconds in exchange i; every rank the same count.
    ///   - groupSize: ranks that exchange together, consecutive ranks (all ranks: their count).
    ///   - stallThreshold: seconds of difference between a group's members that mark a stall.
    public init(durations: [[Double]], groupSize: Int, stallThreshold: Double) {
        let ranks = durations.count
        precondition(groupSize > 0 && ranks % groupSize == 0, "ranks must form whole groups")
        precondition(Set(durations.map(\.count)).count <= 1, "every rank must log the same exchanges")
        let exchanges = durations.first?.count ?? 0
        transfer = Array(repeating: 0, count: ranks)
        waiting = Array(repeating: 0, count: ranks)
        waitingInStalls = 0
        for first in stride(from: 0, to: ranks, by: groupSize) {
            let members = first..<first + groupSize
            for i in 0..<exchanges {
                var fastest = Double.infinity, slowest = -Double.infinity
                for r in members { fastest = min(fastest, durations[r][i]); slowest = max(slowest, durations[r][i]) }
                var waited = 0.0
                for r in members {
                    transfer[r] += fastest
                    waiting[r] += durations[r][i] - fastest
                    waited += durations[r][i] - fastest
                }
                if slowest - fastest > stallThreshold { waitingInStalls += waited }
            }
        }
    }
}
