#!/usr/bin/env python3
"""Golden CLIP similarities for "describe and draw" (`aigc_crossmodal::draw`).

Scores the two images that diffusers' StableDiffusionPipeline made from the tiny random-weight
pipeline of `tools/sd_tiny_models.py` (`tools/fixtures/image/sd-tiny/golden/txt2img_image.npy`
and `txt2img_v2_image.npy`, [1, 32, 24, 3] in [0, 1]) against a few prompts with the tiny
random-weight CLIPModel of `tools/clip_tiny.py` (`tools/fixtures/crossmodal/clip-tiny/`), as a
user of diffusers and transformers would:

  image = pipe(...).images[0] (output_type "pil": numpy_to_pil, (x * 255).round() as uint8)
  inputs = processor(images=image) ; ids = tokenizer(text, truncation=True, max_length=77)
  out = model(input_ids=ids, pixel_values=inputs.pixel_values)
  similarity = out.image_embeds @ out.text_embeds.T (both L2-normalised: the cosine)

The tiny CLIP has a 100-token vocabulary and no tokenizer, so this script writes one: a
word-level `tokenizer.json` (lower-cased, split at whitespace and punctuation, `<|startoftext|>`
98 and `<|endoftext|>` 99 around every text, unknown words 0) over the prompts' words. Output,
in `tools/fixtures/crossmodal/draw/`:

  tokenizer.json        the word-level tokenizer (tokenizers' JSON)
  golden.json           per prompt its text and ids; per image its file, the uint8 image's
                        channel sums; `similarity` [images][prompts]; versions

Run from the repository root (torch, transformers, tokenizers and Pillow in the venv):

    /work/venv/bin/python tools/draw_golden.py
"""

import json
import platform
import re
from pathlib import Path

import numpy as np
import PIL
import tokenizers
import torch
import transformers
from PIL import Image
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import CLIPModel, PreTrainedTokenizerFast
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

REPO = Path(__file__).resolve().parent.parent
SD = REPO / "tools" / "fixtures" / "image" / "sd-tiny"
CLIP = REPO / "tools" / "fixtures" / "crossmodal" / "clip-tiny"
OUT = REPO / "tools" / "fixtures" / "crossmodal" / "draw"

BOS, EOS, UNK = "<|startoftext|>", "<|endoftext|>", "<unk>"
PROMPTS = [
    # The prompts of sd-tiny's two txt2img runs, one unrelated, and one over 77 tokens (75
    # words are kept between bos and eos).
    "a photo of a red fox in the snow, highly detailed",
    "an oil painting of a small boat on a quiet lake at sunset",
    "blurry, low quality",
    " ".join(["a red fox and a small boat"] * 15),
]
IMAGES = ["txt2img_image", "txt2img_v2_image"]


def build_tokenizer() -> Tokenizer:
    words = sorted({w for p in PROMPTS for w in re.findall(r"\w+|[^\w\s]+", p.lower())})
    vocab = {UNK: 0}
    vocab.update({w: i + 1 for i, w in enumerate(words)})
    assert len(vocab) < 98, len(vocab)
    vocab[BOS], vocab[EOS] = 98, 99
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, 98), (EOS, 99)]
    )
    tok.add_special_tokens([BOS, EOS])
    return tok


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    OUT.mkdir(parents=True, exist_ok=True)
    build_tokenizer().save(str(OUT / "tokenizer.json"))

    # Everything below runs on what was written.
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(OUT / "tokenizer.json"),
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        model_max_length=77,
    )
    model = CLIPModel.from_pretrained(CLIP).eval()
    processor = CLIPImageProcessorPil.from_pretrained(CLIP)

    ids = [tokenizer(p, truncation=True, max_length=77).input_ids for p in PROMPTS]
    assert all(s[0] == 98 and s[-1] == 99 for s in ids)
    assert len(ids[3]) == 77, len(ids[3])

    images, image_docs = [], {}
    for name in IMAGES:
        x = np.load(SD / "golden" / f"{name}.npy")
        assert x.shape == (1, 32, 24, 3), x.shape
        # diffusers' numpy_to_pil.
        rgb8 = (x[0] * 255).round().astype("uint8")
        images.append(Image.fromarray(rgb8))
        image_docs[name] = {
            "file": f"tools/fixtures/image/sd-tiny/golden/{name}.npy",
            "rgb8_channel_sums": [int(v) for v in rgb8.astype(np.int64).sum(axis=(0, 1))],
        }

    with torch.no_grad():
        pixels = processor(images=images, return_tensors="pt").pixel_values
        # One text at a time (no padding); image_embeds and text_embeds come L2-normalised.
        outs = [model(input_ids=torch.tensor([s]), pixel_values=pixels) for s in ids]
        img = outs[0].image_embeds
        txt = torch.cat([o.text_embeds for o in outs])
        similarity = (img @ txt.T).double()

    doc = {
        "tolerance_max_abs": 1e-4,
        "prompts": [{"text": p, "ids": s} for p, s in zip(PROMPTS, ids)],
        "images": image_docs,
        "similarity": similarity.tolist(),
        "call": "CLIPModel(input_ids=tokenizer(text, truncation=True, max_length=77).input_ids, "
        "pixel_values=CLIPImageProcessorPil(numpy_to_pil(image))): image_embeds @ text_embeds.T, "
        "rows images, columns prompts",
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "pillow": PIL.__version__,
        },
    }
    (OUT / "golden.json").write_text(json.dumps(doc, indent=1) + "\n")
    for row, name in zip(similarity.tolist(), IMAGES):
        print(name, " ".join(f"{v:+.6f}" for v in row))


if __name__ == "__main__":
    main()
