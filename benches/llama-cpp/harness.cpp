// Times llama.cpp on a GGUF model the way benches/examples/speed.rs times aigc: one prompt
// pass of N fixed token ids, then M greedy single-token steps; a warm-up run first.
// Usage: harness MODEL.gguf PROMPT_TOKENS DECODE_TOKENS THREADS  -> one JSON line.
#include "llama.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

static llama_token argmax(const float * logits, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) {
        if (logits[i] > logits[best]) best = i;
    }
    return best;
}

int main(int argc, char ** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s MODEL.gguf PROMPT_TOKENS DECODE_TOKENS THREADS\n", argv[0]);
        return 2;
    }
    const int np = std::atoi(argv[2]), nd = std::atoi(argv[3]), nt = std::atoi(argv[4]);
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { std::fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = np + nd + 8;
    cp.n_batch = np;
    cp.n_ubatch = np;
    cp.n_threads = nt;
    cp.n_threads_batch = nt;
    cp.no_perf = true;
    llama_context * ctx = llama_init_from_model(model, cp);
    const int nv = llama_vocab_n_tokens(llama_model_get_vocab(model));
    std::vector<llama_token> prompt(np);
    for (int i = 0; i < np; i++) prompt[i] = 1000 + (i * 37) % 5000;

    double prefill_s = 0, decode_s = 0;
    for (int run = 0; run < 2; run++) {  // run 0 warms up
        llama_memory_clear(llama_get_memory(ctx), true);
        auto t0 = std::chrono::steady_clock::now();
        if (llama_decode(ctx, llama_batch_get_one(prompt.data(), np)) != 0) return 1;
        llama_token tok = argmax(llama_get_logits_ith(ctx, -1), nv);
        auto t1 = std::chrono::steady_clock::now();
        for (int d = 0; d < nd; d++) {
            if (llama_decode(ctx, llama_batch_get_one(&tok, 1)) != 0) return 1;
            tok = argmax(llama_get_logits_ith(ctx, -1), nv);
        }
        auto t2 = std::chrono::steady_clock::now();
        prefill_s = std::chrono::duration<double>(t1 - t0).count();
        decode_s = std::chrono::duration<double>(t2 - t1).count();
    }
    std::printf("{\"prefill_tokens_per_s\": %.2f, \"decode_tokens_per_s\": %.2f}\n", np / prefill_s, nd / decode_s);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
