#!/usr/bin/env python3
"""A tiny random-weight CLIPModel, its image processor, two test images and golden values.

Builds, with fixed seeds, a transformers `CLIPModel` (both towers, projections, logit scale)
and a standalone `CLIPVisionModel` with the erf GELU, saves them as `save_pretrained` writes
them, and runs the reference implementation (transformers, float32, CPU, one thread) on two
committed test images. Everything goes to `tools/fixtures/crossmodal/clip-tiny/`:

  config.json, model.safetensors
                        the CLIPModel: text tower hidden 32, 2 layers, 4 heads, MLP 37, vocab
                        100 (bos 98, eos = pad 99), 77 positions; vision tower hidden 32, 2
                        layers, 4 heads, MLP 37, image 32, patch 8 (16 patches + class token);
                        projection 16; quick_gelu in both towers; logit_scale 2.6592 (the
                        default, exp = 14.29)
  preprocessor_config.json
                        CLIPImageProcessor with shortest_edge 32 and crop 32 x 32 (OpenAI's mean
                        and std, bicubic, rescale 1/255), as save_pretrained writes it
  vision_gelu/          config.json and model.safetensors of a CLIPVisionModel of the same size
                        with hidden_act "gelu" (erf), as a standalone vision model is saved
  image_a.png           100 x 70 RGB (wide): gradients, a checkerboard, a disc and 1-pixel
                        stripes (sharp edges make bicubic overshoot, so clipping matters)
  image_b.png           24 x 45 RGB (tall): seeded noise, a diagonal gradient and bars
  golden/*.npy          inputs and reference outputs (float32 little-endian .npy; int64 ids;
                        uint8 for Pillow's resized images)
  golden.json           for every golden: file, shape, statistics, the call that made it;
                        configs, seeds, token ids and package versions

The processor is transformers' PIL backend (`CLIPImageProcessorPil`, what `CLIPImageProcessor`
resolves to without torchvision): PIL bicubic resize of the uint8 image so that the shortest side
is 32 (the long side `int(32 * long / short)`), centre crop, `* 1/255` in float64 then float32,
`(x - mean) / std` in float32. image_a is downscaled (70 -> 32), image_b upscaled (24 -> 32).
The default processor (shortest side 224, crop 224) is recorded too, subsampled every 7th row
and column so that the fixture stays small.

Every parameter is re-drawn from one seeded generator per model, so activations stay of order
one: Linear/Conv weights N(0, 1/fan_in), biases N(0, 0.1^2), LayerNorm weights 1 + N(0, 0.1^2)
and biases N(0, 0.1^2), embeddings and the class embedding N(0, 0.5^2). logit_scale keeps its
initial value.

Run from the repository root (needs torch, transformers and Pillow in the venv):

    /work/venv/bin/python tools/clip_tiny.py
"""

import json
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import PIL
import safetensors
import torch
import transformers
from PIL import Image
from safetensors import safe_open
from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tools" / "fixtures" / "crossmodal" / "clip-tiny"
GOLD = OUT / "golden"

VOCAB = 100
BOS, EOS = VOCAB - 2, VOCAB - 1
TEXT = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
    bos_token_id=BOS,
    eos_token_id=EOS,
    pad_token_id=EOS,
)
VISION = dict(
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_channels=3,
    image_size=32,
    patch_size=8,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
)
PROJECTION = 16
PROCESSOR = dict(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})

# Three token sequences of different lengths (bos ... eos), as a CLIP tokenizer frames them.
TEXT_IDS = [
    [BOS, 5, 17, 42, EOS],
    [BOS, 63, 8, 8, 91, 30, 2, 77, EOS],
    [BOS, 11, EOS],
]


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

    def save(self, name: str, value, call: str):
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        value = np.ascontiguousarray(value)
        if value.dtype.kind == "f":
            value = value.astype(np.float32)
        file = f"golden/{name}.npy"
        np.save(OUT / file, value)
        entry = {"file": file, "shape": list(value.shape), "dtype": str(value.dtype), "call": call}
        if value.dtype.kind == "f":
            entry["stats"] = stats(value)
        self.entries[name] = entry
        return value


# ----------------------------------------------------------------------------------------------
# Test images


def image_a() -> np.ndarray:
    """100 x 70, wide: red and green gradients, a blue checkerboard, a yellow disc, stripes."""
    h, w = 70, 100
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[..., 0] = x * 255 // (w - 1)
    img[..., 1] = y * 255 // (h - 1)
    img[..., 2] = np.where((x // 6 + y // 6) % 2 == 0, 230, 20)
    disc = (x - 62) ** 2 + (y - 33) ** 2 < 15**2
    img[disc] = (255, 240, 0)
    stripes = (x >= 6) & (x < 26) & (y >= 10) & (y < 60)
    img[stripes] = np.where((x[stripes] % 2 == 0)[:, None], 255, 0)
    return img


def image_b() -> np.ndarray:
    """24 x 45, tall: seeded noise on top, a diagonal gradient below, dark and bright bars."""
    h, w = 45, 24
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), dtype=np.uint8)
    noise = np.random.default_rng(5).integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[:] = noise
    lower = y >= 18
    img[lower, 0] = ((x + y) * 255 // (w + h - 2))[lower]
    img[lower, 1] = (255 - y * 5)[lower]
    img[lower, 2] = 128
    img[(y >= 30) & (y < 33)] = (250, 250, 250)
    img[(y >= 36) & (y < 38)] = (5, 5, 5)
    return img


# ----------------------------------------------------------------------------------------------
# Models


def randomize(model: torch.nn.Module, seed: int):
    """Re-initialize every parameter from one seeded generator, in `named_parameters` order."""
    g = torch.Generator().manual_seed(seed)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, p in model.named_parameters():
            owner_name, _, leaf = name.rpartition(".")
            owner = modules[owner_name]
            if name == "logit_scale":
                continue
            if isinstance(owner, torch.nn.LayerNorm):
                base = 1.0 if leaf == "weight" else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            elif isinstance(owner, torch.nn.Embedding) or leaf == "class_embedding":
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif isinstance(owner, (torch.nn.Linear, torch.nn.Conv2d)):
                if leaf == "weight":
                    p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                raise TypeError(f"no init rule for {name} ({type(owner).__name__})")


def tensor_names(path: Path):
    with safe_open(path, "pt") as f:
        return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)

    # Images: written, then read back as every user would.
    Image.fromarray(image_a(), "RGB").save(OUT / "image_a.png")
    Image.fromarray(image_b(), "RGB").save(OUT / "image_b.png")
    images = [Image.open(OUT / n).convert("RGB") for n in ("image_a.png", "image_b.png")]

    torch.manual_seed(0)
    config = CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=PROJECTION)
    model = CLIPModel(config).eval()
    randomize(model, 401)
    model.save_pretrained(OUT, safe_serialization=True)
    vision_gelu = CLIPVisionModel(CLIPVisionConfig(**dict(VISION, hidden_act="gelu"))).eval()
    randomize(vision_gelu, 402)
    vision_gelu.save_pretrained(OUT / "vision_gelu", safe_serialization=True)
    processor = CLIPImageProcessorPil(**PROCESSOR)
    processor.save_pretrained(OUT)

    # Everything below runs on what was written.
    model, info = CLIPModel.from_pretrained(OUT, output_loading_info=True)
    vision_gelu, info_gelu = CLIPVisionModel.from_pretrained(OUT / "vision_gelu", output_loading_info=True)
    for i in (info, info_gelu):
        assert not any(i.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), i
    model.eval()
    vision_gelu.eval()
    processor = CLIPImageProcessorPil.from_pretrained(OUT)
    default_processor = CLIPImageProcessorPil()

    gold = Golden()
    pixels = processor(images=images, return_tensors="pt").pixel_values
    gold.save("pixel_values", pixels, "CLIPImageProcessorPil.from_pretrained(dir)(images=[image_a, image_b]).pixel_values")
    full = default_processor(images=images, return_tensors="np").pixel_values
    assert full.shape == (2, 3, 224, 224), full.shape
    gold.save(
        "pixel_values_224_every7",
        full[:, :, ::7, ::7],
        "CLIPImageProcessorPil()(images=[image_a, image_b]).pixel_values[:, :, ::7, ::7] (default 224 processor)",
    )
    # Per image and channel, the sum of the full 224 x 224 pixel values (float64): a single
    # 8-bit step anywhere moves a sum by about 0.015.
    gold.save(
        "pixel_values_224_sums",
        full.astype(np.float64).sum(axis=(2, 3)).astype(np.float32),
        "CLIPImageProcessorPil()(images).pixel_values summed over H and W in float64 [2, 3]",
    )
    # The resized uint8 images (before the crop) help find where a processor port differs;
    # the other Pillow filters on one downscale and one upscale check the resampler itself.
    for name, img in zip(("a", "b"), images):
        w, h = img.size
        short, long = min(w, h), max(w, h)
        new_long = int(32 * long / short)
        size = (32, new_long) if w <= h else (new_long, 32)
        gold.save(
            f"resized_{name}",
            np.asarray(img.resize(size, Image.Resampling.BICUBIC)),
            f"PIL image_{name}.resize({size}, BICUBIC) as uint8 [h, w, 3] (before the crop)",
        )
    for filt in ("LANCZOS", "BILINEAR", "BOX", "HAMMING"):
        for name, img, size in (("a", images[0], (37, 23)), ("b", images[1], (30, 50))):
            gold.save(
                f"resize_{filt.lower()}_{name}",
                np.asarray(img.resize(size, Image.Resampling[filt])),
                f"PIL image_{name}.resize({size}, {filt}) as uint8 [h, w, 3]",
            )

    lengths = [len(s) for s in TEXT_IDS]
    t = max(lengths)
    ids = np.full((len(TEXT_IDS), t), EOS, dtype=np.int64)
    mask = np.zeros((len(TEXT_IDS), t), dtype=np.int64)
    for i, s in enumerate(TEXT_IDS):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    gold.save("input_ids", ids, "TEXT_IDS padded with eos (99) on the right")
    gold.save("attention_mask", mask, "1 on each sequence's tokens, 0 on the padding")

    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), pixel_values=pixels)
        vision = model.vision_model(pixel_values=pixels)
        text = model.text_model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
        # Without the padding mask the pooled text output is the same (causal attention: the
        # end-of-text token never sees the padding after it).
        text_unmasked = model.text_model(input_ids=torch.from_numpy(ids))
        assert (text.pooler_output - text_unmasked.pooler_output).abs().max() < 1e-6
        gelu = vision_gelu(pixel_values=pixels)
    gold.save("vision_last_hidden_state", vision.last_hidden_state, "model.vision_model(pixel_values).last_hidden_state")
    gold.save("vision_pooled", vision.pooler_output, "model.vision_model(pixel_values).pooler_output (post_layernorm of the class token)")
    gold.save("text_pooled", text.pooler_output, "model.text_model(input_ids, attention_mask).pooler_output")
    gold.save("image_embeds", out.image_embeds, "model(input_ids, attention_mask, pixel_values).image_embeds (projected, L2-normalised)")
    gold.save("text_embeds", out.text_embeds, "model(...).text_embeds (projected, L2-normalised)")
    gold.save("logits_per_image", out.logits_per_image, "model(...).logits_per_image [images, texts]")
    gold.save("logits_per_text", out.logits_per_text, "model(...).logits_per_text [texts, images]")
    gold.save("vision_gelu_pooled", gelu.pooler_output, "vision_gelu(pixel_values).pooler_output")
    gold.save("vision_gelu_last_hidden_state", gelu.last_hidden_state, "vision_gelu(pixel_values).last_hidden_state")

    doc = {
        "tolerance_max_abs": 1e-4,
        "model": {"text_config": TEXT, "vision_config": VISION, "projection_dim": PROJECTION, "seed": 401},
        "vision_gelu": {"config": dict(VISION, hidden_act="gelu"), "seed": 402},
        "processor": PROCESSOR,
        "images": {
            "image_a.png": {"size_wh": list(images[0].size), "resized_wh": list(gold.entries["resized_a"]["shape"][1::-1])},
            "image_b.png": {"size_wh": list(images[1].size), "resized_wh": list(gold.entries["resized_b"]["shape"][1::-1])},
        },
        "text_ids": TEXT_IDS,
        "logit_scale": float(model.logit_scale.detach()),
        "tensor_names": {
            "model.safetensors": tensor_names(OUT / "model.safetensors"),
            "vision_gelu/model.safetensors": tensor_names(OUT / "vision_gelu" / "model.safetensors"),
        },
        "files": gold.entries,
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "safetensors": safetensors.__version__,
            "pillow": PIL.__version__,
        },
    }
    (OUT / "golden.json").write_text(json.dumps(doc, indent=1) + "\n")

    for k, v in gold.entries.items():
        if "stats" in v:
            s = v["stats"]
            print(f"{k:32s} {str(v['shape']):18s} min {s['min']:+.3f} max {s['max']:+.3f} std {s['std']:.3f}")
    print("logits_per_image", out.logits_per_image.numpy())
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"total {total} bytes under {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    sys.exit(main())
