// arena.h: the per-thread arena for the C++ allocations oneDNN makes while a primitive executes (arena.cpp).
#ifndef CSWIFTDDP_ARENA_H
#define CSWIFTDDP_ARENA_H

#ifdef __cplusplus
extern "C" {
#endif

// Between enter and exit (nestable), this thread's operator new is served from its arena.
void ddp_arena_enter(void);
void ddp_arena_exit(void);

#ifdef __cplusplus
}
#endif

#endif
