"""Tiny SDXL InstructPix2Pix stand-in: the pipeline's layout shrunk, deterministic random weights.

Two CLIP text encoders (the second with a projection, whose pooled output and
the six size / crop numbers feed SDXL's added time embedding), an 8-channel
UNet (noisy latent + input latent) and the tiny SD VAE; Euler sampler as SDXL's.
Not comparable with anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: SDXL's scheduler settings
SDXL_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                      prediction_type="epsilon", steps_offset=1, timestep_spacing="leading")


def tiny_sdxl_ip2p_pipeline(seed: int = 0) -> Any:
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLInstructPix2PixPipeline, UNet2DConditionModel

    from diffusion_core.tiny import TINY_UNET, tiny_components, tiny_tokenizer

    from .tiny_text import tiny_clip_encoder

    parts = tiny_components(seed)  # tokenizer, VAE, first text encoder (its UNet is replaced)
    unet_config = {**TINY_UNET, "in_channels": 8, "cross_attention_dim": 64, "addition_embed_type": "text_time",
                   "addition_time_embed_dim": 8, "projection_class_embeddings_input_dim": 32 + 6 * 8,
                   "transformer_layers_per_block": 1}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 2)
        unet = UNet2DConditionModel(**unet_config).eval()
        text_encoder_2 = tiny_clip_encoder(parts["tokenizer"], with_projection=True)
    return StableDiffusionXLInstructPix2PixPipeline(
        vae=parts["vae"], text_encoder=parts["text_encoder"], text_encoder_2=text_encoder_2,
        tokenizer=parts["tokenizer"], tokenizer_2=tiny_tokenizer(), unet=unet,
        scheduler=EulerDiscreteScheduler(**SDXL_SCHEDULER), add_watermarker=False,
    )


def build_tiny_sdxl_ip2p(folder: str | os.PathLike) -> Path:
    """A ``StableDiffusionXLInstructPix2PixPipeline`` diffusers folder (``sdxl-instructpix2pix-768``)."""
    folder = Path(folder)
    tiny_sdxl_ip2p_pipeline().save_pretrained(folder)
    return folder


def tiny_ledits_pipeline(seed: int = 0) -> Any:
    """SD 1.5's layout for LEDITS++: its cross-attention masks read the UNet's maps at 1/4 of the latent
    size, so this tiny UNet has three levels (cross attention at 1/2 and 1/4) where the shared one has two."""
    import torch
    from diffusers import LEditsPPPipelineStableDiffusion, PNDMScheduler, UNet2DConditionModel

    from diffusion_core.tiny import TINY_UNET, tiny_components

    parts = tiny_components(seed)
    unet_config = {**TINY_UNET, "in_channels": 4, "block_out_channels": (16, 32, 32),
                   "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                   "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 3)
        unet = UNet2DConditionModel(**unet_config).eval()
    # SD 1.5's PNDM, as the Hub folder: the pipeline swaps in sde-dpmsolver++ (order 2) when it loads
    scheduler = PNDMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)
    return LEditsPPPipelineStableDiffusion(
        vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"], unet=unet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def build_tiny_ledits(folder: str | os.PathLike) -> Path:
    """A Stable Diffusion 1.5 layout folder loaded by ``LEditsPPPipelineStableDiffusion`` (``ledits-sd15``)."""
    from diffusion_core.tiny import write_slow_tokenizer_files

    folder = Path(folder)
    tiny_ledits_pipeline().save_pretrained(folder)
    write_slow_tokenizer_files(folder)
    return folder
