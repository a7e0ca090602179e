/// A non-owning view of a batch: `rows` samples of `cols` values each, row-major, where each
/// sample has the shape `shape` (a feature vector, or a channels-last image).
///
/// Layers pass these between each other; the memory belongs to a `Workspace` (a layer's output
/// buffer, reused across steps) or to the caller.
public struct Matrix {
    public let base: UnsafeMutablePointer<Float>
    public let rows: Int
    public let cols: Int
    public let shape: SampleShape

    /// `rows` feature vectors of `cols` values.
    public init(base: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        self.init(base: base, rows: rows, shape: .features(cols))
    }

    /// `rows` samples of shape `shape`.
    public init(base: UnsafeMutablePointer<Float>, rows: Int, shape: SampleShape) {
        self.base = base
        self.rows = rows
        self.cols = shape.count
        self.shape = shape
    }

    /// The same memory as an `[N·H·W, C]` matrix: one row per position, one column per channel
    /// (for a feature batch, the batch itself).
    public var channelRows: Matrix {
        Matrix(base: base, rows: rows * shape.positions, cols: shape.channels)
    }

    /// The same memory as `rows` samples of shape `newShape` (the same number of values).
    public func reshaped(rows newRows: Int, _ newShape: SampleShape) -> Matrix {
        precondition(newRows * newShape.count == rows * cols,
                     "reshape to \(newRows) × \(newShape) from \(rows) × \(shape)")
        return Matrix(base: base, rows: newRows, shape: newShape)
    }

    /// The same memory with another sample shape of the same size.
    public func reshaped(_ newShape: SampleShape) -> Matrix {
        precondition(newShape.count == cols, "reshape to \(newShape) from \(shape)")
        return Matrix(base: base, rows: rows, shape: newShape)
    }

    public var count: Int { rows * cols }

    @inline(__always)
    public subscript(row: Int, col: Int) -> Float {
        get { base[row * cols + col] }
        nonmutating set { base[row * cols + col] = newValue }
    }

    /// Pointer to the first element of `row`.
    @inline(__always)
    public func row(_ row: Int) -> UnsafeMutablePointer<Float> { base + row * cols }

    /// The elements as a buffer pointer.
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: count) }

    /// A copy of the elements, row-major.
    public func toArray() -> [Float] { Array(buffer) }
}

/// Owned, growable float storage that hands out `Matrix` views. It grows when a larger batch
/// arrives and is otherwise reused, so the steady-state training step allocates nothing.
public final class Workspace {
    private(set) var pointer: UnsafeMutablePointer<Float>
    private(set) var capacity: Int

    public init(capacity: Int = 0) {
        self.capacity = max(capacity, 1)
        pointer = Workspace.allocate(self.capacity)
    }

    deinit { pointer.deallocate() }

    /// Zeroed floats at a 64-byte boundary: a cache line, and what oneDNN's kernels assume, whose
    /// results otherwise depend (in the last bits) on where a buffer happens to start.
    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Float>.stride, alignment: 64)
        return raw.initializeMemory(as: Float.self, repeating: 0, count: count)
    }

    /// A `rows × cols` view of this storage (contents unspecified), growing it if needed.
    public func matrix(rows: Int, cols: Int) -> Matrix { matrix(rows: rows, shape: .features(cols)) }

    /// `rows` samples of shape `shape` in this storage (contents unspecified), growing it if needed.
    public func matrix(rows: Int, shape: SampleShape) -> Matrix {
        let needed = rows * shape.count
        if needed > capacity {
            pointer.deallocate()
            capacity = needed
            pointer = Workspace.allocate(needed)
        }
        return Matrix(base: pointer, rows: rows, shape: shape)
    }

    /// Raw storage for at least `count` floats (contents unspecified), growing it if needed.
    public func floats(_ count: Int) -> UnsafeMutablePointer<Float> { matrix(rows: 1, cols: count).base }
}

/// A fixed-size, owned array of Doubles for per-channel accumulators.
public final class DoubleScratch {
    public let pointer: UnsafeMutablePointer<Double>
    public let count: Int
    public init(count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }
    deinit { pointer.deallocate() }
    public var buffer: UnsafeMutableBufferPointer<Double> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}

/// A shape or argument error in the network code.
public struct NNError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Owned, growable storage of integers or doubles (pooling indices, per-group statistics),
/// reused across steps like `Workspace`.
public final class Scratch<Element: Numeric> {
    private(set) var pointer: UnsafeMutablePointer<Element>
    private(set) var capacity: Int

    public init() {
        capacity = 1
        pointer = .allocate(capacity: 1)
        pointer.initialize(to: 0)
    }

    deinit { pointer.deallocate() }

    /// At least `count` elements (contents unspecified), growing the storage if needed.
    public func elements(_ count: Int) -> UnsafeMutablePointer<Element> {
        if count > capacity {
            pointer.deallocate()
            capacity = count
            pointer = .allocate(capacity: count)
            pointer.initialize(repeating: 0, count: count)
        }
        return pointer
    }
}
