/*
 * peak.c: the XOR+POPCNT peak of one core, per kernel family, in G binary MACs a second (one
 * 64-bit word of XOR + popcount = 64 MACs). A bare loop over operands that stay in L1, several
 * independent accumulators, no stores: what a binary GEMM kernel could reach at best on this
 * machine. `hwqnn bench cpu` builds and runs it; `peak [SECONDS]` prints "family gmacs" lines.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define X86 1
#else
#define X86 0
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define ARM 1
#else
#define ARM 0
#endif

#define WORDS 512 /* 4 KB of inputs and 4 KB of weights: L1 */
static uint64_t X[WORDS] __attribute__((aligned(64))), W[WORDS] __attribute__((aligned(64)));
static volatile uint64_t sink;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

typedef uint64_t (*pass_fn)(void); /* one pass over WORDS words */

/* eight independent sums, so the loop is bound by the popcounts, not by one add chain */
#define SCALAR_PASS(POP)                                                                    \
    uint64_t s[8] = {0};                                                                    \
    for (int k = 0; k < WORDS; k += 8)                                                      \
        for (int j = 0; j < 8; j++) s[j] += (uint64_t)POP(X[k + j] ^ W[k + j]);             \
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7]

static uint64_t pass_portable(void) { SCALAR_PASS(__builtin_popcountll); }

#if X86
__attribute__((target("popcnt"))) static uint64_t pass_popcnt(void) { SCALAR_PASS(_mm_popcnt_u64); }

/* nibble table (VPSHUFB) into byte counters, VPSADBW every 16 vectors (Mula et al.) */
__attribute__((target("avx2"))) static uint64_t pass_avx2(void) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                         2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    __m256i t = _mm256_setzero_si256();
    for (int k0 = 0; k0 < WORDS; k0 += 64) {
        __m256i c0 = _mm256_setzero_si256(), c1 = c0;
        for (int k = k0; k < k0 + 64; k += 8) {
            __m256i v0 = _mm256_xor_si256(_mm256_load_si256((const __m256i *)(X + k)),
                                          _mm256_load_si256((const __m256i *)(W + k)));
            __m256i v1 = _mm256_xor_si256(_mm256_load_si256((const __m256i *)(X + k + 4)),
                                          _mm256_load_si256((const __m256i *)(W + k + 4)));
            c0 = _mm256_add_epi8(c0, _mm256_shuffle_epi8(lut, _mm256_and_si256(v0, low)));
            c0 = _mm256_add_epi8(c0, _mm256_shuffle_epi8(
                                         lut, _mm256_and_si256(_mm256_srli_epi16(v0, 4), low)));
            c1 = _mm256_add_epi8(c1, _mm256_shuffle_epi8(lut, _mm256_and_si256(v1, low)));
            c1 = _mm256_add_epi8(c1, _mm256_shuffle_epi8(
                                         lut, _mm256_and_si256(_mm256_srli_epi16(v1, 4), low)));
        }
        t = _mm256_add_epi64(t, _mm256_sad_epu8(_mm256_add_epi8(c0, c1), _mm256_setzero_si256()));
    }
    return (uint64_t)_mm256_extract_epi64(t, 0) + (uint64_t)_mm256_extract_epi64(t, 1) +
           (uint64_t)_mm256_extract_epi64(t, 2) + (uint64_t)_mm256_extract_epi64(t, 3);
}

__attribute__((target("avx512f,avx512vpopcntdq"))) static uint64_t pass_avx512(void) {
    __m512i s0 = _mm512_setzero_si512(), s1 = s0;
    for (int k = 0; k < WORDS; k += 16) {
        s0 = _mm512_add_epi64(s0, _mm512_popcnt_epi64(_mm512_xor_si512(
                                      _mm512_load_si512(X + k), _mm512_load_si512(W + k))));
        s1 = _mm512_add_epi64(s1, _mm512_popcnt_epi64(_mm512_xor_si512(
                                      _mm512_load_si512(X + k + 8), _mm512_load_si512(W + k + 8))));
    }
    return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(s0, s1));
}
#endif

#if ARM
static uint64_t pass_neon(void) {
    uint64_t s = 0;
    for (int k0 = 0; k0 < WORDS; k0 += 64) {
        uint16x8_t a0 = vdupq_n_u16(0), a1 = a0;
        for (int k = k0; k < k0 + 64; k += 4) {
            uint64x2_t v0 = veorq_u64(vld1q_u64(X + k), vld1q_u64(W + k));
            uint64x2_t v1 = veorq_u64(vld1q_u64(X + k + 2), vld1q_u64(W + k + 2));
            a0 = vpadalq_u8(a0, vcntq_u8(vreinterpretq_u8_u64(v0)));
            a1 = vpadalq_u8(a1, vcntq_u8(vreinterpretq_u8_u64(v1)));
        }
        s += vaddlvq_u16(vaddq_u16(a0, a1));
    }
    return s;
}
#endif

/* the best rate of three windows of seconds / 3 (the machine may be shared) */
static void measure(const char *name, pass_fn f, double seconds) {
    double best = 0;
    for (int w = 0; w < 3; w++) {
        long passes = 0;
        double t0 = now(), t;
        do {
            for (int r = 0; r < 64; r++) sink += f();
            passes += 64;
            t = now() - t0;
        } while (t < seconds / 3);
        double rate = (double)passes * WORDS * 64 / t / 1e9;
        best = rate > best ? rate : best;
    }
    printf("%s %.1f\n", name, best);
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 0.3;
    for (int k = 0; k < WORDS; k++) {
        X[k] = 0x9e3779b97f4a7c15ull * (uint64_t)(k + 1);
        W[k] = 0xc2b2ae3d27d4eb4full * (uint64_t)(k + 7);
    }
#if X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq"))
        measure("avx512", pass_avx512, seconds);
    if (__builtin_cpu_supports("avx2")) measure("avx2", pass_avx2, seconds);
    if (__builtin_cpu_supports("popcnt")) measure("popcnt", pass_popcnt, seconds);
#endif
#if ARM
    measure("neon", pass_neon, seconds);
#endif
    measure("portable", pass_portable, seconds);
    return 0;
}
