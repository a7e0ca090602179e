/// Element types of the safetensors format that SwiftDDP reads and writes.
public enum DType: String, Sendable, CaseIterable {
    case f32 = "F32", f64 = "F64", i64 = "I64", i32 = "I32", u8 = "U8", f16 = "F16", bf16 = "BF16"
    case i8 = "I8", i16 = "I16", u16 = "U16", u32 = "U32", u64 = "U64", bool = "BOOL"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .u8, .i8, .bool: 1
        case .f16, .bf16, .i16, .u16: 2
        case .f32, .i32, .u32: 4
        case .f64, .i64, .u64: 8
        }
    }
}

/// A host tensor: dtype, shape, and its little-endian bytes.
public struct TensorData: Sendable, Equatable {
    public let dtype: DType
    public let shape: [Int]
    public let bytes: [UInt8]

    public init(dtype: DType, shape: [Int], bytes: [UInt8]) throws {
        guard let count = TensorData.elementCount(shape) else {
            throw SafeTensorsError("invalid shape \(shape)")
        }
        let (size, overflow) = count.multipliedReportingOverflow(by: dtype.size)
        guard !overflow, size == bytes.count else {
            throw SafeTensorsError(
                "tensor of shape \(shape) and dtype \(dtype.rawValue) cannot hold \(bytes.count) bytes")
        }
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// Elements of a shape, or nil for negative dimensions or overflow. A 0-d shape has 1.
    public static func elementCount(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = p
        }
        return n
    }

    public var elementCount: Int { TensorData.elementCount(shape) ?? 0 }

    public init(floats: UnsafeBufferPointer<Float>, shape: [Int]) {
        precondition(TensorData.elementCount(shape) == floats.count, "shape does not match element count")
        dtype = .f32
        self.shape = shape
        bytes = Array(UnsafeRawBufferPointer(floats))  // little-endian hosts only (x86-64, arm64)
    }

    public init(floats: [Float], shape: [Int]) {
        self = floats.withUnsafeBufferPointer { TensorData(floats: $0, shape: shape) }
    }

    public init(int64s: [Int64], shape: [Int]) {
        precondition(TensorData.elementCount(shape) == int64s.count, "shape does not match element count")
        dtype = .i64
        self.shape = shape
        bytes = int64s.withUnsafeBytes { Array($0) }
    }

    public func floats() throws -> [Float] {
        guard dtype == .f32 else { throw SafeTensorsError("expected F32, found \(dtype.rawValue)") }
        return decode(Float.self)
    }

    public func int64s() throws -> [Int64] {
        guard dtype == .i64 else { throw SafeTensorsError("expected I64, found \(dtype.rawValue)") }
        return decode(Int64.self)
    }

    private func decode<T>(_: T.Type) -> [T] {
        let n = bytes.count / MemoryLayout<T>.stride
        return [T](unsafeUninitializedCapacity: n) { out, initialized in
            bytes.withUnsafeBytes { raw in
                _ = memcpy(out.baseAddress!, raw.baseAddress!, n * MemoryLayout<T>.stride)
            }
            initialized = n
        }
    }
}

/// A malformed safetensors file or a tensor that does not fit where it is loaded.
public struct SafeTensorsError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
