"""Tiny LEGO stand-ins: a diffusers-format LDM folder and VLLM feature files.

Same formats as the real thing (a ``LEGOPipeline.save_pretrained`` folder; the
release's ``.npy`` feature layout), random deterministic weights, small enough
to run on a CPU in well under a second per step. Results made with them are
not comparable with anything.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from egobench.data import Sample

from .features import VLLMFeatures, has_features, save_features

#: the tiny VLLM: 16 image tokens of width 64 (real: 256 x 5120)
TINY_VLLM_HIDDEN = 64
TINY_IMAGE_TOKENS = 16

TINY_CONDITIONING = dict(
    vllm_hidden=TINY_VLLM_HIDDEN, context_dim=32, image_tokens=TINY_IMAGE_TOKENS, text_tokens=77,
    heads=2, layers=2, ffn=64, dropout=0.1,
)

#: variant -> (use_image, use_text); "desc" has no VLLM conditioning module
VARIANT_FLAGS: dict[str, tuple[bool, bool]] = {
    "full": (True, True),
    "desc": (False, False),
    "img": (True, False),
    "txt": (False, True),
}

SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    prediction_type="epsilon", timestep_spacing="linspace", steps_offset=0,
)


def _bytes_to_unicode() -> list[str]:
    """GPT-2 / CLIP byte-level alphabet, in CLIP's vocabulary order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


#: a few merges so BPE does something (CLIP's real file has 48,894)
_MERGES = [("t", "h"), ("th", "e</w>"), ("i", "n"), ("e", "r"), ("a", "n"), ("o", "n</w>"), ("in", "g</w>")]


def write_tiny_tokenizer(folder: str | os.PathLike) -> None:
    """``vocab.json`` + ``merges.txt`` for a byte-level CLIPTokenizer (vocabulary 521)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m) for m in _MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in _MERGES) + "\n")


def tiny_components(variant: str = "full", seed: int = 0) -> dict:
    """The tiny pipeline's components (deterministic, global RNG untouched)."""
    import tempfile

    import torch
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from .conditioning import LEGOConditioning

    if variant not in VARIANT_FLAGS:
        raise ValueError(f"unknown LEGO variant {variant!r}; use one of {', '.join(VARIANT_FLAGS)}")
    use_image, use_text = VARIANT_FLAGS[variant]
    with tempfile.TemporaryDirectory() as tmp:
        write_tiny_tokenizer(tmp)
        tokenizer = CLIPTokenizer.from_pretrained(tmp, model_max_length=77)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # SD 1.5's UNet layout, shrunk: 8 input channels (noise + image latent)
        unet = UNet2DConditionModel(
            sample_size=32, in_channels=8, out_channels=4, layers_per_block=1,
            block_out_channels=(16, 32), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
            attention_head_dim=8, norm_num_groups=8, flip_sin_to_cos=True, freq_shift=0,
        )
        # downsamples by 8 like SD's VAE, so 256 x 256 frames give 32 x 32 latents
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=4,
            block_out_channels=(4, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4, sample_size=256, scaling_factor=0.18215,
        )
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=77, projection_dim=32,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ))
        conditioning = (
            LEGOConditioning(**TINY_CONDITIONING, use_image=use_image, use_text=use_text)
            if (use_image or use_text) else None
        )
    scheduler = EulerAncestralDiscreteScheduler(**SCHEDULER_CONFIG)
    for m in (unet, vae, text_encoder, conditioning):
        if m is not None:
            m.eval()
    return dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                scheduler=scheduler, conditioning=conditioning)


def build_tiny_ldm(folder: str | os.PathLike, variant: str = "full", seed: int = 0) -> Path:
    """Save a tiny LEGO diffusers folder (what ``egobench convert lego`` writes, shrunk)."""
    from .pipeline import LEGOPipeline

    folder = Path(folder)
    LEGOPipeline(**tiny_components(variant, seed)).save_pretrained(folder)
    return folder


def build_tiny_ldm_full(folder: Path) -> None:
    build_tiny_ldm(folder, "full")


def build_tiny_ldm_desc(folder: Path) -> None:
    build_tiny_ldm(folder, "desc")


def build_tiny_ldm_img(folder: Path) -> None:
    build_tiny_ldm(folder, "img")


def build_tiny_ldm_txt(folder: Path) -> None:
    build_tiny_ldm(folder, "txt")


# ---------------------------------------------------------------------------
# Tiny VLLM features
# ---------------------------------------------------------------------------
def tiny_features(sample: Sample) -> VLLMFeatures:
    """Random features seeded by the sample id: (16, 64) image, (T, 64) text with
    T in [8, 120] so both truncation and padding to 77 occur."""
    seed = int.from_bytes(hashlib.sha256(f"lego-tiny-vllm:{sample.id}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    n_text = int(rng.integers(8, 121))
    image = rng.standard_normal((TINY_IMAGE_TOKENS, TINY_VLLM_HIDDEN)).astype(np.float32)
    text = rng.standard_normal((n_text, TINY_VLLM_HIDDEN)).astype(np.float32)
    action = sample.action.replace("#C C ", "").replace("#c c ", "").strip()
    return VLLMFeatures(image, text, f"The person {action}." if action else None)


def write_tiny_features(root: str | os.PathLike, samples: Iterable[Sample], model_tag: str | dict[str, str]) -> int:
    """Write tiny features for samples that have none under ``root``; returns how many.

    ``model_tag``: one tag, or a mapping domain -> tag (``sample.meta['domain']``).
    """
    n = 0
    for s in samples:
        tag = model_tag if isinstance(model_tag, str) else model_tag[str(s.meta.get("domain", s.dataset))]
        if not has_features(root, s, tag):
            save_features(root, s, tiny_features(s), tag)
            n += 1
    return n
