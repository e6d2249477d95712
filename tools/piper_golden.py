#!/usr/bin/env python3
"""Golden values for the Piper (VITS) text-to-speech voice en_US-joe-medium.

Writes to tools/fixtures/audio/piper/:

- phonemes.json: for each test sentence the IPA phonemes and phoneme ids that Piper itself
  feeds the model, made with piper-phonemize (the library Piper uses: its bundled espeak-ng
  fork, `phonemize_espeak(text, "en-us")`, one list per sentence) and Piper's id procedure
  (`^`, `_`, then each phoneme followed by `_`, then `$`, with the voice's phoneme_id_map).
  As a cross-check for a Rust phonemizer built on the distribution's libespeak-ng, it also
  records what the system library (`libespeak-ng.so.1`, `espeak_TextToPhonemes` with
  `espeakPHONEMES_IPA`) returns clause by clause, with the text each call consumed, and
  whether Piper's phonemes are recovered from that by adding the clause terminators back.
- wave_<name>.npy: onnxruntime's output waveform (float32, 22050 Hz, the raw `output` squeezed to
  1-D, before Piper's int16 peak normalisation) for two short sentences with scales
  [noise_scale=0, length_scale=1, noise_w=0]: the noise terms vanish, so the output is
  deterministic (checked by running twice). A waveform longer than 1.5 s is cut to its
  first 1.5 s; the full length is recorded.
- inter_<name>_<tensor>.npy: intermediate tensors of the same runs (text-encoder output and
  prior statistics, durations before and after ceil, the decoder input), read by adding
  graph outputs to a copy of the model in memory.
- manifest.json: every file, its shape and dtype, and the exact calls.

Needs the venv (onnx, onnxruntime, numpy, piper-phonemize) and the voice from
`scripts/fetch-models.sh piper-en-us-joe-medium`; for the cross-check the system
espeak-ng (`apt-get install espeak-ng`). Run from the repository root:

    /work/venv/bin/python tools/piper_golden.py
"""
import ctypes
import ctypes.util
import hashlib
import json
import os
import subprocess
import unicodedata
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import piper_phonemize

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path(os.environ.get("AIGC_MODELS", Path.home() / ".cache/aigc/models"))
VOICE_DIR = MODELS / "piper-en-us-joe-medium"
MODEL = VOICE_DIR / "en_US-joe-medium.onnx"
CONFIG = VOICE_DIR / "en_US-joe-medium.onnx.json"
OUT = ROOT / "tools/fixtures/audio/piper"

PAD, BOS, EOS = "_", "^", "$"

SENTENCES = [
    ("fox", "plain statement", "The quick brown fox jumps over the lazy dog."),
    ("hello", "short statement", "Hello world."),
    ("question", "question", "How are you doing today?"),
    ("numbers_words", "numbers written as words", "I have twenty three apples and one hundred and five oranges."),
    ("clauses", "comma, semicolon, exclamation", "First, we wait; then, we run!"),
    ("quote", "quotation marks", "She said, \"I will be there soon.\""),
    ("abbrev", "abbreviation Dr.", "Dr. Smith lives on Baker Street."),
    ("tag_question", "apostrophes and a tag question", "It's a beautiful day, isn't it?"),
    ("colon", "colon and commas", "Please call me at nine o'clock: not before, not after."),
    ("hyphen_parens", "hyphens, parentheses, an acronym", "Text-to-speech (TTS) works well on small computers."),
    ("digits", "digits, a year and money", "In 1999, the price was $42.50."),
    ("long", "long sentence with many clauses",
     "Although the weather forecast had promised clear skies for the entire weekend, the hikers "
     "packed extra layers, waterproof jackets, and plenty of food, because experience had taught "
     "them that the mountains rarely keep such promises."),
]

# The two sentences synthesised (by key); each must phonemise to exactly one sentence.
WAVE_SENTENCES = ["hello", "question"]
SCALES = [0.0, 1.0, 0.0]  # noise_scale, length_scale, noise_w
KEEP_SECONDS = 1.5

# Intermediate tensors (ONNX value names in this export) saved for the first waveform sentence;
# the durations also for the second.
INTERMEDIATES = {
    "enc_x": ("/enc_p/encoder/Mul_2_output_0", "text encoder output x * x_mask [1, 192, T_text]"),
    "m_p": ("/enc_p/Split_output_0", "prior mean m_p [1, 192, T_text]"),
    "logs_p": ("/enc_p/Split_output_1", "prior log-std logs_p [1, 192, T_text]"),
    "w": ("/Mul_1_output_0", "exp(logw) * x_mask * length_scale, before ceil [1, 1, T_text]"),
    "w_ceil": ("/Ceil_output_0", "ceil(w): frames per phoneme id [1, 1, T_text]"),
    "z": ("/Mul_7_output_0", "flow output z * y_mask, the decoder input [1, 192, T_frames]"),
}
DURATION_ONLY = ["w", "w_ceil"]

# espeak-ng clause terminator flags (speak_lib internals, as piper-phonemize and piper1-gpl use them)
CLAUSE_TYPE_SENTENCE = 0x00080000


def phonemes_to_ids(phonemes, id_map):
    """Piper's procedure (piper-phonemize phoneme_ids.cpp with interspersePad, addBos, addEos)."""
    ids = list(id_map[BOS]) + list(id_map[PAD])
    for p in phonemes:
        if p not in id_map:
            raise KeyError(f"phoneme {p!r} missing from the voice's id map")
        ids += list(id_map[p]) + list(id_map[PAD])
    return ids + list(id_map[EOS])


class SystemEspeak:
    """The distribution's libespeak-ng through ctypes, as a Rust FFI binding would call it."""

    def __init__(self, voice):
        path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        self.lib = ctypes.CDLL(path)
        self.path = path
        # espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS = 2, buflength 0, path NULL, options 0)
        if self.lib.espeak_Initialize(2, 0, None, 0) < 0:
            raise RuntimeError("espeak_Initialize failed")
        self.lib.espeak_Info.restype = ctypes.c_char_p
        self.lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        self.version = self.lib.espeak_Info(None).decode()
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak_SetVoiceByName({voice}) failed")
        self.lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]

    def clauses(self, text):
        """[(ipa, consumed_text)] per call; espeakCHARS_AUTO = 0, espeakPHONEMES_IPA = 0x02."""
        raw = text.encode()
        buf = ctypes.create_string_buffer(raw)
        base = ctypes.addressof(buf)
        ptr = ctypes.c_void_p(base)
        out = []
        while ptr.value:
            start = ptr.value - base
            ipa = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), 0, 0x02).decode()
            end = ptr.value - base if ptr.value else len(raw)
            out.append((ipa, raw[start:end].decode(errors="replace")))
        return out


def rebuild_sentences(clauses):
    """Piper's phonemes from plain per-clause IPA: the terminator is the last of .?!,:; in the
    text the call consumed (espeak reads one character past the clause, so that can reach into
    the next clause); `. ? !` end a sentence, `, : ;` are followed by a space."""
    sentences, current = [], None
    for ipa, consumed in clauses:
        if current is None:
            current = []
            sentences.append(current)
        term = next((c for c in reversed(consumed) if c in ".?!,:;"), None)
        current += list(unicodedata.normalize("NFD", ipa))
        if term is not None:
            current.append(term)
        if term in (",", ":", ";"):
            current.append(" ")
        if term in (".", "?", "!"):
            current = None
    return sentences


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def phonemize_all(config):
    voice = config["espeak"]["voice"]
    id_map = config["phoneme_id_map"]
    system = SystemEspeak(voice)
    entries = []
    for key, kind, text in SENTENCES:
        sentences = piper_phonemize.phonemize_espeak(text, voice)
        ids = [phonemes_to_ids(s, id_map) for s in sentences]
        # piper-phonemize's own id function (built-in default map) gives the same ids here
        assert ids == [piper_phonemize.phoneme_ids_espeak(s) for s in sentences], key
        cli = subprocess.run(["espeak-ng", "-q", "-v", voice, "--ipa", text],
                             capture_output=True, text=True, check=True).stdout
        clauses = system.clauses(text)
        entries.append({
            "key": key,
            "kind": kind,
            "text": text,
            "sentences": [
                {"ipa": "".join(s), "phonemes": s, "ids": i, "num_ids": len(i)}
                for s, i in zip(sentences, ids)
            ],
            "system_espeak": {
                "clauses": [{"ipa": ipa, "consumed": c} for ipa, c in clauses],
                "cli_lines": [line for line in cli.splitlines() if line.strip()],
                "rebuilt_matches_piper": rebuild_sentences(clauses) == sentences,
            },
        })
    return entries, system.version, system.path


def add_outputs(model, names):
    """A copy of the model with extra graph outputs (float32, shape left open)."""
    extra = onnx.ModelProto()
    extra.CopyFrom(model)
    for name in names:
        extra.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return extra.SerializeToString()


def session(model_bytes, level):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])


def feeds(ids):
    return {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array(SCALES, dtype=np.float32),
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    config = json.loads(CONFIG.read_text(encoding="utf-8"))
    sample_rate = config["audio"]["sample_rate"]

    entries, espeak_version, espeak_path = phonemize_all(config)
    (OUT / "phonemes.json").write_text(json.dumps({
        "voice": MODEL.name,
        "espeak_voice": config["espeak"]["voice"],
        "phonemizer": f"piper-phonemize {piper_phonemize_version()} (bundled espeak-ng fork and data)",
        "system_espeak": {"library": espeak_path, "version": espeak_version},
        "sentences": entries,
    }, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    model = onnx.load(str(MODEL))
    default = session(MODEL.read_bytes(), ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    unoptimised = session(MODEL.read_bytes(), ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    names = [v[0] for v in INTERMEDIATES.values()]
    probe = session(add_outputs(model, names), ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    by_key = {e["key"]: e for e in entries}

    files = {"phonemes.json": {"what": "phonemes and ids per sentence (see its own fields)"}}
    waves = []
    for n, key in enumerate(WAVE_SENTENCES):
        entry = by_key[key]
        assert len(entry["sentences"]) == 1, key
        ids = entry["sentences"][0]["ids"]
        first = default.run(["output"], feeds(ids))[0]
        second = default.run(["output"], feeds(ids))[0]
        assert np.array_equal(first, second), f"{key}: two runs differ"
        other = unoptimised.run(["output"], feeds(ids))[0]
        outs = probe.run(["output"] + names, feeds(ids))
        assert np.array_equal(outs[0], first), f"{key}: extra outputs changed the waveform"
        wave = first.reshape(-1).astype(np.float32)
        keep = min(len(wave), int(KEEP_SECONDS * sample_rate))
        name = f"wave_{key}.npy"
        np.save(OUT / name, wave[:keep])
        saved = {}
        for (short, (onnx_name, what)), value in zip(INTERMEDIATES.items(), outs[1:]):
            if n > 0 and short not in DURATION_ONLY:
                continue
            fname = f"inter_{key}_{short}.npy"
            np.save(OUT / fname, value.astype(np.float32))
            saved[short] = fname
            files[fname] = {"what": what, "onnx_value": onnx_name, "shape": list(value.shape),
                            "dtype": "float32", "sha256": sha256(OUT / fname)}
        w = outs[1 + list(INTERMEDIATES).index("w")].reshape(-1)
        w_ceil = outs[1 + list(INTERMEDIATES).index("w_ceil")]
        frames = int(w_ceil.sum())
        # how close a w came to an integer from above (where a tiny error flips its ceil)
        margin = float(np.min(w - (np.ceil(w) - 1.0)))
        waves.append({
            "key": key, "text": entry["text"], "ids": ids, "file": name,
            "output_shape": list(first.shape),
            "full_samples": int(len(wave)), "saved_samples": int(keep),
            "full_seconds": len(wave) / sample_rate,
            "frames": frames, "samples_per_frame": int(len(wave)) // frames,
            "deterministic_two_runs": True,
            "min_w_above_integer": margin,
            "max_abs_diff_vs_ORT_DISABLE_ALL": float(np.abs(other - first).max()),
            "peak_abs": float(np.abs(wave).max()), "rms": float(np.sqrt(np.mean(wave ** 2))),
            "intermediates": saved,
        })
        files[name] = {"what": f"waveform of {entry['text']!r}, float32 [{keep}] at {sample_rate} Hz"
                       + (f" (first {KEEP_SECONDS} s of {len(wave)} samples)" if keep < len(wave) else ""),
                       "shape": [keep], "dtype": "float32", "sha256": sha256(OUT / name)}

    manifest = {
        "generator": "tools/piper_golden.py",
        "model": {"file": MODEL.name, "sha256": sha256(MODEL), "config": CONFIG.name,
                  "config_sha256": sha256(CONFIG)},
        "sample_rate": sample_rate,
        "phonemization": {
            "call": "piper_phonemize.phonemize_espeak(text, config['espeak']['voice'])  # 'en-us'",
            "library": "piper-phonemize (espeak_TextToPhonemesWithTerminator(&text, espeakCHARS_AUTO, "
                       "espeakPHONEMES_IPA=0x02, &terminator) per clause; NFD-decomposed to code points; "
                       "'(lang)' switch flags dropped; terminator added back: period '.', question '?', "
                       "exclamation '!' (these end a sentence), comma ', ', colon ': ', semicolon '; ')",
            "ids": "[^] + [_] + for each phoneme ([id] + [_]) + [$], with the voice's phoneme_id_map "
                   "(as piper-phonemize phonemes_to_ids and Piper's C++ and piper1-gpl do; the older "
                   "rhasspy/piper src/python_run voice.py omits the [_] after [^])",
            "sentences": "one model call per sentence; Piper concatenates the audio",
            "system_cross_check": "libespeak-ng.so.1 espeak_TextToPhonemes(&ptr, 0, 0x02) per clause "
                                  "(no terminator out-parameter in upstream espeak-ng); see rebuild_sentences()",
        },
        "onnxruntime": {
            "version": ort.__version__,
            "provider": "CPUExecutionProvider",
            "graph_optimization_level": "ORT_ENABLE_ALL",
            "threads": 1,
            "feeds": {"input": "int64 [1, T]", "input_lengths": "int64 [1] = [T]",
                      "scales": f"float32 [3] = {SCALES} (noise_scale, length_scale, noise_w)"},
            "output": "output float32 [1, 1, 1, samples] (declared [batch_size, time, 1, "
                      "Unsqueezeoutput_dim_3]: the export's dynamic-axis name 'time' sits on a dim of size 1)",
        },
        "waves": waves,
        "files": files,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n",
                                       encoding="utf-8")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total} bytes, to {OUT.relative_to(ROOT)}")


def piper_phonemize_version():
    from importlib.metadata import version
    return version("piper-phonemize")


if __name__ == "__main__":
    main()
