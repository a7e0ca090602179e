import SwiftDDPNN
/// The standard CIFAR augmentation (He et al. 2016, section 4.2), for 28×28 Fashion-MNIST:
/// pad each image with `padding` zeros on every side, take a random crop of the original size,
/// and flip it horizontally with probability 1/2 (torchvision's `RandomCrop(28, padding=2)` and
/// `RandomHorizontalFlip()`).
///
/// The draw for a sample depends only on (seed, epoch, sample index), not on the rank or the
/// position in a batch, so N ranks train on exactly the images one process would.
public enum Augmentation {
    /// Crops and flips `rows` images of `shape` (channels-last) at `batch` in place, row r being
    /// training sample `indices[r]`.
    public static func cropAndFlip(_ batch: UnsafeMutablePointer<Float>, shape: SampleShape,
                                   indices: ArraySlice<Int>, seed: UInt64, epoch: Int, padding: Int = 2,
                                   scratch: Workspace)
    {
        let H = shape.height, W = shape.width, C = shape.channels, count = shape.count
        let copy = scratch.floats(count)
        for (row, index) in indices.enumerated() {
            var generator = SeededGenerator(seed: seed ^ (UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
                                            ^ (UInt64(index) &* 0xC2B2_AE3D_27D4_EB4F))
            let shiftY = Int(generator.next() % UInt64(2 * padding + 1)) - padding
            let shiftX = Int(generator.next() % UInt64(2 * padding + 1)) - padding
            let flip = generator.next() & 1 == 1
            let image = batch + row * count
            copy.update(from: image, count: count)
            // out[y, x] = padded[y + shiftY + padding, x' + shiftX + padding], x' mirrored when flipping
            for y in 0..<H {
                for x in 0..<W {
                    let sy = y + shiftY, sx = (flip ? W - 1 - x : x) + shiftX
                    let out = image + (y * W + x) * C
                    if sy >= 0, sy < H, sx >= 0, sx < W {
                        out.update(from: copy + (sy * W + sx) * C, count: C)
                    } else {
                        out.update(repeating: 0, count: C)
                    }
                }
            }
        }
    }
}
