// zlib (Debian's zlib1g-dev; pkg-config "zlib"), used to inflate gzip-compressed IDX files.
#ifndef SWIFTDDP_CZLIB_SHIM_H
#define SWIFTDDP_CZLIB_SHIM_H
#include <zlib.h>
// Z_NULL and the gzip window-bits trick are macros; keep their use in one place.
static inline int czlib_inflate_init_gzip(z_stream *s) { return inflateInit2(s, 15 + 32); }
#endif
