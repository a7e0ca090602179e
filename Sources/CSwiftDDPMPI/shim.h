// Open MPI spells its predefined handles as macros that expand to addresses of internal
// globals (e.g. MPI_COMM_WORLD is ((MPI_Comm) &ompi_mpi_comm_world)); Swift cannot import
// such macros, so each one is exposed here as a static inline getter.
#ifndef SWIFTDDP_CMPI_SHIM_H
#define SWIFTDDP_CMPI_SHIM_H

#include <mpi.h>
#if defined(OPEN_MPI) && __has_include(<mpi-ext.h>)
#include <mpi-ext.h>  // Open MPI's extensions: MPIX_Allreduce_init
#endif

// Communicators
static inline MPI_Comm cmpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm cmpi_comm_self(void) { return MPI_COMM_SELF; }
static inline MPI_Comm cmpi_comm_null(void) { return MPI_COMM_NULL; }

// Datatypes
static inline MPI_Datatype cmpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype cmpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype cmpi_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype cmpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype cmpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype cmpi_char(void) { return MPI_CHAR; }

// Reduction operations
static inline MPI_Op cmpi_op_sum(void) { return MPI_SUM; }
static inline MPI_Op cmpi_op_max(void) { return MPI_MAX; }
static inline MPI_Op cmpi_op_min(void) { return MPI_MIN; }
static inline MPI_Op cmpi_op_prod(void) { return MPI_PROD; }

// Special values
static inline void *cmpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Errhandler cmpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Errhandler cmpi_errors_are_fatal(void) { return MPI_ERRORS_ARE_FATAL; }
static inline MPI_Request cmpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *cmpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Status *cmpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }

// Shared memory between the ranks of one host
static inline MPI_Info cmpi_info_null(void) { return MPI_INFO_NULL; }
static inline int cmpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
// A full memory fence, placed around barriers that hand shared memory from rank to rank.
static inline void cmpi_memory_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// Persistent collectives: set up once, started many times. MPI-4 has MPI_Allreduce_init; Open MPI 4.1 offers it
// as MPIX_Allreduce_init (its pcollreq extension).
static inline int cmpi_allreduce_init(void *buffer, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                                      MPI_Request *request) {
#if MPI_VERSION >= 4
  return MPI_Allreduce_init(MPI_IN_PLACE, buffer, count, type, op, comm, MPI_INFO_NULL, request);
#elif defined(OMPI_HAVE_MPI_EXT_PCOLLREQ) && OMPI_HAVE_MPI_EXT_PCOLLREQ
  return MPIX_Allreduce_init(MPI_IN_PLACE, buffer, count, type, op, comm, MPI_INFO_NULL, request);
#else
  (void)buffer, (void)count, (void)type, (void)op, (void)comm, (void)request;
  return MPI_ERR_UNSUPPORTED_OPERATION;
#endif
}

// Integer constants (plain #defines import fine, but keeping them here gives one place to look)
static inline int cmpi_success(void) { return MPI_SUCCESS; }
static inline int cmpi_undefined(void) { return MPI_UNDEFINED; }
static inline int cmpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int cmpi_max_processor_name(void) { return MPI_MAX_PROCESSOR_NAME; }
static inline int cmpi_thread_single(void) { return MPI_THREAD_SINGLE; }
static inline int cmpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int cmpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int cmpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }

#endif
