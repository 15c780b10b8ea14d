/*
 * kernels.c: codes packed into bit planes, the portable C kernels (the family every other is
 * tested against, and the one a CPU without a faster family runs), and the run-time choice of a
 * kernel family.
 */
#include "internal.h"
#include "scalar.h"

/* ------------------------------------------------------------------------------------------ */
/* packing codes into bit-planes, word-major: x[k * bits + n] is word k of plane n, whose bit  */
/* j % 64 is bit n of code 64k + j % 64 (so one 512-bit vector holds all 8 planes of a word)   */
/* ------------------------------------------------------------------------------------------ */

void hq_pack_planes(const uint8_t *codes, uint32_t k, uint32_t bits, uint32_t words,
                    uint64_t *x) {
    memset(x, 0, (size_t)bits * words * 8);
    for (uint32_t j0 = 0; j0 < k; j0 += 8) {
        uint64_t v = 0;
        uint32_t m = k - j0 < 8 ? k - j0 : 8;
        memcpy(&v, codes + j0, m); /* little-endian: byte i is code j0 + i; pad codes are 0 */
        uint64_t *xw = x + (size_t)(j0 / 64) * bits;
        uint32_t shift = j0 % 64;
        for (uint32_t n = 0; n < bits; n++) xw[n] |= gather_plane8(v, n) << shift;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* the portable kernels                                                                       */
/* ------------------------------------------------------------------------------------------ */

static unsigned popcount_c(uint64_t x) {
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)__builtin_popcountll(x);
#else
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (unsigned)((x * 0x0101010101010101ull) >> 56);
#endif
}

SCALAR_KERNEL(acc_portable, popcount_c)

/* the byte path: n images' byte rows (row i at x + i * ld, zero above in), acc[i * out + o] =
 * sum_j e[o][j] x[i][j] + e_off[o], four rows at a time so each code load serves four neurons
 * (the compiler vectorizes the inner loop) */
void hq_dot_portable(const layer_t *L, const uint8_t *x, size_t ld, uint32_t n, int64_t *acc) {
    const uint32_t K = L->in_pad;
    for (uint32_t o0 = 0; o0 < L->out; o0 += 4) {
        const int8_t *e[4];
        for (uint32_t r = 0; r < 4; r++) /* rows past the end repeat the last; not stored */
            e[r] = L->e + (size_t)(o0 + r < L->out ? o0 + r : L->out - 1) * K;
        for (uint32_t i = 0; i < n; i++) {
            const uint8_t *xi = x + (size_t)i * ld;
            int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (uint32_t j = 0; j < K; j++) {
                int32_t v = xi[j];
                s0 += v * e[0][j];
                s1 += v * e[1][j];
                s2 += v * e[2][j];
                s3 += v * e[3][j];
            }
            int32_t s[4] = {s0, s1, s2, s3};
            for (uint32_t r = 0; r < 4 && o0 + r < L->out; r++)
                acc[(size_t)i * L->out + o0 + r] = s[r] + L->e_off[o0 + r];
        }
    }
}

/* the bit path one image at a time */
void hq_bacc_each(const layer_t *L, acc_fn one, const uint64_t *x, size_t ld, uint32_t n,
                  int64_t *acc) {
    for (uint32_t i = 0; i < n; i++) one(L, x + i * ld, acc + (size_t)i * L->out);
}

SCALAR_BLOCK(bacc_portable, popcount_c)

void hq_threshold1_from(const layer_t *L, const int64_t *acc, uint32_t o0, uint64_t *x) {
    for (uint32_t o = o0; o < L->out; o++) x[o / 64] |= threshold1_bit(L, acc, o) << (o % 64);
}

void hq_threshold1_c(const layer_t *L, const int64_t *acc, uint64_t *x) {
    memset(x, 0, (size_t)((L->out + 63) / 64) * 8);
    hq_threshold1_from(L, acc, 0, x);
}

int hq_isa_weights(layer_t *L) {
#if HWQNN_X86
    return hq_x86_weights(L);
#else
    (void)L;
    return 0;
#endif
}

/* ------------------------------------------------------------------------------------------ */
/* dispatch                                                                                   */
/* ------------------------------------------------------------------------------------------ */

const kernel_t hq_kernel_portable = {"portable",      acc_portable,   bacc_portable,
                                     hq_dot_portable, hq_pack_planes, hq_threshold1_c};

static const kernel_t *g_kernel = NULL;

static int pick(const char *name) {
    const kernel_t *k = NULL;
#if HWQNN_X86
    __builtin_cpu_init();
    int has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx512vnni");
    int hasp = __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("ssse3");
    int has2 = __builtin_cpu_supports("avx2") && hasp;
    if (!name) name = has512 ? "avx512" : has2 ? "avx2" : hasp ? "popcnt" : "portable";
    if (!strcmp(name, "avx512") && has512) k = &hq_kernel_avx512;
    if (!strcmp(name, "avx2") && has2) k = &hq_kernel_avx2;
    if (!strcmp(name, "popcnt") && hasp) k = &hq_kernel_popcnt;
#elif HWQNN_ARM
    if (!name) name = "neon"; /* every aarch64 CPU has Advanced SIMD */
    if (!strcmp(name, "neon")) k = &hq_kernel_neon;
#else
    if (!name) name = "portable";
#endif
    if (!strcmp(name, "portable")) k = &hq_kernel_portable;
    if (!k) return HWQNN_EARG;
    g_kernel = k;
    return HWQNN_OK;
}

const kernel_t *hq_kernel(void) {
    if (!g_kernel) pick(NULL);
    return g_kernel;
}

const char *hwqnn_isa(void) { return hq_kernel()->name; }

int hwqnn_set_isa(const char *name) { return pick(name); }
