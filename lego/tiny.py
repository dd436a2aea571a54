"""Tiny LEGO stand-ins: a diffusers-format LDM folder and VLLM feature files.

Same formats as the real thing (a ``LEGOPipeline.save_pretrained`` folder; the
release's ``.npy`` feature layout), random deterministic weights (the Stable Diffusion
parts from :mod:`diffusion_core.tiny`), small enough
to run on a CPU in well under a second per step. Results made with them are
not comparable with anything.
"""

from __future__ import annotations

import hashlib
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


def tiny_components(variant: str = "full", seed: int = 0, *, vllm_hidden: int | None = None,
                    image_tokens: int | None = None) -> dict:
    """The tiny pipeline's components (deterministic, global RNG untouched): the tiny SD parts of
    :mod:`diffusion_core.tiny`, then the VLLM conditioning drawn from the same seeded stream.
    ``vllm_hidden`` / ``image_tokens`` size the conditioning for another VLLM (default: the tiny LLaVA's)."""
    import torch
    from diffusers import EulerAncestralDiscreteScheduler

    from diffusion_core.tiny import draw_tiny_models, tiny_tokenizer

    from .conditioning import LEGOConditioning

    if variant not in VARIANT_FLAGS:
        raise ValueError(f"unknown LEGO variant {variant!r}; use one of {', '.join(VARIANT_FLAGS)}")
    use_image, use_text = VARIANT_FLAGS[variant]
    sizes = {k: v for k, v in (("vllm_hidden", vllm_hidden), ("image_tokens", image_tokens)) if v is not None}
    tokenizer = tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        models = draw_tiny_models(tokenizer)
        unet, vae, text_encoder = models["unet"], models["vae"], models["text_encoder"]
        conditioning = (
            LEGOConditioning(**{**TINY_CONDITIONING, **sizes}, use_image=use_image, use_text=use_text)
            if (use_image or use_text) else None
        )
    scheduler = EulerAncestralDiscreteScheduler(**SCHEDULER_CONFIG)
    for m in (unet, vae, text_encoder, conditioning):
        if m is not None:
            m.eval()
    return dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                scheduler=scheduler, conditioning=conditioning)


def build_tiny_ldm(folder: str | os.PathLike, variant: str = "full", seed: int = 0, *, vllm_hidden: int | None = None,
                   image_tokens: int | None = None) -> Path:
    """Save a tiny LEGO diffusers folder (what ``egobench convert lego`` writes, shrunk); the sizes
    give the conditioning another VLLM's feature width and image-token count."""
    from .pipeline import LEGOPipeline

    folder = Path(folder)
    comps = tiny_components(variant, seed, vllm_hidden=vllm_hidden, image_tokens=image_tokens)
    LEGOPipeline(**comps).save_pretrained(folder)
    return folder


def build_tiny_ldm_full(folder: Path) -> None:
    build_tiny_ldm(folder, "full")


def build_tiny_ldm_desc(folder: Path) -> None:
    build_tiny_ldm(folder, "desc")


def build_tiny_ldm_img(folder: Path) -> None:
    build_tiny_ldm(folder, "img")


def build_tiny_ldm_txt(folder: Path) -> None:
    build_tiny_ldm(folder, "txt")


#: the tiny Qwen2-VL stand-in's sizes (lego.vllm_alt_tiny: hidden 32, 16 image tokens at 112 px);
#: a test checks them against its config and processor
TINY_QWEN2_VL_SIZES = dict(vllm_hidden=32, image_tokens=16)


def build_tiny_ldm_full_qwen2_vl_2b(folder: Path) -> None:
    build_tiny_ldm(folder, "full", **TINY_QWEN2_VL_SIZES)


def build_tiny_ldm_img_qwen2_vl_2b(folder: Path) -> None:
    build_tiny_ldm(folder, "img", **TINY_QWEN2_VL_SIZES)


def build_tiny_ldm_txt_qwen2_vl_2b(folder: Path) -> None:
    build_tiny_ldm(folder, "txt", **TINY_QWEN2_VL_SIZES)


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
