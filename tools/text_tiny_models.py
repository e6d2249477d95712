#!/usr/bin/env python3
"""Tiny random-weight decoder models exported by `transformers`, with their reference logits.

Architectures without a small real checkpoint here (Qwen2, Qwen3, Mistral), plus Llama (with
Llama 3 rope scaling) and Gemma 3 (loaded from Hugging Face names, where RMSNorm weights are
stored without their +1), are built from tiny configs with random weights, saved with
`save_pretrained` (safetensors, in f32, f16 or bf16 to exercise each), and run in float32 with
eager attention. Each goes to `tools/fixtures/text/tiny/<name>/`:

  config.json, model.safetensors      as transformers writes them
  tokenizer.json, tokenizer_config.json
                                      a 320-entry byte-level BPE trained here on a short text,
                                      with a ChatML template (shared by every model)
  reference.json                      prompt ids, logits at every prompt position (prefill),
                                      and 12 greedy tokens with the logits of each step
                                      (transformers' own KV cache), plus versions

The sliding windows are short (Mistral 6, Gemma 3 local layers 5) so that a 20-token prompt
crosses them.

Run from the repository root:

    /work/venv/bin/python tools/text_tiny_models.py
"""

import json
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import tokenizers
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    MistralConfig,
    Qwen2Config,
    Qwen3Config,
)

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tools" / "fixtures" / "text" / "tiny"
VOCAB = 320
PROMPT_LEN = 20
GREEDY = 12

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

TEXT = """The quick brown fox jumps over the lazy dog. A tiny model reads a tiny text,
and the tokenizer learns which letters go together: th, he, in, er, an, re, on, at, en, nd.
fn main() { println!("hello, world"); } 12345 67890 + - * / = ( ) [ ] { } < > ! ? ; :
Numbers 0 1 2 3 4 5 6 7 8 9 and words again and again: the cat sat on the mat.
"""

COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    initializer_range=0.2,
    rms_norm_eps=1e-6,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)

MODELS = {
    "qwen2": (Qwen2Config, dict(tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}), torch.float32),
    "qwen3": (Qwen3Config, dict(head_dim=32, tie_word_embeddings=True, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}), torch.bfloat16),
    "mistral": (MistralConfig, dict(sliding_window=6, head_dim=16, tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}), torch.float16),
    "llama": (
        LlamaConfig,
        dict(
            tie_word_embeddings=True,
            rope_parameters={
                "rope_type": "llama3",
                "rope_theta": 500000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16,
            },
        ),
        torch.float32,
    ),
    "gemma3": (
        Gemma3TextConfig,
        dict(
            num_hidden_layers=3,
            num_key_value_heads=1,
            head_dim=16,
            query_pre_attn_scalar=24,
            sliding_window=5,
            layer_types=["sliding_attention", "sliding_attention", "full_attention"],
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
            },
            tie_word_embeddings=True,
        ),
        torch.bfloat16,
    ),
}


def train_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<pad>", "<|endoftext|>", "<|im_end|>", "<|im_start|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([TEXT] * 4, trainer)
    assert tok.get_vocab_size() <= VOCAB, tok.get_vocab_size()
    return tok


def randomize(model, gemma: bool):
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                centre = 0.0 if gemma else 1.0
                p.copy_(centre + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def f32_list(t: torch.Tensor):
    return [float(np.float32(x)) for x in t.reshape(-1).tolist()]


def export(name, cls, extra, dtype, tok):
    torch.manual_seed(0)
    cfg = cls(**{**COMMON, **extra})
    cfg._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    randomize(model, gemma=name == "gemma3")
    model = model.to(dtype)
    out = OUT / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "bos_token": "<|endoftext|>",
                "eos_token": "<|im_end|>",
                "pad_token": "<pad>",
                "add_bos_token": False,
                "chat_template": CHATML,
            },
            indent=1,
        )
        + "\n"
    )

    # Reference in float32 from the stored (possibly half-precision) weights.
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    prompt = tok.encode("the cat sat on the mat and the quick brown fox").ids[:PROMPT_LEN]
    while len(prompt) < PROMPT_LEN:
        prompt.append(prompt[len(prompt) % 7])
    ids = torch.tensor([prompt])
    with torch.no_grad():
        prefill = model(input_ids=ids).logits[0].to(torch.float32)
        gen = model.generate(
            ids,
            max_new_tokens=GREEDY,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            eos_token_id=None,
            pad_token_id=0,
        )
    greedy = gen.sequences[0, PROMPT_LEN:].tolist()
    step_logits = [f32_list(x[0].to(torch.float32)) for x in gen.logits]
    assert len(greedy) == GREEDY
    doc = {
        "model_type": cfg.model_type,
        "stored_dtype": str(dtype).removeprefix("torch."),
        "prompt_ids": prompt,
        "prefill_logits": [f32_list(row) for row in prefill],
        "greedy_ids": greedy,
        "greedy_step_logits": step_logits,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
    }
    (out / "reference.json").write_text(json.dumps(doc) + "\n")
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, {size} bytes, greedy {greedy}")


def main():
    tok = train_tokenizer()
    for name, (cls, extra, dtype) in MODELS.items():
        export(name, cls, extra, dtype, tok)


if __name__ == "__main__":
    sys.exit(main())
