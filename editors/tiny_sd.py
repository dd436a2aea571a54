"""Tiny stand-ins of the Stable Diffusion family editors: InstructPix2Pix, SDXL InstructPix2Pix, LEDITS++ (SD 1.5).

The pipelines' layouts shrunk, deterministic random weights, CLIP tokenizer and
text encoder from :mod:`diffusion_core.tiny`. Their VAE downsamples by 32 (six
blocks) instead of 8, so the model cards' 512 / 768 inputs give 16 / 24 latents
and a preset runs at its own resolution on a CPU in seconds. SDXL's has two CLIP
text encoders (the second with a projection, whose pooled output and the six
size / crop numbers feed the added time embedding). Not comparable with anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: SDXL's scheduler settings
SDXL_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                      prediction_type="epsilon", steps_offset=1, timestep_spacing="leading")


#: SD 1.5's scheduler settings (InstructPix2Pix's release samples with Euler ancestral)
SD_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                    prediction_type="epsilon", steps_offset=1)


def tiny_vae_32x() -> Any:
    """An SD-style VAE with six blocks (32x downsampling), 4 latent channels (draws from the global RNG)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=4,
        block_out_channels=(4, 4, 8, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 6,
        up_block_types=("UpDecoderBlock2D",) * 6, sample_size=512, scaling_factor=1.0,
    ).eval()


def tiny_ip2p_pipeline(seed: int = 0) -> Any:
    """InstructPix2Pix's layout: an 8-channel UNet (noisy latent + input latent), Euler ancestral as released."""
    import torch
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel

    from diffusion_core.tiny import TINY_UNET, tiny_components

    parts = tiny_components(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 4)
        unet = UNet2DConditionModel(**{**TINY_UNET, "in_channels": 8}).eval()
        vae = tiny_vae_32x()
    return StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"], unet=unet,
        scheduler=EulerAncestralDiscreteScheduler(**SD_SCHEDULER), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )


def build_tiny_ip2p(folder: str | os.PathLike) -> Path:
    """An InstructPix2Pix diffusers folder with the Hub's tokenizer files (``instruct-pix2pix``, ``magicbrush``)."""
    from diffusion_core.tiny import write_slow_tokenizer_files

    folder = Path(folder)
    tiny_ip2p_pipeline().save_pretrained(folder)
    write_slow_tokenizer_files(folder)
    return folder


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
        vae = tiny_vae_32x()
    return StableDiffusionXLInstructPix2PixPipeline(
        vae=vae, text_encoder=parts["text_encoder"], text_encoder_2=text_encoder_2,
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
        vae = tiny_vae_32x()
    # SD 1.5's PNDM, as the Hub folder: the pipeline swaps in sde-dpmsolver++ (order 2) when it loads
    scheduler = PNDMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)
    return LEditsPPPipelineStableDiffusion(
        vae=vae, text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"], unet=unet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def build_tiny_ledits(folder: str | os.PathLike) -> Path:
    """A Stable Diffusion 1.5 layout folder loaded by ``LEditsPPPipelineStableDiffusion`` (``ledits-sd15``)."""
    from diffusion_core.tiny import write_slow_tokenizer_files

    folder = Path(folder)
    tiny_ledits_pipeline().save_pretrained(folder)
    write_slow_tokenizer_files(folder)
    return folder
