/*
 * classify: run an hwqnn network on IDX images and print the predictions and the accuracy.
 *
 *   classify NET IMAGES [LABELS] [-t THREADS] [-k KERNEL] [-p | -s]
 *
 * NET is a flat file written by `hwqnn flat BUNDLE -o NET`; IMAGES and LABELS are raw
 * (uncompressed) IDX files, e.g. Fashion-MNIST's t10k-images-idx3-ubyte (gunzip the .gz first).
 * -p prints one predicted class per line on stdout, -s every class score (one image a line,
 * separated by spaces); the summary goes to stderr. -k forces a kernel family (hwqnn_set_isa:
 * avx512, avx2, popcnt, neon, portable).
 * Exit status: 0 on success, 2 on bad input (with one line saying which file and what).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hwqnn.h"

static int die(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "classify: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    return 2;
}

/* Read an IDX file of unsigned bytes: returns the data, the item count and the item size. */
static unsigned char *read_idx(const char *path, int dims_expected, size_t *count, size_t *item,
                               const char **why) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        *why = "cannot open it";
        return NULL;
    }
    unsigned char h[4];
    if (fread(h, 1, 4, f) != 4) {
        fclose(f);
        *why = "too short for an IDX header";
        return NULL;
    }
    if (h[0] == 0x1f && h[1] == 0x8b) {
        fclose(f);
        *why = "gzip-compressed: gunzip it first";
        return NULL;
    }
    if (h[0] || h[1] || h[2] != 0x08 || h[3] != dims_expected) {
        fclose(f);
        *why = dims_expected == 3 ? "not an IDX file of unsigned-byte images (magic 0x00000803)"
                                  : "not an IDX file of unsigned-byte labels (magic 0x00000801)";
        return NULL;
    }
    size_t dims[3] = {1, 1, 1};
    for (int i = 0; i < dims_expected; i++) {
        unsigned char d[4];
        if (fread(d, 1, 4, f) != 4) {
            fclose(f);
            *why = "truncated IDX header";
            return NULL;
        }
        dims[i] = (size_t)d[0] << 24 | (size_t)d[1] << 16 | (size_t)d[2] << 8 | d[3];
    }
    *count = dims[0];
    *item = dims[1] * dims[2];
    size_t bytes = *count * *item; /* each dim < 2^32: no overflow on a 64-bit size_t */
    unsigned char *data = malloc(bytes ? bytes : 1);
    if (!data) {
        fclose(f);
        *why = "out of memory";
        return NULL;
    }
    if (fread(data, 1, bytes, f) != bytes) {
        free(data);
        fclose(f);
        *why = "shorter than its header says";
        return NULL;
    }
    fclose(f);
    return data;
}

int main(int argc, char **argv) {
    const char *paths[3] = {NULL, NULL, NULL};
    int threads = 0, print = 0, np = 0; /* print: 1 classes, 2 scores */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-k") && i + 1 < argc) {
            if (hwqnn_set_isa(argv[++i]) != HWQNN_OK)
                return die("kernel %s is not available on this CPU (or this build)", argv[i], "");
        } else if (!strcmp(argv[i], "-p"))
            print = 1;
        else if (!strcmp(argv[i], "-s"))
            print = 2;
        else if (np < 3)
            paths[np++] = argv[i];
        else
            return die("unexpected argument %s%s", argv[i], "");
    }
    if (np < 2) {
        fprintf(stderr, "usage: classify NET IMAGES [LABELS] [-t THREADS] [-k KERNEL] [-p | -s]\n");
        return 2;
    }
    char err[512];
    hwqnn_net *net;
    if (hwqnn_open(paths[0], &net, err, sizeof err) != HWQNN_OK) return die("%s%s", err, "");
    size_t n, item, n_labels = 0, one;
    const char *why = "";
    unsigned char *images = read_idx(paths[1], 3, &n, &item, &why);
    if (!images) return die("%s: %s", paths[1], why);
    if (item != (size_t)hwqnn_in_features(net)) {
        char want[64];
        snprintf(want, sizeof want, "%d pixels per image", hwqnn_in_features(net));
        return die("%s: the network takes %s", paths[1], want);
    }
    unsigned char *labels = NULL;
    if (paths[2]) {
        labels = read_idx(paths[2], 1, &n_labels, &one, &why);
        if (!labels) return die("%s: %s", paths[2], why);
        if (n_labels != n) return die("%s: not one label per image of %s", paths[2], paths[1]);
    }
    size_t classes = (size_t)hwqnn_num_classes(net);
    int32_t *pred = malloc((n ? n : 1) * sizeof *pred);
    int32_t *scores = print == 2 ? malloc((n ? n : 1) * classes * sizeof *scores) : NULL;
    if (!pred || (print == 2 && !scores)) return die("out of memory%s%s", "", "");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = print == 2 ? hwqnn_infer(net, images, n, scores, threads)
                        : hwqnn_classify(net, images, n, pred, threads);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc != HWQNN_OK) return die("%s: input codes out of range for this network", paths[1], "");
    for (size_t i = 0; print == 2 && i < n; i++) { /* the class: lowest index of the maximum */
        const int32_t *si = scores + i * classes;
        pred[i] = 0;
        for (size_t k = 0; k < classes; k++) {
            printf(k ? " %d" : "%d", si[k]);
            if (si[k] > si[pred[i]]) pred[i] = (int32_t)k;
        }
        printf("\n");
    }
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    size_t correct = 0;
    for (size_t i = 0; i < n; i++) {
        if (print == 1) printf("%d\n", pred[i]);
        if (labels && pred[i] == labels[i]) correct++;
    }
    fprintf(stderr, "%zu images in %.3f s (%.0f images/s, kernel %s)", n, s, n / (s > 0 ? s : 1e-9),
            hwqnn_isa());
    if (labels) fprintf(stderr, "; accuracy %.4f (%zu/%zu)", n ? (double)correct / n : 0.0, correct, n);
    fprintf(stderr, "\n");
    free(pred);
    free(scores);
    free(images);
    free(labels);
    hwqnn_close(net);
    return 0;
}
