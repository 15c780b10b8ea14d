/*
 * internal.h: what the C library's source files share (not installed). The file layout and the
 * arithmetic are stated once, in hwqnn/bundle.py.
 *
 *   load.c          the flat file: every field checked before anything is allocated from it
 *   kernels.c       bit-plane packing, the portable kernels, the run-time choice of a family
 *   kernels_x86.c   scalar POPCNT + SSSE3, AVX2 and AVX-512 (and their weight layouts)
 *   kernels_neon.c  ARM NEON (aarch64)
 *   forward.c       blocks of images layer by layer (conv2d, maxpool2d, dense) over POSIX threads
 *
 * Each matrix layer takes one of two paths with the same accumulator: the byte path (codes of
 * 2-8 bits times one signed byte per weight, folded from the bit planes at load, see build_dot)
 * or the bit path (XNOR/AND/NOR-popcount of bit planes).
 */
#ifndef HWQNN_INTERNAL_H
#define HWQNN_INTERNAL_H

#define _POSIX_C_SOURCE 200809L
#include "hwqnn.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HWQNN_X86 1
#include <immintrin.h>
#else
#define HWQNN_X86 0
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#define HWQNN_ARM 1
#include <arm_neon.h>
#else
#define HWQNN_ARM 0
#endif

/* the library's own symbols between its files: not exported from the shared library */
#if defined(__GNUC__) || defined(__clang__)
#define HQ_INTERNAL __attribute__((visibility("hidden")))
#else
#define HQ_INTERNAL
#endif

enum { KIND_DENSE = 0, KIND_CONV = 1, KIND_POOL = 2 };
enum { OP_XNOR = 0, OP_AND = 1, OP_NOR = 2 }; /* how a weight plane meets an input plane */

typedef struct {
    uint32_t kind;
    uint32_t in_size, out_size;    /* codes in and out (a conv or pool layer: HWC images) */
    uint32_t height, width, channels, kernel, stride, pad, out_h, out_w; /* conv and pool */
    int pack_next;                 /* 1-bit codes that only a dense layer reads next */
    /* the matrix (dense and conv): `out` rows of fan-in `in`, what the kernels read */
    uint32_t in, out, in_bits, w_bits, out_bits, words, n_t;
    int64_t acc_max;
    uint8_t op[8];        /* weight plane m meets the input planes by op[m] (OP_*) */
    uint8_t zero;         /* the code a convolution's padding reads (the input's value 0) */
    int64_t gain;         /* scores: gain * A + score_off[o] (last layer) */
    const uint64_t *w;    /* [out][w_bits][words] */
    const int64_t *t;     /* [out][n_t] (hidden layers) */
    const uint8_t *flip;  /* [out] (hidden layers) */
    const int64_t *bias;  /* [out] (the last layer, version 4: the score bias) or NULL */
    const int64_t *scale; /* [out] (the last layer, version 5: the score scale) or NULL */
    /* the byte path (multi-bit codes, weights of up to 4 bits): A = sum_j e[o][j] * code_j +
     * e_off[o], the same integer as the bit-plane sum (see build_dot); NULL: the bit path */
    int8_t *e;          /* [out][in_pad], zero above in */
    int64_t *e_off;     /* [out] */
    uint32_t in_pad;    /* words * 64 */
    uint32_t e_flush;   /* 32-byte steps whose 16-bit pair sums cannot overflow */
    /* 1-bit codes on AVX2: each weight word's low and high nibbles (the nibble table's indices)
     * split ahead, [out][w_bits][lo, hi][nw] with nw = words rounded up to 4, zero above words;
     * NULL: not built (see build_nibbles) */
    uint64_t *wn;
    uint32_t nw;
    /* 1-bit codes with AVX-512 VPOPCNTQ: the weights transposed into lanes of eight neurons,
     * [ceil(out / 8)][w_bits][words][8], rows past out 0; NULL: not built (see build_lanes) */
    uint64_t *wt;
} layer_t;

struct hwqnn_net {
    uint32_t n_layers, max_width, max_rows, max_cols, max_plane_words;
    uint32_t raw_bits, in_channels, in_levels; /* input quantization; in_channels 0: identity */
    const int64_t *in_t;                       /* [in_channels][in_levels], ascending */
    layer_t *layers;
    int64_t *score_off;  /* [classes]: scale[o] * D[o] + bias[o], see hwqnn/bundle.py */
    int64_t *score_gain; /* [classes]: scale[o] * gain; score = score_gain * A + score_off */
    uint64_t *blob; /* the whole file, 8-byte aligned: the layers point into it */
};

/* ------------------------------------------------------------------------------------------ */
/* a kernel family's interface: acc[o] = sum_n sum_m 2^(n+m) popcount(op_m(plane n, weight    */
/* plane m)) on the bit path, the same integer on the byte path                               */
/* ------------------------------------------------------------------------------------------ */

/* the bit path for one image's packed planes */
typedef void (*acc_fn)(const layer_t *L, const uint64_t *x, int64_t *acc);

/* n images' byte rows (row i at x + i * ld, zero above in) through the byte path: acc[i * out +
 * o] = sum_j e[o][j] x[i][j] + e_off[o] */
typedef void (*dot_fn)(const layer_t *L, const uint8_t *x, size_t ld, uint32_t n, int64_t *acc);

/* n images' packed planes (image i at x + i * ld words) through the bit path: acc[i * out + o];
 * `one` is the family's one-image kernel, for what its tiles do not take */
typedef void (*bacc_fn)(const layer_t *L, acc_fn one, const uint64_t *x, size_t ld, uint32_t n,
                        int64_t *acc);

typedef void (*pack_fn)(const uint8_t *codes, uint32_t k, uint32_t bits, uint32_t words,
                        uint64_t *x);
typedef void (*thr1_fn)(const layer_t *L, const int64_t *acc, uint64_t *x);

/* A kernel family: the bit path for one image (acc) and for a block of images (bacc, which may
 * tile images and neurons), the byte path (dot), the bit-plane packer and the 1-bit threshold. */
typedef struct {
    const char *name;
    acc_fn acc;
    bacc_fn bacc;
    dot_fn dot;
    pack_fn pack;
    thr1_fn threshold1;
} kernel_t;

HQ_INTERNAL extern const kernel_t hq_kernel_portable;
#if HWQNN_X86
HQ_INTERNAL extern const kernel_t hq_kernel_popcnt, hq_kernel_avx2, hq_kernel_avx512;
#endif
#if HWQNN_ARM
HQ_INTERNAL extern const kernel_t hq_kernel_neon;
#endif

/* the family in use: the best this CPU has, or the one hwqnn_set_isa chose (kernels.c) */
HQ_INTERNAL const kernel_t *hq_kernel(void);

/* ------------------------------------------------------------------------------------------ */
/* helpers more than one file uses                                                            */
/* ------------------------------------------------------------------------------------------ */

/* Memory on a 64-byte boundary (vector loads then never split a cache line), zeroed or not;
 * free() (load.c) */
HQ_INTERNAL void *hq_alloc64(size_t count, size_t size, int zero);

/* A layer's weights in the layouts the CPU's kernels read, built at load (the x86 families':
 * hq_x86_weights, kernels_x86.c). Returns 0, or -1: no memory. */
HQ_INTERNAL int hq_isa_weights(layer_t *L);
#if HWQNN_X86
HQ_INTERNAL int hq_x86_weights(layer_t *L);
#endif

/* bit i of the result is bit n of byte i of x (a multiply gathers the eight bits, no carries) */
static inline uint64_t gather_plane8(uint64_t x, unsigned n) {
    return (((x >> n) & 0x0101010101010101ull) * 0x0102040810204080ull) >> 56;
}

/* codes (k of them) into `bits` planes of `words` words, word-major (kernels.c) */
HQ_INTERNAL void hq_pack_planes(const uint8_t *codes, uint32_t k, uint32_t bits, uint32_t words,
                                uint64_t *x);
/* the bit path one image at a time; the byte path in portable C */
HQ_INTERNAL void hq_bacc_each(const layer_t *L, acc_fn one, const uint64_t *x, size_t ld,
                              uint32_t n, int64_t *acc);
HQ_INTERNAL void hq_dot_portable(const layer_t *L, const uint8_t *x, size_t ld, uint32_t n,
                                 int64_t *acc);

/* A 1-bit hidden layer's thresholds straight into the next layer's packed input (one plane);
 * branch-free (flips are random) */
static inline uint64_t threshold1_bit(const layer_t *L, const int64_t *acc, uint32_t o) {
    int64_t a = acc[o], sel = -(int64_t)L->flip[o];
    a ^= (a ^ (L->acc_max - acc[o])) & sel;
    return (uint64_t)(a >= L->t[o]);
}

/* neurons from o0 on (the rest of x already zeroed); all of them */
HQ_INTERNAL void hq_threshold1_from(const layer_t *L, const int64_t *acc, uint32_t o0,
                                    uint64_t *x);
HQ_INTERNAL void hq_threshold1_c(const layer_t *L, const int64_t *acc, uint64_t *x);

#endif
