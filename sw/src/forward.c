/*
 * forward.c: a net run on images: blocks of images (or of a convolution's output pixels) layer
 * by layer, so that the kernels' register tiles reuse each weight load across images, split over
 * POSIX threads; the public functions that run a net.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

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
    s->planes = hq_alloc64(rows * s->pw, 8, 0);
    s->acc = hq_alloc64(rows * ((size_t)net->max_rows + 1), sizeof *s->acc, 0);
    s->col = hq_alloc64(s->cb, s->cld, 0);
    s->codes[0] = hq_alloc64(s->nb, s->ld, 0);
    s->codes[1] = hq_alloc64(s->nb, s->ld, 0);
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
    const kernel_t *k = hq_kernel();
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
    const kernel_t *k = hq_kernel();
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
