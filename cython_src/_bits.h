/* Bit casts and counting helpers the Cython kernels share. */
#ifndef QSIM_BITS_H
#define QSIM_BITS_H
#include <stdint.h>
#include <stddef.h>
#include <string.h>

static inline uint32_t qs_f32_bits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline uint64_t qs_f64_bits(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static inline float qs_bits_f32(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }
static inline double qs_bits_f64(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }
/* Leading zeros; the argument must be nonzero. */
static inline int qs_clz32(uint32_t u) { return __builtin_clz(u); }
static inline int qs_clz64(uint64_t u) { return __builtin_clzll(u); }

/* Ask for the cache lines of the `bytes` bytes `ahead` bytes past p (a hint: it never faults,
   past an array's end included, so the addresses are formed as integers). */
static inline void qs_prefetch(const void *p, ptrdiff_t ahead, ptrdiff_t bytes) {
    for (ptrdiff_t b = 0; b < bytes; b += 64) __builtin_prefetch((const void *)((uintptr_t)p + ahead + b));
}

/* splitmix64 finalizer: a stateless hash of (seed, element index), so stochastic rounding
   draws the same bits for an element whatever thread or chunk handles it. */
static inline uint64_t qs_random_bits(uint64_t seed, uint64_t index) {
    uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
#endif
