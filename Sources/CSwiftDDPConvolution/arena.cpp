// arena.cpp: serves the C++ allocations oneDNN makes inside a primitive's execution from a per-thread arena.
//
// dnnl_primitive_execute builds per-call bookkeeping with operator new (a hash map of the call's arguments, the
// execution context, the scratchpad grantor) and frees it before returning, so a convolution would cost a dozen
// malloc/free pairs per pass. This file replaces the global operator new/delete: within an arena scope
// (ddp_arena_enter/exit around an execute call) a thread's allocations are bumped out of its own preallocated
// block; everywhere else, and when a request does not fit, they go to malloc as libstdc++'s would.
// The block is rewound only when every allocation made from it has been deleted, so memory that outlives a call
// stays valid (ddp_conv_arena_stats counts such calls; then the block fills up and requests fall back to malloc).
// SWIFTDDP_ONEDNN_ARENA=0 in the environment turns the arena off (everything goes to malloc), e.g. for sanitizers.
#include "arena.h"
#include "CSwiftDDPConvolution.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#include <pthread.h>
#include <sys/mman.h>

namespace {

constexpr std::size_t kArenaBytes = std::size_t(1) << 20;  // per thread: ~30x one execute call's bookkeeping
constexpr int kMaxArenas = 64;                              // threads with an arena; others use malloc

struct alignas(64) Arena {  // a cache line each: threads bump their own
  char *base;                     // set once, before the arena is published
  std::size_t used;               // touched by the owning thread only
  std::atomic<long> live;         // allocations not yet deleted (a delete may come from any thread)
  std::atomic<bool> taken;        // a live thread owns it; cleared when that thread exits
};

Arena g_arenas[kMaxArenas];
std::atomic<int> g_published{0};  // g_arenas[0 ..< g_published] have their base set
pthread_mutex_t g_create = PTHREAD_MUTEX_INITIALIZER;
pthread_key_t g_exit_key;  // its destructor hands a finished thread's arena back
pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
bool g_key_ready = false;
bool g_disabled = false;  // SWIFTDDP_ONEDNN_ARENA=0
std::atomic<unsigned long> g_fallbacks{0}, g_outlived{0}, g_served{0};

thread_local Arena *t_arena = nullptr;
thread_local bool t_no_arena = false;  // none could be had: do not try again on every call
thread_local int t_depth = 0;

Arena *owner(const void *p) {
  int n = g_published.load(std::memory_order_acquire);
  for (int i = 0; i < n; i++) {
    const char *base = g_arenas[i].base;
    if (static_cast<const char *>(p) >= base && static_cast<const char *>(p) < base + kArenaBytes) return &g_arenas[i];
  }
  return nullptr;
}

// Runs on the exiting thread; later key destructors on it must not bump into an arena another thread took.
void release_arena(void *arena) {
  t_arena = nullptr;
  t_no_arena = true;
  static_cast<Arena *>(arena)->taken.store(false, std::memory_order_release);
}

void make_key() {
  g_key_ready = pthread_key_create(&g_exit_key, release_arena) == 0;
  const char *env = getenv("SWIFTDDP_ONEDNN_ARENA");
  g_disabled = env && env[0] == '0';
}

// An arena a finished thread left (once all its allocations are back), else a new one; null when all are taken.
Arena *take_arena() {
  pthread_once(&g_key_once, make_key);
  if (!g_key_ready || g_disabled) return nullptr;  // without the key a finished thread's arena would stay taken
  pthread_mutex_lock(&g_create);
  Arena *a = nullptr;
  int n = g_published.load(std::memory_order_relaxed);
  for (int i = 0; i < n && !a; i++) {
    if (!g_arenas[i].taken.load(std::memory_order_acquire) && g_arenas[i].live.load(std::memory_order_acquire) == 0) {
      a = &g_arenas[i];
    }
  }
  if (!a && n < kMaxArenas) {
    void *m = mmap(nullptr, kArenaBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m != MAP_FAILED) {
      a = &g_arenas[n];
      a->base = static_cast<char *>(m);
      g_published.store(n + 1, std::memory_order_release);
    }
  }
  if (a) {
    a->used = 0;
    a->taken.store(true, std::memory_order_release);
    pthread_setspecific(g_exit_key, a);
  }
  pthread_mutex_unlock(&g_create);
  return a;
}

void *arena_allocate(std::size_t n, std::size_t align) {
  Arena *a = t_arena;
  // Over-aligned requests go to posix_memalign: the block itself is only page-aligned.
  if (t_depth == 0 || a == nullptr || align > alignof(std::max_align_t)) return nullptr;
  std::size_t start = (a->used + align - 1) & ~(align - 1);
  if (start > kArenaBytes || n > kArenaBytes - start) {
    g_fallbacks.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  a->used = start + n;
  a->live.fetch_add(1, std::memory_order_relaxed);
  g_served.fetch_add(1, std::memory_order_relaxed);
  return a->base + start;
}

void *allocate(std::size_t n, std::size_t align, bool nothrow) {
  if (n == 0) n = 1;
  if (void *p = arena_allocate(n, align)) return p;
  for (;;) {
    void *p = nullptr;
    if (align <= alignof(std::max_align_t)) {
      p = std::malloc(n);
    } else if (posix_memalign(&p, align, n) != 0) {
      p = nullptr;
    }
    if (p) return p;
    std::new_handler handler = std::get_new_handler();
    if (!handler) {
      if (nothrow) return nullptr;
      throw std::bad_alloc();
    }
    handler();
  }
}

// A new_handler may throw bad_alloc; the nothrow forms answer null instead.
void *allocate_nothrow(std::size_t n, std::size_t align) noexcept {
  try {
    return allocate(n, align, true);
  } catch (...) {
    return nullptr;
  }
}

void deallocate(void *p) noexcept {
  if (!p) return;
  if (Arena *a = owner(p)) {
    a->live.fetch_sub(1, std::memory_order_release);
    return;
  }
  std::free(p);
}

constexpr std::size_t kDefaultAlign = __STDCPP_DEFAULT_NEW_ALIGNMENT__;

}  // namespace

extern "C" void ddp_arena_enter(void) {
  if (t_depth++ > 0) return;
  if (!t_arena && !t_no_arena) {
    t_arena = take_arena();
    t_no_arena = t_arena == nullptr;
  }
  Arena *a = t_arena;
  if (a && a->live.load(std::memory_order_acquire) == 0) a->used = 0;
}

extern "C" void ddp_arena_exit(void) {
  if (--t_depth > 0) return;
  Arena *a = t_arena;
  if (a && a->live.load(std::memory_order_acquire) != 0) g_outlived.fetch_add(1, std::memory_order_relaxed);
}

extern "C" void ddp_conv_arena_stats(unsigned long *served, unsigned long *fallbacks, unsigned long *outlived) {
  *served = g_served.load(std::memory_order_relaxed);
  *fallbacks = g_fallbacks.load(std::memory_order_relaxed);
  *outlived = g_outlived.load(std::memory_order_relaxed);
}

// Checks the rules above on the calling thread, whose arena must hold nothing yet; 0 if they hold, else the number of
// the first that failed. Direct ::operator new calls, which the compiler may not elide or fold as it may
// new-expressions.
static int selftest_on_this_thread() {
  ddp_arena_enter();
  void *kept = ::operator new(100);
  ddp_arena_exit();
  const std::uintptr_t keptAt = reinterpret_cast<std::uintptr_t>(kept);
  int failed = 0;
  if (!owner(kept)) failed = 1;  // a scope serves from the arena
  ddp_arena_enter();
  void *next = ::operator new(100);
  ddp_arena_exit();
  const std::uintptr_t nextAt = reinterpret_cast<std::uintptr_t>(next);
  if (!failed && nextAt < keptAt + 100 && keptAt < nextAt + 100) failed = 2;  // live memory is not handed out again
  ::operator delete(next);
  ::operator delete(kept);
  if (failed) return failed;
  ddp_arena_enter();
  void *rewound = ::operator new(100);
  ddp_arena_exit();
  const bool reused = reinterpret_cast<std::uintptr_t>(rewound) == keptAt;  // all returned: the next scope rewinds
  ::operator delete(rewound);
  if (!reused) return 3;
  void *outside = ::operator new(100);  // outside a scope: malloc
  const bool fromArena = owner(outside) != nullptr;
  ::operator delete(outside);
  if (fromArena) return 4;
  ddp_arena_enter();
  void *big = ::operator new(kArenaBytes + 1);  // too big: malloc, counted as a fallback
  void *aligned = ::operator new(64, std::align_val_t(8192));  // over-aligned: posix_memalign
  ddp_arena_exit();
  const bool wrong = owner(big) != nullptr || owner(aligned) != nullptr ||
                     reinterpret_cast<std::uintptr_t>(aligned) % 8192 != 0;
  ::operator delete(big);
  ::operator delete(aligned, std::align_val_t(8192));
  if (wrong) return 5;
  // A delete from another thread counts too: the arena rewinds once it is back.
  ddp_arena_enter();
  void *shared = ::operator new(100);
  ddp_arena_exit();
  pthread_t other;
  if (pthread_create(&other, nullptr, [](void *p) -> void * { ::operator delete(p); return nullptr; }, shared) != 0) {
    ::operator delete(shared);
    return 6;
  }
  pthread_join(other, nullptr);
  ddp_arena_enter();
  void *after = ::operator new(100);
  ddp_arena_exit();
  const bool rewoundAfter = reinterpret_cast<std::uintptr_t>(after) == keptAt;
  ::operator delete(after);
  return rewoundAfter ? 0 : 7;
}

// On a thread of its own: a long-lived caller's arena may hold memory (a test runner's pooled thread).
extern "C" int ddp_conv_arena_selftest(void) {
  int result = 8;
  pthread_t t;
  if (pthread_create(&t, nullptr, [](void *r) -> void * {
        *static_cast<int *>(r) = selftest_on_this_thread();
        return nullptr;
      }, &result) != 0)
    return 9;
  pthread_join(t, nullptr);
  return result;
}

void *operator new(std::size_t n) { return allocate(n, kDefaultAlign, false); }
void *operator new[](std::size_t n) { return allocate(n, kDefaultAlign, false); }
void *operator new(std::size_t n, const std::nothrow_t &) noexcept { return allocate_nothrow(n, kDefaultAlign); }
void *operator new[](std::size_t n, const std::nothrow_t &) noexcept { return allocate_nothrow(n, kDefaultAlign); }
void *operator new(std::size_t n, std::align_val_t al) { return allocate(n, std::size_t(al), false); }
void *operator new[](std::size_t n, std::align_val_t al) { return allocate(n, std::size_t(al), false); }
void *operator new(std::size_t n, std::align_val_t al, const std::nothrow_t &) noexcept {
  return allocate_nothrow(n, std::size_t(al));
}
void *operator new[](std::size_t n, std::align_val_t al, const std::nothrow_t &) noexcept {
  return allocate_nothrow(n, std::size_t(al));
}

void operator delete(void *p) noexcept { deallocate(p); }
void operator delete[](void *p) noexcept { deallocate(p); }
void operator delete(void *p, std::size_t) noexcept { deallocate(p); }
void operator delete[](void *p, std::size_t) noexcept { deallocate(p); }
void operator delete(void *p, const std::nothrow_t &) noexcept { deallocate(p); }
void operator delete[](void *p, const std::nothrow_t &) noexcept { deallocate(p); }
void operator delete(void *p, std::align_val_t) noexcept { deallocate(p); }
void operator delete[](void *p, std::align_val_t) noexcept { deallocate(p); }
void operator delete(void *p, std::size_t, std::align_val_t) noexcept { deallocate(p); }
void operator delete[](void *p, std::size_t, std::align_val_t) noexcept { deallocate(p); }
void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept { deallocate(p); }
void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept { deallocate(p); }
