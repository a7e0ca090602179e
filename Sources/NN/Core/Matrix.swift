/// A non-owning view of a row-major float32 matrix: `rows` samples × `cols` features.
///
/// Layers pass these between each other; the memory belongs to a `Workspace` (a layer's output
/// buffer, reused across steps) or to the caller.
public struct Matrix {
    public let base: UnsafeMutablePointer<Float>
    public let rows: Int
    public let cols: Int

    public init(base: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        self.base = base
        self.rows = rows
        self.cols = cols
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
        pointer = .allocate(capacity: self.capacity)
        pointer.initialize(repeating: 0, count: self.capacity)
    }

    deinit { pointer.deallocate() }

    /// A `rows × cols` view of this storage (contents unspecified), growing it if needed.
    public func matrix(rows: Int, cols: Int) -> Matrix {
        let needed = rows * cols
        if needed > capacity {
            pointer.deallocate()
            capacity = needed
            pointer = .allocate(capacity: needed)
            pointer.initialize(repeating: 0, count: needed)
        }
        return Matrix(base: pointer, rows: rows, cols: cols)
    }
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
