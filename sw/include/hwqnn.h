/*
 * hwqnn.h: bit-exact inference of an hwqnn network on a CPU (C99, libc and POSIX threads).
 *
 * The network comes from a flat file that `hwqnn flat BUNDLE -o NET` writes; its layout and the
 * arithmetic are stated once, in the docstring of hwqnn/bundle.py ("Flat file" and the bit
 * layout). In short: each layer's accumulator is A = sum_n sum_m 2^(n+m) popcount(XNOR(input
 * plane n, weight plane m)) over 64-bit words; a hidden layer turns A into a code with integer
 * thresholds (and a flip bit), the last layer outputs the class score 2A - C*K. A convolution
 * computes the same at every output pixel over its window's codes (code 0 outside the image), a
 * max-pool layer takes the largest code of each window; images are codes in HWC order. Results
 * are integers and equal the golden model's exactly.
 *
 * Every function returns HWQNN_OK (0) or a negative error code; those that take `err` write a
 * one-line message there naming the file and the field.
 */
#ifndef HWQNN_H
#define HWQNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HWQNN_FLAT_VERSION 5 /* the newest flat file version this library reads (1 to 5) */

enum {
    HWQNN_OK = 0,
    HWQNN_EIO = -1,     /* the file cannot be read */
    HWQNN_EFORMAT = -2, /* the file is not a valid hwqnn flat file */
    HWQNN_ENOMEM = -3,  /* out of memory */
    HWQNN_EARG = -4     /* a bad argument (layer index, input code out of range, ...) */
};

typedef struct hwqnn_net hwqnn_net;

/* Load a flat file. On success *net owns everything it needs; free it with hwqnn_close. */
int hwqnn_open(const char *path, hwqnn_net **net, char *err, size_t err_len);
/* The same from memory (`name` is used in messages). The bytes are copied. */
int hwqnn_open_memory(const void *data, size_t size, const char *name, hwqnn_net **net, char *err,
                      size_t err_len);
void hwqnn_close(hwqnn_net *net);

int hwqnn_num_layers(const hwqnn_net *net);
int hwqnn_in_features(const hwqnn_net *net); /* raw inputs per image (an image: H*W*C, HWC) */
int hwqnn_in_bits(const hwqnn_net *net);  /* layer 0's codes lie in 0 .. 2^in_bits - 1 */
int hwqnn_raw_bits(const hwqnn_net *net); /* raw inputs (pixels) lie in 0 .. 2^raw_bits - 1 */
int hwqnn_num_classes(const hwqnn_net *net);
int hwqnn_out_features(const hwqnn_net *net, int layer); /* codes out (an image: H*W*C) */

/* Scores of n images: pixels is uint8 [n][in_features], raw inputs that the net's input
 * quantization turns into layer 0's codes (the identity for most nets: pixels are the codes);
 * scores is int32 [n][classes]. threads <= 0: one per online CPU; images are split between
 * threads (one image: a big layer's neurons are). */
int hwqnn_infer(const hwqnn_net *net, const uint8_t *pixels, size_t n, int32_t *scores,
                int threads);
/* Predicted classes (lowest index of the maximum score) of n images. */
int hwqnn_classify(const hwqnn_net *net, const uint8_t *pixels, size_t n, int32_t *classes,
                   int threads);

/* Layer 0's codes of n raw images (the net's input quantization alone): codes is uint8
 * [n][in_features]. */
int hwqnn_quantize_input(const hwqnn_net *net, const uint8_t *pixels, size_t n, uint8_t *codes);

/* One layer alone, for locating a disagreement: codes is uint8 [n][in] (layer 0: its codes, after
 * the input quantization), acc is int64 [n][out] (a max-pool layer has none and writes 0s),
 * out is int32 [n][out]: the output codes (hidden layer) or the scores (last layer); in and out
 * count codes (a convolution's: out_h * out_w * out_channels, HWC). */
int hwqnn_forward_layer(const hwqnn_net *net, int layer, const uint8_t *codes, size_t n,
                        int64_t *acc, int32_t *out);

/* The kernel family in use: "avx512" (VPOPCNTQ), "avx2", "popcnt" (scalar POPCNT, SSSE3), "neon"
 * (aarch64) or "portable", chosen at run time from what the CPU supports. hwqnn_set_isa picks one
 * by name (NULL: the best again); it returns HWQNN_EARG if the CPU or the compiler lacks it. Not
 * thread-safe against running inference. */
const char *hwqnn_isa(void);
int hwqnn_set_isa(const char *name);

#ifdef __cplusplus
}
#endif
#endif /* HWQNN_H */
