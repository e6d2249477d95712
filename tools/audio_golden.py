#!/usr/bin/env python3
"""Golden values for aigc's audio crate: librosa mel/STFT/Griffin-Lim, scipy resampling and a
tiny random-weight SpeechT5 HiFi-GAN (transformers), all from one deterministic test signal.

Writes to tools/fixtures/audio/ (float32 little-endian, C-order .npy; about 800 KB in all):

  signal.npy            [13230]      0.6 s at 22050 Hz: 0.5 * linear chirp 200 -> 4000 Hz (cosine,
                                     scipy.signal.chirp) + 0.2 * sin(2 pi 440 t)
                                     + 0.01 * numpy default_rng(0).standard_normal(13230),
                                     summed in float64, then cast to float32
  signal_16k.npy        [9600]       scipy.signal.resample_poly(signal, 320, 441) (float32 in, so
                                     scipy runs the polyphase FIR in float32 too)
  mel_a.npy             [80, 52]     librosa.feature.melspectrogram, HiFi-GAN/VITS setting
                                     (slaney mel + slaney norm, power 1, reflect padding)
  mel_b.npy             [80, 52]     as a but htk mel scale, no norm, power 2
  mel_c.npy             [40, 100]    n_fft 512, win_length 400 (window zero-padded to 512,
                                     centred), center False, fmin 50, fmax None (= sr / 2)
  mel_d.npy             [80, 61]     on signal_16k: Whisper-like (n_fft 400, hop 160), no log
  mel_filters_a.npy     [80, 513]    librosa.filters.mel for config a
  mel_filters_b.npy     [80, 513]    librosa.filters.mel for config b
  stft_mag_a.npy        [513, 52]    |librosa.stft| for config a
  griffinlim_a.npy      [13230]      librosa.griffinlim(stft_mag_a, n_iter 8, momentum 0.99,
                                     init None = zero phase, length 13230)
  hifigan-tiny/         config.json + model.safetensors of a tiny random-weight
                        SpeechT5HifiGan (plain weight/bias names, like microsoft/speecht5_hifigan)
  hifigan_input.npy     [20, 16]     its input log-mel (numpy default_rng(1))
  hifigan_output.npy    [320]        its waveform (eval, no_grad, float32, one thread)
  manifest.json         every file: shape, dtype, sha256, summary statistics, the exact call and
                        parameters (by librosa's argument names), package versions and notes on
                        the behaviours a Rust port has to match

Run from the repository root (about 15 s on one core). The output is deterministic: a rerun
writes byte-identical files (manifest.json holds no timestamps). Only the files listed above are
written or replaced; other subdirectories of tools/fixtures/audio/ are left alone.

    /work/venv/bin/python tools/audio_golden.py
"""
import os

# One thread everywhere: deterministic reductions, and modest CPU use.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import hashlib
import inspect
import json
import math
import platform
import shutil
import warnings
from pathlib import Path

import numpy as np
import scipy
import scipy.fft
import scipy.signal
import librosa
import safetensors
import torch
import transformers
from safetensors import safe_open
from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tools/fixtures/audio"

SR = 22050
DURATION = 0.6
N = int(round(SR * DURATION))  # 13230

# Mel configurations, by librosa.feature.melspectrogram's argument names.
CONFIG_A = dict(sr=22050, n_fft=1024, hop_length=256, win_length=1024, window="hann",
                center=True, pad_mode="reflect", power=1.0, n_mels=80, fmin=0.0, fmax=8000.0,
                htk=False, norm="slaney")
CONFIG_B = dict(CONFIG_A, htk=True, norm=None, power=2.0)
CONFIG_C = dict(sr=22050, n_fft=512, hop_length=128, win_length=400, window="hann",
                center=False, pad_mode="reflect", power=2.0, n_mels=40, fmin=50.0, fmax=None,
                htk=False, norm="slaney")
CONFIG_D = dict(sr=16000, n_fft=400, hop_length=160, win_length=400, window="hann",
                center=True, pad_mode="reflect", power=2.0, n_mels=80, fmin=0.0, fmax=None,
                htk=False, norm="slaney")

RESAMPLE_UP, RESAMPLE_DOWN = 320, 441

GRIFFINLIM = dict(n_iter=8, hop_length=256, win_length=1024, n_fft=1024, window="hann",
                  center=True, dtype=None, length=N, pad_mode="reflect", momentum=0.99,
                  init=None, random_state=None)

HIFIGAN_CONFIG = dict(model_in_dim=16, sampling_rate=16000, upsample_initial_channel=32,
                      upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8],
                      resblock_kernel_sizes=[3, 7],
                      resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
                      leaky_relu_slope=0.1, normalize_before=True)
HIFIGAN_FRAMES = 20

manifest_files = {}


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save(name, array, call, **extra):
    """Save a float32 C-order .npy (librosa returns Fortran-ordered STFTs) and describe it."""
    array = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    path = OUT / name
    np.save(path, array)
    entry = {
        "shape": list(array.shape), "dtype": "float32", "sha256": sha256(path),
        "min": float(array.min()), "max": float(array.max()),
        "mean": float(array.astype(np.float64).mean()),
        "std": float(array.astype(np.float64).std()),
        "call": call,
    }
    entry.update(extra)
    manifest_files[name] = entry
    return array


def make_signal():
    t = np.arange(N, dtype=np.float64) / SR
    chirp = scipy.signal.chirp(t, f0=200.0, t1=DURATION, f1=4000.0, method="linear")
    sine = np.sin(2.0 * np.pi * 440.0 * t)
    noise = np.random.default_rng(0).standard_normal(N)
    return (0.5 * chirp + 0.2 * sine + 0.01 * noise).astype(np.float32)


def mel_call(config, signal_name):
    args = ", ".join(f"{k}={v!r}" for k, v in config.items())
    return f"librosa.feature.melspectrogram(y={signal_name}, {args})"


def filters_call(config):
    keys = ("sr", "n_fft", "n_mels", "fmin", "fmax", "htk", "norm")
    args = ", ".join(f"{k}={config[k]!r}" for k in keys)
    return f"librosa.filters.mel({args}, dtype=np.float32)"


def verify_resample_filter():
    """Read scipy's resample_poly source and check the FIR length formula on this call."""
    source = inspect.getsource(scipy.signal.resample_poly)
    expected_lines = [
        "g_ = math.gcd(up, down)",
        "up //= g_",
        "down //= g_",
        "max_rate = max(up, down)",
        "f_c = 1. / max_rate",
        "half_len = 10 * max_rate",
        "h = firwin(2 * half_len + 1, f_c, window=window)",
        "h = xp.asarray(h, dtype=x.dtype)",
        "h *= up",
        "n_pre_pad = (down - half_len % down)",
        "n_pre_remove = (half_len + n_pre_pad) // down",
    ]
    missing = [line for line in expected_lines if line not in source]
    if missing:
        raise RuntimeError(f"scipy {scipy.__version__} resample_poly changed: {missing}")
    g = math.gcd(RESAMPLE_UP, RESAMPLE_DOWN)
    up, down = RESAMPLE_UP // g, RESAMPLE_DOWN // g
    max_rate = max(up, down)
    half_len = 10 * max_rate
    taps = 2 * half_len + 1
    n_pre_pad = down - half_len % down
    h = scipy.signal.firwin(taps, 1.0 / max_rate, window=("kaiser", 5.0))
    # Recompute firwin's lowpass by its formula to make sure the manifest's description holds.
    m = np.arange(taps) - 0.5 * (taps - 1)
    h_formula = (1.0 / max_rate) * np.sinc(m / max_rate) * scipy.signal.get_window(
        ("kaiser", 5.0), taps, fftbins=False)
    h_formula /= h_formula.sum()
    assert np.allclose(h, h_formula, rtol=0, atol=1e-15), "firwin formula mismatch"
    return {
        "gcd": int(g), "up": up, "down": down, "max_rate": max_rate, "f_c": f"1 / {max_rate}",
        "half_len": half_len, "numtaps": taps, "n_pre_pad": int(n_pre_pad),
        "n_pre_remove": int((half_len + n_pre_pad) // down),
        "firwin_tap_sum": float(h.sum()),
    }


def make_hifigan():
    config = SpeechT5HifiGanConfig(**HIFIGAN_CONFIG)
    torch.manual_seed(0)
    model = SpeechT5HifiGan(config).eval()
    # Re-initialize everything from one seeded generator so that activations are of order one
    # (post_init's default would give std 0.02 weights and a near-silent output).
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if name.endswith("weight"):
                param.copy_(torch.randn(param.shape, generator=gen) * 0.1)
            else:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.02)
        dim = config.model_in_dim
        model.mean.copy_(-4.0 + 0.5 * torch.randn(dim, generator=gen))
        model.scale.copy_(1.0 + torch.rand(dim, generator=gen))  # in [1, 2): positive
    had_weight_norm = any("parametrizations" in n or n.endswith(("weight_g", "weight_v"))
                          for n, _ in model.named_parameters())
    if had_weight_norm:
        model.remove_weight_norm()
    return model, had_weight_norm


def main():
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    caught = []

    # 1. Test signal.
    signal = save(
        "signal.npy", make_signal(),
        "t = np.arange(13230, dtype=np.float64) / 22050; "
        "(0.5 * scipy.signal.chirp(t, f0=200.0, t1=0.6, f1=4000.0, method='linear') "
        "+ 0.2 * np.sin(2 * np.pi * 440.0 * t) "
        "+ 0.01 * np.random.default_rng(0).standard_normal(13230)).astype(np.float32)",
        formula="chirp(t) = cos(2 pi (200 t + 0.5 * (4000 - 200) / 0.6 * t^2)); sum in float64, "
                "one rounding to float32",
        sample_rate=SR)

    # 4. Resampling (also the input of config d).
    resample_info = verify_resample_filter()
    signal_16k = scipy.signal.resample_poly(signal, RESAMPLE_UP, RESAMPLE_DOWN)
    assert signal_16k.dtype == np.float32
    save("signal_16k.npy", signal_16k,
         "scipy.signal.resample_poly(signal, 320, 441)  # = (signal, up=320, down=441, axis=0, "
         "window=('kaiser', 5.0), padtype='constant', cval=None)",
         sample_rate=16000,
         output_length="ceil(13230 * 320 / 441) = 9600 (n_out = n_in * up // down + "
                       "bool(n_in * up % down), after dividing by the gcd)")

    # 2. Mel spectrograms and filterbanks.
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for key, config, y, y_name in (("a", CONFIG_A, signal, "signal"),
                                       ("b", CONFIG_B, signal, "signal"),
                                       ("c", CONFIG_C, signal, "signal"),
                                       ("d", CONFIG_D, signal_16k, "signal_16k")):
            mel = librosa.feature.melspectrogram(y=y, **config)
            assert mel.dtype == np.float32
            save(f"mel_{key}.npy", mel, mel_call(config, y_name), input=f"{y_name}.npy",
                 params=config)
        for key, config in (("a", CONFIG_A), ("b", CONFIG_B)):
            filters = librosa.filters.mel(sr=config["sr"], n_fft=config["n_fft"],
                                          n_mels=config["n_mels"], fmin=config["fmin"],
                                          fmax=config["fmax"], htk=config["htk"],
                                          norm=config["norm"], dtype=np.float32)
            save(f"mel_filters_{key}.npy", filters, filters_call(config),
                 params={k: config[k] for k in ("sr", "n_fft", "n_mels", "fmin", "fmax",
                                                "htk", "norm")})
        # Consistency: the mel spectrogram is filters @ |stft|^power.
        stft_a = librosa.stft(signal, n_fft=1024, hop_length=256, win_length=1024,
                              window="hann", center=True, pad_mode="reflect")
        assert stft_a.dtype == np.complex64
        mag_a = np.abs(stft_a)
        save("stft_mag_a.npy", mag_a,
             "np.abs(librosa.stft(signal, n_fft=1024, hop_length=256, win_length=1024, "
             "window='hann', center=True, pad_mode='reflect'))",
             params={k: CONFIG_A[k] for k in ("n_fft", "hop_length", "win_length", "window",
                                              "center", "pad_mode")})
        win = scipy.signal.get_window("hann", 1024, fftbins=True)
        padded = np.pad(signal, (512, 512), mode="reflect")
        frames = np.stack([padded[i * 256:i * 256 + 1024] for i in range(mag_a.shape[1])], axis=1)
        mag_f64 = np.abs(scipy.fft.rfft(win[:, None] * frames.astype(np.float64), axis=0)
                         .astype(np.complex64))
        assert np.array_equal(mag_f64, mag_a), "STFT is not the float64 FFT rounded to complex64"
        filters_a = np.load(OUT / "mel_filters_a.npy")
        check = np.einsum("mf,ft->mt", filters_a, mag_a)
        assert np.allclose(check, np.load(OUT / "mel_a.npy"), rtol=1e-5, atol=1e-6)

        # 3. Griffin-Lim.
        gl = librosa.griffinlim(mag_a, **GRIFFINLIM)
        assert gl.dtype == np.float32 and gl.shape == (N,)
        args = ", ".join(f"{k}={v!r}" for k, v in GRIFFINLIM.items())
        save("griffinlim_a.npy", gl, f"librosa.griffinlim(stft_mag_a, {args})",
             input="stft_mag_a.npy", params=GRIFFINLIM)
        caught = [f"{x.category.__name__}: {x.message}" for x in w]

    # 5. Tiny SpeechT5 HiFi-GAN.
    model, had_weight_norm = make_hifigan()
    model_dir = OUT / "hifigan-tiny"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model.save_pretrained(model_dir, safe_serialization=True)
    tensors = {}
    with safe_open(model_dir / "model.safetensors", framework="pt") as f:
        st_metadata = f.metadata()
        for name in sorted(f.keys()):
            t = f.get_tensor(name)
            tensors[name] = {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
    weight_norm_names = [n for n in tensors if "parametrizations" in n
                         or n.endswith(("weight_g", "weight_v"))]
    if weight_norm_names:
        raise RuntimeError(f"weight-norm tensors saved: {weight_norm_names}")
    # Reload from disk and check it reproduces the in-memory model.
    reloaded = SpeechT5HifiGan.from_pretrained(model_dir).eval()
    mel_in = np.random.default_rng(1).normal(-4.0, 1.5, size=(HIFIGAN_FRAMES, 16)).astype(np.float32)
    with torch.no_grad():
        wav = model(torch.from_numpy(mel_in)).numpy()
        wav_reloaded = reloaded(torch.from_numpy(mel_in)).numpy()
        batched = model(torch.from_numpy(mel_in)[None]).numpy()
    assert np.array_equal(wav, wav_reloaded)
    assert np.array_equal(wav, batched[0])
    save("hifigan_input.npy", mel_in,
         "np.random.default_rng(1).normal(-4.0, 1.5, size=(20, 16)).astype(np.float32)",
         layout="[frames, model_in_dim] (un-batched; the model also takes [batch, frames, 16])")
    save("hifigan_output.npy", wav,
         "SpeechT5HifiGan.from_pretrained('hifigan-tiny').eval()(torch.from_numpy(hifigan_input))"
         " under torch.no_grad(), torch.set_num_threads(1), float32",
         input="hifigan_input.npy",
         length="frames * prod(upsample_rates) = 20 * 16 = 320",
         tanh_saturated_fraction=float(np.mean(np.abs(wav) > 0.99)))
    for name in ("config.json", "model.safetensors"):
        manifest_files[f"hifigan-tiny/{name}"] = {"sha256": sha256(model_dir / name),
                                                  "bytes": (model_dir / name).stat().st_size}

    # Manifest.
    f = manifest_files
    manifest = {
        "generator": "tools/audio_golden.py",
        "rerun": "/work/venv/bin/python tools/audio_golden.py",
        "versions": {
            "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "librosa": librosa.__version__,
            "torch": torch.__version__, "transformers": transformers.__version__,
            "safetensors": safetensors.__version__,
            "librosa_fft_backend": type(librosa.get_fftlib()).__name__ + " "
                                   + getattr(librosa.get_fftlib(), "__name__", ""),
        },
        "layout": "every .npy is float32 little-endian, C order (librosa's Fortran-ordered "
                  "STFT/mel outputs were made contiguous before saving); spectrograms are "
                  "[bins or mels, frames]",
        "files": f,
        "mel_configs": {"a": CONFIG_A, "b": CONFIG_B, "c": CONFIG_C, "d": CONFIG_D},
        "resample_poly": {
            "call": "scipy.signal.resample_poly(signal, 320, 441, axis=0, "
                    "window=('kaiser', 5.0), padtype='constant', cval=None)",
            "filter": resample_info,
            "formula_verified_in_scipy_source": (
                f"scipy {scipy.__version__} signal/_signaltools.py resample_poly: "
                "g = gcd(up, down); up //= g; down //= g; max_rate = max(up, down); "
                "f_c = 1 / max_rate; half_len = 10 * max_rate; "
                "h = firwin(2 * half_len + 1, f_c, window=('kaiser', 5.0)) "
                "-> numtaps = 2 * 10 * max(up, down) + 1 = 8821 for 320/441 (gcd 1); "
                "h is cast to x.dtype (float32 here) and multiplied by up (in float32); "
                "then zero-padded in front by n_pre_pad = down - half_len % down (= 441 - 4410 % 441 "
                "= 441) and at the back by the smallest n_post_pad with "
                "_output_len(len(h) + n_pre_pad + n_post_pad, n_in, up, down) >= n_out + n_pre_remove; "
                "y = upfirdn(h, x, up, down, mode='constant', cval=0)"
                "[n_pre_remove : n_pre_remove + n_out] with n_pre_remove = (half_len + n_pre_pad) "
                "// down = 11 and n_out = ceil(n_in * up / down). upfirdn computes in "
                "result_type(h, x, float32) = float32 here."),
            "firwin_lowpass": (
                "h[n] = f_c * sinc(f_c * (n - half_len)) * w[n], n = 0 .. 2 * half_len, with "
                "sinc(x) = sin(pi x) / (pi x), w = scipy.signal.get_window(('kaiser', 5.0), "
                "numtaps, fftbins=False) (symmetric Kaiser, beta 5: I0(5 sqrt(1 - (2n/(N-1) - 1)^2)) "
                "/ I0(5)), then h /= sum(h) (scale=True: unit gain at DC); computed in float64"),
        },
        "griffinlim": {
            "call": manifest_files["griffinlim_a.npy"]["call"],
            "algorithm": (
                "librosa 0.11 griffinlim with init=None: angles = S (zero phase, complex64); "
                "repeat n_iter times: inverse = istft(angles, length=13230); "
                "rebuilt = stft(inverse, pad_mode); angles = rebuilt - (momentum / (1 + momentum)) "
                "* tprev (skipped on the first iteration, where tprev is None); "
                "angles /= |angles| + tiny(complex64) (1.1754944e-38); angles *= S; "
                "tprev = rebuilt. Return istft(angles, length=13230). "
                "tprev is the previous iteration's rebuilt STFT before any momentum correction."),
            "note": "pad_mode='reflect' is passed explicitly so that the re-analysis STFT inside "
                    "the loop matches config a; librosa.griffinlim's own default is "
                    "pad_mode='constant' (zeros).",
        },
        "hifigan": {
            "config": HIFIGAN_CONFIG,
            "saved_config": json.loads((model_dir / "config.json").read_text()),
            "init": (
                "torch.manual_seed(0); SpeechT5HifiGan(config); then, with "
                "g = torch.Generator().manual_seed(0), for each parameter in sorted(named_parameters()) "
                "order: '*weight' = randn(shape, generator=g) * 0.1, '*bias' = randn(...) * 0.02; "
                "then mean = -4 + 0.5 * randn(16, generator=g), scale = 1 + rand(16, generator=g)"),
            "weight_norm": (
                "transformers' SpeechT5HifiGan does not apply weight norm in __init__ "
                "(only apply_weight_norm() does); the model had weight-norm parametrisations: "
                f"{had_weight_norm}. The safetensors holds plain 'weight'/'bias' names like "
                "microsoft/speecht5_hifigan; no weight_g/weight_v or parametrizations.weight.original0/1 "
                "tensors were saved."),
            "safetensors_metadata": st_metadata,
            "tensors": tensors,
            "forward": (
                "x = (spectrogram - mean) / scale  (normalize_before); x: [B, T, 16] -> [B, 16, T]; "
                "conv_pre (Conv1d k7 p3); for each upsample i: leaky_relu(x, 0.1), "
                "upsampler[i] (ConvTranspose1d k8 stride 4 padding (8-4)//2 = 2 -> length * 4), "
                "x = mean over the 2 resblocks (kernels 3 and 7) of resblock(x); each resblock: for "
                "dilation d in (1, 3, 5): r = x; x = leaky_relu(x, 0.1); x = conv1_d(x) "
                "(padding (k*d - d)//2); x = leaky_relu(x, 0.1); x = conv2(x) (dilation 1); x += r. "
                "Then leaky_relu(x) with torch's DEFAULT slope 0.01 (not leaky_relu_slope), "
                "conv_post (Conv1d 8 -> 1, k7 p3), tanh; un-batched output is [T * 16]."),
        },
        "notes": [
            "STFT (librosa 0.11 stft): window = scipy.signal.get_window('hann', win_length, "
            "fftbins=True) (periodic Hann, float64), zero-padded to n_fft by util.pad_center: "
            "(n_fft - win_length) // 2 zeros on the left and the rest on the right (config c: 56 "
            "left, 56 right, window over samples 56..455 of each 512-sample frame).",
            "The windowed frame is float32 samples times the float64 window, so the product and "
            "the rfft (librosa's FFT library is scipy.fft) run in float64; the result is rounded "
            "once into the complex64 STFT matrix, and |X| is np.abs of that complex64 (float32). "
            "Checked by the script: np.abs(scipy.fft.rfft(window * frames_f64).astype(complex64)) "
            "equals stft_mag_a.npy bit for bit; a float32 FFT differs by up to ~1.5e-5 "
            "(values up to ~107).",
            "power 2.0 is np.abs(X) ** 2 in float32 (the rounded magnitude squared), "
            "not re^2 + im^2.",
            "center=True pads n_fft // 2 samples on each side with pad_mode (np.pad 'reflect': "
            "mirror without repeating the edge sample, x[-1] = x[1]); frames = 1 + len // hop "
            "(a, b: 1 + 13230 // 256 = 52; d: 1 + 9600 // 160 = 61). melspectrogram's own "
            "default pad_mode is 'constant' (zeros) since librosa 0.10; every config here passes "
            "'reflect' explicitly. center=False: frames = 1 + (len - n_fft) // hop (c: 100).",
            "Mel filterbank (librosa.filters.mel): bin centre frequencies k * sr / n_fft; "
            "n_mels + 2 edge frequencies uniformly spaced on the mel scale between fmin and fmax "
            "(fmax None -> sr / 2); triangle weights max(0, min((f - f_lo) / (f_c - f_lo), "
            "(f_hi - f) / (f_hi - f_c))) computed in float64 and stored as float32. "
            "htk=False is the Slaney mel scale: linear 3 * f / 200 below 1000 Hz, "
            "15 + 27 * ln(f / 1000) / ln(6.4) above; htk=True is 2595 * log10(1 + f / 700).",
            "norm='slaney' multiplies each float32 triangle row by 2 / (f_hi - f_lo) (Hz, float64, "
            "product rounded to float32): equal area per band, so peak values are small "
            "(~1e-2 .. 3e-2). norm=None leaves peaks at <= 1.",
            "melspectrogram = np.einsum('...ft,mf->...mt', S, mel_basis, optimize=True) in float32 "
            "(BLAS sgemm: summation order differs from a plain loop, so expect ~1 ulp, "
            "not bit-exact, against filters @ S).",
            "istft (Griffin-Lim) uses scipy.fft.irfft of complex64 (computed in float32), "
            "multiplies by the float64 window, overlap-adds into a float32 buffer and divides by "
            "the float32 sum of squared windows where that exceeds tiny(float32).",
            "scipy.signal.resample_poly with a float32 signal casts the FIR to float32 and "
            "filters in float32 (see resample_poly).",
        ],
        "warnings_during_generation": caught,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum((OUT / name).stat().st_size for name in manifest_files)
    total += (OUT / "manifest.json").stat().st_size
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
