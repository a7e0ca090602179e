/// The shape of one sample: a feature vector `[F]`, or an image `[C, H, W]` in PyTorch's terms.
///
/// Images are stored channels-last (H, W, C): per-channel layers (BatchNorm2d) then see the
/// batch as an `[N·H·W, C]` matrix and share BatchNorm1d's kernels and SyncBN exchange, and
/// oneDNN's convolutions take it directly, where converting layouts at every layer would cost
/// more than NHWC loses against oneDNN's own (Docs/architecture.md, "NN").
/// Three integers and a flag rather than an array, so that passing shapes allocates nothing.
public struct SampleShape: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let channels: Int
    public let height: Int
    public let width: Int
    /// `[C, H, W]` (true) or `[F]` with F = channels (false).
    public let isImage: Bool

    /// A feature vector of `count` values.
    public static func features(_ count: Int) -> SampleShape { SampleShape(count, 1, 1, image: false) }

    /// An image of `channels` planes of `height` × `width`.
    public static func image(channels: Int, height: Int, width: Int) -> SampleShape {
        SampleShape(channels, height, width, image: true)
    }

    private init(_ c: Int, _ h: Int, _ w: Int, image: Bool) {
        channels = c
        height = h
        width = w
        isImage = image
    }

    /// Values per sample.
    public var count: Int { channels * height * width }
    /// Positions per channel (H·W; 1 for a feature vector).
    public var positions: Int { height * width }

    /// PyTorch's shape of one sample, e.g. `[1, 28, 28]` or `[784]`.
    public var description: String { isImage ? "[\(channels), \(height), \(width)]" : "[\(channels)]" }
}

extension SampleShape {
    /// `n` samples of this shape moved between channels-last (how SwiftDDP stores images) and
    /// PyTorch's channels-first `[C, H, W]` (`toChannelsFirst`), or back. One channel, or a
    /// feature vector, is the same either way.
    public func permuted<T: Numeric>(_ x: [T], samples n: Int, toChannelsFirst: Bool) -> [T] {
        guard isImage, channels > 1 else { return x }
        var out = [T](repeating: 0, count: x.count)
        for i in 0..<n {
            for p in 0..<positions {
                for c in 0..<channels {
                    let last = i * count + p * channels + c, first = i * count + c * positions + p
                    if toChannelsFirst { out[first] = x[last] } else { out[last] = x[first] }
                }
            }
        }
        return out
    }
}
