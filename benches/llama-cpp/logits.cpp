// Reference logits from llama.cpp for aigc's 8-bit-activation tests: feeds the token ids one
// per llama_decode call (every product a matrix-vector one, activations quantized to 8 bits
// as llama.cpp always does), with an f32 KV cache and no flash attention, and prints the
// top-20 logits after the last token.
// Usage: logits MODEL.gguf THREADS ID,ID,...  -> {"top_ids": [...], "top_values": [...]}
#include "llama.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

int main(int argc, char ** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s MODEL.gguf THREADS ID,ID,...\n", argv[0]);
        return 2;
    }
    std::vector<llama_token> ids;
    std::stringstream list(argv[3]);
    for (std::string t; std::getline(list, t, ',');) ids.push_back(std::atoi(t.c_str()));
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { std::fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = ids.size() + 8;
    cp.n_threads = cp.n_threads_batch = std::atoi(argv[2]);
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.no_perf = true;
    llama_context * ctx = llama_init_from_model(model, cp);
    const int nv = llama_vocab_n_tokens(llama_model_get_vocab(model));
    for (llama_token & t : ids) {
        if (llama_decode(ctx, llama_batch_get_one(&t, 1)) != 0) return 1;
    }
    const float * logits = llama_get_logits_ith(ctx, -1);
    std::vector<int> order(nv);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + 20, order.end(),
                      [&](int a, int b) { return logits[a] > logits[b]; });
    std::printf("{\"top_ids\": [");
    for (int i = 0; i < 20; i++) std::printf("%s%d", i ? ", " : "", order[i]);
    std::printf("], \"top_values\": [");
    for (int i = 0; i < 20; i++) std::printf("%s%.9g", i ? ", " : "", logits[order[i]]);
    std::printf("]}\n");
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
