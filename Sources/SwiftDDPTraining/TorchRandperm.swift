/// The 32-bit Mersenne Twister (MT19937) as PyTorch's CPU generator runs it: seeded with the
/// low 32 bits of `torch.Generator.manual_seed`'s seed, one 32-bit draw per `next()`.
struct MT19937 {
    private var state = [UInt32](repeating: 0, count: 624)
    private var index = 624

    init(seed: UInt64) {
        state[0] = UInt32(truncatingIfNeeded: seed)
        for i in 1..<624 {
            state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i)
        }
    }

    mutating func next() -> UInt32 {
        if index >= 624 { twist() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    private mutating func twist() {
        for i in 0..<624 {
            let y = (state[i] & 0x8000_0000) | (state[(i + 1) % 624] & 0x7FFF_FFFF)
            state[i] = state[(i + 397) % 624] ^ (y >> 1) ^ (y & 1 == 0 ? 0 : 0x9908_B0DF)
        }
        index = 0
    }
}

/// `torch.randperm(n, generator=g)` for `g.manual_seed(seed)`, element for element: PyTorch's
/// CPU kernel swaps position i with i + (draw mod (n − i)), a forward Fisher–Yates with a
/// modulo draw (slightly biased for huge n, kept as PyTorch has it). PyTorch switches to
/// 64-bit draws past n ≈ 2·10⁸; `Trainer.validate` refuses such data sets with shuffling.
func torchRandperm(_ n: Int, seed: UInt64) -> [Int] {
    precondition(n < DistributedSampler.maximumShuffledSize, "torchRandperm: n = \(n) is past PyTorch's 32-bit path")
    var order = Array(0..<n)
    var generator = MT19937(seed: seed)
    var i = 0
    while i < n - 1 {
        let z = Int(generator.next() % UInt32(n - i))
        order.swapAt(i, i + z)
        i += 1
    }
    return order
}
