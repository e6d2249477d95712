#!/usr/bin/env python3
"""Golden values for the diffusion schedulers in `aigc-core/src/schedulers/`.

Runs each diffusers scheduler through a full denoising loop with a closed-form dummy model
(`model_output = 0.1 * x + 0.05 * cos(0.01 * t)`, no network) on a [1, 2, 4, 4] sample, and
writes one JSON file per scheduler to `tools/fixtures/schedulers/`. Every random draw a
scheduler makes (`randn_tensor`) is recorded step by step, so the Rust side can replay exactly
the noise diffusers used. `add_noise` is recorded on a [2, 2, 4, 4] batch.

Run with the project venv (torch, diffusers 0.42.1):

    /work/venv/bin/python tools/scheduler_golden.py

CI never runs this; it only reads the fixtures.
"""

import json
import math
import os

import numpy as np
import torch

import diffusers
from diffusers import (
    CMStochasticIterativeScheduler,
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EDMEulerScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LCMScheduler,
)
from diffusers.schedulers import (
    scheduling_consistency_models,
    scheduling_ddim,
    scheduling_ddpm,
    scheduling_edm_euler,
    scheduling_euler_ancestral_discrete,
    scheduling_euler_discrete,
    scheduling_lcm,
)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "schedulers")
SHAPE = (1, 2, 4, 4)
ADD_NOISE_SHAPE = (2, 2, 4, 4)


class NoiseRecorder:
    """Stands in for `randn_tensor`: draws from a seeded generator and keeps what it drew."""

    def __init__(self):
        self.generator = torch.Generator().manual_seed(1234)
        self.drawn = []

    def __call__(self, shape, generator=None, device=None, dtype=None, layout=None):
        x = torch.randn(shape, generator=self.generator, dtype=torch.float32)
        self.drawn.append(x)
        return x.to(dtype) if dtype is not None else x


RECORDER = NoiseRecorder()
for module in (
    scheduling_ddpm,
    scheduling_ddim,
    scheduling_euler_discrete,
    scheduling_euler_ancestral_discrete,
    scheduling_lcm,
    scheduling_consistency_models,
    scheduling_edm_euler,
):
    module.randn_tensor = RECORDER


def model(x, t):
    """The dummy denoiser; the Rust test computes the same closed form."""
    return 0.1 * x + 0.05 * math.cos(0.01 * float(t))


def flat(t):
    """A tensor's values in row-major order; 9 significant digits round-trip an f32."""
    return [float("%.9g" % v) for v in t.detach().to(torch.float32).reshape(-1).tolist()]


def json_safe(v):
    """Config values as strict JSON: infinities become the strings "inf" and "-inf"."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def run_case(name, make, steps, step_kwargs=None, seed=0):
    step_kwargs = step_kwargs or {}
    sched = make()
    config = {k: json_safe(v) for k, v in dict(sched.config).items() if not k.startswith("_")}
    sched.set_timesteps(steps)
    timesteps = sched.timesteps
    init_noise_sigma = float(sched.init_noise_sigma)

    # add_noise on a fresh copy, before any step moves the step index.
    an = make()
    an.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed + 100)
    original = torch.randn(ADD_NOISE_SHAPE, generator=g)
    noise = torch.randn(ADD_NOISE_SHAPE, generator=g)
    an_t = torch.stack([an.timesteps[0], an.timesteps[len(an.timesteps) // 2]])
    noisy = an.add_noise(original, noise, an_t)

    g = torch.Generator().manual_seed(seed)
    initial_noise = torch.randn(SHAPE, generator=g)
    sample = initial_noise * sched.init_noise_sigma
    records = []
    for t in timesteps:
        RECORDER.drawn.clear()
        model_input = sched.scale_model_input(sample, t)
        out = model(model_input, t)
        res = sched.step(out, t, sample, **step_kwargs)
        sample = res.prev_sample
        rec = {
            "timestep": float(t),
            "model_input": flat(model_input),
            "prev_sample": flat(sample),
            "sum": float(sample.sum()),
            "mean": float(sample.mean()),
            "noise": [flat(n) for n in RECORDER.drawn],
        }
        pred = getattr(res, "pred_original_sample", None)
        if pred is not None:
            rec["pred_original_sample"] = flat(pred)
        denoised = getattr(res, "denoised", None)
        if denoised is not None:
            rec["denoised"] = flat(denoised)
        records.append(rec)

    return {
        "name": name,
        "config": config,
        "step_kwargs": step_kwargs,
        "num_inference_steps": steps,
        "timesteps": [float(t) for t in timesteps],
        "init_noise_sigma": init_noise_sigma,
        "shape": list(SHAPE),
        "initial_noise": flat(initial_noise),
        "steps": records,
        "add_noise": {
            "shape": list(ADD_NOISE_SHAPE),
            "timesteps": [float(t) for t in an_t],
            "original": flat(original),
            "noise": flat(noise),
            "noisy": flat(noisy),
        },
    }


def cases():
    sl = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    return {
        "ddpm": [
            ("linear_epsilon_leading", lambda: DDPMScheduler(), 6, {}),
            (
                "scaled_linear_v_trailing",
                lambda: DDPMScheduler(**sl, prediction_type="v_prediction", timestep_spacing="trailing"),
                5,
                {},
            ),
            (
                "cosine_sample_linspace_large",
                lambda: DDPMScheduler(
                    beta_schedule="squaredcos_cap_v2",
                    prediction_type="sample",
                    timestep_spacing="linspace",
                    variance_type="fixed_large",
                    clip_sample=False,
                ),
                4,
                {},
            ),
            (
                "linear_small_log_offset",
                lambda: DDPMScheduler(variance_type="fixed_small_log", steps_offset=1),
                5,
                {},
            ),
            (
                "thresholding",
                lambda: DDPMScheduler(thresholding=True, sample_max_value=1.5),
                4,
                {},
            ),
        ],
        "ddim": [
            ("linear_epsilon_leading", lambda: DDIMScheduler(), 6, {}),
            (
                "scaled_linear_v_trailing_eta",
                lambda: DDIMScheduler(**sl, prediction_type="v_prediction", timestep_spacing="trailing"),
                5,
                {"eta": 0.5},
            ),
            (
                "cosine_sample_linspace_no_alpha_one",
                lambda: DDIMScheduler(
                    beta_schedule="squaredcos_cap_v2",
                    prediction_type="sample",
                    timestep_spacing="linspace",
                    set_alpha_to_one=False,
                    clip_sample=False,
                ),
                4,
                {},
            ),
            (
                "offset_zero_snr",
                lambda: DDIMScheduler(**sl, steps_offset=1, rescale_betas_zero_snr=True, clip_sample=False, timestep_spacing="trailing", prediction_type="v_prediction"),
                5,
                {},
            ),
        ],
        "euler": [
            ("linear_epsilon_linspace", lambda: EulerDiscreteScheduler(), 6, {}),
            (
                "scaled_linear_v_leading_offset",
                lambda: EulerDiscreteScheduler(**sl, prediction_type="v_prediction", timestep_spacing="leading", steps_offset=1),
                5,
                {},
            ),
            (
                "karras_trailing",
                lambda: EulerDiscreteScheduler(**sl, use_karras_sigmas=True, timestep_spacing="trailing"),
                6,
                {},
            ),
            (
                "zero_snr_trailing_v",
                lambda: EulerDiscreteScheduler(**sl, rescale_betas_zero_snr=True, timestep_spacing="trailing", prediction_type="v_prediction"),
                5,
                {},
            ),
            (
                "cosine_sample_sigma_min",
                lambda: EulerDiscreteScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="sample", final_sigmas_type="sigma_min"),
                4,
                {},
            ),
        ],
        "euler_ancestral": [
            ("linear_epsilon_linspace", lambda: EulerAncestralDiscreteScheduler(), 6, {}),
            (
                "scaled_linear_v_leading",
                lambda: EulerAncestralDiscreteScheduler(**sl, prediction_type="v_prediction", timestep_spacing="leading", steps_offset=1),
                5,
                {},
            ),
            # Not zero terminal SNR: there the first sigma is 4096 and sigma_down is the square
            # root of a difference of about 25 ulps, where torch's f32 sqrt (not correctly
            # rounded on this build) and IEEE sqrt differ by 4e-4 in the sample.
            (
                "trailing_v",
                lambda: EulerAncestralDiscreteScheduler(**sl, timestep_spacing="trailing", prediction_type="v_prediction"),
                4,
                {},
            ),
        ],
        "heun": [
            ("linear_epsilon_linspace", lambda: HeunDiscreteScheduler(), 5, {}),
            (
                "karras_scaled_linear",
                lambda: HeunDiscreteScheduler(beta_schedule="scaled_linear", use_karras_sigmas=True),
                5,
                {},
            ),
            (
                "v_trailing",
                lambda: HeunDiscreteScheduler(prediction_type="v_prediction", timestep_spacing="trailing"),
                4,
                {},
            ),
            (
                "sample_leading_clip",
                lambda: HeunDiscreteScheduler(prediction_type="sample", timestep_spacing="leading", steps_offset=1, clip_sample=True),
                4,
                {},
            ),
        ],
        "dpm_solver": [
            ("linear_epsilon_linspace", lambda: DPMSolverMultistepScheduler(), 6, {}),
            (
                "karras_scaled_linear",
                lambda: DPMSolverMultistepScheduler(**sl, use_karras_sigmas=True),
                8,
                {},
            ),
            (
                "v_leading",
                lambda: DPMSolverMultistepScheduler(**sl, prediction_type="v_prediction", timestep_spacing="leading", steps_offset=1),
                6,
                {},
            ),
            (
                "cosine_trailing",
                lambda: DPMSolverMultistepScheduler(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing"),
                5,
                {},
            ),
            (
                "order3_heun_sample",
                lambda: DPMSolverMultistepScheduler(solver_order=3, solver_type="heun", prediction_type="sample", timestep_spacing="trailing"),
                7,
                {},
            ),
            (
                "order1_sigma_min",
                lambda: DPMSolverMultistepScheduler(solver_order=1, final_sigmas_type="sigma_min"),
                4,
                {},
            ),
            (
                "sixteen_steps_no_lower_order_final",
                lambda: DPMSolverMultistepScheduler(**sl, lower_order_final=False, final_sigmas_type="sigma_min"),
                16,
                {},
            ),
        ],
        "lcm": [
            ("default_4", lambda: LCMScheduler(), 4, {}),
            ("default_1", lambda: LCMScheduler(), 1, {}),
            (
                "linear_v_clip",
                lambda: LCMScheduler(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, prediction_type="v_prediction", clip_sample=True, original_inference_steps=20),
                6,
                {},
            ),
        ],
        "consistency": [
            ("default_4", lambda: CMStochasticIterativeScheduler(), 4, {}),
            ("default_1", lambda: CMStochasticIterativeScheduler(), 1, {}),
            ("no_clip_8", lambda: CMStochasticIterativeScheduler(clip_denoised=False, s_noise=0.8), 8, {}),
        ],
        "edm_euler": [
            ("karras_6", lambda: EDMEulerScheduler(), 6, {}),
            ("exponential_v_sigma_min", lambda: EDMEulerScheduler(sigma_schedule="exponential", prediction_type="v_prediction", final_sigmas_type="sigma_min"), 5, {}),
        ],
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    total = 0
    for scheduler, entries in cases().items():
        results = []
        for i, (name, make, steps, kwargs) in enumerate(entries):
            results.append(run_case(name, make, steps, kwargs, seed=i))
        doc = {
            "generator": "tools/scheduler_golden.py",
            "diffusers": diffusers.__version__,
            "torch": torch.__version__,
            "model": "0.1 * x + 0.05 * cos(0.01 * t)",
            "cases": results,
        }
        path = os.path.join(OUT, f"{scheduler}.json")
        text = json.dumps(doc, separators=(",", ":"), allow_nan=False)
        with open(path, "w") as f:
            f.write(text)
        total += len(text)
        print(f"{path}: {len(results)} cases, {len(text)} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
