#!/usr/bin/env python3
"""A tiny random-weight AnimateDiff motion adapter on the tiny Stable Diffusion fixture, with
golden outputs from diffusers.

The base image model is `tools/fixtures/image/sd-tiny/` (written by `sd_tiny_models.py`: UNet
channels (8, 16), two layers per block, cross-attention in the first level, 4 norm groups). This
script adds a `MotionAdapter` in the same channel layout (per-level temporal heads (2, 4), a
motion mid block, max sequence length 32), re-initializes every parameter from one seeded
generator with `sd_tiny_models.randomize`'s rules (so the temporal attention is far from the
identity that real adapters start from), and runs diffusers' `UNetMotionModel` and
`AnimateDiffPipeline` (float32, CPU, one thread). Everything goes to
`tools/fixtures/video/animatediff-tiny/`:

  motion_adapter/       MotionAdapter.save_pretrained (config.json + safetensors)
  unet_motion/          UNetMotionModel.from_unet2d(sd-tiny unet, adapter).save_pretrained
  golden/*.npy          inputs and reference outputs (float32 .npy)
  golden.json           for every golden: file, shape, statistics; seeds, calls, versions

Goldens (1e-3 max abs is the bound the Rust tests use):
  motion_module         down_blocks.0.motion_modules.0 (AnimateDiffTransformer3D) alone on a
                        fixed [2 * 4 frames, 8, 16, 12] input, num_frames 4
  unet                  UNetMotionModel.from_unet2d(sd-tiny unet, adapter) on a fixed
                        [2, 4, 4 frames, 16, 12] sample, timesteps [10, 500], a fixed [2, 77, 32]
                        context repeated per frame (as the pipeline does)
  video                 AnimateDiffPipeline: 4 frames, 2 DDIM steps (sd-tiny's scheduler config),
                        guidance 7.5 with a negative prompt, fixed initial latents: per-step
                        latents, final latents, output_type="np" frames

Run from the repository root:

    /work/venv/bin/python tools/animatediff_tiny.py
"""

import json
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

import diffusers
from diffusers import (
    AnimateDiffPipeline,
    AutoencoderKL,
    DDIMScheduler,
    MotionAdapter,
    UNet2DConditionModel,
    UNetMotionModel,
)
from transformers import CLIPTextModel, CLIPTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sd_tiny_models import randomize, rng_normal, stats  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SD = REPO / "tools" / "fixtures" / "image" / "sd-tiny"
OUT = REPO / "tools" / "fixtures" / "video" / "animatediff-tiny"
GOLD = OUT / "golden"

FRAMES = 4
LAT_H, LAT_W = 16, 12
IMG_H, IMG_W = 2 * LAT_H, 2 * LAT_W
STEPS = 2
GUIDANCE = 7.5
PROMPT = "a red fox running in the snow"
NEGATIVE = "blurry, low quality"
ADAPTER = dict(
    block_out_channels=(8, 16),
    motion_layers_per_block=2,
    motion_transformer_layers_per_block=1,
    motion_mid_block_layers_per_block=1,
    motion_transformer_layers_per_mid_block=1,
    motion_num_attention_heads=(2, 4),
    motion_norm_num_groups=4,
    motion_max_seq_length=32,
    use_motion_mid_block=True,
)


class Golden:
    def __init__(self):
        GOLD.mkdir(parents=True, exist_ok=True)
        self.entries = {}

    def save(self, name, value, note=""):
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        value = np.ascontiguousarray(value).astype(np.float32)
        file = f"golden/{name}.npy"
        np.save(OUT / file, value)
        self.entries[name] = {"file": file, "shape": list(value.shape), "stats": stats(value)}
        if note:
            self.entries[name]["note"] = note


class StepLatents:
    def __init__(self):
        self.latents = []

    def __call__(self, pipe, step, timestep, kwargs):
        self.latents.append(kwargs["latents"].detach().clone())
        return kwargs


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if OUT.exists():
        shutil.rmtree(OUT)
    gold = Golden()

    adapter = MotionAdapter(**ADAPTER)
    randomize(adapter, 1234)
    adapter.save_pretrained(OUT / "motion_adapter", safe_serialization=True)
    adapter = MotionAdapter.from_pretrained(OUT / "motion_adapter")

    unet2d = UNet2DConditionModel.from_pretrained(SD / "unet")
    unet = UNetMotionModel.from_unet2d(unet2d, adapter).eval()
    # The same model saved whole: spatial layers and motion modules under one set of names.
    unet.save_pretrained(OUT / "unet_motion", safe_serialization=True)

    # One motion module alone.
    mm = unet.down_blocks[0].motion_modules[0]
    x = rng_normal(41, (2 * FRAMES, 8, LAT_H, LAT_W))
    with torch.no_grad():
        y = mm(torch.from_numpy(x), num_frames=FRAMES)
    gold.save("motion_module_in", x)
    gold.save("motion_module_out", y, "down_blocks.0.motion_modules.0(x, num_frames=4)")

    # The whole UNet.
    sample = rng_normal(42, (2, 4, FRAMES, LAT_H, LAT_W))
    ehs = rng_normal(43, (2, 77, 32))
    with torch.no_grad():
        # The pipeline repeats the prompt embeddings per frame; the UNet does not.
        per_frame = torch.from_numpy(ehs).repeat_interleave(FRAMES, dim=0)
        out = unet(torch.from_numpy(sample), torch.tensor([10, 500]), per_frame).sample
    gold.save("unet_sample", sample)
    gold.save("unet_encoder_hidden_states", ehs)
    gold.save("unet_out", out, "UNetMotionModel(sample, [10, 500], ehs.repeat_interleave(4, 0)): [batch, c, frames, h, w]")

    # The pipeline.
    pipe = AnimateDiffPipeline(
        vae=AutoencoderKL.from_pretrained(SD / "vae"),
        text_encoder=CLIPTextModel.from_pretrained(SD / "text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(SD / "tokenizer"),
        unet=unet2d,
        motion_adapter=adapter,
        scheduler=DDIMScheduler.from_pretrained(SD / "scheduler"),
    )
    pipe.set_progress_bar_config(disable=True)
    latents = rng_normal(44, (1, 4, FRAMES, LAT_H, LAT_W))
    steps = StepLatents()
    with torch.no_grad():
        frames = pipe(
            prompt=PROMPT,
            negative_prompt=NEGATIVE,
            num_frames=FRAMES,
            height=IMG_H,
            width=IMG_W,
            num_inference_steps=STEPS,
            guidance_scale=GUIDANCE,
            latents=torch.from_numpy(latents),
            output_type="np",
            callback_on_step_end=steps,
        ).frames
    gold.save("video_init_latents", latents)
    gold.save("video_step_latents", torch.stack(steps.latents), "per step: latents after scheduler.step")
    gold.save("video_frames", np.asarray(frames), "output_type='np': [1, frames, h, w, 3] in [0, 1]")

    doc = {
        "goldens": gold.entries,
        "adapter": {k: list(v) if isinstance(v, tuple) else v for k, v in ADAPTER.items()},
        "base": "tools/fixtures/image/sd-tiny (unet, vae, text_encoder, tokenizer, scheduler)",
        "video": {
            "prompt": PROMPT,
            "negative_prompt": NEGATIVE,
            "num_frames": FRAMES,
            "height": IMG_H,
            "width": IMG_W,
            "num_inference_steps": STEPS,
            "guidance_scale": GUIDANCE,
            "timesteps": [int(t) for t in pipe.scheduler.timesteps],
            "latents_seed": f"numpy default_rng(44).standard_normal((1, 4, {FRAMES}, {LAT_H}, {LAT_W}), float32)",
        },
        "seeds": {"randomize": 1234, "motion_module_in": 41, "unet_sample": 42, "unet_ehs": 43},
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "numpy": np.__version__,
        },
    }
    (OUT / "golden.json").write_text(json.dumps(doc, indent=1) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
