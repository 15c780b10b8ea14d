/*
 * scalar.h: the scalar bit-path kernels, written once as macros and instantiated once per
 * popcount (portable C in kernels.c, the POPCNT instruction in kernels_x86.c).
 */
#ifndef HWQNN_SCALAR_H
#define HWQNN_SCALAR_H

#include "internal.h"

/* op_m of input word X and weight word W: XNOR (odd weights), AND, NOR (signed weights' top
 * plane); every op is 0 on a pad bit (input 0, weight 1) */
#define PLANE(OP, X, W)                                                                     \
    ((OP) == OP_XNOR ? ~((X) ^ (W)) : (OP) == OP_AND ? ((X) & (W)) : ~((X) | (W)))

#define SCALAR_PLANES(POP, OP)                                                              \
    for (uint32_t k = 0; k < W; k++)                                                        \
        for (uint32_t n = 0; n < B; n++) s[n] += POP(PLANE(OP, x[k * B + n], w[k]))

#define SCALAR_KERNEL(NAME, POP)                                                            \
    static void NAME(const layer_t *L, const uint64_t *x, int64_t *acc) {                   \
        const uint32_t W = L->words, B = L->in_bits;                                        \
        for (uint32_t o = 0; o < L->out; o++) {                                             \
            const uint64_t *wr = L->w + (size_t)o * L->w_bits * W;                          \
            int64_t a = 0;                                                                  \
            for (uint32_t m = 0; m < L->w_bits; m++) {                                      \
                const uint64_t *w = wr + (size_t)m * W;                                     \
                uint64_t s[8] = {0};                                                        \
                switch (L->op[m]) {                                                         \
                case OP_XNOR: SCALAR_PLANES(POP, OP_XNOR); break;                           \
                case OP_AND: SCALAR_PLANES(POP, OP_AND); break;                             \
                default: SCALAR_PLANES(POP, OP_NOR); break;                                 \
                }                                                                           \
                for (uint32_t n = 0; n < B; n++) a += (int64_t)(s[n] << (n + m));           \
            }                                                                               \
            acc[o] = a;                                                                     \
        }                                                                                   \
    }

/* The bit path for 1-bit codes in scalar tiles: four neurons x two images share each word load
 * (XNOR and NOR counted as 64 W - popcount(XOR, OR), exact on pad bits); an odd batch's last
 * image and other codes one image at a time. */
#define BOP64(OP, X, W) ((OP) == OP_XNOR ? (X) ^ (W) : (OP) == OP_AND ? (X) & (W) : (X) | (W))
#define SCALAR_TILE(POP, OP)                                                                \
    for (uint32_t k = 0; k < W; k++) {                                                      \
        const uint64_t a0 = x0[k], a1 = x1[k];                                              \
        for (int r = 0; r < 4; r++) {                                                       \
            const uint64_t wv = w[r][k];                                                    \
            s[r][0] += POP(BOP64(OP, a0, wv));                                              \
            s[r][1] += POP(BOP64(OP, a1, wv));                                              \
        }                                                                                   \
    }
#define SCALAR_BLOCK(NAME, POP)                                                             \
    static void NAME(const layer_t *L, acc_fn one, const uint64_t *x, size_t ld, uint32_t n, \
                     int64_t *acc) {                                                        \
        if (L->in_bits != 1) {                                                              \
            hq_bacc_each(L, one, x, ld, n, acc);                                            \
            return;                                                                         \
        }                                                                                   \
        const uint32_t W = L->words, n2 = n / 2 * 2;                                        \
        const size_t stride = (size_t)L->w_bits * W;                                        \
        for (uint32_t o0 = 0; o0 < L->out && n2; o0 += 4) {                                 \
            uint32_t rows = L->out - o0 < 4 ? L->out - o0 : 4;                              \
            for (uint32_t i = 0; i < n2; i += 2) {                                          \
                const uint64_t *x0 = x + i * ld, *x1 = x0 + ld;                             \
                int64_t a[4][2] = {{0}};                                                    \
                for (uint32_t m = 0; m < L->w_bits; m++) {                                  \
                    const uint64_t *w[4];                                                   \
                    for (uint32_t r = 0; r < 4; r++)                                        \
                        w[r] = L->w + (size_t)(o0 + r < L->out ? o0 + r : L->out - 1) *     \
                                          stride + (size_t)m * W;                           \
                    uint64_t s[4][2] = {{0}};                                               \
                    const int op = L->op[m];                                                \
                    switch (op) {                                                           \
                    case OP_XNOR: SCALAR_TILE(POP, OP_XNOR); break;                         \
                    case OP_AND: SCALAR_TILE(POP, OP_AND); break;                           \
                    default: SCALAR_TILE(POP, OP_NOR); break;                               \
                    }                                                                       \
                    for (int r = 0; r < 4; r++)                                             \
                        for (int c = 0; c < 2; c++)                                         \
                            a[r][c] += (op == OP_AND ? (int64_t)s[r][c]                     \
                                                     : (int64_t)64 * W - (int64_t)s[r][c])  \
                                       << m;                                                \
                }                                                                           \
                for (uint32_t c = 0; c < 2; c++)                                            \
                    for (uint32_t r = 0; r < rows; r++)                                     \
                        acc[(size_t)(i + c) * L->out + o0 + r] = a[r][c];                   \
            }                                                                               \
        }                                                                                   \
        if (n2 < n) one(L, x + n2 * ld, acc + (size_t)n2 * L->out);                         \
    }

#endif
