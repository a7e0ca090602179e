// CBLAS from OpenBLAS (Debian's libopenblas-dev; pkg-config "openblas").
#ifndef SWIFTDDP_COPENBLAS_SHIM_H
#define SWIFTDDP_COPENBLAS_SHIM_H
#include <cblas.h>
#endif
