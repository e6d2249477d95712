"""Transcribes WAV files with Whisper tiny.en (CTranslate2 weights, as scripts/fetch-models.sh
installs them under ~/.cache/aigc/models/whisper-tiny-en) to check that synthesised speech is
intelligible: the issue-6 listening check.

    python tools/transcribe.py ~/.cache/aigc/models/whisper-tiny-en speech.wav [more.wav ...]

Needs ctranslate2, transformers (for the log-mel features), tokenizers, scipy.
"""
import sys, numpy as np, ctranslate2, scipy.io.wavfile as wf, scipy.signal as ss
from transformers import WhisperFeatureExtractor
from tokenizers import Tokenizer
d = sys.argv[1]
model = ctranslate2.models.Whisper(d, device="cpu", compute_type="float32")
tok = Tokenizer.from_file(d + "/tokenizer.json")
fe = WhisperFeatureExtractor(feature_size=80)
for path in sys.argv[2:]:
    sr, a = wf.read(path)
    a = a.astype(np.float32) / 32768.0 if a.dtype == np.int16 else a.astype(np.float32)
    a = ss.resample_poly(a, 16000, sr).astype(np.float32)
    feats = fe(a, sampling_rate=16000, return_tensors="np").input_features
    prompt = [tok.token_to_id(t) for t in ["<|startoftranscript|>", "<|notimestamps|>"]]
    res = model.generate(ctranslate2.StorageView.from_array(feats), [prompt], beam_size=5, max_length=224)
    print(path, "->", tok.decode(res[0].sequences_ids[0]))
