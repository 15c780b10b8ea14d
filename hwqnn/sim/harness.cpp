// Verilator C++ harness: streams frames through a hwqnn top (network or single layer) and
// records every output beat with the cycle it was taken. No Python per cycle.
//
// Usage: Vharness IN.bin N_FRAMES OUT.bin CYCLES.bin OUTS_PER_FRAME [SEED IDLE_PCT STALL_PCT]
//   IN.bin     N_FRAMES * IN_BEATS beats, each S_WORDS little-endian uint32 words
//   OUT.bin    every output beat as M_WORDS uint32 words, in order
//   CYCLES.bin the cycle of each output beat (uint64), then the cycle of each frame's first
//              input beat (uint64)
// Prints one JSON line: cycles, seconds, outputs, frame_error.
//
// With -DHWQNN_DRIVER (a network top; the generated hwqnn_driver.h on the include path) IN.bin
// holds each frame's input codes (N_FRAMES * HWQNN_IN_FEATURES bytes) and the driver packs them
// into beats; every output beat is also unpacked by the driver into OUT.bin.scores, int32
// [outputs][HWQNN_CLASSES + 1] (scores, then the class). So the host driver is exercised, and
// checked against the golden model, on every simulation.
//
// Timing: each cycle, with the clock low, the loop reads s_axis_tready and m_axis_tvalid (both
// depend on registers only), sets the inputs for the coming rising edge, and so knows exactly
// which transfers that edge performs. Compile-time: HWQNN_TOP (class), HWQNN_TOP_H (header), IN_BEATS,
// S_WORDS, M_WORDS.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <type_traits>
#include <vector>

#include "verilated.h"
#define HWQNN_STR2(x) #x
#define HWQNN_STR(x) HWQNN_STR2(x)
#include HWQNN_STR(HWQNN_TOP_H)
#include <string>
#ifdef HWQNN_DRIVER
#include "hwqnn_driver.h"
static_assert(HWQNN_IN_BEATS == IN_BEATS && HWQNN_S_WORDS == S_WORDS && HWQNN_M_WORDS == M_WORDS,
              "hwqnn_driver.h and this build disagree on the stream format");
#endif

template <typename T>
static void set_bus(T& sig, const uint32_t* w) {
    if constexpr (std::is_integral_v<T>) {
        uint64_t v = w[0];
        if (S_WORDS > 1) v |= static_cast<uint64_t>(w[1]) << 32;
        sig = static_cast<T>(v);
    } else {
        for (int i = 0; i < S_WORDS; ++i) sig[i] = w[i];
    }
}

template <typename T>
static void read_words(const T& sig, uint32_t* w, int n) {
    if constexpr (std::is_integral_v<T>) {
        uint64_t v = static_cast<uint64_t>(sig);
        w[0] = static_cast<uint32_t>(v);
        if (n > 1) w[1] = static_cast<uint32_t>(v >> 32);
    } else {
        for (int i = 0; i < n; ++i) w[i] = sig[i];
    }
}

static uint64_t rng_state = 88172645463325252ull;
static uint32_t next_pct() {  // xorshift64, 0..99
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return static_cast<uint32_t>(rng_state % 100);
}

int main(int argc, char** argv) {
    if (argc < 6) {
        std::fprintf(stderr, "usage: %s IN.bin N_FRAMES OUT.bin CYCLES.bin OUTS_PER_FRAME [SEED IDLE STALL]\n", argv[0]);
        return 2;
    }
    const long n_frames = std::atol(argv[2]);
    const long outs_per_frame = std::atol(argv[5]);
    uint32_t idle_pct = 0, stall_pct = 0;
    if (argc >= 9) {
        rng_state ^= static_cast<uint64_t>(std::atoll(argv[6])) * 0x9E3779B97F4A7C15ull;
        idle_pct = static_cast<uint32_t>(std::atoi(argv[7]));
        stall_pct = static_cast<uint32_t>(std::atoi(argv[8]));
    }
    const long n_beats = n_frames * IN_BEATS;
    std::vector<uint32_t> in(static_cast<size_t>(n_beats) * S_WORDS);
    FILE* f = std::fopen(argv[1], "rb");
#ifdef HWQNN_DRIVER
    std::vector<uint8_t> codes(static_cast<size_t>(n_frames) * HWQNN_IN_FEATURES);
    if (!f || std::fread(codes.data(), 1, codes.size(), f) != codes.size()) {
        std::fprintf(stderr, "cannot read %ld frames of codes from %s\n", n_frames, argv[1]);
        return 2;
    }
    for (long i = 0; i < n_frames; ++i)
        hwqnn_pack_frame(&codes[static_cast<size_t>(i) * HWQNN_IN_FEATURES],
                         &in[static_cast<size_t>(i) * IN_BEATS * S_WORDS]);
#else
    if (!f || std::fread(in.data(), sizeof(uint32_t), in.size(), f) != in.size()) {
        std::fprintf(stderr, "cannot read %ld beats from %s\n", n_beats, argv[1]);
        return 2;
    }
#endif
    std::fclose(f);

    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<HWQNN_TOP>(ctx.get());
    const long want = n_frames * outs_per_frame;
    std::vector<uint32_t> out(static_cast<size_t>(want) * M_WORDS);
    std::vector<uint64_t> out_cycles(static_cast<size_t>(want));
    std::vector<uint64_t> first_cycles;
    first_cycles.reserve(static_cast<size_t>(n_frames));

    top->aclk = 0;
    top->aresetn = 0;
    top->s_axis_tvalid = 0;
    top->s_axis_tlast = 0;
    top->m_axis_tready = 0;
    top->eval();
    for (int i = 0; i < 3; ++i) {
        top->aclk = 1; top->eval();
        top->aclk = 0; top->eval();
    }
    top->aresetn = 1;
    top->eval();

    const auto t0 = std::chrono::steady_clock::now();
    long pos = 0, got = 0;
    uint64_t cycle = 0;
    const uint64_t limit = 1000ull * (static_cast<uint64_t>(n_beats) + static_cast<uint64_t>(want)) + 100000ull;
    while (got < want) {
        if (cycle > limit) {
            std::fprintf(stderr, "no progress after %llu cycles (%ld outputs)\n",
                         static_cast<unsigned long long>(cycle), got);
            return 3;
        }
        const bool ready_in = top->s_axis_tready;
        const bool valid_out = top->m_axis_tvalid;
        const bool send = pos < n_beats && !(idle_pct && next_pct() < idle_pct);
        bool in_hs = false;
        if (send) {
            set_bus(top->s_axis_tdata, &in[static_cast<size_t>(pos) * S_WORDS]);
            top->s_axis_tlast = (pos % IN_BEATS) == IN_BEATS - 1;
            top->s_axis_tvalid = 1;
            in_hs = ready_in;
        } else {
            top->s_axis_tvalid = 0;
        }
        const bool take = !(stall_pct && next_pct() < stall_pct);
        top->m_axis_tready = take;
        if (valid_out && take) {
            read_words(top->m_axis_tdata, &out[static_cast<size_t>(got) * M_WORDS], M_WORDS);
            out_cycles[static_cast<size_t>(got)] = cycle;
            ++got;
        }
        if (in_hs) {
            if (pos % IN_BEATS == 0) first_cycles.push_back(cycle);
            ++pos;
        }
        top->aclk = 1; top->eval();
        top->aclk = 0; top->eval();
        ++cycle;
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const bool frame_error = top->frame_error;
#ifdef PERF_WORDS
    uint32_t perf[PERF_WORDS];
    read_words(top->perf_counters, perf, PERF_WORDS);
#endif
    top->final();
#if VM_COVERAGE
    if (const char* cov = std::getenv("HWQNN_COVERAGE")) ctx->coveragep()->write(cov);
#endif

    FILE* o = std::fopen(argv[3], "wb");
    FILE* c = std::fopen(argv[4], "wb");
    if (!o || !c) {
        std::fprintf(stderr, "cannot write %s or %s\n", argv[3], argv[4]);
        return 2;
    }
    std::fwrite(out.data(), sizeof(uint32_t), out.size(), o);
    std::fwrite(out_cycles.data(), sizeof(uint64_t), out_cycles.size(), c);
    std::fwrite(first_cycles.data(), sizeof(uint64_t), first_cycles.size(), c);
    std::fclose(o);
    std::fclose(c);
#ifdef HWQNN_DRIVER
    std::vector<int32_t> res(static_cast<size_t>(got) * (HWQNN_CLASSES + 1));
    for (long i = 0; i < got; ++i) {
        int32_t* r = &res[static_cast<size_t>(i) * (HWQNN_CLASSES + 1)];
        hwqnn_unpack_result(&out[static_cast<size_t>(i) * M_WORDS], r, r + HWQNN_CLASSES);
    }
    const std::string res_path = std::string(argv[3]) + ".scores";
    FILE* rf = std::fopen(res_path.c_str(), "wb");
    if (!rf || std::fwrite(res.data(), sizeof(int32_t), res.size(), rf) != res.size()) {
        std::fprintf(stderr, "cannot write %s\n", res_path.c_str());
        return 2;
    }
    std::fclose(rf);
#endif
    std::printf("{\"cycles\": %llu, \"seconds\": %.6f, \"outputs\": %ld, \"frame_error\": %d, \"perf\": [",
                static_cast<unsigned long long>(cycle), secs, got, frame_error ? 1 : 0);
#ifdef PERF_WORDS
    for (int i = 0; i < PERF_WORDS; ++i) std::printf(i ? ", %u" : "%u", perf[i]);
#endif
    std::printf("]}\n");
    return 0;
}
