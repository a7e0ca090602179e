/// 64-bit FNV-1a over bytes: the project's one stable, non-cryptographic hash (configuration
/// fingerprints, checkpoint checksums, state hashes). Its values are stored in checkpoints, so
/// the algorithm must not change.
struct FNV1a {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    mutating func combine<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        for byte in bytes { value = (value ^ UInt64(byte)) &* 0x100_0000_01B3 }
    }
}
