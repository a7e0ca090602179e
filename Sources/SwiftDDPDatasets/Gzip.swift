import CSwiftDDPZlib
/// Inflates gzip (or zlib) data in memory with zlib. Data that is not compressed must be
/// passed through by the caller (see `IDX.read`).
enum Gzip {
    /// gzip files start with these two bytes.
    static func isCompressed(_ bytes: [UInt8]) -> Bool { bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B }

    /// Decompresses a whole gzip stream; throws on truncated or corrupt input.
    /// - Parameter limit: refuse outputs larger than this (a guard against decompression bombs).
    static func decompress(_ input: [UInt8], limit: Int = 1 << 31) throws -> [UInt8] {
        var stream = z_stream()
        guard czlib_inflate_init_gzip(&stream) == Z_OK else { throw DatasetError("zlib could not be initialized") }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        output.reserveCapacity(min(input.count * 4, limit))
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var status: Int32 = Z_OK
        try input.withUnsafeBufferPointer { inBuffer in
            stream.next_in = UnsafeMutablePointer(mutating: inBuffer.baseAddress)
            stream.avail_in = uInt(inBuffer.count)
            while status != Z_STREAM_END {
                let produced: Int = chunk.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return out.count - Int(stream.avail_out)
                }
                switch status {
                case Z_OK, Z_STREAM_END:
                    output.append(contentsOf: chunk[0..<produced])
                    guard output.count <= limit else { throw DatasetError("gzip data expands past \(limit) bytes") }
                    if status == Z_OK && produced == 0 && stream.avail_in == 0 {
                        throw DatasetError("gzip data is truncated")
                    }
                case Z_BUF_ERROR:
                    throw DatasetError("gzip data is truncated")
                default:
                    let message = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                    throw DatasetError("gzip data is corrupt (\(message))")
                }
            }
        }
        return output
    }
}
