/*
 * load.c: an hwqnn flat file into a net: every field checked, on its own and against the
 * header and the record before it, before anything is allocated from it; then the weights in
 * the layouts the kernels read.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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

enum { ENC_ODD = 0, ENC_UNSIGNED = 1, ENC_SIGNED = 2 };

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
void *hq_alloc64(size_t count, size_t size, int zero) {
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
    L->e = hq_alloc64((size_t)L->out * L->in_pad, 1, 1);
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
        if (!rc && (build_dot(L) || hq_isa_weights(L))) {
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
