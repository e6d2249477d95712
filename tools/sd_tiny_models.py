#!/usr/bin/env python3
"""Tiny random-weight Stable Diffusion 1.x/2.x models in diffusers layout, with golden outputs.

Builds, with fixed seeds, a diffusers pipeline directory in the SD 1.x/2.x configuration space
and runs the reference implementation (diffusers / transformers, float32, CPU, one thread) on
fixed inputs. Everything goes to `tools/fixtures/image/sd-tiny/`:

  model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/
                        an SD 1.x-style StableDiffusionPipeline as `save_pretrained` writes it
                        (safetensors, float32; no safety checker, no feature extractor)
  unet_v2/              an SD 2.x-style UNet (list of head counts, use_linear_projection,
                        upcast_attention, cross-attention in every block)
  text_encoder_v2/      an SD 2.x-style CLIP text encoder (hidden_act "gelu" instead of quick_gelu)
  scheduler_v2/         EulerDiscreteScheduler with prediction_type "v_prediction"
  golden/*.npy          inputs and reference outputs (float32 little-endian .npy, or int64 ids)
  golden.json           for every golden: file, shape, summary statistics, the call that made it;
                        seeds, configs, timesteps and package versions
  README.md             hand-written (kept across runs): what to compare, behaviours to match

The tokenizer is a CLIP-style byte-level BPE with `</w>` word ends (vocab.json + merges.txt,
1000 entries: 256 bytes, 256 bytes + `</w>`, 486 merges learned here on a short text, then
`<|startoftext|>` and `<|endoftext|>`), loaded by transformers' CLIPTokenizer, which also writes
tokenizer.json.

Every parameter is re-initialized from one seeded generator per model, so activations stay of
order one: Linear/Conv weights N(0, 1/fan_in), biases N(0, 0.1^2), GroupNorm/LayerNorm weights
1 + N(0, 0.1^2) and biases N(0, 0.1^2), embeddings N(0, 0.5^2). The VAE's two conv_out are at
half scale (see `build_models`) so that decoded images mostly fall inside [-1, 1]. Channels are
(8, 16) so that the whole directory stays under 2 MB (about 1.8 MB). The text encoders' keys
get the `text_model.` prefix of real SD checkpoints (transformers 5 saves without it).

Goldens (see golden.json and README.md there for the intended tolerances, 1e-3 max abs):
  unet_v1 / unet_v2     UNet output for a fixed [2, 4, 16, 12] latent at t = 10 and t = 500
  vae                   decode of a fixed latent (raw decoder output, before /2 + 0.5),
                        encode of a fixed image (latent_dist.mean, latent_dist.logvar)
  clip / clip_v2        last_hidden_state and pooler_output for [2, 77] ids (random ids; a prompt)
  txt2img               4 DDIM steps, guidance 7.5, negative prompt, fixed initial latents:
                        per-step UNet inputs/outputs, per-step latents, final latents, the raw
                        decode and the pipeline's output_type="np" image
  txt2img_v2            the same with unet_v2, text_encoder_v2 and Euler (v-prediction)
  img2img               strength 0.5, DDIM, the two random draws replayed from saved tensors

Run from the repository root:

    /work/venv/bin/python tools/sd_tiny_models.py
"""

import json
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import safetensors
import tokenizers
import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

import diffusers
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    EulerDiscreteScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.models.autoencoders import vae as vae_module
from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_img2img as img2img_module

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tools" / "fixtures" / "image" / "sd-tiny"
GOLD = OUT / "golden"

VOCAB = 1000
MAX_LEN = 77
# Latent size of every golden: 16 x 12 (non-square on purpose), image 32 x 24 (VAE factor 2).
LAT_H, LAT_W = 16, 12
IMG_H, IMG_W = 2 * LAT_H, 2 * LAT_W

PROMPT = "a photo of a red fox in the snow, highly detailed"
NEGATIVE = "blurry, low quality"
PROMPT_V2 = "an oil painting of a small boat on a quiet lake at sunset"
IMG2IMG_PROMPT = "a watercolor of a mountain village"
GUIDANCE = 7.5
STEPS = 4
STRENGTH = 0.5

# Text the tokenizer's merges are learned on.
TOKENIZER_TEXT = """
a photo of a red fox in the snow, highly detailed, sharp focus, studio lighting.
an oil painting of a small boat on a quiet lake at sunset, warm colors, soft light.
a watercolor of a mountain village with stone houses, green hills and a blue sky.
portrait of an old man with a grey beard, cinematic, dramatic shadows, 35mm film.
a cat sitting on a wooden table next to a cup of coffee, morning light, bokeh.
blurry, low quality, jpeg artifacts, watermark, text, deformed, ugly, bad anatomy.
digital art of a futuristic city at night, neon lights, rain, reflections, trending.
a bowl of fruit: apples, oranges, bananas and grapes; still life, renaissance style.
a dog running on the beach, waves, golden hour, photograph, canon, 8k, masterpiece.
landscape with a river, forest, fog, mountains in the distance, illustration, concept art.
a castle on a cliff above the sea, storm clouds, lightning, epic fantasy, matte painting.
close-up of a flower with dew drops, macro photography, vivid colors, shallow depth of field.
an astronaut riding a horse on mars, volumetric clouds, unreal engine, octane render, symmetrical.
pencil sketch of a lighthouse, charcoal, hatching, paper texture, monochrome, minimalism, elegant.
a cozy kitchen interior, wooden shelves, hanging plants, copper pots, isometric, pastel palette.
underwater scene with jellyfish, coral reef, turquoise water, bioluminescence, dreamy atmosphere.
steampunk airship over victorian london, brass gears, smoke, intricate machinery, ornate, vintage.
"""

SD_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    steps_offset=1,
    timestep_spacing="leading",
)

CLIP_V1 = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=MAX_LEN,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
    projection_dim=32,
    bos_token_id=VOCAB - 2,
    eos_token_id=VOCAB - 1,
    pad_token_id=VOCAB - 1,
)
CLIP_V2 = dict(CLIP_V1, hidden_act="gelu")

UNET_V1 = dict(
    sample_size=LAT_H,
    in_channels=4,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(8, 16),
    layers_per_block=2,
    cross_attention_dim=32,
    # SD 1.x style: an int, which diffusers uses as the number of heads in every block
    # (2 heads of 4 at 8 channels, 2 heads of 8 at 16 channels and in the mid block).
    attention_head_dim=2,
    norm_num_groups=4,
    norm_eps=1e-5,
)
UNET_V2 = dict(
    sample_size=LAT_H,
    in_channels=4,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(8, 16),
    layers_per_block=1,
    cross_attention_dim=32,
    # SD 2.x style: a list, again used as head counts per block (2 heads of 4, 4 heads of 4;
    # the mid block takes the last entry).
    attention_head_dim=(2, 4),
    use_linear_projection=True,
    upcast_attention=True,
    norm_num_groups=4,
    norm_eps=1e-5,
)
VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    block_out_channels=(8, 16),
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=4,
    sample_size=IMG_H,
    scaling_factor=0.18215,
)


def stats(a: np.ndarray):
    a = np.asarray(a, dtype=np.float64)
    return {
        "min": float(a.min()),
        "max": float(a.max()),
        "mean": float(a.mean()),
        "std": float(a.std()),
        "abs_sum": float(np.abs(a).sum()),
    }


class Golden:
    """Collects .npy files and their golden.json entries."""

    def __init__(self):
        GOLD.mkdir(parents=True, exist_ok=True)
        self.entries = {}

    def save(self, name: str, value, note: str = ""):
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        value = np.ascontiguousarray(value)
        if value.dtype.kind == "f":
            value = value.astype(np.float32)
        file = f"golden/{name}.npy"
        np.save(OUT / file, value)
        entry = {"file": file, "shape": list(value.shape), "dtype": str(value.dtype)}
        if value.dtype.kind == "f":
            entry["stats"] = stats(value)
        if note:
            entry["note"] = note
        self.entries[name] = entry
        return value


def rng_normal(seed: int, shape) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


# ----------------------------------------------------------------------------------------------
# Tokenizer


def bytes_to_unicode():
    """GPT-2 / CLIP byte-to-unicode table, in CLIP's vocabulary order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def learn_merges(words: dict, count: int):
    """Plain BPE on word counts; symbols of a word end with `</w>` on the last one.

    Ties on pair frequency break on the pair itself (lexicographic), so the result is
    deterministic."""
    corpus = {}
    for word, freq in words.items():
        symbols = tuple(word[:-1]) + (word[-1] + "</w>",)
        corpus[symbols] = corpus.get(symbols, 0) + freq
    merges = []
    while len(merges) < count:
        pairs = {}
        for symbols, freq in corpus.items():
            for a, b in zip(symbols, symbols[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + freq
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best)
        merged = {}
        for symbols, freq in corpus.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + freq
        corpus = merged
    return merges


def build_tokenizer(directory: Path) -> CLIPTokenizer:
    # Pre-tokenize with the CLIPTokenizer's own normalizer and pre-tokenizer (byte-level words).
    empty = CLIPTokenizer()
    backend = empty.backend_tokenizer
    text = backend.normalizer.normalize_str(TOKENIZER_TEXT)
    words = {}
    for word, _ in backend.pre_tokenizer.pre_tokenize_str(text):
        words[word] = words.get(word, 0) + 1
    base = list(bytes_to_unicode().values())
    specials = ["<|startoftext|>", "<|endoftext|>"]
    merges = learn_merges(words, VOCAB - 2 * len(base) - len(specials))
    tokens = base + [b + "</w>" for b in base] + [a + b for a, b in merges] + specials
    assert len(tokens) == len(set(tokens)) == VOCAB, (len(tokens), len(set(tokens)))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False) + "\n")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    tok = CLIPTokenizer(
        vocab=str(directory / "vocab.json"),
        merges=str(directory / "merges.txt"),
        model_max_length=MAX_LEN,
    )
    return tok


# ----------------------------------------------------------------------------------------------
# Models


def randomize(model: torch.nn.Module, seed: int, scaled: dict | None = None):
    """Re-initialize every parameter from one seeded generator, module by module in
    `named_modules` order. `scaled` maps a module name to an extra factor on its weight."""
    g = torch.Generator().manual_seed(seed)
    scaled = scaled or {}
    seen = set()
    with torch.no_grad():
        for name, module in model.named_modules():
            params = dict(module.named_parameters(recurse=False))
            if not params:
                continue
            if isinstance(module, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
                if "weight" in params:
                    params["weight"].copy_(1.0 + 0.1 * torch.randn(params["weight"].shape, generator=g))
                if "bias" in params:
                    params["bias"].copy_(0.1 * torch.randn(params["bias"].shape, generator=g))
            elif isinstance(module, torch.nn.Embedding):
                params["weight"].copy_(0.5 * torch.randn(params["weight"].shape, generator=g))
            elif isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                w = params["weight"]
                fan_in = w[0].numel()
                w.copy_(torch.randn(w.shape, generator=g) * (scaled.get(name, 1.0) / fan_in**0.5))
                if "bias" in params:
                    params["bias"].copy_(0.1 * torch.randn(params["bias"].shape, generator=g))
            else:
                raise TypeError(f"no init rule for {name} ({type(module).__name__})")
            for p in params.values():
                seen.add(id(p))
    missed = [n for n, p in model.named_parameters() if id(p) not in seen]
    assert not missed, missed


def build_models():
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(**CLIP_V1)).eval()
    randomize(text_encoder, 101)
    text_encoder_v2 = CLIPTextModel(CLIPTextConfig(**CLIP_V2)).eval()
    randomize(text_encoder_v2, 102)
    unet = UNet2DConditionModel(**UNET_V1).eval()
    randomize(unet, 201)
    unet_v2 = UNet2DConditionModel(**UNET_V2).eval()
    randomize(unet_v2, 202)
    vae = AutoencoderKL(**VAE).eval()
    # The encoder's conv_out scaled down keeps logvar in a sensible range; the decoder's keeps
    # decoded pixels mostly inside [-1, 1] so the pipeline's clamp does not hide differences.
    randomize(vae, 301, scaled={"encoder.conv_out": 0.5, "decoder.conv_out": 0.5})
    return text_encoder, text_encoder_v2, unet, unet_v2, vae


def scheduler_v1():
    return DDIMScheduler(**SD_SCHEDULER, clip_sample=False, set_alpha_to_one=False, prediction_type="epsilon")


def scheduler_v2():
    return EulerDiscreteScheduler(**SD_SCHEDULER, prediction_type="v_prediction")


def write_models(tok):
    text_encoder, text_encoder_v2, unet, unet_v2, vae = build_models()
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tok,
        unet=unet,
        scheduler=scheduler_v1(),
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    # Writes tokenizer.json and tokenizer_config.json next to the hand-made vocab.json and
    # merges.txt (which real SD checkpoints ship too, and which are left as they are).
    pipe.save_pretrained(OUT, safe_serialization=True)
    unet_v2.save_pretrained(OUT / "unet_v2", safe_serialization=True)
    text_encoder_v2.save_pretrained(OUT / "text_encoder_v2", safe_serialization=True)
    scheduler_v2().save_pretrained(OUT / "scheduler_v2")
    for sub in ("text_encoder", "text_encoder_v2"):
        prefix_text_model(OUT / sub / "model.safetensors")


def prefix_text_model(path: Path):
    """transformers 5 saves CLIPTextModel without the `text_model.` prefix that every real SD
    1.x/2.x checkpoint (written by transformers 4) has; put it back so the fixture has the real
    layout. transformers 5 strips it again on load (checked in main)."""
    tensors = load_file(path)
    assert not any(k.startswith("text_model.") for k in tensors)
    save_file({f"text_model.{k}": v for k, v in tensors.items()}, path, metadata={"format": "pt"})


# ----------------------------------------------------------------------------------------------
# Goldens


class UNetRecorder:
    """Records every UNet call of a pipeline: sample, timestep, encoder_hidden_states, output."""

    def __init__(self, unet):
        self.calls = []
        self.handles = [
            unet.register_forward_pre_hook(self.pre, with_kwargs=True),
            unet.register_forward_hook(self.post, with_kwargs=True),
        ]

    def pre(self, module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        ehs = args[2] if len(args) > 2 else kwargs["encoder_hidden_states"]
        self.calls.append({"sample": sample.clone(), "timestep": float(torch.as_tensor(timestep).reshape(-1)[0]), "ehs": ehs.clone()})

    def post(self, module, args, kwargs, output):
        out = output[0] if isinstance(output, tuple) else output.sample
        self.calls[-1]["out"] = out.clone()

    def remove(self):
        for h in self.handles:
            h.remove()


class StepLatents:
    def __init__(self):
        self.latents = []

    def __call__(self, pipe, step, timestep, kwargs):
        self.latents.append(kwargs["latents"].clone())
        return kwargs


def clip_goldens(gold, tok, text_encoder, suffix, doc):
    # Fixed ids: row 0 random ids between bos and eos, padded with eos (pad = eos as in SD 1.x);
    # row 1 the tokenized prompt. Pooled output = hidden state at the first eos.
    ids = np.full((2, MAX_LEN), VOCAB - 1, dtype=np.int64)
    ids[0, 0] = VOCAB - 2
    ids[0, 1:20] = np.random.default_rng(7).integers(0, VOCAB - 2, 19)
    ids[0, 20] = VOCAB - 1
    ids[1] = tok(PROMPT, padding="max_length", max_length=MAX_LEN, truncation=True, return_tensors="np").input_ids[0]
    with torch.no_grad():
        out = text_encoder(torch.from_numpy(ids))
    gold.save(f"clip{suffix}_input_ids", ids)
    gold.save(f"clip{suffix}_last_hidden_state", out.last_hidden_state)
    gold.save(f"clip{suffix}_pooler_output", out.pooler_output)
    doc[f"clip{suffix}"] = {
        "call": f"text_encoder(input_ids).last_hidden_state / .pooler_output, input_ids = clip{suffix}_input_ids (no attention_mask)",
        "row_1_prompt": PROMPT,
    }


def unet_goldens(gold, unet, name, doc):
    sample = rng_normal(11, (2, 4, LAT_H, LAT_W))
    ehs = rng_normal(12, (2, MAX_LEN, 32))
    gold.save("unet_sample", sample)
    gold.save("unet_encoder_hidden_states", ehs)
    for t in (10, 500):
        with torch.no_grad():
            out = unet(torch.from_numpy(sample), t, encoder_hidden_states=torch.from_numpy(ehs)).sample
        gold.save(f"{name}_out_t{t}", out)
    # A per-sample timestep batch must give row 0 of t=10 and row 1 of t=500.
    with torch.no_grad():
        mixed = unet(torch.from_numpy(sample), torch.tensor([10, 500]), encoder_hidden_states=torch.from_numpy(ehs)).sample
    ref = np.stack([np.load(OUT / f"golden/{name}_out_t10.npy")[0], np.load(OUT / f"golden/{name}_out_t500.npy")[1]])
    assert np.abs(mixed.numpy() - ref).max() < 1e-5
    doc[name] = {
        "call": f"{name}(unet_sample, t, encoder_hidden_states=unet_encoder_hidden_states).sample for t in (10, 500)",
        "per_sample_timesteps": "timestep tensor([10, 500]) gives row 0 of _t10 and row 1 of _t500 (checked to 1e-5)",
    }


def vae_goldens(gold, vae, doc):
    latent = rng_normal(21, (1, 4, LAT_H, LAT_W))
    image = np.random.default_rng(22).uniform(-1.0, 1.0, (1, 3, IMG_H, IMG_W)).astype(np.float32)
    with torch.no_grad():
        decoded = vae.decode(torch.from_numpy(latent)).sample
        dist = vae.encode(torch.from_numpy(image)).latent_dist
    gold.save("vae_decode_latent", latent)
    gold.save("vae_decode_out", decoded, "raw decoder output (post_quant_conv -> decoder), before /2 + 0.5 and clamping")
    gold.save("vae_encode_image", image)
    gold.save("vae_encode_mean", dist.mean)
    gold.save("vae_encode_logvar", dist.logvar, "after diffusers' clamp to [-30, 20]")
    gold.save("vae_encode_std", dist.std, "exp(0.5 * logvar)")
    doc["vae"] = {
        "decode_call": "vae.decode(vae_decode_latent).sample (no scaling inside; the pipeline divides by scaling_factor first)",
        "encode_call": "vae.encode(vae_encode_image).latent_dist.{mean, logvar, std} (encoder -> quant_conv -> chunk(2, dim=1))",
        "scaling_factor": VAE["scaling_factor"],
    }


def txt2img(gold, pipe, name, prompt, latent_seed, doc):
    latents = rng_normal(latent_seed, (1, 4, LAT_H, LAT_W))
    rec = UNetRecorder(pipe.unet)
    steps = StepLatents()
    with torch.no_grad():
        image = pipe(
            prompt=prompt,
            negative_prompt=NEGATIVE,
            height=IMG_H,
            width=IMG_W,
            num_inference_steps=STEPS,
            guidance_scale=GUIDANCE,
            latents=torch.from_numpy(latents),
            output_type="np",
            callback_on_step_end=steps,
        ).images
    rec.remove()
    final = steps.latents[-1]
    with torch.no_grad():
        raw = pipe.vae.decode(final / pipe.vae.config.scaling_factor).sample
    # output_type="np" is (raw / 2 + 0.5).clamp(0, 1), NCHW -> NHWC.
    assert np.abs(image - (raw / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()).max() < 1e-6
    ids = pipe.tokenizer([NEGATIVE, prompt], padding="max_length", max_length=MAX_LEN, truncation=True, return_tensors="np").input_ids
    gold.save(f"{name}_input_ids", ids, "row 0 negative prompt, row 1 prompt (the pipeline's CFG batch order)")
    gold.save(f"{name}_prompt_embeds", rec.calls[0]["ehs"], "[negative; prompt] text encoder last_hidden_state")
    gold.save(f"{name}_init_latents", latents)
    gold.save(f"{name}_unet_in", torch.stack([c["sample"] for c in rec.calls]), "per step: scale_model_input(cat([latents] * 2))")
    gold.save(f"{name}_unet_out", torch.stack([c["out"] for c in rec.calls]), "per step: raw UNet output, rows [uncond, cond]")
    gold.save(f"{name}_step_latents", torch.stack(steps.latents), "per step: latents after scheduler.step")
    gold.save(f"{name}_final_latents", final)
    gold.save(f"{name}_decode_raw", raw, "vae.decode(final_latents / scaling_factor).sample")
    gold.save(f"{name}_image", image, "pipeline output_type='np': NHWC, (raw / 2 + 0.5).clamp(0, 1)")
    doc[name] = {
        "scheduler": type(pipe.scheduler).__name__,
        "scheduler_config": {k: v for k, v in pipe.scheduler.config.items() if not k.startswith("_")},
        "timesteps": [c["timestep"] for c in rec.calls],
        "init_noise_sigma": float(pipe.scheduler.init_noise_sigma),
        "prompt": prompt,
        "negative_prompt": NEGATIVE,
        "guidance_scale": GUIDANCE,
        "num_inference_steps": STEPS,
        "height": IMG_H,
        "width": IMG_W,
        "latents_seed": f"numpy default_rng({latent_seed}).standard_normal((1, 4, {LAT_H}, {LAT_W}), float32)",
        "call": (
            f"pipe(prompt={prompt!r}, negative_prompt={NEGATIVE!r}, height={IMG_H}, width={IMG_W}, "
            f"num_inference_steps={STEPS}, guidance_scale={GUIDANCE}, latents={name}_init_latents, output_type='np')"
        ),
    }


def img2img(gold, components, doc):
    pipe = StableDiffusionImg2ImgPipeline(**components, safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    # Init image NHWC in [0, 1]: a smooth colour gradient plus a little noise.
    yy, xx = np.meshgrid(np.linspace(0, 1, IMG_H), np.linspace(0, 1, IMG_W), indexing="ij")
    image = np.stack([xx, yy, 0.5 * (xx + yy)], axis=-1)[None]
    image = np.clip(image + 0.1 * np.random.default_rng(31).standard_normal(image.shape), 0, 1).astype(np.float32)
    # The two random draws img2img makes: latent_dist.sample() and the add_noise noise.
    draws = [rng_normal(32, (1, 4, LAT_H, LAT_W)), rng_normal(33, (1, 4, LAT_H, LAT_W))]
    queue = list(draws)
    original = {vae_module: vae_module.randn_tensor, img2img_module: img2img_module.randn_tensor}

    def replay(shape, generator=None, device=None, dtype=None, layout=None):
        assert tuple(shape) == queue[0].shape, (shape, queue[0].shape)
        return torch.from_numpy(queue.pop(0)).to(dtype=dtype or torch.float32)

    for module in original:
        module.randn_tensor = replay
    rec = UNetRecorder(pipe.unet)
    steps = StepLatents()
    try:
        with torch.no_grad():
            out = pipe(
                prompt=IMG2IMG_PROMPT,
                negative_prompt=NEGATIVE,
                image=image,
                strength=STRENGTH,
                num_inference_steps=STEPS,
                guidance_scale=GUIDANCE,
                output_type="np",
                callback_on_step_end=steps,
            ).images
    finally:
        for module, fn in original.items():
            module.randn_tensor = fn
        rec.remove()
    assert not queue, "img2img made fewer random draws than expected"
    # Recompute the intermediate values the pipeline does not return.
    with torch.no_grad():
        x = torch.from_numpy(image).permute(0, 3, 1, 2) * 2 - 1
        dist = pipe.vae.encode(x).latent_dist
        init = (dist.mean + dist.std * torch.from_numpy(draws[0])) * pipe.vae.config.scaling_factor
        t0 = pipe.scheduler.timesteps[STEPS - int(STEPS * STRENGTH) :][:1]
        noised = pipe.scheduler.add_noise(init, torch.from_numpy(draws[1]), t0)
        final = steps.latents[-1]
        raw = pipe.vae.decode(final / pipe.vae.config.scaling_factor).sample
    assert torch.abs(rec.calls[0]["sample"][1] - noised[0]).max() < 1e-5
    assert np.abs(out - (raw / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()).max() < 1e-6
    gold.save("img2img_image_in", image, "NHWC in [0, 1], as passed to the pipeline (it uses 2 * x - 1, NCHW)")
    gold.save("img2img_noise_sample", draws[0], "draw 1: eps of latent_dist.sample() = mean + std * eps")
    gold.save("img2img_noise_add", draws[1], "draw 2: noise of scheduler.add_noise(init_latents, noise, timesteps[:1])")
    gold.save("img2img_init_latents", init, "scaling_factor * latent_dist.sample()")
    gold.save("img2img_noised_latents", noised, "scheduler.add_noise(init_latents, noise, t_start)")
    gold.save("img2img_unet_in", torch.stack([c["sample"] for c in rec.calls]))
    gold.save("img2img_unet_out", torch.stack([c["out"] for c in rec.calls]))
    gold.save("img2img_step_latents", torch.stack(steps.latents))
    gold.save("img2img_final_latents", final)
    gold.save("img2img_decode_raw", raw)
    gold.save("img2img_image", out, "pipeline output_type='np'")
    doc["img2img"] = {
        "scheduler": type(pipe.scheduler).__name__,
        "all_timesteps": [int(t) for t in pipe.scheduler.timesteps],
        "timesteps": [c["timestep"] for c in rec.calls],
        "strength": STRENGTH,
        "prompt": IMG2IMG_PROMPT,
        "negative_prompt": NEGATIVE,
        "guidance_scale": GUIDANCE,
        "num_inference_steps": STEPS,
        "random_draws": "diffusers' randn_tensor patched (in diffusers.models.autoencoders.vae and in the img2img "
        "pipeline module) to return img2img_noise_sample, then img2img_noise_add; numpy default_rng(32) and (33)",
        "call": (
            f"StableDiffusionImg2ImgPipeline(...)(prompt={IMG2IMG_PROMPT!r}, negative_prompt={NEGATIVE!r}, "
            f"image=img2img_image_in, strength={STRENGTH}, num_inference_steps={STEPS}, guidance_scale={GUIDANCE}, output_type='np')"
        ),
    }


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    # Start clean, but keep the hand-written README.md.
    OUT.mkdir(parents=True, exist_ok=True)
    for entry in OUT.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        elif entry.name != "README.md":
            entry.unlink()
    tok = build_tokenizer(OUT / "tokenizer")
    write_models(tok)

    # Everything below runs on the weights as reloaded from disk.
    pipe = StableDiffusionPipeline.from_pretrained(OUT, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    tok = pipe.tokenizer
    unet_v2 = UNet2DConditionModel.from_pretrained(OUT, subfolder="unet_v2").eval()
    text_encoder_v2, info = CLIPTextModel.from_pretrained(OUT, subfolder="text_encoder_v2", output_loading_info=True)
    text_encoder_v2.eval()
    _, info_v1 = CLIPTextModel.from_pretrained(OUT, subfolder="text_encoder", output_loading_info=True)
    for i in (info, info_v1):
        assert not any(i.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), i
    sched_v2 = EulerDiscreteScheduler.from_pretrained(OUT, subfolder="scheduler_v2")

    gold = Golden()
    doc = {}
    prompts = {}
    for text in (PROMPT, NEGATIVE, PROMPT_V2, IMG2IMG_PROMPT):
        enc = tok(text)
        prompts[text] = {"ids": enc.input_ids, "tokens": tok.convert_ids_to_tokens(enc.input_ids)}
    doc["tokenizer"] = {
        "class": type(tok).__name__,
        "vocab_size": len(tok),
        "model_max_length": tok.model_max_length,
        "bos": [tok.bos_token, tok.bos_token_id],
        "eos": [tok.eos_token, tok.eos_token_id],
        "pad": [tok.pad_token, tok.pad_token_id],
        "call": "tokenizer(text).input_ids (bos ... eos); the pipelines pad with pad (= eos) to 77",
        "prompts": prompts,
    }

    clip_goldens(gold, tok, pipe.text_encoder, "", doc)
    clip_goldens(gold, tok, text_encoder_v2, "_v2", doc)
    unet_goldens(gold, pipe.unet, "unet_v1", doc)
    unet_goldens(gold, unet_v2, "unet_v2", doc)
    vae_goldens(gold, pipe.vae, doc)

    txt2img(gold, pipe, "txt2img", PROMPT, 41, doc)
    pipe_v2 = StableDiffusionPipeline(
        vae=pipe.vae,
        text_encoder=text_encoder_v2,
        tokenizer=tok,
        unet=unet_v2,
        scheduler=sched_v2,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    pipe_v2.set_progress_bar_config(disable=True)
    txt2img(gold, pipe_v2, "txt2img_v2", PROMPT_V2, 42, doc)
    doc["txt2img_v2"]["components"] = "vae/, tokenizer/, text_encoder_v2/, unet_v2/, scheduler_v2/"
    img2img(gold, dict(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=tok, unet=pipe.unet, scheduler=pipe.scheduler), doc)

    doc = {
        "tolerance_max_abs": 1e-3,
        "inputs": {
            "unet_sample": "numpy default_rng(11).standard_normal((2, 4, 16, 12), float32)",
            "unet_encoder_hidden_states": "numpy default_rng(12).standard_normal((2, 77, 32), float32)",
            "vae_decode_latent": "numpy default_rng(21).standard_normal((1, 4, 16, 12), float32)",
            "vae_encode_image": "numpy default_rng(22).uniform(-1, 1, (1, 3, 32, 24)) as float32",
            "clip_input_ids row 0": "bos, numpy default_rng(7).integers(0, 998, 19), eos, eos padding",
        },
        "parameter_seeds": {"text_encoder": 101, "text_encoder_v2": 102, "unet": 201, "unet_v2": 202, "vae": 301},
        **doc,
        "files": gold.entries,
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "safetensors": safetensors.__version__,
        },
    }
    (OUT / "golden.json").write_text(json.dumps(doc, indent=1) + "\n")

    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    for n, m in (("unet", pipe.unet), ("unet_v2", unet_v2), ("vae", pipe.vae), ("text_encoder", pipe.text_encoder)):
        print(f"{n}: {sum(p.numel() for p in m.parameters())} parameters")
    for k, v in gold.entries.items():
        if "stats" in v:
            s = v["stats"]
            print(f"{k:32s} {str(v['shape']):18s} min {s['min']:+.3f} max {s['max']:+.3f} std {s['std']:.3f}")
    print(f"total {total} bytes under {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    sys.exit(main())
