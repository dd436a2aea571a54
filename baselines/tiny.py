"""Tiny stand-ins for the baselines' weights: diffusers folders, real formats.

``build_tiny_ip2p`` writes a ``StableDiffusionInstructPix2PixPipeline`` folder
(UNet with 8 input channels: noisy latent + input-image latent);
``build_tiny_ldm`` a ``StableDiffusionPipeline`` folder (4-channel UNet), which
``StableDiffusionImg2ImgPipeline`` (SDEdit) and ProxEdit load. The VAE, the CLIP
text encoder and the hand-written byte-level tokenizer come from
:func:`diffusion_core.tiny.tiny_components`, as LEGO's, so the baselines' tiny zoo has the same
latent geometry as LEGO's (256 x 256 frames -> 32 x 32 latents, scale 0.18215).

The tiny VAE is LEGO's with two changes that make it behave like SD's where
the baselines' tests look: a nearly deterministic posterior (log-variance
channels of ``quant_conv`` fixed at ``TINY_LOGVAR``; SD's posterior standard
deviation is small next to its mean) and a ``scaling_factor`` that gives the
scaled latents unit standard deviation (``TINY_VAE_SCALE`` = 1 / std of its
posterior means on the demo frames, the way SD's 0.18215 was chosen), so noise
levels mean the same thing relative to the signal as in SD.

Weights are random and deterministic (the global RNG is left alone); results
made with them are not comparable with anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from diffusion_core.tiny import write_slow_tokenizer_files

#: 1 / std of the tiny VAE's posterior means on the demo frames (0.229)
TINY_VAE_SCALE = 4.37
#: log-variance of the tiny VAE's posterior (std e^-7, about 0.001)
TINY_LOGVAR = -14.0

#: SD 1.5's scheduler settings (``steps_offset=1``, no alpha-to-one, no clipping);
#: the methods build the protocol's sampler from this config
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    prediction_type="epsilon", steps_offset=1, set_alpha_to_one=False, clip_sample=False,
)


def tiny_components(in_channels: int, seed: int = 0) -> dict[str, Any]:
    """VAE, text encoder, tokenizer, a UNet with ``in_channels`` inputs and a DDIM scheduler."""
    import torch
    from diffusers import DDIMScheduler, UNet2DConditionModel

    from diffusion_core.tiny import TINY_UNET
    from diffusion_core.tiny import tiny_components as sd_components

    parts = sd_components(seed)  # VAE, CLIP text, tokenizer (the UNet is replaced)
    vae = parts["vae"]
    with torch.no_grad():
        half = vae.quant_conv.out_channels // 2  # DiagonalGaussian: [mean | logvar] channels
        vae.quant_conv.weight[half:] = 0.0
        vae.quant_conv.bias[half:] = TINY_LOGVAR
    vae.register_to_config(scaling_factor=TINY_VAE_SCALE)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        unet = UNet2DConditionModel(in_channels=in_channels, **TINY_UNET).eval()
    return dict(
        vae=vae, text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"], unet=unet,
        scheduler=DDIMScheduler(**SCHEDULER_CONFIG),
    )


def tiny_ip2p_pipeline(seed: int = 0) -> Any:
    from diffusers import StableDiffusionInstructPix2PixPipeline

    return StableDiffusionInstructPix2PixPipeline(
        **tiny_components(8, seed), safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )


def tiny_ldm_pipeline(seed: int = 0) -> Any:
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        **tiny_components(4, seed), safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )


def build_tiny_ip2p(folder: str | os.PathLike) -> Path:
    """An InstructPix2Pix diffusers folder (``ip2p-init``, ``ip2p-ego4d``, ``ip2p-epic``)."""
    folder = Path(folder)
    tiny_ip2p_pipeline().save_pretrained(folder)
    write_slow_tokenizer_files(folder)
    return folder


def build_tiny_ldm(folder: str | os.PathLike) -> Path:
    """A Stable Diffusion text-to-image diffusers folder (``ldm-ego4d``, ``ldm-epic``)."""
    folder = Path(folder)
    tiny_ldm_pipeline().save_pretrained(folder)
    write_slow_tokenizer_files(folder)
    return folder
