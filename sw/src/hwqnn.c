/*
 * hwqnn.c: load an hwqnn flat file and run it, bit-exactly, with integer kernels on 64-bit words.
 *
 * The file layout and the arithmetic are stated once, in hwqnn/bundle.py. This file holds the
 * loader (every field checked before anything is allocated from it), the bit-plane packer, two
 * paths per matrix layer with the same accumulator (the byte path: codes of 2-8 bits times one
 * signed byte per weight, folded from the bit planes at load, see build_dot; the bit path:
 * XNOR/AND/NOR-popcount of bit planes), kernel families for each instruction set (portable C,
 * scalar POPCNT with SSSE3, AVX2, AVX-512 VPOPCNTQ, ARM NEON; the best one the CPU has is chosen
 * at run time), the layer kinds (dense; conv2d as the same kernels on blocks of output pixels'
 * windows, gathered in im2col order; maxpool2d on codes) and a driver that runs blocks of images
 * layer by layer over POSIX threads.
 */
#define _POSIX_C_SOURCE 200809L
#include "hwqnn.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

#define MAGIC "HWQNNFLT"
#define HEADER_BYTES 32u
#define INPUT_BYTES 16u   /* versions 2 and 3: the input record after the header */
#define RECORD_BYTES 32u  /* versions 1 and 2: 8 x u32, dense layers */
#define RECORD3_BYTES 64u /* version 3: 16 x u32, any kind */
#define MAX_LAYERS 256u
#define MAX_FEATURES (1u << 24)
#define MAX_SIDE (1u << 12)
#define MAX_KERNEL 16u
#define MAX_STRIDE 8u

enum { KIND_DENSE = 0, KIND_CONV = 1, KIND_POOL = 2 };
enum { ENC_ODD = 0, ENC_UNSIGNED = 1, ENC_SIGNED = 2 };
enum { OP_XNOR = 0, OP_AND = 1, OP_NOR = 2 }; /* how a weight plane meets an input plane */

/* One layer record, whatever the file's version: a dense layer of version 1 or 2 is kind 0 with
 * rows = out, cols = in and no geometry. */
typedef struct {
    uint32_t kind, in, out, in_bits, w_bits, out_bits, rows, cols, words;
    uint32_t height, width, channels, kernel, stride, pad, enc; /* enc: 0 before version 4 */
} rec_t;

/* A version-4/5 record's encodings: in | w << 2 | out << 4 | bias << 6 | scale << 7 (5). */
static uint32_t enc_in(uint32_t e) { return e & 3; }
static uint32_t enc_w(uint32_t e) { return (e >> 2) & 3; }
static uint32_t enc_out(uint32_t e) { return (e >> 4) & 3; }
static uint32_t enc_bias(uint32_t e) { return (e >> 6) & 1; }
static uint32_t enc_scale(uint32_t e) { return (e >> 7) & 1; }

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
/* errors                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static int fail(char *err, size_t len, int code, const char *fmt, ...) {
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ------------------------------------------------------------------------------------------ */
/* little-endian reads and the checksum                                                       */
/* ------------------------------------------------------------------------------------------ */

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p) {
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint64_t fnv1a64(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int host_is_little_endian(void) {
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* ------------------------------------------------------------------------------------------ */
/* loading                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* a += b, refusing overflow of size_t */
static int add_size(size_t *a, size_t b) {
    if (b > SIZE_MAX - *a) return 0;
    *a += b;
    return 1;
}

static int mul_size(size_t *out, size_t a, size_t b) {
    if (a && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* Memory on a 64-byte boundary (vector loads then never split a cache line), zeroed or not;
 * free() */
static void *alloc64(size_t count, size_t size, int zero) {
    size_t bytes;
    void *p = NULL;
    if (!mul_size(&bytes, count ? count : 1, size ? size : 1)) return NULL;
    if (posix_memalign(&p, 64, bytes)) return NULL;
    if (zero) memset(p, 0, bytes);
    return p;
}

static int bits_ok(uint32_t k) { return k == 1 || k == 2 || k == 4 || k == 8; }
static int code_bits_ok(uint32_t k) { return k == 1 || k == 2 || k == 4; }

/* The record at r as one shape for every version. */
static rec_t read_record(const unsigned char *r, uint32_t version) {
    if (version < 3) {
        uint32_t in = rd32(r), out = rd32(r + 4);
        return (rec_t){KIND_DENSE, in, out, rd32(r + 8), rd32(r + 12), rd32(r + 16), out, in,
                       rd32(r + 20), 0, 0, 0, 0, 0, 0, rd32(r + 24) | rd32(r + 28)};
    }
    uint32_t f[16];
    for (int k = 0; k < 16; k++) f[k] = rd32(r + 4 * k);
    return (rec_t){f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7],
                   f[8], f[9], f[10], f[11], f[12], f[13], f[14], f[15]};
}

/* A conv or pool record's window: every field in range and the image it reads. Out: the output
 * image's height and width. */
static int check_window(const rec_t *r, uint32_t i, const char *name, char *err, size_t err_len,
                        uint32_t *out_h, uint32_t *out_w) {
    if (r->height < 1 || r->height > MAX_SIDE || r->width < 1 || r->width > MAX_SIDE ||
        r->channels < 1 || r->channels > MAX_FEATURES)
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'layer%u.in_shape': expected height and width in 1..%u and channels "
                    "in 1..%u, found %ux%ux%u",
                    name, i, MAX_SIDE, MAX_FEATURES, r->height, r->width, r->channels);
    if (r->kernel < 1 || r->kernel > MAX_KERNEL)
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'layer%u.kernel': expected 1..%u, found %u", name, i, MAX_KERNEL,
                    r->kernel);
    if (r->stride < 1 || r->stride > MAX_STRIDE)
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'layer%u.stride': expected 1..%u, found %u", name, i, MAX_STRIDE,
                    r->stride);
    uint32_t max_pad = r->kind == KIND_POOL ? 0 : r->kernel - 1;
    if (r->pad > max_pad)
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'layer%u.padding': expected 0..%u, found %u", name, i, max_pad,
                    r->pad);
    if (r->height + 2 * r->pad < r->kernel || r->width + 2 * r->pad < r->kernel)
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'layer%u.in_shape': a padded %ux%u image is smaller than the "
                    "%ux%u kernel",
                    name, i, r->height, r->width, r->kernel, r->kernel);
    if ((uint64_t)r->height * r->width * r->channels != r->in)
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'layer%u.in_features': expected %ux%ux%u = %llu, found %u", name, i,
                    r->height, r->width, r->channels,
                    (unsigned long long)r->height * r->width * r->channels, r->in);
    *out_h = (r->height + 2 * r->pad - r->kernel) / r->stride + 1;
    *out_w = (r->width + 2 * r->pad - r->kernel) / r->stride + 1;
    return HWQNN_OK;
}

/* Every field of record i on its own, then against the header and the record before it. */
static int check_enc(const rec_t *r, const rec_t *prev, uint32_t i, int last, uint32_t version,
                     const char *name, char *err, size_t err_len) {
    uint32_t e = r->enc;
    if (version < 4 && e)
        return fail(err, err_len, HWQNN_EFORMAT, "%s: field 'layer%u.reserved': expected 0", name,
                    i);
    int pool = r->kind == KIND_POOL;
    if (e >> (version >= 5 ? 8 : 7) || enc_in(e) > 2 || enc_w(e) > 2 || enc_out(e) > 2 ||
        (pool && (enc_w(e) || enc_out(e) != enc_in(e) || enc_bias(e) || enc_scale(e))) ||
        (last && enc_out(e)) || (!last && (enc_bias(e) || enc_scale(e))))
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'layer%u.encodings': expected in | w << 2 | out << 4 | bias << 6 "
                    "| scale << 7 (version 5), each 0..2 (a max-pool: w 0, out = in; out 0, a "
                    "bias and a scale only on the last layer), found %u",
                    name, i, e);
    if (prev && enc_in(e) != enc_out(prev->enc))
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'layer%u.in_enc': expected %u from layer %u, found %u", name, i,
                    enc_out(prev->enc), i - 1, enc_in(e));
    return HWQNN_OK;
}

static int check_record(const rec_t *r, const rec_t *prev, uint32_t i, int last, uint32_t version,
                        const unsigned char *header, const char *name, char *err,
                        size_t err_len) {
    if (r->kind > KIND_POOL || (last && r->kind != KIND_DENSE))
        return fail(err, err_len, HWQNN_EFORMAT, "%s: field 'layer%u.kind': expected %s, found %u",
                    name, i, last ? "0 (dense: the last layer outputs scores)" : "0, 1 or 2",
                    r->kind);
    if (r->in < 1 || r->in > MAX_FEATURES)
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'layer%u.in_features': expected 1..%u, found %u", name, i,
                    MAX_FEATURES, r->in);
    if (r->out < 1 || r->out > MAX_FEATURES)
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'layer%u.out_features': expected 1..%u, found %u", name, i,
                    MAX_FEATURES, r->out);
    uint32_t out_h = 1, out_w = 1, positions_out = r->rows;
    if (r->kind == KIND_DENSE) {
        if (r->height | r->width | r->channels | r->kernel | r->stride | r->pad)
            return fail(err, err_len, HWQNN_EFORMAT,
                        "%s: field 'layer%u.in_shape': expected no window (0s) on a dense layer",
                        name, i);
        if (r->rows != r->out || r->cols != r->in)
            return fail(err, err_len, HWQNN_EFORMAT,
                        "%s: field 'layer%u.rows/cols': expected %u/%u (a dense layer's "
                        "out/in_features), found %u/%u",
                        name, i, r->out, r->in, r->rows, r->cols);
    } else {
        int rc = check_window(r, i, name, err, err_len, &out_h, &out_w);
        if (rc) return rc;
        positions_out = r->kind == KIND_CONV ? r->rows : r->channels;
        if ((uint64_t)out_h * out_w * positions_out != r->out)
            return fail(err, err_len, HWQNN_EFORMAT,
                        "%s: field 'layer%u.out_features': expected %ux%ux%u = %llu, found %u",
                        name, i, out_h, out_w, positions_out,
                        (unsigned long long)out_h * out_w * positions_out, r->out);
    }
    if (r->kind == KIND_POOL) {
        if (!code_bits_ok(r->in_bits) || r->out_bits != r->in_bits || r->w_bits)
            return fail(err, err_len, HWQNN_EFORMAT,
                        "%s: field 'layer%u.in_bits': expected equal in_bits and out_bits of 1, 2 "
                        "or 4 and w_bits 0 (max-pooling), found %u, %u, %u",
                        name, i, r->in_bits, r->out_bits, r->w_bits);
        if (r->rows | r->cols | r->words)
            return fail(err, err_len, HWQNN_EFORMAT,
                        "%s: field 'layer%u.rows': expected no matrix (0s) on a max-pool layer",
                        name, i);
    } else {
        if (!bits_ok(r->in_bits) || !bits_ok(r->w_bits))
            return fail(err, err_len, HWQNN_EFORMAT,
                        "%s: field 'layer%u.%s': expected 1, 2, 4 or 8, found %u", name, i,
                        bits_ok(r->in_bits) ? "w_bits" : "in_bits",
                        bits_ok(r->in_bits) ? r->w_bits : r->in_bits);
        if (last ? r->out_bits != 0 : !code_bits_ok(r->out_bits))
            return fail(err, err_len, HWQNN_EFORMAT,
                        "%s: field 'layer%u.out_bits': expected %s, found %u", name, i,
                        last ? "0 (the last layer outputs scores)" : "1, 2 or 4", r->out_bits);
        uint64_t cols = r->kind == KIND_CONV
                            ? (uint64_t)r->kernel * r->kernel * r->channels : r->in;
        if (r->cols != cols || cols > MAX_FEATURES)
            return fail(err, err_len, HWQNN_EFORMAT,
                        "%s: field 'layer%u.cols': expected %llu (at most %u), found %u", name, i,
                        (unsigned long long)cols, MAX_FEATURES, r->cols);
        if (r->words != (r->cols + 63) / 64)
            return fail(err, err_len, HWQNN_EFORMAT,
                        "%s: field 'layer%u.words': expected %u, found %u", name, i,
                        (r->cols + 63) / 64, r->words);
        /* scores 2A - C*K must fit int32 (with a bias: checked again when it is read) */
        uint64_t c = (uint64_t)((1u << r->in_bits) - 1) * ((1u << r->w_bits) - 1);
        if (c * r->cols > (uint64_t)INT32_MAX / 2)
            return fail(err, err_len, HWQNN_EFORMAT,
                        "%s: field 'layer%u.in_features': an accumulator of %u x %u-bit x %u-bit "
                        "does not fit this library's 32-bit scores",
                        name, i, r->cols, r->in_bits, r->w_bits);
    }
    int rc = check_enc(r, prev, i, last, version, name, err, err_len);
    if (rc) return rc;
    uint32_t want_in = prev ? prev->out : rd32(header + 16);
    uint32_t want_bits = prev ? prev->out_bits : rd32(header + 20);
    if (r->in != want_in || r->in_bits != want_bits) {
        if (!prev)
            return fail(err, err_len, HWQNN_EFORMAT,
                        "%s: field 'in_features/in_bits': the header says %u/%u, layer 0 %u/%u",
                        name, want_in, want_bits, r->in, r->in_bits);
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'layer%u.in_features/in_bits': expected %u/%u from layer %u, found "
                    "%u/%u",
                    name, i, want_in, want_bits, i - 1, r->in, r->in_bits);
    }
    if (last && r->out != rd32(header + 24))
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'classes': the header says %u, the last layer %u", name,
                    rd32(header + 24), r->out);
    return HWQNN_OK;
}

/* The input record (versions 2 and 3): raw_bits, channels, levels, 0. Version 3 writes one for
 * every net: channels = levels = 0 and raw_bits = in_bits is the identity (raw values are the
 * codes). Out: the record's fields and the size of what follows it. */
static int check_input(const unsigned char *p, size_t size, uint32_t version, const char *name,
                       char *err, size_t err_len, uint32_t *raw_bits, uint32_t *channels,
                       uint32_t *levels, size_t *table) {
    uint32_t in_bits0 = rd32(p + 20);
    *raw_bits = in_bits0;
    *channels = *levels = 0;
    *table = HEADER_BYTES;
    if (version < 2) return HWQNN_OK;
    if (size < HEADER_BYTES + INPUT_BYTES + 8)
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'input': the file ends inside the input record", name);
    const unsigned char *q = p + HEADER_BYTES;
    *raw_bits = rd32(q);
    *channels = rd32(q + 4);
    *levels = rd32(q + 8);
    if (version >= 3 && *channels == 0) { /* the identity */
        if (*raw_bits != in_bits0 || *levels || rd32(q + 12))
            return fail(err, err_len, HWQNN_EFORMAT,
                        "%s: field 'input.raw_bits': expected in_bits (%u) and no levels without "
                        "channels (the identity), found %u and %u",
                        name, in_bits0, *raw_bits, *levels);
        *table = HEADER_BYTES + INPUT_BYTES;
        return HWQNN_OK;
    }
    if (*raw_bits < 1 || *raw_bits > 8)
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'input.raw_bits': expected 1..8, found %u", name, *raw_bits);
    if (!bits_ok(in_bits0) || *levels != (1u << in_bits0) - 1)
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'input.levels': expected 2^in_bits - 1, found %u", name, *levels);
    if (*channels < 1 || *channels > rd32(p + 16) || rd32(q + 12))
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'input.channels': expected 1..in_features, found %u", name,
                    *channels);
    *table = HEADER_BYTES + INPUT_BYTES + (size_t)*channels * *levels * 8;
    return HWQNN_OK;
}

/* The arrays of a matrix layer (dense, conv) in the blob: pad bits, thresholds and flips. */
static int bind_matrix(layer_t *L, const unsigned char *base, size_t *off, uint32_t i,
                       const char *name, char *err, size_t err_len) {
    L->acc_max = (int64_t)(((1 << L->in_bits) - 1) * ((1 << L->w_bits) - 1)) * L->in;
    L->w = (const uint64_t *)(base + *off);
    *off += (size_t)L->out * L->w_bits * L->words * 8;
    /* pad bits above in_features are 1 in the weights (the padding rule) */
    uint32_t pad = L->in % 64;
    if (pad) {
        uint64_t high = ~((1ull << pad) - 1);
        for (size_t row = 0; row < (size_t)L->out * L->w_bits; row++) {
            if ((L->w[row * L->words + L->words - 1] & high) != high)
                return fail(err, err_len, HWQNN_EFORMAT,
                            "%s: field 'layer%u.weights': expected pad bits above in_features "
                            "set to 1, found a 0 pad bit (row %zu)",
                            name, i, row / L->w_bits);
        }
    }
    if (!L->out_bits) return HWQNN_OK;
    L->n_t = (1u << L->out_bits) - 1;
    L->t = (const int64_t *)(base + *off);
    *off += (size_t)L->out * L->n_t * 8;
    L->flip = base + *off;
    *off += ((size_t)L->out + 7) / 8 * 8;
    for (size_t o = 0; o < L->out; o++) {
        const int64_t *t = L->t + o * L->n_t;
        for (uint32_t k = 0; k < L->n_t; k++) {
            if (t[k] < 0 || t[k] > L->acc_max + 1 || (k && t[k] < t[k - 1]))
                return fail(err, err_len, HWQNN_EFORMAT,
                            "%s: field 'layer%u.thresholds': expected ascending values in "
                            "0..%lld, found %lld (neuron %zu)",
                            name, i, (long long)L->acc_max + 1, (long long)t[k], o);
        }
        if (L->flip[o] > 1)
            return fail(err, err_len, HWQNN_EFORMAT,
                        "%s: field 'layer%u.flip': expected 0 or 1, found %u (neuron %zu)", name,
                        i, L->flip[o], o);
    }
    for (size_t o = L->out; o < ((size_t)L->out + 7) / 8 * 8; o++) {
        if (L->flip[o])
            return fail(err, err_len, HWQNN_EFORMAT,
                        "%s: field 'layer%u.flip': expected zero padding", name, i);
    }
    return HWQNN_OK;
}

/* The byte path of a matrix layer whose codes have 2 to 8 bits and whose weights 1 to 4: per
 * weight plane m and input element j (bit b of the plane, code x, M = 2^in_bits - 1), the planes
 * of x sum to sum_n 2^n op_m(x_n, b) =
 *   XNOR: b ? x : M - x = (2b - 1) x + (1 - b) M;   AND: b x;   NOR: (1 - b)(M - x),
 * so A = sum_j e_j x_j + e_off with e_j = sum_m 2^m coef_m(b_jm) (|e_j| <= 15: one signed byte)
 * and e_off = M sum_m 2^m sum_j cst_m(b_jm). Pad elements are left out (their bit-plane terms are
 * 0). Every partial sum fits int32: |sum_j e_j x_j| <= in * M * (2^w_bits - 1), which check_record
 * holds under 2^30. Returns 0, or -1: no memory. */
static int build_dot(layer_t *L) {
    if (L->in_bits < 2 || L->w_bits > 4) return 0;
    const int64_t xmax = (1 << L->in_bits) - 1, emax = (1 << L->w_bits) - 1;
    L->in_pad = L->words * 64;
    L->e = alloc64((size_t)L->out * L->in_pad, 1, 1);
    L->e_off = malloc(((size_t)L->out + 1) * sizeof *L->e_off);
    if (!L->e || !L->e_off) return -1;
    L->e_flush = (uint32_t)(32767 / (2 * xmax * emax));
    for (size_t o = 0; o < L->out; o++) {
        int8_t *e = L->e + o * L->in_pad;
        int64_t cst = 0;
        for (uint32_t m = 0; m < L->w_bits; m++) {
            const uint64_t *w = L->w + (o * L->w_bits + m) * L->words;
            for (uint32_t j = 0; j < L->in; j++) {
                int b = (int)(w[j / 64] >> (j % 64) & 1);
                int coef = L->op[m] == OP_XNOR ? 2 * b - 1 : L->op[m] == OP_AND ? b : b - 1;
                e[j] = (int8_t)(e[j] + coef * (1 << m));
                cst += (int64_t)(L->op[m] == OP_AND ? 0 : 1 - b) << m;
            }
        }
        L->e_off[o] = xmax * cst;
    }
    return 0;
}

/* The AVX2 bit path's weights of a layer of 1-bit codes, where the CPU has AVX2: each word's
 * nibbles split ahead (lo = w & 0x0f.., hi = (w >> 4) & 0x0f..), so a step's nibble-table
 * indices are one XOR/AND/OR of the input's split nibbles with them. Words past the row are 0
 * (the input's masked tail is 0 too: 0 under every op). Returns 0, or -1: no memory. */
static int build_nibbles(layer_t *L) {
#if HWQNN_X86
    __builtin_cpu_init();
    if (L->in_bits != 1 || !__builtin_cpu_supports("avx2")) return 0;
    const uint64_t low = 0x0f0f0f0f0f0f0f0full;
    L->nw = (L->words + 3) / 4 * 4;
    L->wn = alloc64((size_t)L->out * L->w_bits * 2, (size_t)L->nw * 8, 1);
    if (!L->wn) return -1;
    for (size_t row = 0; row < (size_t)L->out * L->w_bits; row++) {
        const uint64_t *w = L->w + row * L->words;
        uint64_t *lo = L->wn + row * 2 * L->nw, *hi = lo + L->nw;
        for (uint32_t k = 0; k < L->words; k++) {
            lo[k] = w[k] & low;
            hi[k] = (w[k] >> 4) & low;
        }
    }
#else
    (void)L;
#endif
    return 0;
}

/* The AVX-512 bit path's weights of a layer of 1-bit codes, where the CPU has VPOPCNTQ: eight
 * neurons' word k side by side (lane r: neuron o0 + r), so that a step loads them as one vector
 * and meets each image's word k broadcast. Returns 0, or -1: no memory. */
static int build_lanes(layer_t *L) {
#if HWQNN_X86
    __builtin_cpu_init();
    if (L->in_bits != 1 || !__builtin_cpu_supports("avx512f") ||
        !__builtin_cpu_supports("avx512vpopcntdq"))
        return 0;
    const size_t groups = (L->out + 7) / 8;
    L->wt = alloc64(groups * L->w_bits * L->words, 8 * 8, 1);
    if (!L->wt) return -1;
    for (size_t o = 0; o < L->out; o++)
        for (uint32_t m = 0; m < L->w_bits; m++) {
            const uint64_t *w = L->w + (o * L->w_bits + m) * L->words;
            uint64_t *t = L->wt + ((o / 8 * L->w_bits + m) * L->words) * 8 + o % 8;
            for (uint32_t k = 0; k < L->words; k++) t[(size_t)k * 8] = w[k];
        }
#else
    (void)L;
#endif
    return 0;
}

static int64_t popcount64(uint64_t x) {
    int64_t c = 0;
    for (; x; x &= x - 1) c++;
    return c;
}

/* The last layer's score gains scale[o] * gain and offsets scale[o] * D[o] + bias[o] (score =
 * gain * A + offset, hwqnn/bundle.py): D = s0 - gain * A0, with s0 and A0 the dot product and
 * the accumulator of the all-zero input codes; every score over A in 0..acc_max must fit int32
 * (the dot product's ends |s| < 2^42 are checked against INT32_MAX / scale before a product). */
static int score_offsets(const layer_t *L, uint32_t enc, int64_t *off, int64_t *gains, uint32_t i,
                         const char *name, char *err, size_t err_len) {
    const int64_t m_in = ((int64_t)1 << L->in_bits) - 1, k = L->in;
    const int64_t pads = (int64_t)L->words * 64 - k; /* weight pad bits are 1 */
    const int64_t beta_in = enc_in(enc) == ENC_ODD      ? -m_in
                            : enc_in(enc) == ENC_SIGNED ? -((int64_t)1 << (L->in_bits - 1))
                                                        : 0;
    const int64_t gain_w = enc_w(enc) == ENC_ODD ? 2 : 1;
    const int64_t beta_w = enc_w(enc) == ENC_ODD      ? -(((int64_t)1 << L->w_bits) - 1)
                           : enc_w(enc) == ENC_SIGNED ? -((int64_t)1 << (L->w_bits - 1))
                                                      : 0;
    for (uint32_t o = 0; o < L->out; o++) {
        int64_t a0 = 0, codes = 0; /* A0 / M_in, and the sum of the row's weight codes */
        for (uint32_t m = 0; m < L->w_bits; m++) {
            const uint64_t *w = L->w + ((size_t)o * L->w_bits + m) * L->words;
            int64_t ones = -pads, zeros = 0;
            for (uint32_t q = 0; q < L->words; q++) {
                ones += popcount64(w[q]);
                zeros += popcount64(~w[q]);
            }
            codes += ones << m;
            if (L->op[m] != OP_AND) a0 += zeros << m; /* op(0, w) = ~w for XNOR and NOR */
        }
        int64_t s0 = beta_in * (gain_w * codes + k * beta_w);
        int64_t d = s0 - L->gain * m_in * a0, top = L->gain * L->acc_max + d;
        int64_t sc = L->scale ? L->scale[o] : 1, bias = L->bias ? L->bias[o] : 0;
        int64_t big = (d < 0 ? -d : d) > (top < 0 ? -top : top) ? (d < 0 ? -d : d)
                                                                : (top < 0 ? -top : top);
        if (sc < 1 || sc > UINT32_MAX || (big && sc > INT32_MAX / big + 1))
            return fail(err, err_len, HWQNN_EFORMAT,
                        "%s: field 'layer%u.scale': class %u's scale %lld is not in 1..2^32-1 or "
                        "takes its scores beyond this library's 32-bit scores",
                        name, i, o, (long long)sc);
        if (bias <= -((int64_t)1 << 48) || bias >= ((int64_t)1 << 48))
            return fail(err, err_len, HWQNN_EFORMAT,
                        "%s: field 'layer%u.bias': expected magnitudes below 2^48, class %u has "
                        "%lld",
                        name, i, o, (long long)bias);
        off[o] = sc * d + bias;
        gains[o] = sc * L->gain;
        int64_t lo = off[o], hi = sc * top + bias;
        if (lo < INT32_MIN || hi > INT32_MAX)
            return fail(err, err_len, HWQNN_EFORMAT,
                        "%s: field 'layer%u.%s': scores of class %u reach %lld..%lld, beyond "
                        "this library's 32-bit scores",
                        name, i, L->scale ? "scale" : "bias", o, (long long)lo, (long long)hi);
    }
    return HWQNN_OK;
}

int hwqnn_open_memory(const void *data, size_t size, const char *name, hwqnn_net **net, char *err,
                      size_t err_len) {
    const unsigned char *p = (const unsigned char *)data;
    if (!net) return fail(err, err_len, HWQNN_EARG, "%s: no place for the result", name);
    *net = NULL;
    if (!host_is_little_endian())
        return fail(err, err_len, HWQNN_EFORMAT, "%s: this library needs a little-endian CPU", name);
    if (size < HEADER_BYTES + 8 || memcmp(p, MAGIC, 8) != 0)
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'magic': expected an hwqnn flat file (HWQNNFLT), found %s", name,
                    size < 8 ? "a file under 8 bytes" : "other bytes");
    uint32_t version = rd32(p + 8), n_layers = rd32(p + 12);
    if (version < 1 || version > HWQNN_FLAT_VERSION)
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'version': this library reads versions 1..%d, the file is version %u",
                    name, HWQNN_FLAT_VERSION, version);
    if (n_layers < 1 || n_layers > MAX_LAYERS)
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'n_layers': expected 1..%u, found %u", name, MAX_LAYERS, n_layers);
    if (rd32(p + 28))
        return fail(err, err_len, HWQNN_EFORMAT, "%s: field 'reserved': expected 0", name);
    uint32_t raw_bits, in_channels, in_levels;
    size_t table;
    int rc = check_input(p, size, version, name, err, err_len, &raw_bits, &in_channels,
                         &in_levels, &table);
    if (rc) return rc;
    size_t rec_bytes = version >= 3 ? RECORD3_BYTES : RECORD_BYTES;
    size_t need = table + (size_t)n_layers * rec_bytes + 8;
    if (size < need)
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'layers': the file ends inside the layer table (%zu bytes)", name,
                    size);
    /* checksum before anything else is believed */
    uint64_t sum = rd64(p + size - 8);
    if (fnv1a64(p, size - 8) != sum)
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'checksum': the FNV-1a of the content does not match (corrupt or "
                    "truncated file)",
                    name);
    /* the layer table: every field, the chain between layers, the payload size */
    size_t payload = 0;
    uint32_t max_width = rd32(p + 16), max_rows = 0, max_cols = 0, max_plane_words = 0;
    rec_t prev = {0};
    for (uint32_t i = 0; i < n_layers; i++) {
        rec_t r = read_record(p + table + (size_t)i * rec_bytes, version);
        rc = check_record(&r, i ? &prev : NULL, i, i == n_layers - 1, version, p, name, err,
                          err_len);
        if (rc) return rc;
        prev = r;
        if (r.in > max_width) max_width = r.in;
        if (r.out > max_width) max_width = r.out;
        if (r.kind == KIND_POOL) continue;
        size_t wbytes, tbytes = 0, fbytes = 0;
        if (!mul_size(&wbytes, (size_t)r.rows * r.w_bits, (size_t)r.words * 8)) goto too_big;
        if (r.out_bits) {
            if (!mul_size(&tbytes, (size_t)r.rows, ((size_t)1 << r.out_bits) - 1)) goto too_big;
            if (!mul_size(&tbytes, tbytes, 8)) goto too_big;
            fbytes = ((size_t)r.rows + 7) / 8 * 8;
        }
        if (enc_bias(r.enc) && !add_size(&payload, (size_t)r.rows * 8)) goto too_big;
        if (enc_scale(r.enc) && !add_size(&payload, (size_t)r.rows * 8)) goto too_big;
        if (!add_size(&payload, wbytes) || !add_size(&payload, tbytes) ||
            !add_size(&payload, fbytes))
            goto too_big;
        if (r.rows > max_rows) max_rows = r.rows;
        if (r.cols > max_cols) max_cols = r.cols;
        if (r.words * r.in_bits > max_plane_words) max_plane_words = r.words * r.in_bits;
    }
    if (!add_size(&need, payload)) goto too_big;
    if (size != need)
        return fail(err, err_len, HWQNN_EFORMAT,
                    "%s: field 'payload': the layer table implies %zu bytes, the file has %zu", name,
                    need, size);

    /* the sizes agree with the file: now allocate */
    hwqnn_net *n = calloc(1, sizeof *n);
    if (!n) return fail(err, err_len, HWQNN_ENOMEM, "%s: out of memory", name);
    n->layers = calloc(n_layers, sizeof *n->layers);
    n->blob = malloc(size);
    n->score_off = calloc((size_t)rd32(p + 24), sizeof *n->score_off);
    n->score_gain = calloc((size_t)rd32(p + 24), sizeof *n->score_gain);
    if (!n->layers || !n->blob || !n->score_off || !n->score_gain) {
        hwqnn_close(n);
        return fail(err, err_len, HWQNN_ENOMEM, "%s: out of memory (%zu bytes)", name, size);
    }
    memcpy(n->blob, p, size);
    n->n_layers = n_layers;
    n->max_width = max_width;
    n->max_rows = max_rows;
    n->max_cols = max_cols;
    n->max_plane_words = max_plane_words;
    const unsigned char *base = (const unsigned char *)n->blob;
    n->raw_bits = raw_bits;
    n->in_channels = in_channels;
    n->in_levels = in_levels;
    if (in_channels) {
        n->in_t = (const int64_t *)(base + HEADER_BYTES + INPUT_BYTES);
        for (size_t k = 0; k < (size_t)in_channels * in_levels; k++) {
            int64_t t = n->in_t[k];
            if (t < 0 || t > (1 << raw_bits) || (k % in_levels && t < n->in_t[k - 1])) {
                hwqnn_close(n);
                return fail(err, err_len, HWQNN_EFORMAT,
                            "%s: field 'input.thresholds': expected ascending values in 0..%d, "
                            "found %lld (channel %zu)",
                            name, 1 << raw_bits, (long long)t, k / in_levels);
            }
        }
    }
    size_t off = table + (size_t)n_layers * rec_bytes;
    for (uint32_t i = 0; i < n_layers; i++) {
        rec_t r = read_record(p + table + (size_t)i * rec_bytes, version);
        layer_t *L = &n->layers[i];
        L->kind = r.kind;
        L->in_size = r.in;
        L->out_size = r.out;
        L->height = r.height;
        L->width = r.width;
        L->channels = r.channels;
        L->kernel = r.kernel;
        L->stride = r.stride;
        L->pad = r.pad;
        if (r.kind != KIND_DENSE) {
            L->out_h = (r.height + 2 * r.pad - r.kernel) / r.stride + 1;
            L->out_w = (r.width + 2 * r.pad - r.kernel) / r.stride + 1;
        }
        L->in = r.cols;
        L->out = r.rows;
        L->in_bits = r.in_bits;
        L->w_bits = r.w_bits;
        L->out_bits = r.out_bits;
        L->words = r.words;
        L->zero = enc_in(r.enc) == ENC_SIGNED ? (uint8_t)(1u << (r.in_bits - 1)) : 0;
        L->gain = enc_in(r.enc) == ENC_ODD ? 2 : 1;
        for (uint32_t m = 0; m < r.w_bits; m++)
            L->op[m] = enc_w(r.enc) == ENC_ODD      ? OP_XNOR
                       : enc_w(r.enc) == ENC_SIGNED && m == r.w_bits - 1 ? OP_NOR
                                                                        : OP_AND;
        if (i > 0) {
            layer_t *P = &n->layers[i - 1];
            P->pack_next = P->kind == KIND_DENSE && P->out_bits == 1 && r.kind == KIND_DENSE;
        }
        if (r.kind == KIND_POOL) continue;
        rc = bind_matrix(L, base, &off, i, name, err, err_len);
        if (!rc && (build_dot(L) || build_nibbles(L) || build_lanes(L))) {
            hwqnn_close(n);
            return fail(err, err_len, HWQNN_ENOMEM,
                        "%s: out of memory (layer %u's byte or nibble weights)", name, i);
        }
        if (!rc && enc_bias(r.enc)) {
            L->bias = (const int64_t *)(base + off);
            off += (size_t)L->out * 8;
        }
        if (!rc && enc_scale(r.enc)) {
            L->scale = (const int64_t *)(base + off);
            off += (size_t)L->out * 8;
        }
        if (!rc && i == n_layers - 1)
            rc = score_offsets(L, r.enc, n->score_off, n->score_gain, i, name, err, err_len);
        if (rc) {
            hwqnn_close(n);
            return rc;
        }
    }
    *net = n;
    return HWQNN_OK;

too_big:
    return fail(err, err_len, HWQNN_EFORMAT, "%s: field 'layers': sizes overflow", name);
}

int hwqnn_open(const char *path, hwqnn_net **net, char *err, size_t err_len) {
    if (net) *net = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, err_len, HWQNN_EIO, "%s: cannot open: %s", path, strerror(errno));
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return fail(err, err_len, HWQNN_EIO, "%s: cannot read its size", path);
    }
    unsigned char *buf = malloc(size ? (size_t)size : 1);
    if (!buf) {
        fclose(f);
        return fail(err, err_len, HWQNN_ENOMEM, "%s: out of memory (%ld bytes)", path, size);
    }
    size_t got = fread(buf, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) {
        free(buf);
        return fail(err, err_len, HWQNN_EIO, "%s: short read (%zu of %ld bytes)", path, got, size);
    }
    int rc = hwqnn_open_memory(buf, (size_t)size, path, net, err, err_len);
    free(buf);
    return rc;
}

void hwqnn_close(hwqnn_net *net) {
    if (!net) return;
    free(net->score_off);
    free(net->score_gain);
    for (uint32_t i = 0; net->layers && i < net->n_layers; i++) {
        free(net->layers[i].e);
        free(net->layers[i].e_off);
        free(net->layers[i].wn);
        free(net->layers[i].wt);
    }
    free(net->layers);
    free(net->blob);
    free(net);
}

int hwqnn_num_layers(const hwqnn_net *net) { return (int)net->n_layers; }
int hwqnn_in_features(const hwqnn_net *net) { return (int)net->layers[0].in_size; }
int hwqnn_in_bits(const hwqnn_net *net) { return (int)net->layers[0].in_bits; }
int hwqnn_raw_bits(const hwqnn_net *net) { return (int)net->raw_bits; }
int hwqnn_num_classes(const hwqnn_net *net) { return (int)net->layers[net->n_layers - 1].out; }

int hwqnn_out_features(const hwqnn_net *net, int layer) {
    if (layer < 0 || (uint32_t)layer >= net->n_layers) return HWQNN_EARG;
    return (int)net->layers[layer].out_size;
}

/* ------------------------------------------------------------------------------------------ */
/* packing codes into bit-planes, word-major: x[k * bits + n] is word k of plane n, whose bit  */
/* j % 64 is bit n of code 64k + j % 64 (so one 512-bit vector holds all 8 planes of a word)   */
/* ------------------------------------------------------------------------------------------ */

/* bit i of the result is bit n of byte i of x (a multiply gathers the eight bits, no carries) */
static uint64_t gather_plane8(uint64_t x, unsigned n) {
    return (((x >> n) & 0x0101010101010101ull) * 0x0102040810204080ull) >> 56;
}

static void pack_planes(const uint8_t *codes, uint32_t k, uint32_t bits, uint32_t words,
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
/* accumulate kernels: acc[o] = sum_n sum_m 2^(n+m) popcount(op_m(plane n, weight plane m))   */
/* ------------------------------------------------------------------------------------------ */

typedef void (*acc_fn)(const layer_t *L, const uint64_t *x, int64_t *acc);

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

SCALAR_KERNEL(acc_portable, popcount_c)

/* n images' byte rows (row i at x + i * ld, zero above in) through the byte path: acc[i * out +
 * o] = sum_j e[o][j] x[i][j] + e_off[o], four rows at a time so each code load serves four
 * neurons (the compiler vectorizes the inner loop) */
typedef void (*dot_fn)(const layer_t *L, const uint8_t *x, size_t ld, uint32_t n, int64_t *acc);

static void dot_portable(const layer_t *L, const uint8_t *x, size_t ld, uint32_t n,
                         int64_t *acc) {
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

/* n images' packed planes (image i at x + i * ld words) through the bit path, one image at a
 * time: acc[i * out + o] */
typedef void (*bacc_fn)(const layer_t *L, acc_fn one, const uint64_t *x, size_t ld, uint32_t n,
                        int64_t *acc);

static void bacc_each(const layer_t *L, acc_fn one, const uint64_t *x, size_t ld, uint32_t n,
                      int64_t *acc) {
    for (uint32_t i = 0; i < n; i++) one(L, x + i * ld, acc + (size_t)i * L->out);
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
            bacc_each(L, one, x, ld, n, acc);                                               \
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

SCALAR_BLOCK(bacc_portable, popcount_c)

#if HWQNN_X86
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
        bacc_each(L, one, x, ld, n, acc);
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
        bacc_each(L, one, x, ld, n, acc);
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
#endif

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
#endif

/* A 1-bit hidden layer's thresholds straight into the next layer's packed input (one plane);
 * branch-free (flips are random) */
static inline uint64_t threshold1_bit(const layer_t *L, const int64_t *acc, uint32_t o) {
    int64_t a = acc[o], sel = -(int64_t)L->flip[o];
    a ^= (a ^ (L->acc_max - acc[o])) & sel;
    return (uint64_t)(a >= L->t[o]);
}

/* neurons from o0 on (the rest of x already zeroed) */
static void threshold1_from(const layer_t *L, const int64_t *acc, uint32_t o0, uint64_t *x) {
    for (uint32_t o = o0; o < L->out; o++) x[o / 64] |= threshold1_bit(L, acc, o) << (o % 64);
}

static void threshold1_c(const layer_t *L, const int64_t *acc, uint64_t *x) {
    memset(x, 0, (size_t)((L->out + 63) / 64) * 8);
    threshold1_from(L, acc, 0, x);
}

#if HWQNN_X86
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
    threshold1_from(L, acc, O4, x);
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* dispatch                                                                                   */
/* ------------------------------------------------------------------------------------------ */

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

static const kernel_t K_PORTABLE = {"portable", acc_portable, bacc_portable, dot_portable,
                                    pack_planes, threshold1_c};
#if HWQNN_X86
static const kernel_t K_POPCNT = {"popcnt", acc_popcnt, bacc_popcnt, dot_ssse3, pack_planes,
                                  threshold1_c};
static const kernel_t K_AVX2 = {"avx2", acc_avx2, bacc_avx2, dot_avx2, pack_planes,
                                threshold1_avx2};
static const kernel_t K_AVX512 = {"avx512", acc_avx512, bacc_avx512, dot_avx512, pack_avx512,
                                  threshold1_avx512};
#endif
#if HWQNN_ARM
static const kernel_t K_NEON = {"neon", acc_neon, bacc_each, dot_portable, pack_planes,
                                threshold1_c};
#endif
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
    if (!strcmp(name, "avx512") && has512) k = &K_AVX512;
    if (!strcmp(name, "avx2") && has2) k = &K_AVX2;
    if (!strcmp(name, "popcnt") && hasp) k = &K_POPCNT;
#elif HWQNN_ARM
    if (!name) name = "neon"; /* every aarch64 CPU has Advanced SIMD */
    if (!strcmp(name, "neon")) k = &K_NEON;
#else
    if (!name) name = "portable";
#endif
    if (!strcmp(name, "portable")) k = &K_PORTABLE;
    if (!k) return HWQNN_EARG;
    g_kernel = k;
    return HWQNN_OK;
}

static const kernel_t *kernel(void) {
    if (!g_kernel) pick(NULL);
    return g_kernel;
}

const char *hwqnn_isa(void) { return kernel()->name; }

int hwqnn_set_isa(const char *name) { return pick(name); }

/* ------------------------------------------------------------------------------------------ */
/* forward: a block of images (or of a convolution's output pixels) layer by layer, so that    */
/* the kernels' register tiles reuse each weight load across images                          */
/* ------------------------------------------------------------------------------------------ */

#define MAX_THREADS 256
#define MAX_SPLIT 64 /* threads one image's layer may split over */

#ifndef BLOCK
#define BLOCK 32u /* images (or pixels) a block, at most */
#endif
#define BLOCK_BYTES (1u << 22)  /* ... fewer where a block's codes would pass this */

typedef struct {
    uint32_t nb;     /* images a block */
    uint32_t ld;     /* bytes a row of codes (a multiple of 64, >= every layer's width) */
    uint32_t cb;     /* a convolution's output pixels a block */
    uint32_t cld;    /* bytes a window row (a multiple of 64, >= every layer's in_pad) */
    uint32_t pw;     /* words of packed planes a row */
    uint64_t *planes; /* [max(nb, cb)][pw] */
    int64_t *acc;     /* [max(nb, cb)][max_rows] */
    uint8_t *col;     /* [cb][cld]: a convolution's windows, im2col order */
    uint8_t *codes[2]; /* [nb][ld] */
    int split;         /* threads a lone image's big layers may split their rows over */
} scratch_t;

static uint32_t round64(uint64_t v) { return (uint32_t)((v + 63) / 64 * 64); }

static uint32_t block_rows(uint32_t row_bytes) {
    uint32_t r = BLOCK_BYTES / row_bytes;
    return r < 1 ? 1 : r > BLOCK ? BLOCK : r;
}

/* Scratch for blocks of up to n images (not zeroed: every buffer is written before it is read,
 * a row's pad bytes by matrix_acc) */
static int scratch_init(const hwqnn_net *net, scratch_t *s, size_t n) {
    s->ld = round64(net->max_width);
    s->cld = round64(net->max_cols);
    s->nb = block_rows(s->ld);
    if (n && n < s->nb) s->nb = (uint32_t)n;
    s->cb = block_rows(s->cld);
    s->pw = (net->max_plane_words + 4 + 7) / 8 * 8; /* rows of planes on 64-byte boundaries */
    s->split = 1;
    size_t rows = s->nb > s->cb ? s->nb : s->cb;
    s->planes = alloc64(rows * s->pw, 8, 0);
    s->acc = alloc64(rows * ((size_t)net->max_rows + 1), sizeof *s->acc, 0);
    s->col = alloc64(s->cb, s->cld, 0);
    s->codes[0] = alloc64(s->nb, s->ld, 0);
    s->codes[1] = alloc64(s->nb, s->ld, 0);
    return s->planes && s->acc && s->col && s->codes[0] && s->codes[1];
}

static void scratch_free(scratch_t *s) {
    free(s->planes);
    free(s->acc);
    free(s->col);
    free(s->codes[0]);
    free(s->codes[1]);
}

static int32_t threshold(const layer_t *L, uint32_t o, int64_t a) {
    const int64_t *t = L->t + (size_t)o * L->n_t;
    int64_t flipped = L->acc_max - a, sel = -(int64_t)L->flip[o]; /* branch-free: flips are random */
    a = (a & ~sel) | (flipped & sel);
    int32_t code = 0;
    for (uint32_t k = 0; k < L->n_t; k++) code += a >= t[k];
    return code;
}

/* The accumulators of n rows of codes (row i at x + i * ld) of a matrix layer, acc[i][out]:
 * the byte path where the layer has one, else packed into planes and the bit path. */
static void matrix_acc(const layer_t *L, const kernel_t *k, uint8_t *x, size_t ld, uint32_t n,
                       scratch_t *s, int64_t *acc) {
    if (L->e) {
        for (uint32_t i = 0; i < n; i++) /* pad codes: 0 (their weights are 0 too) */
            memset(x + i * ld + L->in, 0, L->in_pad - L->in);
        k->dot(L, x, ld, n, acc);
        return;
    }
    for (uint32_t i = 0; i < n; i++)
        k->pack(x + i * ld, L->in, L->in_bits, L->words, s->planes + (size_t)i * s->pw);
    k->bacc(L, k->acc, s->planes, s->pw, n, acc);
}

/* A convolution on one image, a block of output pixels at a time: each pixel's window codes (the
 * input's zero code outside the image) in im2col order, through matrix_acc, thresholded into
 * out[pixel][rows]; acc (if not NULL) gets the accumulators in the same order. */
static void conv_run(const layer_t *L, const kernel_t *k, const uint8_t *in, uint8_t *out,
                     int64_t *acc, scratch_t *s) {
    const uint32_t C = L->channels, K = L->kernel, pixels = L->out_h * L->out_w;
    for (uint32_t p0 = 0; p0 < pixels; p0 += s->cb) {
        uint32_t np = pixels - p0 < s->cb ? pixels - p0 : s->cb;
        for (uint32_t q = 0; q < np; q++) {
            uint32_t oy = (p0 + q) / L->out_w, ox = (p0 + q) % L->out_w;
            uint8_t *c = s->col + (size_t)q * s->cld;
            for (uint32_t ky = 0; ky < K; ky++) {
                long y = (long)(oy * L->stride + ky) - (long)L->pad;
                for (uint32_t kx = 0; kx < K; kx++, c += C) {
                    long x = (long)(ox * L->stride + kx) - (long)L->pad;
                    if (y < 0 || y >= (long)L->height || x < 0 || x >= (long)L->width)
                        memset(c, L->zero, C);
                    else
                        memcpy(c, in + ((size_t)y * L->width + (size_t)x) * C, C);
                }
            }
        }
        matrix_acc(L, k, s->col, s->cld, np, s, s->acc);
        for (uint32_t q = 0; q < np; q++) {
            const int64_t *a = s->acc + (size_t)q * L->out;
            uint8_t *o = out + (size_t)(p0 + q) * L->out;
            for (uint32_t r = 0; r < L->out; r++) o[r] = (uint8_t)threshold(L, r, a[r]);
        }
        if (acc) memcpy(acc + (size_t)p0 * L->out, s->acc, (size_t)np * L->out * sizeof *acc);
    }
}

/* Max-pooling on one image: the largest code of each window, channel by channel. */
static void pool_run(const layer_t *L, const uint8_t *in, uint8_t *out) {
    const uint32_t C = L->channels;
    for (uint32_t oy = 0; oy < L->out_h; oy++) {
        for (uint32_t ox = 0; ox < L->out_w; ox++) {
            uint8_t *o = out + ((size_t)oy * L->out_w + ox) * C;
            memset(o, 0, C);
            for (uint32_t ky = 0; ky < L->kernel; ky++) {
                for (uint32_t kx = 0; kx < L->kernel; kx++) {
                    size_t y = (size_t)oy * L->stride + ky, x = (size_t)ox * L->stride + kx;
                    const uint8_t *v = in + (y * L->width + x) * C;
                    for (uint32_t ch = 0; ch < C; ch++) o[ch] = v[ch] > o[ch] ? v[ch] : o[ch];
                }
            }
        }
    }
}

/* The input quantization: code = sum_i [raw >= T[g % channels][i]] (input element g). */
static void quantize_input(const hwqnn_net *net, const uint8_t *px, uint8_t *codes) {
    uint32_t c = 0, in = net->layers[0].in_size;
    for (uint32_t g = 0; g < in; g++) {
        const int64_t *t = net->in_t + (size_t)c * net->in_levels;
        uint8_t code = 0;
        for (uint32_t k = 0; k < net->in_levels; k++) code += px[g] >= t[k];
        codes[g] = code;
        c = c + 1 == net->in_channels ? 0 : c + 1;
    }
}

/* One image's accumulators of a big dense layer over several threads, each a range of rows:
 * the threads start per layer, so only where a layer's work dwarfs that (SPLIT_MACS binary
 * MACs). x is the image's codes (byte path) or packed planes (bit path), read by all. */
#define SPLIT_MACS (1u << 27)

typedef struct {
    layer_t view; /* the layer's rows o0..o1-1 */
    const kernel_t *k;
    const void *x;
    int64_t *acc; /* acc + o0 */
} rows_job_t;

static layer_t rows_view(const layer_t *L, uint32_t o0, uint32_t o1) {
    layer_t V = *L;
    V.out = o1 - o0;
    V.w = L->w + (size_t)o0 * L->w_bits * L->words;
    if (L->e) {
        V.e = L->e + (size_t)o0 * L->in_pad;
        V.e_off = L->e_off + o0;
    }
    if (L->wn) V.wn = L->wn + (size_t)o0 * L->w_bits * 2 * L->nw;
    if (L->wt) V.wt = L->wt + (size_t)o0 * L->w_bits * L->words; /* o0: a multiple of 8 */
    return V;
}

static void *rows_worker(void *arg) {
    rows_job_t *j = (rows_job_t *)arg;
    if (j->view.e)
        j->k->dot(&j->view, (const uint8_t *)j->x, 0, 1, j->acc);
    else
        j->k->bacc(&j->view, j->k->acc, (const uint64_t *)j->x, 0, 1, j->acc);
    return NULL;
}

/* acc of one image of dense layer L over `split` threads (rows in multiples of 8); x as above */
static void split_acc(const layer_t *L, const kernel_t *k, const void *x, int split, int64_t *acc) {
    rows_job_t jobs[MAX_SPLIT];
    pthread_t tids[MAX_SPLIT];
    int started[MAX_SPLIT] = {0};
    uint32_t groups = (L->out + 7) / 8;
    if ((uint32_t)split > groups) split = (int)groups;
    for (int t = 0; t < split; t++) {
        uint32_t o0 = groups * t / split * 8, o1 = groups * (t + 1) / split * 8;
        if (o1 > L->out) o1 = L->out;
        jobs[t] = (rows_job_t){rows_view(L, o0, o1), k, x, acc + o0};
    }
    for (int t = 1; t < split; t++)
        started[t] = pthread_create(&tids[t], NULL, rows_worker, &jobs[t]) == 0;
    rows_worker(&jobs[0]);
    for (int t = 1; t < split; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else
            rows_worker(&jobs[t]); /* no thread to be had: run its share here */
    }
}

/* Scores of n <= s->nb images, layer by layer over the block. */
static void forward_block(const hwqnn_net *net, const kernel_t *k, const uint8_t *px, uint32_t n,
                          int32_t *scores, scratch_t *s) {
    const size_t in = net->layers[0].in_size, ld = s->ld;
    const uint32_t classes = net->layers[net->n_layers - 1].out;
    uint8_t *codes = s->codes[1];
    for (uint32_t i = 0; i < n; i++) {
        if (net->in_channels)
            quantize_input(net, px + i * in, codes + i * ld);
        else
            memcpy(codes + i * ld, px + i * in, in);
    }
    int packed = 0; /* the previous layer already wrote this one's packed input */
    for (uint32_t l = 0; l < net->n_layers; l++) {
        const layer_t *L = &net->layers[l];
        uint8_t *next = s->codes[codes == s->codes[0]];
        if (L->kind == KIND_CONV || L->kind == KIND_POOL) {
            for (uint32_t i = 0; i < n; i++) {
                if (L->kind == KIND_CONV)
                    conv_run(L, k, codes + i * ld, next + i * ld, NULL, s);
                else
                    pool_run(L, codes + i * ld, next + i * ld);
            }
            codes = next;
            continue;
        }
        int split = n == 1 && s->split > 1 &&
                    (uint64_t)L->out * L->in * L->in_bits * L->w_bits >= SPLIT_MACS;
        if (split && !packed && !L->e) { /* the bit path reads packed planes */
            k->pack(codes, L->in, L->in_bits, L->words, s->planes);
            packed = 1;
        }
        if (split && L->e) memset(codes + L->in, 0, L->in_pad - L->in); /* pad codes: 0 */
        if (split)
            split_acc(L, k, L->e ? (const void *)codes : (const void *)s->planes, s->split, s->acc);
        else if (packed)
            k->bacc(L, k->acc, s->planes, s->pw, n, s->acc);
        else
            matrix_acc(L, k, codes, ld, n, s, s->acc);
        packed = 0;
        for (uint32_t i = 0; i < n; i++) {
            const int64_t *a = s->acc + (size_t)i * L->out;
            if (L->pack_next) {
                k->threshold1(L, a, s->planes + (size_t)i * s->pw);
            } else if (L->out_bits) {
                for (uint32_t o = 0; o < L->out; o++) next[i * ld + o] = (uint8_t)threshold(L, o, a[o]);
            } else {
                for (uint32_t o = 0; o < L->out; o++)
                    scores[(size_t)i * classes + o] =
                        (int32_t)(net->score_gain[o] * a[o] + net->score_off[o]);
            }
        }
        packed = L->pack_next;
        if (L->out_bits && !L->pack_next) codes = next;
    }
}


static int codes_ok(const uint8_t *codes, size_t count, uint32_t bits) {
    if (bits >= 8) return 1;
    uint8_t any = 0; /* the OR of every code, a block at a time (vectorizes) */
    for (size_t i0 = 0; i0 < count; i0 += 4096) {
        size_t i1 = count - i0 < 4096 ? count : i0 + 4096;
        for (size_t i = i0; i < i1; i++) any |= codes[i];
        if (any >> bits) return 0;
    }
    return 1;
}

typedef struct {
    const hwqnn_net *net;
    const kernel_t *k;
    const uint8_t *pixels;
    int32_t *scores;
    size_t begin, end;
    int split; /* threads a lone image's big layers may use */
    int ok;
} job_t;

static void *worker(void *arg) {
    job_t *j = (job_t *)arg;
    scratch_t s;
    j->ok = scratch_init(j->net, &s, j->end - j->begin);
    s.split = j->split;
    if (j->ok) {
        size_t in = j->net->layers[0].in_size, classes = hwqnn_num_classes(j->net);
        for (size_t i = j->begin; i < j->end; i += s.nb) {
            uint32_t n = j->end - i < s.nb ? (uint32_t)(j->end - i) : s.nb;
            forward_block(j->net, j->k, j->pixels + i * in, n, j->scores + i * classes, &s);
        }
    }
    scratch_free(&s);
    return NULL;
}


int hwqnn_infer(const hwqnn_net *net, const uint8_t *pixels, size_t n, int32_t *scores,
                int threads) {
    if (!net || (n && (!pixels || !scores))) return HWQNN_EARG;
    size_t in = net->layers[0].in_size;
    if (!codes_ok(pixels, n * in, net->raw_bits)) return HWQNN_EARG;
    if (threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c > 0 ? (int)c : 1;
    }
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    int split = n == 1 ? (threads < MAX_SPLIT ? threads : MAX_SPLIT) : 1; /* a lone image */
    if ((size_t)threads > n) threads = n ? (int)n : 1;
    const kernel_t *k = kernel();
    job_t jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 0; t < threads; t++) {
        jobs[t] = (job_t){net, k, pixels, scores, n * t / threads, n * (t + 1) / threads, split, 0};
    }
    for (int t = 1; t < threads; t++) started[t] = pthread_create(&tids[t], NULL, worker, &jobs[t]) == 0;
    worker(&jobs[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else
            worker(&jobs[t]); /* no thread to be had: run its share here */
    }
    for (int t = 0; t < threads; t++)
        if (!jobs[t].ok) return HWQNN_ENOMEM;
    return HWQNN_OK;
}

int hwqnn_classify(const hwqnn_net *net, const uint8_t *pixels, size_t n, int32_t *classes,
                   int threads) {
    if (!net || (n && !classes)) return HWQNN_EARG;
    size_t c = (size_t)hwqnn_num_classes(net);
    int32_t *scores = malloc((n ? n : 1) * c * sizeof *scores);
    if (!scores) return HWQNN_ENOMEM;
    int rc = hwqnn_infer(net, pixels, n, scores, threads);
    for (size_t i = 0; rc == HWQNN_OK && i < n; i++) {
        const int32_t *s = scores + i * c;
        int32_t best = 0;
        for (size_t k = 1; k < c; k++)
            if (s[k] > s[best]) best = (int32_t)k;
        classes[i] = best;
    }
    free(scores);
    return rc;
}

int hwqnn_quantize_input(const hwqnn_net *net, const uint8_t *pixels, size_t n, uint8_t *codes) {
    if (!net || (n && (!pixels || !codes))) return HWQNN_EARG;
    size_t in = net->layers[0].in_size;
    if (!codes_ok(pixels, n * in, net->raw_bits)) return HWQNN_EARG;
    for (size_t i = 0; i < n; i++) {
        if (net->in_channels)
            quantize_input(net, pixels + i * in, codes + i * in);
        else
            memcpy(codes + i * in, pixels + i * in, in);
    }
    return HWQNN_OK;
}

int hwqnn_forward_layer(const hwqnn_net *net, int layer, const uint8_t *codes, size_t n,
                        int64_t *acc, int32_t *out) {
    if (!net || layer < 0 || (uint32_t)layer >= net->n_layers) return HWQNN_EARG;
    if (n && (!codes || !acc || !out)) return HWQNN_EARG;
    const layer_t *L = &net->layers[layer];
    if (!codes_ok(codes, n * L->in_size, L->in_bits)) return HWQNN_EARG;
    scratch_t s;
    if (!scratch_init(net, &s, n)) {
        scratch_free(&s);
        return HWQNN_ENOMEM;
    }
    const kernel_t *k = kernel();
    for (size_t i0 = 0; i0 < n; i0 += s.nb) {
        uint32_t nb = n - i0 < s.nb ? (uint32_t)(n - i0) : s.nb;
        if (L->kind != KIND_DENSE) {
            for (size_t i = i0; i < i0 + nb; i++) {
                const uint8_t *x = codes + i * L->in_size;
                int64_t *a = acc + i * L->out_size;
                if (L->kind == KIND_CONV)
                    conv_run(L, k, x, s.codes[0], a, &s);
                else
                    pool_run(L, x, s.codes[0]);
                for (uint32_t j = 0; j < L->out_size; j++) out[i * L->out_size + j] = s.codes[0][j];
                if (L->kind == KIND_POOL) memset(a, 0, (size_t)L->out_size * sizeof *a);
            }
            continue;
        }
        for (uint32_t i = 0; i < nb; i++)
            memcpy(s.codes[1] + (size_t)i * s.ld, codes + (i0 + i) * L->in_size, L->in_size);
        matrix_acc(L, k, s.codes[1], s.ld, nb, &s, acc + i0 * L->out);
        for (size_t i = i0; i < i0 + nb; i++) {
            for (uint32_t j = 0; j < L->out; j++) {
                int64_t a = acc[i * L->out + j];
                out[i * L->out + j] = L->out_bits ? threshold(L, j, a)
                                                  : (int32_t)(net->score_gain[j] * a + net->score_off[j]);
            }
        }
    }
    scratch_free(&s);
    return HWQNN_OK;
}
