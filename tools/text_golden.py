#!/usr/bin/env python3
"""Golden values from Hugging Face `transformers` for the text crate, on the real GGUF models.

For each of `smollm2-135m-instruct` and `gemma-3-270m` (see scripts/models.tsv) this loads the
tokenizer and the model the way transformers does from the GGUF file alone
(`from_pretrained(dir, gguf_file=name)`, dequantized to float32, eager attention) and writes
`tools/fixtures/text/<id>.json` with:

  versions      transformers / torch / tokenizers / gguf / numpy / python
  config        the model config transformers built from the GGUF metadata (`config.to_dict()`)
                plus the attention facts the Rust side must match (sliding window, layer types,
                rope bases, softcapping, activation, embedding scale, norm weight handling)
  tokenizer     special tokens, add_bos/add_eos, the backend `tokenizers` structure (model type,
                normalizer, pre-tokenizer, decoder, post-processor; vocab and merges replaced by
                their size, first/last entries and a sha256), the added tokens, and for SmolLM2 an
                emulation of llama.cpp's `smollm` pre-tokenizer with the strings where it differs
  tokenization  test strings -> ids (with and without special tokens), token strings, decodes
  chat          chat template renders and ids (SmolLM2), or what transformers does without one (Gemma)
  logits        per prompt: ids, BOS handling, top-64 of the last position, sum/mean/max/logsumexp
  greedy        per prompt: 40 greedy tokens with top-1/top-2 ids and logits and the margin at
                every step, checked against `generate(do_sample=False)`
  long_prompt   (Gemma 3 only) a >600-token prompt exceeding the 512 sliding window: ids, top-64,
                20 greedy tokens with margins, and the effect of changing the window (511/513/off)

Run from the repository root (no network needed; HF_HUB_OFFLINE is forced):

    /work/venv/bin/python tools/text_golden.py [--only ID]

Models are read from ${AIGC_MODELS:-$HOME/.cache/aigc/models}/<id>/<file>.
"""

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Regex, Tokenizer, pre_tokenizers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "tools" / "fixtures" / "text"
MODELS_TSV = REPO / "scripts" / "models.tsv"

TOP_K = 64
GREEDY_STEPS = 40
LONG_GREEDY_STEPS = 20

MODEL_IDS = ["smollm2-135m-instruct", "gemma-3-270m"]


def models_root() -> Path:
    return Path(os.environ.get("AIGC_MODELS") or Path.home() / ".cache" / "aigc" / "models")


def gguf_file_for(model_id: str) -> str:
    for line in MODELS_TSV.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if cols[0] == model_id and cols[1].endswith(".gguf"):
            return cols[1]
    raise SystemExit(f"no .gguf row for {model_id} in {MODELS_TSV}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_lines(lines) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def f32(x) -> float:
    """A float32 value as a Python float (exact: every f32 is a double)."""
    return float(np.float32(x))


def jsonable(obj):
    """Config dicts may hold torch dtypes, sets, tuples, numpy scalars."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, torch.dtype):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


# --------------------------------------------------------------------------------------------
# Test strings
# --------------------------------------------------------------------------------------------

SMOL_SPECIAL_LITERAL = "<|im_start|>user\nHi there<|im_end|>\n<|endoftext|>tail"
GEMMA_SPECIAL_LITERAL = "<start_of_turn>user\nHi there<end_of_turn>\n<eos><bos>tail"

CHAT_SYSTEM_USER = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]
CHAT_USER_ONLY = [{"role": "user", "content": "Write a haiku about the sea."}]

# Gemma 3 270M is a base model and its GGUF has no chat template. This is the Gemma 3 turn
# format written by hand (what the instruction-tuned Gemma 3 template renders), used as a
# tokenization string only.
GEMMA_TURN_PROMPT = (
    "<bos><start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n"
)

PLAIN_PROMPT = "The capital of France is"
CODE_PROMPT = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n'
PARAGRAPH_PROMPT = (
    "The lighthouse stood at the end of a narrow spit of rock, and for nearly a century it had "
    "guided fishing boats home through fog and storm. Its keeper, an old man named Elias, climbed "
    "the spiral staircase every evening to light the lamp, polish the great lens, and write a short "
    "entry in the logbook. One winter night, as the wind howled across the water, he noticed"
)


def tokenization_strings(model_id: str, chat_prompt: str):
    cases = [
        ("english", "Hello world"),
        ("english_sentence", "The quick brown fox jumps over the lazy dog."),
        ("english_contractions", "It's a beautiful day, isn't it? We'll see what they've done."),
        ("chinese", "今天天气很好，我们去公园散步吧。"),
        ("japanese", "東京は日本の首都です。ひらがなとカタカナも使います。"),
        ("korean_cyrillic_arabic", "안녕하세요 Привет мир! مرحبا بالعالم"),
        ("code_python", "def f(x):\n    if x > 0:\n\treturn x * 2  # double\n    return None\n"),
        ("emoji", "I love 🦀 and 🔥! Family: 👨‍👩‍👧‍👦, flag: 🇯🇵, thumbs: 👍🏽"),
        ("numbers", "In 2024, 1234567 people paid $3.14159 each (about 98.6%)."),
        ("digits_long", "0123456789 00042 1e10 -7"),
        ("leading_spaces", "   leading spaces"),
        ("trailing_spaces", "trailing spaces   "),
        ("spaces_newlines", "a  b   c\n\nd\n\n\ne\r\nf\t\tg    \n  h"),
        ("single_space", " "),
        ("single_newline", "\n"),
        ("smollm_special_literal", SMOL_SPECIAL_LITERAL),
        ("gemma_special_literal", GEMMA_SPECIAL_LITERAL),
        ("other_specials_literal", "<unk><pad><mask> <|endoftext|> <0x41>"),
        ("accented_latin", "Café naïve résumé — Ångström, façade, Straße, Œuvre, ñandú"),
        ("combining_nfd", "e\u0301 vs \u00e9, n\u0303, A\u030a"),
        ("nbsp_zero_width", "no\u00a0break\u200bzero\u200dwidth\ufeffbom"),
        ("repeated_chars", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!!!!!!!!????"),
        ("url_path", "https://example.com/path?q=1&r=two#frag ~/dir/file_name.rs"),
        ("empty", ""),
        ("chat_prompt", chat_prompt),
    ]
    if model_id == "gemma-3-270m":
        cases.append(("gemma_turn_prompt", GEMMA_TURN_PROMPT))
    return cases


# --------------------------------------------------------------------------------------------
# Tokenizer structure
# --------------------------------------------------------------------------------------------

# llama.cpp's pre-tokenizer for `tokenizer.ggml.pre = smollm` (llama-vocab.cpp, grouped with
# STARCODER/REFACT/COMMAND_R/CODESHELL/EXAONE): two regexes applied in turn, each piece of the
# first split further split by the second; the text between matches is kept as its own piece.
LLAMA_CPP_SMOLLM_REGEXES = [
    r"\p{N}",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
]


def llama_cpp_smollm_emulation(tok) -> Tokenizer:
    """The transformers backend with llama.cpp's `smollm` pre-tokenization instead of GPT-2's."""
    emu = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    emu.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in LLAMA_CPP_SMOLLM_REGEXES]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    return emu


def tokenizer_summary(tok, gguf_path: Path):
    backend = tok.backend_tokenizer
    j = json.loads(backend.to_str())
    model = dict(j["model"])
    vocab = model.pop("vocab")
    merges = model.pop("merges", None)
    if isinstance(vocab, dict):
        vocab_items = sorted(vocab.items(), key=lambda kv: kv[1])
    else:  # unigram: list of [piece, score]
        vocab_items = [(p, i) for i, (p, _s) in enumerate(vocab)]
    model["vocab_size"] = len(vocab_items)
    model["vocab_first_20"] = [[t, i] for t, i in vocab_items[:20]]
    model["vocab_sha256_tokens_in_id_order"] = sha256_lines(t for t, _ in vocab_items)
    ids_contiguous = [i for _, i in vocab_items] == list(range(len(vocab_items)))
    model["vocab_ids_contiguous_from_0"] = ids_contiguous
    if merges is not None:
        merge_strs = [m if isinstance(m, str) else " ".join(m) for m in merges]
        model["merges_count"] = len(merge_strs)
        model["merges_first_40"] = merge_strs[:40]
        model["merges_last_10"] = merge_strs[-10:]
        model["merges_sha256"] = sha256_lines(merge_strs)
        model["merges_sha256_note"] = (
            "sha256 over every merge as 'left right' + '\\n', in rank order (rank 0 first)"
        )

    added = j["added_tokens"]
    special_added = [a for a in added if a["special"]]
    plain_added = [a for a in added if not a["special"]]
    flags = sorted({(a["single_word"], a["lstrip"], a["rstrip"], a["normalized"], a["special"]) for a in added})

    def id_ranges(ids):
        ids = sorted(ids)
        out = []
        for i in ids:
            if out and out[-1][1] == i - 1:
                out[-1][1] = i
            else:
                out.append([i, i])
        return out

    summary = {
        "class": type(tok).__name__,
        "backend_json_without_vocab_and_merges": {
            "version": j.get("version"),
            "truncation": j.get("truncation"),
            "padding": j.get("padding"),
            "normalizer": j.get("normalizer"),
            "pre_tokenizer": j.get("pre_tokenizer"),
            "post_processor": j.get("post_processor"),
            "decoder": j.get("decoder"),
            "model": model,
        },
        "added_tokens": {
            "count": len(added),
            "special_count": len(special_added),
            "special_id_ranges": id_ranges([a["id"] for a in special_added]),
            "special_first_40": [[a["id"], a["content"]] for a in special_added[:40]],
            "non_special": [[a["id"], a["content"]] for a in plain_added],
            "distinct_flags_(single_word,lstrip,rstrip,normalized,special)": [list(f) for f in flags],
            "sha256_special_contents_in_id_order": sha256_lines(
                a["content"] for a in sorted(special_added, key=lambda a: a["id"])
            ),
        },
        "special_tokens": {
            name: {"token": getattr(tok, name), "id": getattr(tok, name + "_id")}
            for name in ("bos_token", "eos_token", "unk_token", "pad_token")
        },
        "add_bos_token": getattr(tok, "add_bos_token", None),
        "add_eos_token": getattr(tok, "add_eos_token", None),
        "clean_up_tokenization_spaces": getattr(tok, "clean_up_tokenization_spaces", None),
        "model_max_length": tok.model_max_length if tok.model_max_length < 1e12 else None,
        "has_chat_template": bool(getattr(tok, "chat_template", None)),
        "chat_template": getattr(tok, "chat_template", None),
    }
    return summary


def gguf_tokenizer_facts(gguf_path: Path):
    """Facts straight from the GGUF metadata, for the Rust loader to cross-check."""
    from gguf import GGUFReader

    r = GGUFReader(str(gguf_path))
    facts = {}
    for k, f in r.fields.items():
        if not k.startswith("tokenizer."):
            continue
        if k in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"):
            facts[k] = {"len": len(f.data)}
            continue
        if k == "tokenizer.chat_template":
            facts[k] = {"len": len(f.contents())}
            continue
        facts[k] = jsonable(f.contents())
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    counts = {}
    for t in types:
        counts[str(int(t))] = counts.get(str(int(t)), 0) + 1
    facts["token_type_counts"] = counts
    facts["token_type_legend"] = {"1": "NORMAL", "2": "UNKNOWN", "3": "CONTROL", "4": "USER_DEFINED", "5": "UNUSED", "6": "BYTE"}
    facts["user_defined_tokens"] = [[i, tokens[i]] for i, t in enumerate(types) if int(t) == 4]
    facts["tokens_of_only_spaces"] = [[i, tokens[i]] for i, t in enumerate(tokens) if t and not t.strip(" ") and " " in t]
    if "tokenizer.ggml.scores" in r.fields:
        scores = r.fields["tokenizer.ggml.scores"].contents()
        facts["scores_first_12"] = [[i, tokens[i], float(scores[i])] for i in range(12)]
        facts["scores_sample"] = [[i, tokens[i], float(scores[i])] for i in (256, 500, 1000, 5000, 20000, 100000, 262143) if i < len(tokens)]
        # Are the scores monotone in id over the normal tokens? (transformers assumes not, for Gemma)
        normal = [float(scores[i]) for i, t in enumerate(types) if int(t) == 1]
        facts["scores_nonincreasing_over_normal_tokens"] = all(a >= b for a, b in zip(normal, normal[1:]))
    return facts


# --------------------------------------------------------------------------------------------
# Model runs
# --------------------------------------------------------------------------------------------


def logits_record(logits_row: torch.Tensor):
    row = logits_row.detach().to(torch.float32)
    vals, ids = torch.topk(row, TOP_K)
    r64 = row.to(torch.float64)
    return {
        "top_ids": [int(i) for i in ids],
        "top_values": [f32(v) for v in vals],
        "sum": float(r64.sum()),
        "mean": float(r64.mean()),
        "max": f32(row.max()),
        "min": f32(row.min()),
        "logsumexp": float(torch.logsumexp(r64, dim=0)),
        "argmax": int(torch.argmax(row)),
        "note": "last position, float32; sum/mean/logsumexp computed in float64 from the float32 logits",
    }


@torch.no_grad()
def greedy_with_margins(model, ids, steps):
    input_ids = torch.tensor([ids], dtype=torch.long)
    out = model(input_ids=input_ids, use_cache=True)
    past = out.past_key_values
    last = out.logits[0, -1]
    tokens, record = [], []
    for step in range(steps):
        vals, top = torch.topk(last.to(torch.float32), 2)
        nxt = int(top[0])
        record.append(
            {
                "step": step,
                "top1_id": nxt,
                "top2_id": int(top[1]),
                "top1_logit": f32(vals[0]),
                "top2_logit": f32(vals[1]),
                "margin": f32(vals[0] - vals[1]),
            }
        )
        tokens.append(nxt)
        if step + 1 == steps:
            break
        out = model(input_ids=torch.tensor([[nxt]], dtype=torch.long), past_key_values=past, use_cache=True)
        past = out.past_key_values
        last = out.logits[0, -1]
    return tokens, record


@torch.no_grad()
def generate_reference(model, ids, steps):
    """`generate(do_sample=False)` with EOS stopping switched off, so the length is `steps`."""
    gc = model.generation_config
    saved = (gc.eos_token_id, getattr(gc, "pad_token_id", None))
    try:
        gc.eos_token_id = None
        if gc.pad_token_id is None:
            gc.pad_token_id = model.config.pad_token_id if model.config.pad_token_id is not None else 0
        input_ids = torch.tensor([ids], dtype=torch.long)
        gen = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=steps,
            min_new_tokens=0,
            do_sample=False,
            num_beams=1,
            top_k=None,
            top_p=None,
            temperature=None,
        )
    finally:
        gc.eos_token_id, gc.pad_token_id = saved
    return [int(t) for t in gen[0, len(ids):]]


def greedy_block(model, tok, ids, steps, eos_ids):
    tokens, steps_rec = greedy_with_margins(model, ids, steps)
    gen = generate_reference(model, ids, steps)
    eos_at = next((i for i, t in enumerate(tokens) if t in eos_ids), None)
    return {
        "prompt_ids": ids,
        "n_steps": steps,
        "tokens": tokens,
        "text": tok.decode(tokens, skip_special_tokens=False),
        "first_eos_step": eos_at,
        "eos_note": "EOS stopping was off: tokens continue past an EOS; a test that stops at EOS compares tokens[:first_eos_step+1]",
        "steps": steps_rec,
        "min_margin": min(s["margin"] for s in steps_rec),
        "generate_tokens": gen,
        "matches_generate": gen == tokens,
        "method": "explicit loop: model(prompt) then model(next_token, past_key_values) per step; argmax of the last-position float32 logits",
    }


def load(model_id):
    root = models_root()
    gguf_name = gguf_file_for(model_id)
    model_dir = root / model_id
    gguf_path = model_dir / gguf_name
    if not gguf_path.exists():
        raise SystemExit(f"missing {gguf_path}: run scripts/fetch-models.sh {model_id}")
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(str(model_dir), gguf_file=gguf_name)
    t1 = time.time()
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), gguf_file=gguf_name, dtype=torch.float32, attn_implementation="eager"
    )
    model.eval()
    t2 = time.time()
    print(f"[{model_id}] tokenizer {t1 - t0:.1f}s, model {t2 - t1:.1f}s", flush=True)
    return tok, model, gguf_path, gguf_name


def config_facts(model):
    cfg = model.config
    facts = {
        "model_class": type(model).__name__,
        "model_type": cfg.model_type,
        "attn_implementation": getattr(cfg, "_attn_implementation", None),
        "dtype_of_parameters": str(next(model.parameters()).dtype),
        "tie_word_embeddings": getattr(cfg, "tie_word_embeddings", None),
        "lm_head_shares_embedding_storage": model.get_output_embeddings().weight.data_ptr()
        == model.get_input_embeddings().weight.data_ptr(),
    }
    for key in (
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "rms_norm_eps",
        "max_position_embeddings",
        "rope_theta",
        "rope_local_base_freq",
        "rope_parameters",
        "rope_scaling",
        "sliding_window",
        "sliding_window_pattern",
        "layer_types",
        "query_pre_attn_scalar",
        "final_logit_softcapping",
        "attn_logit_softcapping",
        "hidden_activation",
        "hidden_act",
        "attention_bias",
        "mlp_bias",
        "use_bidirectional_attention",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
    ):
        if hasattr(cfg, key):
            facts[key] = jsonable(getattr(cfg, key))
    emb = model.get_input_embeddings()
    if hasattr(emb, "embed_scale"):
        es = emb.embed_scale
        facts["embed_scale"] = f32(es if not torch.is_tensor(es) else es.item())
        facts["embed_scale_f32_bits"] = int(np.float32(facts["embed_scale"]).view(np.uint32))
    return facts


@torch.no_grad()
def norm_weight_facts(model, gguf_path: Path):
    """Compare a few norm weights transformers holds with the raw GGUF values (Gemma adds 1 in GGUF)."""
    from gguf import GGUFReader, dequantize

    r = GGUFReader(str(gguf_path))
    by_name = {t.name: t for t in r.tensors}
    sd = model.state_dict()
    pairs = [
        ("output_norm.weight", "model.norm.weight"),
        ("blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"),
    ]
    if "blk.0.attn_q_norm.weight" in by_name:
        pairs += [
            ("blk.0.attn_q_norm.weight", "model.layers.0.self_attn.q_norm.weight"),
            ("blk.0.post_attention_norm.weight", "model.layers.0.post_attention_layernorm.weight"),
            ("blk.0.post_ffw_norm.weight", "model.layers.0.post_feedforward_layernorm.weight"),
        ]
    out = []
    for gname, hname in pairs:
        if gname not in by_name or hname not in sd:
            continue
        g = np.asarray(dequantize(by_name[gname].data, by_name[gname].tensor_type), dtype=np.float32).reshape(-1)
        h = sd[hname].detach().to(torch.float32).numpy().reshape(-1)
        out.append(
            {
                "gguf": gname,
                "hf": hname,
                "gguf_first4": [f32(v) for v in g[:4]],
                "hf_first4": [f32(v) for v in h[:4]],
                "hf_equals_gguf_minus_1_in_f32": bool(np.array_equal(h, (g - np.float32(1.0)).astype(np.float32))),
                "hf_equals_gguf": bool(np.array_equal(h, g)),
                "hf_plus_1_equals_gguf_bitwise": bool(np.array_equal((h + np.float32(1.0)).astype(np.float32), g)),
            }
        )
    return out


def prompt_ids(tok, text, is_chat):
    # A rendered chat prompt already spells its special tokens; transformers' apply_chat_template
    # (tokenize=True) encodes it with add_special_tokens=False. Plain prompts use the default
    # (add_special_tokens=True), which prepends BOS only where the tokenizer's post-processor does.
    if is_chat:
        return tok.encode(text, add_special_tokens=False), False
    return tok.encode(text), True


# --------------------------------------------------------------------------------------------


def run_model(model_id):
    tok, model, gguf_path, gguf_name = load(model_id)
    eos_ids = {tok.eos_token_id}
    if isinstance(model.config.eos_token_id, int):
        eos_ids.add(model.config.eos_token_id)
    elif isinstance(model.config.eos_token_id, list):
        eos_ids.update(model.config.eos_token_id)

    doc = {
        "model_id": model_id,
        "gguf_file": gguf_name,
        "gguf_sha256": sha256_file(gguf_path),
        "versions": {
            "python": platform.python_version(),
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "tokenizers": tokenizers.__version__,
            "numpy": np.__version__,
            "gguf": __import__("importlib.metadata").metadata.version("gguf"),
            "torch_num_threads": torch.get_num_threads(),
        },
        "how_loaded": {
            "tokenizer": f"AutoTokenizer.from_pretrained(<models>/{model_id}, gguf_file='{gguf_name}')",
            "model": f"AutoModelForCausalLM.from_pretrained(<models>/{model_id}, gguf_file='{gguf_name}', dtype=torch.float32, attn_implementation='eager')",
            "env": {"HF_HUB_OFFLINE": "1"},
        },
    }

    # ---- config
    doc["config_facts"] = config_facts(model)
    doc["config"] = jsonable(model.config.to_dict())
    doc["norm_weights_vs_gguf"] = norm_weight_facts(model, gguf_path)
    doc["generation_config"] = jsonable(model.generation_config.to_dict())

    # ---- tokenizer structure
    doc["tokenizer"] = tokenizer_summary(tok, gguf_path)
    doc["gguf_tokenizer_metadata"] = gguf_tokenizer_facts(gguf_path)

    # ---- chat
    chat = {"has_template": bool(tok.chat_template)}
    if tok.chat_template:
        for name, msgs in (("system_user", CHAT_SYSTEM_USER), ("user_only", CHAT_USER_ONLY)):
            rendered = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            ids_tmpl = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)
            if hasattr(ids_tmpl, "keys") and "input_ids" in ids_tmpl:
                ids_tmpl = ids_tmpl["input_ids"]
            ids_tmpl = [int(i) for i in (ids_tmpl[0] if ids_tmpl and isinstance(ids_tmpl[0], list) else ids_tmpl)]
            ids_enc = tok.encode(rendered, add_special_tokens=False)
            rendered_no_gen = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=False)
            chat[name] = {
                "messages": msgs,
                "add_generation_prompt": True,
                "rendered": rendered,
                "ids": ids_tmpl,
                "ids_equal_encode_rendered_without_special_tokens": ids_tmpl == ids_enc,
                "rendered_without_generation_prompt": rendered_no_gen,
            }
        chat_prompt = chat["system_user"]["rendered"]
    else:
        chat_prompt = GEMMA_TURN_PROMPT
        try:
            res = tok.apply_chat_template(CHAT_SYSTEM_USER, tokenize=False, add_generation_prompt=True)
            chat["apply_chat_template_result"] = {"ok": True, "rendered": res}
        except Exception as e:  # noqa: BLE001
            chat["apply_chat_template_result"] = {"ok": False, "exception": type(e).__name__, "message": str(e)}
        chat["note"] = (
            "The GGUF has no tokenizer.chat_template (base model). The tokenization case "
            "'gemma_turn_prompt' holds the Gemma 3 turn format written by hand."
        )
    doc["chat"] = chat

    # ---- tokenization
    emu = llama_cpp_smollm_emulation(tok) if doc["gguf_tokenizer_metadata"].get("tokenizer.ggml.pre") == "smollm" else None
    cases = []
    for name, s in tokenization_strings(model_id, chat_prompt):
        ids_plain = tok.encode(s, add_special_tokens=False)
        ids_special = tok.encode(s, add_special_tokens=True)
        case = {
            "name": name,
            "text": s,
            "utf8_len": len(s.encode("utf-8")),
            "ids": ids_plain,
            "ids_with_special_tokens": ids_special,
            "tokens": tok.convert_ids_to_tokens(ids_plain),
            "decoded": tok.decode(ids_plain, skip_special_tokens=False),
            "decoded_with_special_tokens": tok.decode(ids_special, skip_special_tokens=False),
            "decoded_skip_special_tokens": tok.decode(ids_special, skip_special_tokens=True),
        }
        case["roundtrip_exact"] = case["decoded"] == s
        if emu is not None:
            emu_ids = emu.encode(s, add_special_tokens=False).ids
            case["llama_cpp_smollm_emulated_ids"] = emu_ids
            case["llama_cpp_smollm_emulated_equal"] = emu_ids == ids_plain
        cases.append(case)
    doc["tokenization"] = {
        "note": "ids = tokenizer.encode(text, add_special_tokens=False); ids_with_special_tokens = encode(text) (add_special_tokens=True); tokens = convert_ids_to_tokens(ids); decoded = decode(ids, skip_special_tokens=False)",
        "cases": cases,
    }
    if emu is not None:
        doc["tokenizer"]["llama_cpp_smollm_comparison"] = {
            "emulation": "the transformers backend with pre_tokenizer = Sequence[Split(r, isolated) for r in llama.cpp's smollm regexes] + ByteLevel(add_prefix_space=False, use_regex=False)",
            "llama_cpp_regexes": LLAMA_CPP_SMOLLM_REGEXES,
            "cases_that_differ": [c["name"] for c in cases if not c["llama_cpp_smollm_emulated_equal"]],
        }

    # ---- logits + greedy
    if model_id.startswith("smollm2"):
        prompts = [("plain", PLAIN_PROMPT, False), ("chat", chat_prompt, True), ("code", CODE_PROMPT, False)]
    else:
        prompts = [("plain", PLAIN_PROMPT, False), ("paragraph", PARAGRAPH_PROMPT, False), ("code", CODE_PROMPT, False)]
    logits_doc, greedy_doc = [], []
    for name, text, is_chat in prompts:
        ids, with_special = prompt_ids(tok, text, is_chat)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids], dtype=torch.long)).logits[0]
        rec = {
            "name": name,
            "text": text,
            "ids": ids,
            "encoded_with_add_special_tokens": with_special,
            "bos_prepended": bool(ids) and ids[0] == tok.bos_token_id and not text.startswith(tok.bos_token or "\0"),
            "n_tokens": len(ids),
            "last": logits_record(logits[-1]),
            "first_position_top8": {
                "ids": [int(i) for i in torch.topk(logits[0], 8).indices],
                "values": [f32(v) for v in torch.topk(logits[0], 8).values],
            },
        }
        logits_doc.append(rec)
        g = greedy_block(model, tok, ids, GREEDY_STEPS, eos_ids)
        g["name"] = name
        greedy_doc.append(g)
        print(f"[{model_id}] {name}: {len(ids)} tokens, greedy min margin {g['min_margin']:.4f}, matches generate: {g['matches_generate']}", flush=True)
    doc["logits"] = logits_doc
    doc["greedy"] = greedy_doc

    # ---- long prompt (Gemma 3)
    if model_id == "gemma-3-270m":
        doc["long_prompt"] = long_prompt_block(model, tok, eos_ids)

    return doc


LONG_TEXT = """The history of the small harbour town of Wrenmouth is, in many ways, the history of the sea that surrounds it. For more than four hundred years the people who lived along its narrow streets depended on the water for their food, their trade and their news of the wider world. The first houses were built by fishing families who came down from the hills in search of better ground, and they chose the spot because a long spit of rock sheltered the bay from the worst of the winter storms.

By the middle of the seventeenth century the town had grown into a busy port. Merchants from the south brought salt, wine and cloth, and they carried away dried fish, wool and timber cut from the forests inland. A stone quay was built, then a customs house, and finally a small church with a square tower that sailors could see from several miles out. The records kept by the parish clerk describe good years and bad ones: seasons when the herring came in such numbers that the boats nearly sank under their catch, and seasons when the shoals failed and whole families left to seek work elsewhere.

The greatest change came with the building of the lighthouse in 1791. Before then, ships approaching the coast at night had to rely on the judgement of their captains and the occasional bonfire lit on the cliffs. Wrecks were common, and the town's graveyard holds the names of many sailors who never reached the shore. The lighthouse, designed by an engineer from the capital, was a tall white tower with a lamp that burned whale oil and later paraffin. Its keeper lived in a cottage at its base with his family, and the job passed from father to son for three generations.

The nineteenth century brought the railway, and with it a new kind of visitor. Wealthy families from the cities began to spend their summers by the sea, and the town responded by building hotels, tea rooms and a long promenade where people could walk in the evening air. The fishermen, who had always worked through the summer, found themselves sharing the harbour with pleasure boats and bathing machines. Some resented the newcomers, but others saw an opportunity and began to offer trips around the bay for a few pennies a head.

In the twentieth century the fishing industry declined as larger boats from distant ports took over the grounds that the local men had worked for generations. The lighthouse was automated in 1968, and its last keeper moved to a house in the town, where he spent his retirement writing a careful account of the lives of those who had tended the light before him. Today Wrenmouth is a quiet place for most of the year, busy only in the summer months, but the old quay still stands, the church tower still guides the few boats that remain, and on clear nights the lighthouse still sweeps its beam across the dark water. Visitors who climb the hill behind the town can look down on the whole bay and imagine how it must have looked when the harbour was full of sails, and when the people of Wrenmouth"""


@torch.no_grad()
def long_prompt_block(model, tok, eos_ids):
    ids = tok.encode(LONG_TEXT)
    cfg = model.config
    assert len(ids) > 600, len(ids)
    assert cfg.sliding_window is not None and len(ids) > cfg.sliding_window
    x = torch.tensor([ids], dtype=torch.long)
    base = model(input_ids=x).logits[0, -1].to(torch.float32)
    rec = {
        "text": LONG_TEXT,
        "ids": ids,
        "n_tokens": len(ids),
        "bos_prepended": ids[0] == tok.bos_token_id,
        "sliding_window_used": cfg.sliding_window,
        "sliding_window_semantics": "transformers masking_utils.sliding_window_overlay: key kv_idx is visible to query q_idx iff q_idx - sliding_window < kv_idx <= q_idx (each query sees itself and the previous sliding_window-1 tokens: 512 keys)",
        "layer_types": jsonable(cfg.layer_types),
        "last": logits_record(base),
    }
    # Show that the window is applied, and how far off a different window is.
    sens = []
    orig = cfg.sliding_window
    try:
        for w in (511, 513, 4096):
            cfg.sliding_window = w
            for layer in model.model.layers:
                if hasattr(layer.self_attn, "sliding_window") and layer.self_attn.sliding_window is not None:
                    layer.self_attn.sliding_window = w
            other = model(input_ids=x).logits[0, -1].to(torch.float32)
            sens.append(
                {
                    "sliding_window": w,
                    "max_abs_diff_vs_512": f32((other - base).abs().max()),
                    "argmax": int(other.argmax()),
                    "top1_value": f32(other.max()),
                }
            )
    finally:
        cfg.sliding_window = orig
        for layer in model.model.layers:
            if hasattr(layer.self_attn, "sliding_window") and layer.self_attn.sliding_window is not None:
                layer.self_attn.sliding_window = orig
    check = model(input_ids=x).logits[0, -1].to(torch.float32)
    assert torch.equal(check, base), "restoring the sliding window did not restore the logits"
    rec["window_sensitivity"] = sens
    rec["window_sensitivity_note"] = "last-position logits recomputed with config.sliding_window changed (4096 = no window for this prompt); nonzero diffs show transformers applies the 512 window"
    g = greedy_block(model, tok, ids, LONG_GREEDY_STEPS, eos_ids)
    rec["greedy"] = g
    print(f"[gemma-3-270m] long prompt: {len(ids)} tokens; window sensitivity {sens}; greedy matches generate: {g['matches_generate']}", flush=True)
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=MODEL_IDS)
    args = ap.parse_args()
    torch.manual_seed(0)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for model_id in MODEL_IDS:
        if args.only and args.only != model_id:
            continue
        doc = run_model(model_id)
        path = OUT_DIR / f"{model_id}.json"
        path.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
