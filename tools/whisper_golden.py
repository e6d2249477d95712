"""Golden values for aigc-crossmodal's Whisper (aigc-crossmodal/tests/whisper.rs).

1. The real Whisper tiny.en (CTranslate2 `model.bin`, `scripts/fetch-models.sh whisper-tiny-en`)
   is read with plain `struct` (tools/ct2_fixtures.py's reader), its fused projections split,
   and loaded into transformers' `WhisperForConditionalGeneration`; a short espeak-ng utterance
   (resampled to 16 kHz, committed as `espeak.wav`) goes through transformers'
   `WhisperFeatureExtractor` (openai-whisper's log-mel), the encoder, greedy generation, and one
   teacher-forced decoder pass whose raw logits (top 20 per position) are recorded.
2. A tiny random `WhisperForConditionalGeneration` in the Hugging Face layout (`hf-tiny/`,
   float16 weights) with its encoder output and decoder logits on a fixed random mel window.

    /work/venv/bin/python tools/whisper_golden.py

Writes tools/fixtures/crossmodal/whisper/. Needs torch, transformers, numpy, scipy, safetensors,
the espeak-ng command and the real model.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.io.wavfile as wavfile
import scipy.signal as signal
import torch
from safetensors.torch import save_file
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

sys.path.insert(0, str(Path(__file__).parent))
import ct2_fixtures  # noqa: E402

OUT = Path("tools/fixtures/crossmodal/whisper")
MODEL = Path(os.environ.get("AIGC_MODELS", Path.home() / ".cache/aigc/models")) / "whisper-tiny-en"
TEXT = "The quick brown fox jumps over the lazy dog."
TOP = 20


def ct2_tensors(path: Path) -> dict:
    info = ct2_fixtures.read(path)
    data = info["data"]
    out = {}
    for v in info["variables"]:
        if not v["shape"]:
            continue
        # CTranslate2's DataType: 0 float32, 4 float16.
        dtype = {0: np.float32, 4: np.float16}.get(v["type_id"])
        if dtype is None:
            continue
        a = np.frombuffer(data, dtype=dtype, count=int(np.prod(v["shape"])), offset=v["offset"])
        out[v["name"]] = torch.from_numpy(a.astype(np.float32).reshape(v["shape"]).copy())
    return out


def hf_state(t: dict, d: int, enc_layers: int, dec_layers: int) -> dict:
    s = {}

    def attn(dst: str, src: str, cross: bool):
        if cross:
            s[f"{dst}.q_proj.weight"] = t[f"{src}/linear_0/weight"]
            s[f"{dst}.q_proj.bias"] = t[f"{src}/linear_0/bias"]
            kv_w, kv_b = t[f"{src}/linear_1/weight"], t[f"{src}/linear_1/bias"]
            s[f"{dst}.k_proj.weight"], s[f"{dst}.v_proj.weight"] = kv_w[:d], kv_w[d:]
            s[f"{dst}.v_proj.bias"] = kv_b[d:]
            out = 2
        else:
            w, b = t[f"{src}/linear_0/weight"], t[f"{src}/linear_0/bias"]
            s[f"{dst}.q_proj.weight"], s[f"{dst}.k_proj.weight"], s[f"{dst}.v_proj.weight"] = w[:d], w[d:2 * d], w[2 * d:]
            s[f"{dst}.q_proj.bias"], s[f"{dst}.v_proj.bias"] = b[:d], b[2 * d:]
            out = 1
        s[f"{dst}.out_proj.weight"] = t[f"{src}/linear_{out}/weight"]
        s[f"{dst}.out_proj.bias"] = t[f"{src}/linear_{out}/bias"]

    def norm(dst: str, src: str):
        s[f"{dst}.weight"], s[f"{dst}.bias"] = t[f"{src}/gamma"], t[f"{src}/beta"]

    def ffn(dst: str, src: str):
        s[f"{dst}.fc1.weight"], s[f"{dst}.fc1.bias"] = t[f"{src}/linear_0/weight"], t[f"{src}/linear_0/bias"]
        s[f"{dst}.fc2.weight"], s[f"{dst}.fc2.bias"] = t[f"{src}/linear_1/weight"], t[f"{src}/linear_1/bias"]
        norm(f"{dst}.final_layer_norm", f"{src}/layer_norm")

    for n in ("conv1", "conv2"):
        s[f"model.encoder.{n}.weight"], s[f"model.encoder.{n}.bias"] = t[f"encoder/{n}/weight"], t[f"encoder/{n}/bias"]
    s["model.encoder.embed_positions.weight"] = t["encoder/position_encodings/encodings"]
    for i in range(enc_layers):
        p, q = f"model.encoder.layers.{i}", f"encoder/layer_{i}"
        attn(f"{p}.self_attn", f"{q}/self_attention", False)
        norm(f"{p}.self_attn_layer_norm", f"{q}/self_attention/layer_norm")
        ffn(p, f"{q}/ffn")
    norm("model.encoder.layer_norm", "encoder/layer_norm")
    s["model.decoder.embed_tokens.weight"] = t["decoder/embeddings/weight"]
    s["model.decoder.embed_positions.weight"] = t["decoder/position_encodings/encodings"]
    for i in range(dec_layers):
        p, q = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        attn(f"{p}.self_attn", f"{q}/self_attention", False)
        norm(f"{p}.self_attn_layer_norm", f"{q}/self_attention/layer_norm")
        attn(f"{p}.encoder_attn", f"{q}/attention", True)
        norm(f"{p}.encoder_attn_layer_norm", f"{q}/attention/layer_norm")
        ffn(p, f"{q}/ffn")
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    return s


def top(logits: torch.Tensor) -> dict:
    v, i = logits.topk(TOP)
    return {"ids": i.tolist(), "values": [round(x, 5) for x in v.tolist()]}


def real_model() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), TEXT], check=True)
        rate, audio = wavfile.read(raw)
    audio = audio.astype(np.float64) / 32768.0
    audio = signal.resample_poly(audio, 16000 // np.gcd(16000, rate), rate // np.gcd(16000, rate))
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
    wavfile.write(OUT / "espeak.wav", 16000, pcm)
    audio = pcm.astype(np.float32) / 32768.0

    fe = WhisperFeatureExtractor(feature_size=80)
    mel = fe(audio, sampling_rate=16000, return_tensors="np").input_features[0]
    content = len(audio) // 160 + 1
    pad_value = float(mel[0, -1])
    assert np.all(mel[:, content + 1:] == pad_value), "the padded tail is not constant"
    np.save(OUT / "espeak_mel.npy", mel[:, :content + 1].astype(np.float32))

    t = ct2_tensors(MODEL / "model.bin")
    cfg = WhisperConfig(vocab_size=51864, num_mel_bins=80, d_model=384, encoder_layers=4, decoder_layers=4,
                        encoder_attention_heads=6, decoder_attention_heads=6, encoder_ffn_dim=1536,
                        decoder_ffn_dim=1536, max_source_positions=1500, max_target_positions=448,
                        decoder_start_token_id=50257, pad_token_id=50256, bos_token_id=50257, eos_token_id=50256)
    model = WhisperForConditionalGeneration(cfg).eval()
    missing, unexpected = model.load_state_dict(hf_state(t, 384, 4, 4), strict=False)
    assert not unexpected and all(k in ("proj_out.weight",) for k in missing), (missing, unexpected)
    model.proj_out.weight = model.model.decoder.embed_tokens.weight
    features = torch.from_numpy(mel[None].astype(np.float32))
    prompt = [50257, 50362]  # <|startoftranscript|> <|notimestamps|>
    suppress = json.loads((MODEL / "config.json").read_text())["suppress_ids"]
    with torch.no_grad():
        enc = model.model.encoder(features).last_hidden_state
        ids = list(prompt)
        for _ in range(40):
            logits = model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([ids])).logits[0, -1].clone()
            logits[suppress] = -float("inf")
            logits[50257:] = -float("inf")  # specials other than end of text; no timestamps
            if len(ids) == len(prompt):
                logits[[220, 50256]] = -float("inf")
            nxt = int(logits.argmax())
            ids.append(nxt)
            if nxt == 50256:
                break
        logits = model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([ids])).logits[0]
    tokens = ids[len(prompt):]
    from tokenizers import Tokenizer
    text = Tokenizer.from_file(str(MODEL / "tokenizer.json")).decode([x for x in tokens if x < 50256])
    golden = {
        "text": TEXT,
        "samples": len(audio),
        "mel_frames_saved": content + 1,
        "mel_pad_value": pad_value,
        "encoder_first_rows": [[round(x, 5) for x in row] for row in enc[0, :3].tolist()],
        "encoder_mean": float(enc.mean()),
        "encoder_abs_mean": float(enc.abs().mean()),
        "prompt": prompt,
        "tokens": tokens,
        "transcript": text.strip(),
        "logits_top": [top(logits[i]) for i in range(len(ids))],
    }
    (OUT / "espeak.json").write_text(json.dumps(golden, indent=1))
    print("real:", text)


def tiny_hf() -> None:
    torch.manual_seed(0)
    cfg = WhisperConfig(vocab_size=96, num_mel_bins=80, d_model=32, encoder_layers=2, decoder_layers=2,
                        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                        decoder_ffn_dim=64, max_source_positions=1500, max_target_positions=24,
                        decoder_start_token_id=1, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = WhisperForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())  # the weights as stored
    out = OUT / "hf-tiny"
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.half().contiguous() for k, v in model.state_dict().items() if k != "proj_out.weight"}
    save_file(state, out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1, default=str))
    # A pattern the Rust test computes exactly: ((7 m + 13 t) mod 97) / 97 - 0.5.
    m, t = np.meshgrid(np.arange(80), np.arange(3000), indexing="ij")
    mel = torch.from_numpy((((7 * m + 13 * t) % 97) / 97.0 - 0.5).astype(np.float32))[None]
    ids = [1, 5, 17, 42, 3, 88, 9]
    with torch.no_grad():
        enc = model.model.encoder(mel).last_hidden_state
        logits = model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([ids])).logits[0]
    golden = {
        "ids": ids,
        "encoder_first_rows": [[round(x, 6) for x in row] for row in enc[0, :3].tolist()],
        "encoder_last_row": [round(x, 6) for x in enc[0, -1].tolist()],
        "logits": [[round(x, 6) for x in row] for row in logits.tolist()],
    }
    (out / "golden.json").write_text(json.dumps(golden))


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    real_model()
    tiny_hf()
