/*
 * kernels_x86.c: the x86-64 kernel families, each function compiled for its instruction set with
 * a target attribute and chosen at run time (kernels.c): scalar POPCNT with SSSE3, AVX2, and
 * AVX-512 (F, BW, VPOPCNTDQ, VNNI); and the weight layouts their bit paths read, built at load.
 */
#include "internal.h"

#if HWQNN_X86
#include "scalar.h"

/* ------------------------------------------------------------------------------------------ */
/* weight layouts, built at load where the CPU has the family                                 */
/* ------------------------------------------------------------------------------------------ */

/* The AVX2 bit path's weights of a layer of 1-bit codes, where the CPU has AVX2: each word's
 * nibbles split ahead (lo = w & 0x0f.., hi = (w >> 4) & 0x0f..), so a step's nibble-table
 * indices are one XOR/AND/OR of the input's split nibbles with them. Words past the row are 0
 * (the input's masked tail is 0 too: 0 under every op). Returns 0, or -1: no memory. */
static int build_nibbles(layer_t *L) {
    __builtin_cpu_init();
    if (L->in_bits != 1 || !__builtin_cpu_supports("avx2")) return 0;
    const uint64_t low = 0x0f0f0f0f0f0f0f0full;
    L->nw = (L->words + 3) / 4 * 4;
    L->wn = hq_alloc64((size_t)L->out * L->w_bits * 2, (size_t)L->nw * 8, 1);
    if (!L->wn) return -1;
    for (size_t row = 0; row < (size_t)L->out * L->w_bits; row++) {
        const uint64_t *w = L->w + row * L->words;
        uint64_t *lo = L->wn + row * 2 * L->nw, *hi = lo + L->nw;
        for (uint32_t k = 0; k < L->words; k++) {
            lo[k] = w[k] & low;
            hi[k] = (w[k] >> 4) & low;
        }
    }
    return 0;
}

/* The AVX-512 bit path's weights of a layer of 1-bit codes, where the CPU has VPOPCNTQ: eight
 * neurons' word k side by side (lane r: neuron o0 + r), so that a step loads them as one vector
 * and meets each image's word k broadcast. Returns 0, or -1: no memory. */
static int build_lanes(layer_t *L) {
    __builtin_cpu_init();
    if (L->in_bits != 1 || !__builtin_cpu_supports("avx512f") ||
        !__builtin_cpu_supports("avx512vpopcntdq"))
        return 0;
    const size_t groups = (L->out + 7) / 8;
    L->wt = hq_alloc64(groups * L->w_bits * L->words, 8 * 8, 1);
    if (!L->wt) return -1;
    for (size_t o = 0; o < L->out; o++)
        for (uint32_t m = 0; m < L->w_bits; m++) {
            const uint64_t *w = L->w + (o * L->w_bits + m) * L->words;
            uint64_t *t = L->wt + ((o / 8 * L->w_bits + m) * L->words) * 8 + o % 8;
            for (uint32_t k = 0; k < L->words; k++) t[(size_t)k * 8] = w[k];
        }
    return 0;
}

int hq_x86_weights(layer_t *L) { return build_nibbles(L) || build_lanes(L) ? -1 : 0; }

/* ------------------------------------------------------------------------------------------ */
/* scalar POPCNT, SSSE3, AVX2, AVX-512                                                         */
/* ------------------------------------------------------------------------------------------ */

__attribute__((target("popcnt"))) static unsigned popcount_hw(uint64_t x) {
    return (unsigned)_mm_popcnt_u64(x);
}
__attribute__((target("popcnt"))) SCALAR_KERNEL(acc_popcnt, popcount_hw)
__attribute__((target("popcnt"))) SCALAR_BLOCK(bacc_popcnt, popcount_hw)

/* The byte path with SSSE3 (every x86-64 CPU with POPCNT has it): PMADDUBSW, four neurons a
 * pass sharing each code load, 16-bit pair sums widened every e_flush steps (each step adds one
 * pair sum to each 16-bit lane, whatever the vector width) */
__attribute__((target("ssse3"))) static void dot_ssse3(const layer_t *L, const uint8_t *x,
                                                        size_t ld, uint32_t n, int64_t *acc) {
    const uint32_t S = L->in_pad / 16, F = L->e_flush;
    const __m128i ones = _mm_set1_epi16(1);
    for (uint32_t o0 = 0; o0 < L->out; o0 += 4) {
        const int8_t *e[4];
        for (uint32_t r = 0; r < 4; r++) /* rows past the end repeat the last; not stored */
            e[r] = L->e + (size_t)(o0 + r < L->out ? o0 + r : L->out - 1) * L->in_pad;
        for (uint32_t i = 0; i < n; i++) {
            const uint8_t *xi = x + (size_t)i * ld;
            __m128i s[4] = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128(),
                            _mm_setzero_si128()};
            for (uint32_t t0 = 0; t0 < S; t0 += F) {
                uint32_t t1 = S - t0 < F ? S : t0 + F;
                __m128i a[4] = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128(),
                                _mm_setzero_si128()};
                for (size_t b = (size_t)t0 * 16; b < (size_t)t1 * 16; b += 16) {
                    __m128i xv = _mm_loadu_si128((const __m128i *)(xi + b));
                    for (int r = 0; r < 4; r++)
                        a[r] = _mm_add_epi16(a[r], _mm_maddubs_epi16(
                                                       xv, _mm_loadu_si128((const __m128i *)(e[r] + b))));
                }
                for (int r = 0; r < 4; r++) s[r] = _mm_add_epi32(s[r], _mm_madd_epi16(a[r], ones));
            }
            for (uint32_t r = 0; r < 4 && o0 + r < L->out; r++) {
                int32_t v[4];
                _mm_storeu_si128((__m128i *)v, s[r]);
                acc[(size_t)i * L->out + o0 + r] =
                    (int64_t)v[0] + v[1] + v[2] + v[3] + L->e_off[o0 + r];
            }
        }
    }
}

/* AVX2 has no popcount instruction: a nibble lookup (VPSHUFB) and byte sums (VPSADBW) */
__attribute__((target("avx2,popcnt"))) static inline __m256i popcnt256(__m256i v) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                         2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    __m256i lo = _mm256_and_si256(v, low);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
    __m256i c = _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
    return _mm256_sad_epu8(c, _mm256_setzero_si256());
}

/* lanes f..f+3 of the word-major input against their weight words (f a multiple of 4) */
__attribute__((target("avx2,popcnt"))) static inline __m256i weights256(const uint64_t *w,
                                                                        uint32_t f,
                                                                        uint32_t bits) {
    switch (bits) {
    case 1: return _mm256_loadu_si256((const __m256i *)(w + f));
    case 2: return _mm256_set_epi64x((long long)w[f / 2 + 1], (long long)w[f / 2 + 1],
                                     (long long)w[f / 2], (long long)w[f / 2]);
    default: return _mm256_set1_epi64x((long long)w[f / bits]);
    }
}

__attribute__((target("avx2,popcnt"))) static inline __m256i plane256(int op, __m256i x,
                                                                       __m256i w, __m256i ones) {
    switch (op) {
    case OP_XNOR: return _mm256_xor_si256(_mm256_xor_si256(x, w), ones);
    case OP_AND: return _mm256_and_si256(x, w);
    default: return _mm256_xor_si256(_mm256_or_si256(x, w), ones);
    }
}

/* One weight plane against all input planes, four words a step; inlined once per op (a
 * constant), so the plane op is not a branch in the loop. Sums planes 0..3 into s, 4..7 into t. */
__attribute__((target("avx2,popcnt"), always_inline)) static inline void planes256(
    const uint64_t *x, const uint64_t *w, uint32_t T4, uint32_t B, const int op, __m256i *s,
    __m256i *t) {
    const __m256i ones = _mm256_set1_epi64x(-1);
    for (uint32_t f = 0; f < T4; f += 4) {
        __m256i c = popcnt256(plane256(op, _mm256_loadu_si256((const __m256i *)(x + f)),
                                       weights256(w, f, B), ones));
        if (B == 8 && (f & 4)) /* planes 4..7 of a word */
            *t = _mm256_add_epi64(*t, c);
        else
            *s = _mm256_add_epi64(*s, c);
    }
}

__attribute__((target("avx2,popcnt"))) static void acc_avx2(const layer_t *L, const uint64_t *x,
                                                              int64_t *acc) {
    const uint32_t W = L->words, B = L->in_bits, T = W * B, T4 = T / 4 * 4;
    const __m256i sh = _mm256_set_epi64x(3 % B, 2 % B, 1 % B, 0);
    for (uint32_t o = 0; o < L->out; o++) {
        const uint64_t *wr = L->w + (size_t)o * L->w_bits * W;
        int64_t a = 0;
        for (uint32_t m = 0; m < L->w_bits; m++) {
            const uint64_t *w = wr + (size_t)m * W;
            const int op = L->op[m];
            __m256i s = _mm256_setzero_si256(), t = _mm256_setzero_si256();
            switch (op) {
            case OP_XNOR: planes256(x, w, T4, B, OP_XNOR, &s, &t); break;
            case OP_AND: planes256(x, w, T4, B, OP_AND, &s, &t); break;
            default: planes256(x, w, T4, B, OP_NOR, &s, &t); break;
            }
            uint32_t f = T4;
            s = _mm256_sllv_epi64(s, sh);
            t = _mm256_sllv_epi64(t, _mm256_add_epi64(sh, _mm256_set1_epi64x(4)));
            s = _mm256_add_epi64(s, t);
            uint64_t r = (uint64_t)_mm256_extract_epi64(s, 0) + (uint64_t)_mm256_extract_epi64(s, 1) +
                         (uint64_t)_mm256_extract_epi64(s, 2) + (uint64_t)_mm256_extract_epi64(s, 3);
            for (; f < T; f++) r += (uint64_t)popcount_hw(PLANE(op, x[f], w[f / B])) << (f % B);
            a += (int64_t)(r << m);
        }
        acc[o] = a;
    }
}

/* Register tiles for AVX2: four neurons x C (1 or 2) images share every load. The bit path
 * counts bytes with the nibble table (indices from nibble-split inputs and weights) into byte
 * accumulators (at most 8 a step, so VPSADBW folds them into 64-bit sums every 30 steps); XNOR
 * and NOR are counted as 64 W - popcount(XOR / OR), which is exact on pad bits too (input 0,
 * weight 1). The byte path multiplies codes (unsigned) by weights (signed) with VPMADDUBSW into
 * 16-bit pair sums, widened by VPMADDWD every e_flush steps, before they can overflow. */
/* the plane op, as XOR for XNOR and OR for NOR (the caller counts their complements) */
__attribute__((target("avx2"), always_inline)) static inline __m256i bop256(int op, __m256i x,
                                                                              __m256i w) {
    return op == OP_XNOR ? _mm256_xor_si256(x, w)
           : op == OP_AND ? _mm256_and_si256(x, w)
                          : _mm256_or_si256(x, w);
}

/* Four 64-bit vectors' lane sums: [sum a, sum b, sum c, sum d] */
__attribute__((target("avx2"))) static inline __m256i sum4x64(__m256i a, __m256i b, __m256i c,
                                                              __m256i d) {
    __m256i ab = _mm256_add_epi64(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
    __m256i cd = _mm256_add_epi64(_mm256_unpacklo_epi64(c, d), _mm256_unpackhi_epi64(c, d));
    return _mm256_add_epi64(_mm256_permute2x128_si256(ab, cd, 0x20),
                            _mm256_permute2x128_si256(ab, cd, 0x31));
}

/* byte counts of the nibble-table lookups of two index vectors, added to c (at most 8 a byte) */
__attribute__((target("avx2"), always_inline)) static inline __m256i count8n(__m256i lo, __m256i hi,
                                                                              __m256i c) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                         2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    return _mm256_add_epi8(c, _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo),
                                              _mm256_shuffle_epi8(lut, hi)));
}

#define BIT_COUNT(C8, XL, XH, R)                                                            \
    C8 = count8n(bop256(op, XL, _mm256_load_si256((const __m256i *)(wl[R] + f))),           \
                 bop256(op, XH, _mm256_load_si256((const __m256i *)(wh[R] + f))), C8)
#define BIT_SPLIT(XV, XL, XH)                                                               \
    const __m256i XL = _mm256_and_si256(XV, low), XH = _mm256_and_si256(_mm256_srli_epi16(XV, 4), low)
#define BIT_STEP(LOAD)                                                                      \
    do {                                                                                    \
        __m256i x0v = LOAD(x + f);                                                          \
        BIT_SPLIT(x0v, xl0, xh0);                                                           \
        BIT_COUNT(b00, xl0, xh0, 0);                                                        \
        BIT_COUNT(b10, xl0, xh0, 1);                                                        \
        BIT_COUNT(b20, xl0, xh0, 2);                                                        \
        BIT_COUNT(b30, xl0, xh0, 3);                                                        \
        if (C == 2) {                                                                       \
            __m256i x1v = LOAD(x1 + f);                                                     \
            BIT_SPLIT(x1v, xl1, xh1);                                                       \
            BIT_COUNT(b01, xl1, xh1, 0);                                                    \
            BIT_COUNT(b11, xl1, xh1, 1);                                                    \
            BIT_COUNT(b21, xl1, xh1, 2);                                                    \
            BIT_COUNT(b31, xl1, xh1, 3);                                                    \
        }                                                                                   \
    } while (0)
#define LOAD_FULL(P) _mm256_loadu_si256((const __m256i *)(P))
#define LOAD_TAIL(P) _mm256_maskload_epi64((const long long *)(P), tmask)
#define SAD(V) _mm256_sad_epu8(V, z)

/* Weight plane m (met by op) of four rows (nibble weights wl[r], wl[r] + nw) against n images
 * of 1-bit codes, two at a time: dst[i * out + r] = (first ? base : dst) +- (popcount << m)
 * for the first `rows` rows (+ for AND; XNOR and NOR count 64 W - popcount(XOR, OR): base holds
 * the 64 W << m of those planes). Byte counts grow by at most 8 a step: folded every 30 steps
 * (+ the tail's); the last step's missing input words are masked to 0, the nibble weights are 0
 * there. */
__attribute__((target("avx2"), always_inline)) static inline void bit_plane_avx2(
    const layer_t *L, const uint64_t *x, size_t ld, uint32_t n, const uint64_t *const wl[4],
    const int op, uint32_t m, int first, __m256i base, uint32_t rows, int64_t *dst) {
    const uint32_t W = L->words, W4 = W / 4 * 4, tail = W - W4;
    const __m256i z = _mm256_setzero_si256(), low = _mm256_set1_epi8(0x0f);
    const __m128i sh = _mm_cvtsi32_si128((int)m);
    const __m256i tmask = _mm256_cmpgt_epi64(_mm256_set1_epi64x(tail), _mm256_set_epi64x(3, 2, 1, 0));
    const uint64_t *wh[4] = {wl[0] + L->nw, wl[1] + L->nw, wl[2] + L->nw, wl[3] + L->nw};
    for (uint32_t i = 0; i < n; i += 2, x += 2 * ld) {
        const int C = n - i < 2 ? 1 : 2;
        const uint64_t *x1 = x + (C == 2 ? ld : 0);
        __m256i a[2] = {z, z};
        uint32_t f = 0;
        do {
            uint32_t f1 = W4 - f < 4 * 30 ? W4 : f + 4 * 30;
            __m256i b00 = z, b10 = z, b20 = z, b30 = z, b01 = z, b11 = z, b21 = z, b31 = z;
            for (; f < f1; f += 4) BIT_STEP(LOAD_FULL);
            if (f == W4 && tail) BIT_STEP(LOAD_TAIL);
            a[0] = _mm256_add_epi64(a[0], sum4x64(SAD(b00), SAD(b10), SAD(b20), SAD(b30)));
            if (C == 2)
                a[1] = _mm256_add_epi64(a[1], sum4x64(SAD(b01), SAD(b11), SAD(b21), SAD(b31)));
        } while (f < W4);
        for (int c = 0; c < C; c++) {
            int64_t *d = dst + (size_t)(i + c) * L->out, t[4];
            __m256i v = _mm256_sll_epi64(a[c], sh);
            if (rows == 4) { /* (a masked store is slow on some CPUs) */
                __m256i prev = first ? base : _mm256_loadu_si256((const __m256i *)d);
                v = op == OP_AND ? _mm256_add_epi64(prev, v) : _mm256_sub_epi64(prev, v);
                _mm256_storeu_si256((__m256i *)d, v);
            } else {
                memcpy(t, d, rows * sizeof *t);
                __m256i prev = first ? base : _mm256_loadu_si256((const __m256i *)t);
                v = op == OP_AND ? _mm256_add_epi64(prev, v) : _mm256_sub_epi64(prev, v);
                _mm256_storeu_si256((__m256i *)t, v);
                memcpy(d, t, rows * sizeof *t);
            }
        }
    }
}

__attribute__((target("avx2"))) static void bacc_avx2(const layer_t *L, acc_fn one,
                                                       const uint64_t *x, size_t ld, uint32_t n,
                                                       int64_t *acc) {
    if (L->in_bits != 1 || !L->wn || n == 1) { /* a lone image: the weights' bytes once */
        hq_bacc_each(L, one, x, ld, n, acc);
        return;
    }
    int64_t b = 0;
    for (uint32_t m = 0; m < L->w_bits; m++)
        if (L->op[m] != OP_AND) b += (int64_t)64 * L->words << m;
    const __m256i base = _mm256_set1_epi64x(b);
    const size_t stride = (size_t)L->w_bits * 2 * L->nw;
    for (uint32_t o0 = 0; o0 < L->out; o0 += 4) {
        uint32_t rows = L->out - o0 < 4 ? L->out - o0 : 4;
        const uint64_t *wrow[4];
        for (uint32_t r = 0; r < 4; r++) /* rows past the end repeat the last; not stored */
            wrow[r] = L->wn + (size_t)(r < rows ? o0 + r : L->out - 1) * stride;
        for (uint32_t m = 0; m < L->w_bits; m++) {
            const size_t mo = (size_t)m * 2 * L->nw;
            const uint64_t *const wl[4] = {wrow[0] + mo, wrow[1] + mo, wrow[2] + mo, wrow[3] + mo};
            switch (L->op[m]) {
            case OP_XNOR: bit_plane_avx2(L, x, ld, n, wl, OP_XNOR, m, !m, base, rows, acc + o0); break;
            case OP_AND: bit_plane_avx2(L, x, ld, n, wl, OP_AND, m, !m, base, rows, acc + o0); break;
            default: bit_plane_avx2(L, x, ld, n, wl, OP_NOR, m, !m, base, rows, acc + o0); break;
            }
        }
    }
}

/* One tile of the byte path: rows o0..o0+3 of C (1 or 2) images. Spelled out per accumulator
 * (arrays of vectors cost register copies here). */
#define DOT_MAC(A, X, E) A = _mm256_add_epi16(_mm256_maddubs_epi16(X, E), A)
#define DOT_WIDEN(A32, A16) A32 = _mm256_add_epi32(A32, _mm256_madd_epi16(A16, ones))

/* Four 32-bit vectors' lane sums, widened: [sum a, sum b, sum c, sum d] */
__attribute__((target("avx2"))) static inline __m256i sum4x32(__m256i a, __m256i b, __m256i c,
                                                              __m256i d) {
    __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    return _mm256_cvtepi32_epi64(
        _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)));
}

__attribute__((target("avx2"), always_inline)) static inline void dot_tile_avx2(
    const layer_t *L, const uint8_t *x, size_t ld, uint32_t o0, const int C, __m256i a[2]) {
    const uint32_t S = L->in_pad / 32, F = L->e_flush;
    const __m256i ones = _mm256_set1_epi16(1);
    const int8_t *e[4];
    for (uint32_t r = 0; r < 4; r++) /* rows past the end repeat the last; not stored */
        e[r] = L->e + (size_t)(o0 + r < L->out ? o0 + r : L->out - 1) * L->in_pad;
    const uint8_t *x1 = x + (C == 2 ? ld : 0);
    __m256i s00 = _mm256_setzero_si256(), s10 = s00, s20 = s00, s30 = s00;
    __m256i s01 = s00, s11 = s00, s21 = s00, s31 = s00;
    for (uint32_t t0 = 0; t0 < S; t0 += F) {
        uint32_t t1 = S - t0 < F ? S : t0 + F;
        __m256i a00 = _mm256_setzero_si256(), a10 = a00, a20 = a00, a30 = a00;
        __m256i a01 = a00, a11 = a00, a21 = a00, a31 = a00;
        for (size_t b = (size_t)t0 * 32; b < (size_t)t1 * 32; b += 32) {
            __m256i x0v = _mm256_loadu_si256((const __m256i *)(x + b));
            __m256i e0 = _mm256_loadu_si256((const __m256i *)(e[0] + b));
            __m256i e1 = _mm256_loadu_si256((const __m256i *)(e[1] + b));
            __m256i e2 = _mm256_loadu_si256((const __m256i *)(e[2] + b));
            __m256i e3 = _mm256_loadu_si256((const __m256i *)(e[3] + b));
            DOT_MAC(a00, x0v, e0);
            DOT_MAC(a10, x0v, e1);
            DOT_MAC(a20, x0v, e2);
            DOT_MAC(a30, x0v, e3);
            if (C == 2) {
                __m256i x1v = _mm256_loadu_si256((const __m256i *)(x1 + b));
                DOT_MAC(a01, x1v, e0);
                DOT_MAC(a11, x1v, e1);
                DOT_MAC(a21, x1v, e2);
                DOT_MAC(a31, x1v, e3);
            }
        }
        DOT_WIDEN(s00, a00);
        DOT_WIDEN(s10, a10);
        DOT_WIDEN(s20, a20);
        DOT_WIDEN(s30, a30);
        if (C == 2) {
            DOT_WIDEN(s01, a01);
            DOT_WIDEN(s11, a11);
            DOT_WIDEN(s21, a21);
            DOT_WIDEN(s31, a31);
        }
    }
    a[0] = sum4x32(s00, s10, s20, s30);
    if (C == 2) a[1] = sum4x32(s01, s11, s21, s31);
}

__attribute__((target("avx2"))) static void dot_avx2(const layer_t *L, const uint8_t *x,
                                                       size_t ld, uint32_t n, int64_t *acc) {
    for (uint32_t o0 = 0; o0 < L->out; o0 += 4) {
        uint32_t rows = L->out - o0 < 4 ? L->out - o0 : 4;
        int64_t off[4] = {0, 0, 0, 0};
        memcpy(off, L->e_off + o0, rows * sizeof *off);
        const __m256i offv = _mm256_loadu_si256((const __m256i *)off);
        for (uint32_t i = 0; i < n; i += 2) {
            __m256i a[2];
            int C = n - i < 2 ? 1 : 2;
            if (C == 2)
                dot_tile_avx2(L, x + (size_t)i * ld, ld, o0, 2, a);
            else
                dot_tile_avx2(L, x + (size_t)i * ld, ld, o0, 1, a);
            for (int c = 0; c < C; c++) {
                int64_t *dst = acc + (size_t)(i + c) * L->out + o0, t[4];
                __m256i v = _mm256_add_epi64(a[c], offv);
                if (rows == 4) { /* (a masked store is slow on some CPUs) */
                    _mm256_storeu_si256((__m256i *)dst, v);
                } else {
                    _mm256_storeu_si256((__m256i *)t, v);
                    memcpy(dst, t, rows * sizeof *t);
                }
            }
        }
    }
}

/* AVX-512: lane i of a vector is flat word f + i of the word-major input (plane (f+i) % bits of
 * word (f+i) / bits); the weight word is broadcast or permuted to match, the plane op is one
 * VPTERNLOGQ (or VPANDQ) and VPOPCNTQ counts. Eight rows at a time share each input load; their
 * eight lane vectors are shifted by 2^(n+m) and summed into one vector of eight accumulators by a
 * transposing add. */
__attribute__((target("avx512f,avx512vpopcntdq"))) static inline __m512i sum8(__m512i v[8]) {
    __m512i t[4], u[2];
    for (int i = 0; i < 4; i++)
        t[i] = _mm512_add_epi64(_mm512_unpacklo_epi64(v[2 * i], v[2 * i + 1]),
                                _mm512_unpackhi_epi64(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 2; i++)
        u[i] = _mm512_add_epi64(_mm512_shuffle_i64x2(t[2 * i], t[2 * i + 1], 0x88),
                                _mm512_shuffle_i64x2(t[2 * i], t[2 * i + 1], 0xdd));
    return _mm512_add_epi64(_mm512_shuffle_i64x2(u[0], u[1], 0x88),
                            _mm512_shuffle_i64x2(u[0], u[1], 0xdd));
}

__attribute__((target("avx512f,avx512vpopcntdq"))) static inline __m512i plane512(int op,
                                                                                   __m512i x,
                                                                                   __m512i w) {
    switch (op) {
    case OP_XNOR: return _mm512_ternarylogic_epi64(x, w, w, 0xc3); /* ~(x ^ w) */
    case OP_AND: return _mm512_and_si512(x, w);
    default: return _mm512_ternarylogic_epi64(x, w, w, 0x03); /* ~(x | w) */
    }
}

/* Weight plane (offset mo) of eight rows against the first T8 input words; inlined once per op
 * (a constant), so the plane op is not a branch in the loop. */
__attribute__((target("avx512f,avx512vpopcntdq"), always_inline)) static inline void planes512(
    const uint64_t *x, const uint64_t *const wr[8], size_t mo, uint32_t T8, uint32_t B,
    __m512i idx, __mmask8 wfull, const int op, __m512i s[8]) {
    if (B == 8) {
        for (uint32_t f = 0; f < T8; f += 8) {
            __m512i xv = _mm512_loadu_si512(x + f);
            for (int r = 0; r < 8; r++) {
                __m512i wv = _mm512_set1_epi64((long long)wr[r][mo + f / 8]);
                s[r] = _mm512_add_epi64(s[r], _mm512_popcnt_epi64(plane512(op, xv, wv)));
            }
        }
        return;
    }
    for (uint32_t f = 0; f < T8; f += 8) {
        __m512i xv = _mm512_loadu_si512(x + f);
        for (int r = 0; r < 8; r++) {
            __m512i wv = _mm512_maskz_loadu_epi64(wfull, wr[r] + mo + f / B);
            if (B > 1) wv = _mm512_permutexvar_epi64(idx, wv);
            s[r] = _mm512_add_epi64(s[r], _mm512_popcnt_epi64(plane512(op, xv, wv)));
        }
    }
}

__attribute__((target("avx512f,avx512vpopcntdq"))) static void acc_avx512(const layer_t *L,
                                                                            const uint64_t *x,
                                                                            int64_t *acc) {
    const uint32_t W = L->words, B = L->in_bits, T = W * B, T8 = T / 8 * 8;
    const size_t stride = (size_t)L->w_bits * W;
    const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i sh = _mm512_and_si512(lane, _mm512_set1_epi64(B - 1)); /* (i % B) */
    const __m512i idx = _mm512_srli_epi64(lane, B == 8 ? 3 : B == 4 ? 2 : B == 2 ? 1 : 0);
    const uint32_t tl = T - T8, tw = (tl + B - 1) / B;
    const __mmask8 tmask = (__mmask8)((1u << tl) - 1), twmask = (__mmask8)((1u << tw) - 1);
    const __mmask8 wfull = (__mmask8)((1u << (8 / B)) - 1); /* the words one vector needs */
    for (uint32_t o0 = 0; o0 < L->out; o0 += 8) {
        const uint64_t *wr[8];
        for (uint32_t r = 0; r < 8; r++) /* rows past the end repeat the last; not stored */
            wr[r] = L->w + (size_t)(o0 + r < L->out ? o0 + r : L->out - 1) * stride;
        __m512i a[8];
        for (int r = 0; r < 8; r++) a[r] = _mm512_setzero_si512();
        for (uint32_t m = 0; m < L->w_bits; m++) {
            __m512i s[8];
            for (int r = 0; r < 8; r++) s[r] = _mm512_setzero_si512();
            const size_t mo = (size_t)m * W;
            const int op = L->op[m];
            switch (op) {
            case OP_XNOR: planes512(x, wr, mo, T8, B, idx, wfull, OP_XNOR, s); break;
            case OP_AND: planes512(x, wr, mo, T8, B, idx, wfull, OP_AND, s); break;
            default: planes512(x, wr, mo, T8, B, idx, wfull, OP_NOR, s); break;
            }
            uint32_t f = T8;
            if (tl) {
                __m512i xv = _mm512_maskz_loadu_epi64(tmask, x + f);
                for (int r = 0; r < 8; r++) {
                    __m512i wv = _mm512_maskz_loadu_epi64(twmask, wr[r] + mo + f / B);
                    if (B > 1) wv = _mm512_permutexvar_epi64(idx, wv);
                    __m512i v = plane512(op, xv, wv);
                    s[r] = _mm512_add_epi64(s[r], _mm512_maskz_popcnt_epi64(tmask, v));
                }
            }
            const __m512i shm = _mm512_add_epi64(sh, _mm512_set1_epi64(m));
            for (int r = 0; r < 8; r++) a[r] = _mm512_add_epi64(a[r], _mm512_sllv_epi64(s[r], shm));
        }
        uint32_t rows = L->out - o0 < 8 ? L->out - o0 : 8;
        _mm512_mask_storeu_epi64(acc + o0, (__mmask8)((1u << rows) - 1), sum8(a));
    }
}

/* All planes of 64 codes at once: VPTESTMB gives bit n of 64 bytes as a 64-bit mask. */
__attribute__((target("avx512f,avx512bw"))) static void pack_avx512(const uint8_t *codes,
                                                                      uint32_t k, uint32_t bits,
                                                                      uint32_t words,
                                                                      uint64_t *x) {
    for (uint32_t w = 0; w < words; w++) {
        uint32_t j0 = w * 64, m = k - j0 < 64 ? k - j0 : 64;
        __mmask64 lm = m == 64 ? ~(__mmask64)0 : (((__mmask64)1 << m) - 1);
        __m512i v = _mm512_maskz_loadu_epi8(lm, codes + j0); /* pad codes are 0 */
        for (uint32_t n = 0; n < bits; n++)
            x[(size_t)w * bits + n] = _mm512_test_epi8_mask(v, _mm512_set1_epi8((char)(1 << n)));
    }
}

/* A 1-bit hidden layer's thresholds, eight neurons a compare, written straight into the next
 * layer's packed input (one plane). Flip bytes are read eight at a time: the file pads them. */
__attribute__((target("avx512f"))) static void threshold1_avx512(const layer_t *L,
                                                                   const int64_t *acc,
                                                                   uint64_t *x) {
    const __m512i amax = _mm512_set1_epi64(L->acc_max);
    memset(x, 0, (size_t)((L->out + 63) / 64) * 8);
    for (uint32_t o0 = 0; o0 < L->out; o0 += 8) {
        uint32_t rows = L->out - o0 < 8 ? L->out - o0 : 8;
        __mmask8 rm = (__mmask8)((1u << rows) - 1);
        uint64_t fb;
        memcpy(&fb, L->flip + o0, 8);
        __mmask8 fm = (__mmask8)gather_plane8(fb, 0);
        __m512i a = _mm512_maskz_loadu_epi64(rm, acc + o0);
        a = _mm512_mask_sub_epi64(a, fm, amax, a);
        __m512i t = _mm512_maskz_loadu_epi64(rm, L->t + o0);
        x[o0 / 64] |= (uint64_t)_mm512_mask_cmpge_epi64_mask(rm, a, t) << (o0 % 64);
    }
}

/* Register tiles for AVX-512: eight neurons (one vector, the transposed weights of build_lanes)
 * x C (up to 8) images of 1-bit codes. Step k loads the neurons' word k once and meets each
 * image's word k broadcast (VPTERNLOGQ with an embedded broadcast), VPOPCNTQ counts: lane r of
 * s[c] is neuron o0 + r's count for image c, so no reduction is needed. The plane ops are exact
 * on pad bits (input 0, weight 1: 0 under XNOR, AND and NOR). */
__attribute__((target("avx512f,avx512vpopcntdq"), always_inline)) static inline void tile512(
    const uint64_t *wt, uint32_t W, const uint64_t *x, size_t ld, const int C, const int op,
    __m512i s[8]) {
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) s[c] = _mm512_setzero_si512();
    for (uint32_t k = 0; k < W; k++) {
        const __m512i wv = _mm512_load_si512(wt + (size_t)k * 8);
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            __m512i v = plane512(op, _mm512_set1_epi64((long long)x[c * ld + k]), wv);
            s[c] = _mm512_add_epi64(s[c], _mm512_popcnt_epi64(v));
        }
    }
}

/* Rows o0..o0+7 (rm: those that exist) of images i..i+C-1, every weight plane, into acc. */
__attribute__((target("avx512f,avx512vpopcntdq"), always_inline)) static inline void block512(
    const layer_t *L, const uint64_t *x, size_t ld, uint32_t o0, __mmask8 rm, const int C,
    int64_t *acc) {
    const uint32_t W = L->words;
    const uint64_t *wt = L->wt + (size_t)o0 * L->w_bits * W;
    __m512i a[8], s[8];
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) a[c] = _mm512_setzero_si512();
    for (uint32_t m = 0; m < L->w_bits; m++, wt += (size_t)W * 8) {
        switch (L->op[m]) {
        case OP_XNOR: tile512(wt, W, x, ld, C, OP_XNOR, s); break;
        case OP_AND: tile512(wt, W, x, ld, C, OP_AND, s); break;
        default: tile512(wt, W, x, ld, C, OP_NOR, s); break;
        }
#pragma GCC unroll 8
        for (int c = 0; c < C; c++)
            a[c] = _mm512_add_epi64(a[c], _mm512_slli_epi64(s[c], m));
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) _mm512_mask_storeu_epi64(acc + (size_t)c * L->out + o0, rm, a[c]);
}

__attribute__((target("avx512f,avx512vpopcntdq"))) static void bacc_avx512(const layer_t *L,
                                                                             acc_fn one,
                                                                             const uint64_t *x,
                                                                             size_t ld, uint32_t n,
                                                                             int64_t *acc) {
    if (L->in_bits != 1 || !L->wt || n == 1) { /* a lone image: eight words a load */
        hq_bacc_each(L, one, x, ld, n, acc);
        return;
    }
    for (uint32_t o0 = 0; o0 < L->out; o0 += 8) {
        const uint32_t rows = L->out - o0 < 8 ? L->out - o0 : 8;
        const __mmask8 rm = (__mmask8)((1u << rows) - 1);
        for (uint32_t i = 0; i < n; i += 8) {
            const uint64_t *xi = x + (size_t)i * ld;
            int64_t *ai = acc + (size_t)i * L->out;
            switch (n - i < 8 ? n - i : 8) {
            case 1: block512(L, xi, ld, o0, rm, 1, ai); break;
            case 2: block512(L, xi, ld, o0, rm, 2, ai); break;
            case 3: block512(L, xi, ld, o0, rm, 3, ai); break;
            case 4: block512(L, xi, ld, o0, rm, 4, ai); break;
            case 5: block512(L, xi, ld, o0, rm, 5, ai); break;
            case 6: block512(L, xi, ld, o0, rm, 6, ai); break;
            case 7: block512(L, xi, ld, o0, rm, 7, ai); break;
            default: block512(L, xi, ld, o0, rm, 8, ai); break;
            }
        }
    }
}

/* The byte path with AVX-512 VNNI: VPDPBUSD multiplies 64 codes (unsigned) by their signed byte
 * weights and adds each four products into a 32-bit lane, so no 16-bit pair sums to widen (every
 * partial sum fits int32, see build_dot). Tiles of four neurons x C (up to 4) images share the
 * loads; each accumulator's halves are added and summed four neurons at a time (sum4x32). */
__attribute__((target("avx512f,avx512bw,avx512vnni,avx2"))) static inline __m256i half512(
    __m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

__attribute__((target("avx512f,avx512bw,avx512vnni,avx2"), always_inline)) static inline void
dot_tile512(const layer_t *L, const uint8_t *x, size_t ld, const int8_t *const e[4], const int C,
            __m256i out[4]) {
    __m512i s[4][4];
#pragma GCC unroll 4
    for (int c = 0; c < C; c++)
        s[0][c] = s[1][c] = s[2][c] = s[3][c] = _mm512_setzero_si512();
    for (size_t b = 0; b < L->in_pad; b += 64) {
        __m512i xv[4];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) xv[c] = _mm512_loadu_si512(x + (size_t)c * ld + b);
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const __m512i ev = _mm512_load_si512(e[r] + b);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) s[r][c] = _mm512_dpbusd_epi32(s[r][c], xv[c], ev);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < C; c++)
        out[c] = sum4x32(half512(s[0][c]), half512(s[1][c]), half512(s[2][c]), half512(s[3][c]));
}

__attribute__((target("avx512f,avx512bw,avx512vnni,avx2"))) static void dot_avx512(
    const layer_t *L, const uint8_t *x, size_t ld, uint32_t n, int64_t *acc) {
    if (n == 1) { /* a lone image: four dependent sums a tile wait on VPDPBUSD's latency */
        dot_avx2(L, x, ld, n, acc);
        return;
    }
    for (uint32_t o0 = 0; o0 < L->out; o0 += 4) {
        const uint32_t rows = L->out - o0 < 4 ? L->out - o0 : 4;
        const int8_t *e[4];
        for (uint32_t r = 0; r < 4; r++) /* rows past the end repeat the last; not stored */
            e[r] = L->e + (size_t)(o0 + r < L->out ? o0 + r : L->out - 1) * L->in_pad;
        int64_t off[4] = {0, 0, 0, 0};
        memcpy(off, L->e_off + o0, rows * sizeof *off);
        const __m256i offv = _mm256_loadu_si256((const __m256i *)off);
        for (uint32_t i = 0; i < n; i += 4) {
            const uint8_t *xi = x + (size_t)i * ld;
            const int C = n - i < 4 ? (int)(n - i) : 4;
            __m256i a[4];
            switch (C) {
            case 1: dot_tile512(L, xi, ld, e, 1, a); break;
            case 2: dot_tile512(L, xi, ld, e, 2, a); break;
            case 3: dot_tile512(L, xi, ld, e, 3, a); break;
            default: dot_tile512(L, xi, ld, e, 4, a); break;
            }
            for (int c = 0; c < C; c++) {
                int64_t *dst = acc + (size_t)(i + c) * L->out + o0, t[4];
                _mm256_storeu_si256((__m256i *)t, _mm256_add_epi64(a[c], offv));
                memcpy(dst, t, rows * sizeof *t);
            }
        }
    }
}

/* ... four neurons a compare (flip bytes are read four at a time: the file pads them to 8) */
__attribute__((target("avx2"))) static void threshold1_avx2(const layer_t *L, const int64_t *acc,
                                                             uint64_t *x) {
    const __m256i amax = _mm256_set1_epi64x(L->acc_max);
    const uint32_t O4 = L->out / 4 * 4;
    memset(x, 0, (size_t)((L->out + 63) / 64) * 8);
    for (uint32_t o = 0; o < O4; o += 4) {
        int32_t fb;
        memcpy(&fb, L->flip + o, 4);
        __m256i f = _mm256_cmpgt_epi64(_mm256_cvtepu8_epi64(_mm_cvtsi32_si128(fb)),
                                       _mm256_setzero_si256());
        __m256i a = _mm256_loadu_si256((const __m256i *)(acc + o));
        a = _mm256_blendv_epi8(a, _mm256_sub_epi64(amax, a), f);
        __m256i lt = _mm256_cmpgt_epi64(_mm256_loadu_si256((const __m256i *)(L->t + o)), a);
        uint64_t bits = (uint64_t)(~_mm256_movemask_pd(_mm256_castsi256_pd(lt)) & 15);
        x[o / 64] |= bits << (o % 64);
    }
    hq_threshold1_from(L, acc, O4, x);
}

const kernel_t hq_kernel_popcnt = {"popcnt",  acc_popcnt,     bacc_popcnt,
                                   dot_ssse3, hq_pack_planes, hq_threshold1_c};
const kernel_t hq_kernel_avx2 = {"avx2",   acc_avx2,       bacc_avx2,
                                 dot_avx2, hq_pack_planes, threshold1_avx2};
const kernel_t hq_kernel_avx512 = {"avx512",   acc_avx512,  bacc_avx512,
                                   dot_avx512, pack_avx512, threshold1_avx512};
#endif
