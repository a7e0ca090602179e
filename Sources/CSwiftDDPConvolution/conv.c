// conv.c: Conv2d forward / backward-data / backward-weights over oneDNN 2.x
// (CSwiftDDPConvolution.h documents the API).
//
// Per handle, a small cache keyed by the batch size N (least recently used evicted). An entry holds:
//   - memory objects for the activations (NHWC, given explicitly, so oneDNN never reorders them), the bias and the
//     caller's OIHW weights / diff weights; each call only points them at the caller's buffers
//     (dnnl_memory_set_data_handle);
//   - the primitives, built on first use: forward with and without bias, backward data, backward weights (the
//     bias gradient is ddp_bias_gradient's), all with weights in the layout the primitive prefers (format_tag_any);
//   - "weight slots": one per distinct weights layout, with its own buffer and the reorder from OIHW (for diff
//     weights: back to OIHW); a layout equal to plain OIHW uses the caller's buffer directly, with no reorder;
//   - one scratchpad buffer (dnnl_scratchpad_mode_user) shared by all its primitives, sized for the largest.
// So once each primitive a training step needs has been built for N, a call allocates nothing here, and what
// oneDNN allocates inside dnnl_primitive_execute comes from the per-thread arena of arena.cpp, not the heap.
#define _GNU_SOURCE
#include "CSwiftDDPConvolution.h"
#include "arena.h"
#include "winograd.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#if DNNL_VERSION_MAJOR != 2
#error "CSwiftDDPConvolution uses oneDNN 2.x's operation-descriptor C API (dnnl_convolution_forward_desc_init etc.)"
#endif

enum { CACHE_ENTRIES = 4, MAX_WSLOTS = 3, MAX_DWSLOTS = 2, ERR_LEN = 320 };

// ---------------------------------------------------------------------------------------------------------------
// Process-wide state: engine, the "user scratchpad" attribute, OpenMP thread control; and one stream per thread
// (a oneDNN stream must not be used by two threads at once, and in-process test ranks are threads).

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t g_engine;
static pthread_key_t g_stream_key;
static dnnl_primitive_attr_t g_attr;  // scratchpad mode user, for every primitive we create
static char g_init_err[ERR_LEN];      // empty when the global state is usable
static void (*g_omp_set_num_threads)(int);
static int (*g_omp_get_max_threads)(void);
// Requested by ddp_conv_set_threads; 0: not enforced. 1 by default: a rank uses one core.
static int g_threads = 1;
// Weight gradients of 3×3 stride-1 layers by Winograd (ddp_conv_set_winograd; SWIFTDDP_CONV_WINOGRAD=0 turns it off).
static int g_winograd = 1;  // read and written with __atomic builtins: a setter may run beside training
// Whether oneDNN runs AVX-512 kernels here: its weight gradients then beat Winograd on OpenBLAS (Docs/performance.md).
static int g_onednn_avx512 = 0;
// SWIFTDDP_CONV_BRGCONV=1: forward convolutions by oneDNN's brgconv kernels where it ranks them first (passed_over).
static int g_brgconv = 0;
// Beyond this a layer's weight gradient goes to oneDNN: the workspace (≈ 4·N·H·W·(C+O) floats) stays allocated.
enum { WINOGRAD_MAX_WORKSPACE_BYTES = 256 << 20 };
static pthread_key_t g_workspace_key;  // each thread's Winograd workspace

typedef struct {
  float *floats;
  size_t count;
} workspace;

static void destroy_workspace(void *w) {
  free(((workspace *)w)->floats);
  free(w);
}

static void destroy_stream(void *stream) { dnnl_stream_destroy((dnnl_stream_t)stream); }

static void global_init(void) {
  // oneDNN's OpenMP runtime (libgomp) is loaded with libdnnl; look it up rather than link it (Debian keeps the
  // unversioned libgomp.so in GCC's private directory, where other linkers do not look).
  void *set = dlsym(RTLD_DEFAULT, "omp_set_num_threads"), *get = dlsym(RTLD_DEFAULT, "omp_get_max_threads");
  if (set && get) {  // object pointer -> function pointer, the POSIX way
    memcpy(&g_omp_set_num_threads, &set, sizeof set);
    memcpy(&g_omp_get_max_threads, &get, sizeof get);
  }

  const char *what = "dnnl_engine_create(cpu)";
  dnnl_status_t s = dnnl_engine_create(&g_engine, dnnl_cpu, 0);
  const char *env = getenv("SWIFTDDP_CONV_WINOGRAD");
  if (env && strcmp(env, "0") == 0) __atomic_store_n(&g_winograd, 0, __ATOMIC_RELAXED);
  env = getenv("SWIFTDDP_CONV_BRGCONV");
  g_brgconv = env && strcmp(env, "1") == 0;
  g_onednn_avx512 = (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
  if (s == dnnl_success &&
      (pthread_key_create(&g_stream_key, destroy_stream) != 0 ||
       pthread_key_create(&g_workspace_key, destroy_workspace) != 0)) {
    what = "pthread_key_create";
    s = dnnl_out_of_memory;
  }
  if (s == dnnl_success) {
    what = "dnnl_primitive_attr_create";
    s = dnnl_primitive_attr_create(&g_attr);
  }
  if (s == dnnl_success) {
    what = "dnnl_primitive_attr_set_scratchpad_mode";
    s = dnnl_primitive_attr_set_scratchpad_mode(g_attr, dnnl_scratchpad_mode_user);
  }
  if (s != dnnl_success)
    snprintf(g_init_err, sizeof g_init_err, "oneDNN setup: %s failed: %s", what, dnnl_status2str(s));
}

static int global_ready(void) {
  pthread_once(&g_once, global_init);
  return g_init_err[0] == 0;
}

// Applies the requested thread count to the calling thread; returns the count oneDNN will use.
static int current_threads(void) {
  if (!g_omp_get_max_threads) return 1;
  int cur = g_omp_get_max_threads();
  if (g_threads > 0 && cur != g_threads) {
    g_omp_set_num_threads(g_threads);
    cur = g_omp_get_max_threads();
  }
  return cur;
}

void ddp_conv_set_winograd(int on) {
  pthread_once(&g_once, global_init);
  __atomic_store_n(&g_winograd, on != 0, __ATOMIC_RELAXED);
}
void ddp_conv_set_threads(int n) {
  pthread_once(&g_once, global_init);
  g_threads = n > 0 ? n : 0;
  (void)current_threads();
}

// ---------------------------------------------------------------------------------------------------------------
// Handle and cache entries.

typedef struct {
  dnnl_primitive_desc_t pd;
  dnnl_primitive_t p;  // NULL: not built
  dnnl_memory_t sp;    // its scratchpad (a view of the entry's buffer), NULL if it needs none
} prim;

typedef struct {
  dnnl_memory_desc_t md;  // the primitive's layout
  int plain;              // md is plain OIHW: the caller's buffer is used directly
  dnnl_memory_t mem;      // in md over buf (NULL when plain)
  void *buf;
  prim reorder;           // OIHW -> md (weights) or md -> OIHW (diff weights); unbuilt when plain
  const float *from;      // weights: the caller's buffer last reordered into buf ...
  unsigned long epoch;    // ... and the entry's forward epoch at that time
} wslot;

typedef struct {
  int N;                  // -1: empty
  int threads;            // OpenMP threads when built (oneDNN sizes its work split by it)
  unsigned long stamp;    // last use, for LRU eviction
  unsigned long epoch;    // forward calls on this entry
  int last_fwd;           // bias variant of the last forward (-1: none yet)
  dnnl_memory_t x, y, b, w_user, dw_user;  // handles set per call
  prim fwd[2], bwd_data, bwd_weights;   // fwd[with bias]
  int fwd_slot[2], bwd_data_slot, bwd_weights_slot;
  wslot w[MAX_WSLOTS], dw[MAX_DWSLOTS];
  int nw, ndw;
  void *scratch;
  size_t scratch_size;
} entry;

struct ddp_conv {
  int C, O, H, W, kh, kw, sh, sw, ph, pw, OH, OW;
  dnnl_dims_t strides, pad_l, pad_r;
  dnnl_memory_desc_t w_any, w_oihw, b_md;
  entry cache[CACHE_ENTRIES];
  unsigned long clock;
  const char *op;  // the public function running, for messages
  int N;           // its batch size
  int winograd;    // ddp_conv_set_winograd_policy: 0 never, 1 automatic, 2 whenever the geometry allows
  int bw_N, bw_winograd;  // the last backward weights: its batch size (-1: none yet) and whether Winograd ran it
  char err[ERR_LEN];
};

static void set_err(ddp_conv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(ddp_conv *c, const char *fmt, ...) {
  int n = snprintf(c->err, sizeof c->err, "conv2d %s (C=%d O=%d %dx%d k=%dx%d s=%dx%d p=%dx%d, N=%d): ", c->op, c->C,
                   c->O, c->H, c->W, c->kh, c->kw, c->sh, c->sw, c->ph, c->pw, c->N);
  if (n < 0 || (size_t)n >= sizeof c->err) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err + n, sizeof c->err - (size_t)n, fmt, ap);
  va_end(ap);
}

// 1 on success; otherwise records "what failed: status" and returns 0.
static int ok(ddp_conv *c, dnnl_status_t s, const char *what) {
  if (s == dnnl_success) return 1;
  set_err(c, "oneDNN %s failed: %s", what, dnnl_status2str(s));
  return 0;
}

static void prim_clear(prim *p) {
  if (p->p) dnnl_primitive_destroy(p->p);
  if (p->pd) dnnl_primitive_desc_destroy(p->pd);
  if (p->sp) dnnl_memory_destroy(p->sp);
  memset(p, 0, sizeof *p);
}

static void wslot_clear(wslot *s) {
  prim_clear(&s->reorder);
  if (s->mem) dnnl_memory_destroy(s->mem);
  free(s->buf);
  memset(s, 0, sizeof *s);
}

static void entry_clear(entry *e) {
  prim_clear(&e->fwd[0]), prim_clear(&e->fwd[1]), prim_clear(&e->bwd_data);
  prim_clear(&e->bwd_weights);
  for (int i = 0; i < e->nw; i++) wslot_clear(&e->w[i]);
  for (int i = 0; i < e->ndw; i++) wslot_clear(&e->dw[i]);
  dnnl_memory_t ms[] = {e->x, e->y, e->b, e->w_user, e->dw_user};
  for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
    if (ms[i]) dnnl_memory_destroy(ms[i]);
  free(e->scratch);
  memset(e, 0, sizeof *e);
  e->N = -1;
  e->last_fwd = -1;
}

static void *aligned_buffer(size_t size) {
  void *p = NULL;
  return posix_memalign(&p, 64, size ? size : 64) == 0 ? p : NULL;
}

static int new_memory(ddp_conv *c, dnnl_memory_t *m, const dnnl_memory_desc_t *md, void *handle) {
  return ok(c, dnnl_memory_create(m, md, g_engine, handle ? handle : DNNL_MEMORY_NONE), "dnnl_memory_create");
}

// Grows the entry's scratchpad to `size` bytes and points every built primitive's scratchpad memory at it.
static int ensure_scratch(ddp_conv *c, entry *e, size_t size) {
  if (size <= e->scratch_size) return 1;
  void *buf = aligned_buffer(size);
  if (!buf) {
    set_err(c, "out of memory for a %zu-byte oneDNN scratchpad", size);
    return 0;
  }
  prim *all[4 + MAX_WSLOTS + MAX_DWSLOTS];
  int n = 0;
  all[n++] = &e->fwd[0], all[n++] = &e->fwd[1], all[n++] = &e->bwd_data;
  all[n++] = &e->bwd_weights;
  for (int i = 0; i < e->nw; i++) all[n++] = &e->w[i].reorder;
  for (int i = 0; i < e->ndw; i++) all[n++] = &e->dw[i].reorder;
  for (int i = 0; i < n; i++)
    if (all[i]->sp && !ok(c, dnnl_memory_set_data_handle(all[i]->sp, buf), "dnnl_memory_set_data_handle(scratchpad)")) {
      free(buf);
      return 0;
    }
  free(e->scratch);
  e->scratch = buf;
  e->scratch_size = size;
  return 1;
}

// Takes ownership of pd (destroyed on failure); builds the primitive and its scratchpad view.
static int prim_build(ddp_conv *c, entry *e, prim *p, dnnl_primitive_desc_t pd, const char *what) {
  p->pd = pd;
  char buf[96];
  snprintf(buf, sizeof buf, "dnnl_primitive_create(%s)", what);
  if (!ok(c, dnnl_primitive_create(&p->p, pd), buf)) goto fail;
  const dnnl_memory_desc_t *spmd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  size_t size = spmd ? dnnl_memory_desc_get_size(spmd) : 0;
  if (size > 0) {
    if (!ensure_scratch(c, e, size) || !new_memory(c, &p->sp, spmd, e->scratch)) goto fail;
  }
  return 1;
fail:
  prim_clear(p);
  return 0;
}

// The calling thread's stream, created on its first use (NULL with the error set on failure).
static dnnl_stream_t thread_stream(ddp_conv *c) {
  dnnl_stream_t stream = pthread_getspecific(g_stream_key);
  if (!stream) {
    if (!ok(c, dnnl_stream_create(&stream, g_engine, dnnl_stream_default_flags), "dnnl_stream_create")) return NULL;
    pthread_setspecific(g_stream_key, stream);
  }
  return stream;
}

// Runs a primitive (adding its scratchpad); 1 on success.
static int run(ddp_conv *c, prim *p, int nargs, dnnl_exec_arg_t *args, const char *what) {
  dnnl_exec_arg_t a[8];
  memcpy(a, args, (size_t)nargs * sizeof *a);
  if (p->sp) a[nargs].arg = DNNL_ARG_SCRATCHPAD, a[nargs].memory = p->sp, nargs++;
  dnnl_stream_t stream = thread_stream(c);
  if (!stream) return 0;
  char buf[96];
  snprintf(buf, sizeof buf, "dnnl_primitive_execute(%s)", what);
  ddp_arena_enter();
  dnnl_status_t s = dnnl_primitive_execute(p->p, stream, nargs, a);
  ddp_arena_exit();
  return ok(c, s, buf);
}

static int set_handle(ddp_conv *c, dnnl_memory_t m, const void *p) {
  return ok(c, dnnl_memory_set_data_handle(m, (void *)p), "dnnl_memory_set_data_handle");
}

// The slot for a weights (diff == 0) or diff-weights (diff == 1) layout: an existing one with the same layout, else
// a new one with its buffer and reorder. Returns its index, or -1.
static int find_slot(ddp_conv *c, entry *e, const dnnl_memory_desc_t *md, int diff) {
  wslot *slots = diff ? e->dw : e->w;
  int *n = diff ? &e->ndw : &e->nw, cap = diff ? MAX_DWSLOTS : MAX_WSLOTS;
  for (int i = 0; i < *n; i++)
    if (dnnl_memory_desc_equal(&slots[i].md, md)) return i;
  if (*n == cap) {
    set_err(c, "oneDNN chose more than %d %sweights layouts", cap, diff ? "diff " : "");
    return -1;
  }
  wslot *s = &slots[*n];
  memset(s, 0, sizeof *s);
  s->md = *md;
  s->plain = dnnl_memory_desc_equal(md, &c->w_oihw);
  if (!s->plain) {
    size_t size = dnnl_memory_desc_get_size(md);
    s->buf = aligned_buffer(size);
    if (!s->buf) {
      set_err(c, "out of memory for %zu bytes of reordered weights", size);
      goto fail;
    }
    if (!new_memory(c, &s->mem, md, s->buf)) goto fail;
    dnnl_primitive_desc_t pd;
    const dnnl_memory_desc_t *from = diff ? md : &c->w_oihw, *to = diff ? &c->w_oihw : md;
    if (!ok(c, dnnl_reorder_primitive_desc_create(&pd, from, g_engine, to, g_engine, g_attr),
            "dnnl_reorder_primitive_desc_create(weights)"))
      goto fail;
    if (!prim_build(c, e, &s->reorder, pd, diff ? "diff weights reorder" : "weights reorder")) goto fail;
  }
  return (*n)++;
fail:
  wslot_clear(s);
  return -1;
}

enum pass { PASS_FORWARD, PASS_BACKWARD_DATA, PASS_BACKWARD_WEIGHTS };

// Whether an implementation oneDNN offers is passed over (the next one in its order is taken):
//   - forward by "brgconv" (oneDNN 2.6's first choice with AVX-512): inside training steps its kernels measured
//     slower than the "jit" ones next in line on the cnn's and ResNet-20's layers (Docs/performance.md, "Night
//     run"); SWIFTDDP_CONV_BRGCONV=1 keeps oneDNN's order;
//   - backward weights of a 1x1 kernel with a stride > 1 by "jit_1x1": oneDNN 2.6's ones copy the strided input into
//     a per-thread workspace in the scratchpad, booked as OH·OW·C floats for NHWC but indexed as if each pixel held a
//     whole channel block (8 or 16 floats): with fewer channels (the tests' 2- and 4-channel projections) they write
//     past the scratchpad, i.e. corrupt the heap, and with 2+ threads into the next thread's part (wrong dw).
static int passed_over(const ddp_conv *c, enum pass pass, const char *impl) {
  if (pass == PASS_FORWARD) return !g_brgconv && strncmp(impl, "brgconv", 7) == 0;
  if (pass == PASS_BACKWARD_WEIGHTS) return c->kh == 1 && c->kw == 1 && (c->sh > 1 || c->sw > 1) && strstr(impl, "1x1");
  return 0;
}

// A convolution primitive descriptor: the first implementation in oneDNN's order that is not passed over.
static int create_pd(ddp_conv *c, dnnl_primitive_desc_t *pd, const void *d, const_dnnl_primitive_desc_t hint,
                     enum pass pass) {
  static const char *const names[] = {"forward", "backward data", "backward weights"};
  char buf[96];
  snprintf(buf, sizeof buf, "dnnl_primitive_desc_create(%s)", names[pass]);
  dnnl_primitive_desc_iterator_t it;
  if (!ok(c, dnnl_primitive_desc_iterator_create(&it, d, g_attr, g_engine, hint), buf)) return 0;
  dnnl_status_t s = dnnl_success;
  for (*pd = NULL; s == dnnl_success; s = dnnl_primitive_desc_iterator_next(it)) {
    dnnl_primitive_desc_t p = dnnl_primitive_desc_iterator_fetch(it);  // a copy we own
    const char *impl = NULL;
    if (p && dnnl_primitive_desc_query(p, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
        !passed_over(c, pass, impl)) {
      *pd = p;
      break;
    }
    if (p) dnnl_primitive_desc_destroy(p);
  }
  dnnl_primitive_desc_iterator_destroy(it);
  if (*pd) return 1;
  set_err(c, "%s: no oneDNN implementation left (%s)", buf, dnnl_status2str(s));
  return 0;
}

static const dnnl_memory_desc_t *x_md(entry *e) {
  const dnnl_memory_desc_t *md = NULL;
  dnnl_memory_get_memory_desc(e->x, &md);
  return md;
}
static const dnnl_memory_desc_t *y_md(entry *e) {
  const dnnl_memory_desc_t *md = NULL;
  dnnl_memory_get_memory_desc(e->y, &md);
  return md;
}

static int build_fwd(ddp_conv *c, entry *e, int bias) {
  dnnl_convolution_desc_t d;
  dnnl_primitive_desc_t pd;
  if (!ok(c, dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, dnnl_convolution_direct, x_md(e), &c->w_any,
                                                bias ? &c->b_md : NULL, y_md(e), c->strides, c->pad_l, c->pad_r),
          "dnnl_convolution_forward_desc_init") ||
      !create_pd(c, &pd, &d, NULL, PASS_FORWARD) ||
      !prim_build(c, e, &e->fwd[bias], pd, "convolution forward"))
    return 0;
  int slot = find_slot(c, e, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), 0);
  if (slot < 0) {
    prim_clear(&e->fwd[bias]);
    return 0;
  }
  e->fwd_slot[bias] = slot;
  return 1;
}

// The forward primitive descriptor the backward ones take as their hint (the last forward's, else a forward
// without bias is built).
static dnnl_primitive_desc_t hint(ddp_conv *c, entry *e) {
  if (e->last_fwd >= 0 && e->fwd[e->last_fwd].p) return e->fwd[e->last_fwd].pd;
  if (e->fwd[0].p) return e->fwd[0].pd;
  if (e->fwd[1].p) return e->fwd[1].pd;
  return build_fwd(c, e, 0) ? e->fwd[0].pd : NULL;
}

static int build_bwd_data(ddp_conv *c, entry *e) {
  dnnl_primitive_desc_t h = hint(c, e), pd;
  dnnl_convolution_desc_t d;
  if (!h ||
      !ok(c, dnnl_convolution_backward_data_desc_init(&d, dnnl_convolution_direct, x_md(e), &c->w_any, y_md(e),
                                                      c->strides, c->pad_l, c->pad_r),
          "dnnl_convolution_backward_data_desc_init") ||
      !create_pd(c, &pd, &d, h, PASS_BACKWARD_DATA) ||
      !prim_build(c, e, &e->bwd_data, pd, "convolution backward data"))
    return 0;
  int slot = find_slot(c, e, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), 0);
  if (slot < 0) {
    prim_clear(&e->bwd_data);
    return 0;
  }
  e->bwd_data_slot = slot;
  return 1;
}

static int build_bwd_weights(ddp_conv *c, entry *e) {
  dnnl_primitive_desc_t h = hint(c, e), pd;
  dnnl_convolution_desc_t d;
  if (!h ||
      !ok(c, dnnl_convolution_backward_weights_desc_init(&d, dnnl_convolution_direct, x_md(e), &c->w_any,
                                                         NULL, y_md(e), c->strides, c->pad_l, c->pad_r),
          "dnnl_convolution_backward_weights_desc_init") ||
      !create_pd(c, &pd, &d, h, PASS_BACKWARD_WEIGHTS) ||
      !prim_build(c, e, &e->bwd_weights, pd, "convolution backward weights"))
    return 0;
  int slot = find_slot(c, e, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0), 1);
  if (slot < 0) {
    prim_clear(&e->bwd_weights);
    return 0;
  }
  e->bwd_weights_slot = slot;
  return 1;
}

// The cache entry for N (found, or made in the least recently used place); NULL on failure.
static entry *get_entry(ddp_conv *c, int N) {
  int threads = current_threads();
  entry *e = NULL, *lru = &c->cache[0];
  for (int i = 0; i < CACHE_ENTRIES; i++) {
    entry *k = &c->cache[i];
    if (k->N == N) e = k;
    if (k->N < 0 ? lru->N >= 0 : (lru->N >= 0 && k->stamp < lru->stamp)) lru = k;
  }
  if (e && e->threads != threads) entry_clear(e);  // built for another thread count: rebuild
  if (!e || e->N != N) {
    if (!e) e = lru;
    entry_clear(e);
    e->N = N;
    e->threads = threads;
    dnnl_dims_t xd = {N, c->C, c->H, c->W}, yd = {N, c->O, c->OH, c->OW};
    dnnl_memory_desc_t xmd, ymd;
    if (!ok(c, dnnl_memory_desc_init_by_tag(&xmd, 4, xd, dnnl_f32, dnnl_nhwc), "dnnl_memory_desc_init_by_tag(x)") ||
        !ok(c, dnnl_memory_desc_init_by_tag(&ymd, 4, yd, dnnl_f32, dnnl_nhwc), "dnnl_memory_desc_init_by_tag(y)") ||
        !new_memory(c, &e->x, &xmd, NULL) || !new_memory(c, &e->y, &ymd, NULL) ||
        !new_memory(c, &e->b, &c->b_md, NULL) || !new_memory(c, &e->w_user, &c->w_oihw, NULL) ||
        !new_memory(c, &e->dw_user, &c->w_oihw, NULL)) {
      entry_clear(e);
      return NULL;
    }
  }
  e->stamp = ++c->clock;
  return e;
}

// Common checks of a public call; returns 1 to go on with N > 0, 0 when N == 0 (nothing to compute), -1 on error.
static int begin(ddp_conv *c, const char *op, int N) {
  c->op = op;
  c->N = N;
  c->err[0] = 0;
  if (N < 0) {
    set_err(c, "negative batch size");
    return -1;
  }
  if (!global_ready()) {
    snprintf(c->err, sizeof c->err, "%s", g_init_err);
    return -1;
  }
  return N > 0;
}

static int null_arg(ddp_conv *c, const char *names, const void *a, const void *b, const void *d) {
  if (a && b && d) return 0;
  set_err(c, "NULL buffer among %s", names);
  return 1;
}

// This thread's Winograd workspace, grown to `floats` if smaller (so a steady state allocates nothing).
static float *thread_workspace(ddp_conv *c, size_t floats) {
  workspace *w = pthread_getspecific(g_workspace_key);
  if (!w) {
    if (!(w = calloc(1, sizeof *w)) || pthread_setspecific(g_workspace_key, w) != 0) {
      free(w);
      set_err(c, "out of memory for a Winograd workspace");
      return NULL;
    }
  }
  if (w->count < floats) {
    free(w->floats);  // before growing: the old contents are not needed, and the peak stays one buffer
    w->floats = NULL;
    w->count = 0;
    float *grown = aligned_buffer(floats * sizeof(float));
    if (!grown) {
      set_err(c, "out of memory for a %zu-byte Winograd workspace", floats * sizeof(float));
      return NULL;
    }
    w->floats = grown;
    w->count = floats;
  }
  return w->floats;
}

// ---------------------------------------------------------------------------------------------------------------
// Public API

// Winograd F(3×3, 2×2) computes the weight gradient of 3×3 stride-1 padding-1 layers of 32+ channels in and out,
// where it measured 1.5–1.6× faster than oneDNN's; on one thread (it does not split its work).
void ddp_conv_set_winograd_policy(ddp_conv *c, int policy) {
  if (c) c->winograd = policy < 0 ? 0 : policy > 2 ? 2 : policy;
}

// Automatic: oneDNN without AVX-512 kernels (with them it measured faster: Zen 5, 0.82× whole steps with Winograd)
// and enough tiles to pay for the transforms (below 128, e.g. 2 images of 14×14, oneDNN measured faster in whole
// steps). Always: within BLAS's int sizes and the workspace cap.
int ddp_conv_uses_winograd(const ddp_conv *c, int N) {
  return c && N > 0 && global_ready() && __atomic_load_n(&g_winograd, __ATOMIC_RELAXED) && c->winograd &&
         c->kh == 3 && c->kw == 3 && c->sh == 1 && c->sw == 1 && c->ph == 1 && c->pw == 1 && c->C >= 32 &&
         c->O >= 32 && current_threads() == 1 &&
         (c->winograd == 2 || (!g_onednn_avx512 && (long long)N * ((c->H + 1) / 2) * ((c->W + 1) / 2) >= 128)) &&
         ddp_wino_dw_applies(N, c->H, c->W) &&
         ddp_wino_dw_workspace_floats(N, c->H, c->W, c->C, c->O) * sizeof(float) <= WINOGRAD_MAX_WORKSPACE_BYTES;
}

int ddp_conv_onednn_avx512(void) { return global_ready() && g_onednn_avx512; }

static const char *impl_of(const prim *p) {
  const char *impl = NULL;
  if (!p->p || dnnl_primitive_desc_query(p->pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success) return NULL;
  return impl;
}

const char *ddp_conv_implementation(const ddp_conv *c, int N, int pass) {
  if (!c || pass < 0 || pass > 2) return "";
  if (pass == PASS_BACKWARD_WEIGHTS && c->bw_N == N && c->bw_winograd) return "winograd";
  for (int i = 0; i < CACHE_ENTRIES; i++) {
    const entry *e = &c->cache[i];
    if (e->N != N) continue;
    const char *impl = pass == PASS_BACKWARD_DATA      ? impl_of(&e->bwd_data)
                       : pass == PASS_BACKWARD_WEIGHTS ? impl_of(&e->bwd_weights)
                                                       : impl_of(&e->fwd[e->last_fwd > 0]);
    // forward: the variant (with or without bias) that ran last, else the other one built
    if (!impl && pass == PASS_FORWARD) impl = impl_of(&e->fwd[e->last_fwd <= 0]);
    return impl ? impl : "";
  }
  return "";
}

ddp_conv *ddp_conv_create(int C, int O, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw, char *err,
                          size_t errlen) {
  char msg[ERR_LEN] = "";
  ddp_conv *c = NULL;
  if (C < 1 || O < 1 || H < 1 || W < 1 || kh < 1 || kw < 1 || sh < 1 || sw < 1 || ph < 0 || pw < 0) {
    snprintf(msg, sizeof msg,
             "conv2d: sizes, kernel and stride must be positive and padding non-negative "
             "(C=%d O=%d H=%d W=%d kernel %dx%d stride %dx%d padding %dx%d)",
             C, O, H, W, kh, kw, sh, sw, ph, pw);
  } else if ((long long)H + 2LL * ph < kh || (long long)W + 2LL * pw < kw) {
    snprintf(msg, sizeof msg, "conv2d: kernel %dx%d does not fit the padded input %lldx%lld (%dx%d, padding %dx%d)", kh,
             kw, (long long)H + 2LL * ph, (long long)W + 2LL * pw, H, W, ph, pw);
  } else if (!global_ready()) {
    snprintf(msg, sizeof msg, "%s", g_init_err);
  } else if (!(c = calloc(1, sizeof *c))) {
    snprintf(msg, sizeof msg, "conv2d: out of memory");
  } else {
    c->C = C, c->O = O, c->H = H, c->W = W, c->kh = kh, c->kw = kw, c->sh = sh, c->sw = sw, c->ph = ph, c->pw = pw;
    c->winograd = 1;
    c->bw_N = -1;
    c->op = "create", c->N = 1;
    c->OH = (int)(((long long)H + 2LL * ph - kh) / sh + 1);
    c->OW = (int)(((long long)W + 2LL * pw - kw) / sw + 1);
    c->strides[0] = sh, c->strides[1] = sw;
    // oneDNN wants the right padding that makes OH = (H + pl + pr − kh)/sh + 1 exact: PyTorch's floor division
    // drops the last rows a stride cannot reach, which is a negative right padding here (e.g. −1 for a 1×1
    // stride-2 convolution of an even size). Symmetric padding there made backward-weights read past the input.
    c->pad_l[0] = ph, c->pad_l[1] = pw;
    c->pad_r[0] = (c->OH - 1) * (dnnl_dim_t)sh + kh - H - ph;
    c->pad_r[1] = (c->OW - 1) * (dnnl_dim_t)sw + kw - W - pw;
    for (int i = 0; i < CACHE_ENTRIES; i++) c->cache[i].N = -1, c->cache[i].last_fwd = -1;
    dnnl_dims_t wd = {O, C, kh, kw}, bd = {O}, xd = {1, C, H, W}, yd = {1, O, c->OH, c->OW};
    dnnl_memory_desc_t xmd, ymd;
    dnnl_convolution_desc_t d;
    // the descriptors, and a forward one for N = 1, so that geometry oneDNN rejects fails here
#ifdef CCONVOLUTION_TEST_PLAIN_WEIGHTS  // tests only: weights fixed to OIHW, to exercise the no-reorder path
    const dnnl_format_tag_t w_tag = dnnl_oihw;
#else
    const dnnl_format_tag_t w_tag = dnnl_format_tag_any;
#endif
    if (!ok(c, dnnl_memory_desc_init_by_tag(&c->w_any, 4, wd, dnnl_f32, w_tag), "memory_desc_init(w)") ||
        !ok(c, dnnl_memory_desc_init_by_tag(&c->w_oihw, 4, wd, dnnl_f32, dnnl_oihw), "memory_desc_init(w)") ||
        !ok(c, dnnl_memory_desc_init_by_tag(&c->b_md, 1, bd, dnnl_f32, dnnl_a), "memory_desc_init(bias)") ||
        !ok(c, dnnl_memory_desc_init_by_tag(&xmd, 4, xd, dnnl_f32, dnnl_nhwc), "memory_desc_init(x)") ||
        !ok(c, dnnl_memory_desc_init_by_tag(&ymd, 4, yd, dnnl_f32, dnnl_nhwc), "memory_desc_init(y)") ||
        !ok(c, dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, dnnl_convolution_direct, &xmd, &c->w_any,
                                                  &c->b_md, &ymd, c->strides, c->pad_l, c->pad_r),
            "dnnl_convolution_forward_desc_init")) {
      snprintf(msg, sizeof msg, "%s", c->err);
      free(c);
      c = NULL;
    } else {
      c->err[0] = 0;
    }
  }
  if (!c && err && errlen > 0) snprintf(err, errlen, "%s", msg);
  return c;
}

void ddp_conv_destroy(ddp_conv *c) {
  if (!c) return;
  for (int i = 0; i < CACHE_ENTRIES; i++) entry_clear(&c->cache[i]);
  free(c);
}

int ddp_conv_output_height(const ddp_conv *c) { return c ? c->OH : 0; }
int ddp_conv_output_width(const ddp_conv *c) { return c ? c->OW : 0; }

const char *ddp_conv_last_error(const ddp_conv *c) { return c ? c->err : "conv2d: NULL handle"; }

int ddp_conv_forward(ddp_conv *c, int N, const float *x, const float *w, const float *bias, float *y) {
  if (!c) return -1;
  int go = begin(c, "forward", N);
  if (go <= 0) return go;
  if (null_arg(c, "x, w, y", x, w, y)) return -1;
  entry *e = get_entry(c, N);
  if (!e) return -1;
  int b = bias != NULL;
  if (!e->fwd[b].p && !build_fwd(c, e, b)) return -1;
  wslot *s = &e->w[e->fwd_slot[b]];
  e->epoch++;
  dnnl_memory_t wm = e->w_user;
  if (!set_handle(c, e->w_user, w)) return -1;
  if (!s->plain) {
    dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, e->w_user}, {DNNL_ARG_TO, s->mem}};
    if (!run(c, &s->reorder, 2, ra, "weights reorder")) return -1;
    s->from = w, s->epoch = e->epoch;
    wm = s->mem;
  }
  if (!set_handle(c, e->x, x) || !set_handle(c, e->y, y) || (b && !set_handle(c, e->b, bias))) return -1;
  dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, e->x}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, e->y}, {DNNL_ARG_BIAS, e->b}};
  if (!run(c, &e->fwd[b], b ? 4 : 3, a, "convolution forward")) return -1;
  if (!ok(c, dnnl_stream_wait(thread_stream(c)), "dnnl_stream_wait")) return -1;
  e->last_fwd = b;
  return 0;
}

int ddp_conv_backward_data(ddp_conv *c, int N, const float *dy, const float *w, float *dx) {
  if (!c) return -1;
  int go = begin(c, "backward_data", N);
  if (go <= 0) return go;
  if (null_arg(c, "dy, w, dx", dy, w, dx)) return -1;
  entry *e = get_entry(c, N);
  if (!e) return -1;
  if (!e->bwd_data.p && !build_bwd_data(c, e)) return -1;
  wslot *s = &e->w[e->bwd_data_slot];
  dnnl_memory_t wm = e->w_user;
  if (!set_handle(c, e->w_user, w)) return -1;
  if (!s->plain) {
    // reuse the weights the last forward (on this entry) reordered from this buffer into this layout
    if (!(s->from == w && s->epoch == e->epoch && e->epoch > 0)) {
      dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, e->w_user}, {DNNL_ARG_TO, s->mem}};
      if (!run(c, &s->reorder, 2, ra, "weights reorder")) return -1;
      s->from = w, s->epoch = e->epoch;
    }
    wm = s->mem;
  }
  if (!set_handle(c, e->y, dy) || !set_handle(c, e->x, dx)) return -1;
  dnnl_exec_arg_t a[3] = {{DNNL_ARG_DIFF_DST, e->y}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DIFF_SRC, e->x}};
  if (!run(c, &e->bwd_data, 3, a, "convolution backward data")) return -1;
  return ok(c, dnnl_stream_wait(thread_stream(c)), "dnnl_stream_wait") ? 0 : -1;
}

int ddp_conv_backward_weights(ddp_conv *c, int N, const float *x, const float *dy, float *dw, float *dbias) {
  if (!c) return -1;
  int go = begin(c, "backward_weights", N);
  if (go < 0) return go;
  if (null_arg(c, "dw", dw, dw, dw)) return -1;
  if (go == 0) {
    memset(dw, 0, (size_t)c->O * c->C * c->kh * c->kw * sizeof *dw);
    if (dbias) memset(dbias, 0, (size_t)c->O * sizeof *dbias);
    return 0;
  }
  if (null_arg(c, "x, dy, dw", x, dy, dw)) return -1;
  c->bw_N = N;
  c->bw_winograd = ddp_conv_uses_winograd(c, N);
  if (c->bw_winograd) {
    float *w = thread_workspace(c, ddp_wino_dw_workspace_floats(N, c->H, c->W, c->C, c->O));
    if (!w) return -1;
    ddp_wino_dw(N, c->H, c->W, c->C, c->O, x, dy, dw, dbias, w);
    return 0;
  }
  entry *e = get_entry(c, N);
  if (!e) return -1;
  if (!e->bwd_weights.p && !build_bwd_weights(c, e)) return -1;
  wslot *s = &e->dw[e->bwd_weights_slot];
  if (!set_handle(c, e->x, x) || !set_handle(c, e->y, dy) || !set_handle(c, e->dw_user, dw)) return -1;
  dnnl_exec_arg_t a[3] = {
      {DNNL_ARG_SRC, e->x}, {DNNL_ARG_DIFF_DST, e->y}, {DNNL_ARG_DIFF_WEIGHTS, s->plain ? e->dw_user : s->mem}};
  if (!run(c, &e->bwd_weights, 3, a, "convolution backward weights")) return -1;
  if (!s->plain) {
    dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, s->mem}, {DNNL_ARG_TO, e->dw_user}};
    if (!run(c, &s->reorder, 2, ra, "diff weights reorder")) return -1;
  }
  if (dbias) ddp_bias_gradient(dy, (size_t)N * c->OH * c->OW, c->O, dbias);
  return ok(c, dnnl_stream_wait(thread_stream(c)), "dnnl_stream_wait") ? 0 : -1;
}
