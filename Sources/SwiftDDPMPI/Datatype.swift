import CSwiftDDPMPI
/// A Swift scalar type with a matching predefined MPI datatype. The typed collectives of
/// `Communicator` accept buffers of these types only, so no call site passes raw pointers
/// or datatypes by hand.
public protocol MPIScalar: Numeric, Comparable, Sendable {
    /// The MPI datatype describing one value of this type.
    static var mpiDatatype: MPI_Datatype { get }
}

extension Float: MPIScalar { public static var mpiDatatype: MPI_Datatype { cmpi_float() } }
extension Double: MPIScalar { public static var mpiDatatype: MPI_Datatype { cmpi_double() } }
extension Int32: MPIScalar { public static var mpiDatatype: MPI_Datatype { cmpi_int32() } }
extension Int64: MPIScalar { public static var mpiDatatype: MPI_Datatype { cmpi_int64() } }

/// The reductions offered by the typed collectives.
public enum ReductionOp: Sendable, CaseIterable {
    case sum, max, min, product

    var handle: MPI_Op {
        switch self {
        case .sum: cmpi_op_sum()
        case .max: cmpi_op_max()
        case .min: cmpi_op_min()
        case .product: cmpi_op_prod()
        }
    }
}
