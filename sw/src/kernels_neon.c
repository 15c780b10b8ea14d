/*
 * kernels_neon.c: the ARM NEON family (every aarch64 CPU has Advanced SIMD).
 */
#include "internal.h"

/* ------------------------------------------------------------------------------------------ */
/* ARM NEON (aarch64): VCNT counts bytes, VPADAL folds them pairwise into 16-bit sums          */
/* ------------------------------------------------------------------------------------------ */

#if HWQNN_ARM
/* sum over words k of popcount(op(x[k * B + n], w[k])), two words a step */
static inline uint64_t plane_neon(const uint64_t *x, const uint64_t *w, uint32_t W, uint32_t B,
                                  uint32_t n, int op) {
    uint16x8_t s16 = vdupq_n_u16(0);
    uint64_t s = 0;
    uint32_t k = 0;
    for (; k + 2 <= W; k += 2) {
        uint64x2_t xv = vcombine_u64(vcreate_u64(x[k * B + n]), vcreate_u64(x[(k + 1) * B + n]));
        uint64x2_t wv = vld1q_u64(w + k);
        uint64x2_t v = op == OP_XNOR  ? veorq_u64(xv, wv)
                       : op == OP_AND ? vandq_u64(xv, wv)
                                      : vorrq_u64(xv, wv);
        s16 = vpadalq_u8(s16, vcntq_u8(vreinterpretq_u8_u64(v)));
        if ((k & 4094) == 4094) { /* 16-bit lanes: at most 16 x 2047 steps each */
            s += vaddlvq_u16(s16);
            s16 = vdupq_n_u16(0);
        }
    }
    s += vaddlvq_u16(s16);
    for (; k < W; k++) {
        uint64_t v = op == OP_XNOR ? x[k * B + n] ^ w[k]
                     : op == OP_AND ? x[k * B + n] & w[k]
                                    : x[k * B + n] | w[k];
        s += vaddv_u8(vcnt_u8(vcreate_u8(v)));
    }
    return op == OP_AND ? s : (uint64_t)64 * W - s; /* XNOR, NOR: 64 W - popcount(XOR, OR) */
}

static void acc_neon(const layer_t *L, const uint64_t *x, int64_t *acc) {
    const uint32_t W = L->words, B = L->in_bits;
    for (uint32_t o = 0; o < L->out; o++) {
        const uint64_t *wr = L->w + (size_t)o * L->w_bits * W;
        int64_t a = 0;
        for (uint32_t m = 0; m < L->w_bits; m++)
            for (uint32_t n = 0; n < B; n++)
                a += (int64_t)(plane_neon(x, wr + (size_t)m * W, W, B, n, L->op[m]) << (n + m));
        acc[o] = a;
    }
}

const kernel_t hq_kernel_neon = {"neon",          acc_neon,       hq_bacc_each,
                                 hq_dot_portable, hq_pack_planes, hq_threshold1_c};
#endif
