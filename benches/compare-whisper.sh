#!/usr/bin/env bash
# Side-by-side: Whisper tiny.en transcribing an espeak-ng paragraph (about 20 s, made here with
# the espeak-ng command) in CTranslate2 (pip `ctranslate2`, CPU, float32 compute as aigc) and in
# aigc (flex), same audio, same thread count, in one run; prints real-time factors. Both sides
# time the same work: resampling 22050 -> 16000 Hz (scipy's resample_poly / aigc's equal one),
# the log-mel, and greedy decoding without timestamps (one temperature, no previous-text prompt).
#
#   benches/compare-whisper.sh [--threads N] [--steps N] [--rounds N]
#
# The two alternate over several rounds (the order swapped each round) and the ratio is the
# median of the rounds' ratios of median times (see benches/compare-lib.sh). CTranslate2 comes
# from pip into ${AIGC_CACHE:-~/.cache/aigc}/venv-ctranslate2 (created once; set PYTHON to use
# an interpreter that already has ctranslate2, numpy and scipy).
set -euo pipefail
cd "$(dirname "$0")/.."
model_id=whisper-tiny-en
model_file=model.bin
harness=whisper_speed
ref_name=ctranslate2
ref_pip="ctranslate2 numpy scipy"
AIGC_BENCH_WAV=$(mktemp --suffix .wav)
trap 'rm -f "$AIGC_BENCH_WAV"' EXIT
export AIGC_BENCH_WAV
espeak-ng -v en-us -w "$AIGC_BENCH_WAV" "Speech recognition turns the sound of a voice into \
written words. The model listens to thirty seconds at a time, writes what it hears, and moves \
on to the next stretch of audio. A small model like this one runs comfortably on an ordinary \
laptop, and it understands clear speech well."
ort_py=$(cat <<'PY'
import os, sys, time
import numpy as np
import ctranslate2
import scipy.io.wavfile as wavfile
import scipy.signal as signal
path, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = ctranslate2.models.Whisper(os.path.dirname(path), device="cpu", compute_type="float32",
                                   intra_threads=threads, inter_threads=1)
rate, pcm = wavfile.read(os.environ["AIGC_BENCH_WAV"])

def mel_filters(sr=16000, n_fft=400, n_mels=80):
    # librosa.filters.mel with Slaney's scale and normalisation (Whisper's mel_filters.npz).
    def hz_to_mel(f):
        f = np.asanyarray(f, dtype=np.float64)
        lin = f / (200.0 / 3)
        return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), lin)
    def mel_to_hz(m):
        return np.where(m >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (m - 15.0)), m * 200.0 / 3)
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - freqs[None, :]
    lower, upper = -ramps[:-2] / fdiff[:-1, None], ramps[2:] / fdiff[1:, None]
    w = np.maximum(0, np.minimum(lower, upper)) * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return w.astype(np.float32)

FILTERS = mel_filters()
WINDOW = np.hanning(401)[:-1].astype(np.float32)

def log_mel(audio):
    audio = np.concatenate([audio, np.zeros(480000, np.float32)])
    x = np.pad(audio, 200, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(x, 400)[::160]
    power = np.abs(np.fft.rfft(frames * WINDOW, axis=-1)) ** 2
    mel = FILTERS @ power[:-1].T
    log = np.log10(np.maximum(mel, 1e-10))
    log = np.maximum(log, log.max() - 8.0)
    return ((log + 4.0) / 4.0).astype(np.float32)

def transcribe():
    audio = signal.resample_poly(pcm.astype(np.float64) / 32768.0, 320, 441).astype(np.float32)
    mel = log_mel(audio)
    text = []
    for seek in range(0, len(audio) // 160, 3000):
        window = mel[:, seek:seek + 3000]
        window = np.pad(window, ((0, 0), (0, 3000 - window.shape[1])))
        r = model.generate(ctranslate2.StorageView.from_array(window[None]), [[50257, 50362]],
                           beam_size=1, max_length=224)
        text.append(r[0].sequences_ids[0])
    return audio.size, text

n, _ = transcribe()
times = []
for _ in range(steps):
    t = time.perf_counter()
    transcribe()
    times.append(time.perf_counter() - t)
times.sort()
print('{"best_s": %.4f, "median_s": %.4f, "audio_s": %.4f}' % (times[0], times[len(times) // 2], n / 16000))
PY
)
extra_column=rtf
extra() { awk -v t="$(field median_s "$1")" -v d="$(field audio_s "$1")" 'BEGIN{printf "%.3f", t/d}'; }
source benches/compare-lib.sh
compare_main "$@"
