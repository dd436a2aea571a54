"""Tiny FLUX.1 Kontext stand-in: ``FluxKontextPipeline``'s components shrunk, deterministic random weights.

The layout of ``black-forest-labs/FLUX.1-Kontext-dev`` (transformer, VAE, CLIP and
T5 text encoders with their tokenizers, flow-matching Euler scheduler), each part a
few thousand parameters. The VAE downsamples by 32 (six blocks) instead of 8, so
the model card's 1024 x 1024 input gives 32 x 32 latents and a CPU runs a step in
well under a second. Not comparable with anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: FLUX.1's scheduler settings (dynamic shifting by the image's token count)
FLUX_SCHEDULER = dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                      base_image_seq_len=256, max_image_seq_len=4096)


def tiny_flux_kontext_pipeline(seed: int = 0) -> Any:
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxKontextPipeline, FluxTransformer2DModel

    from diffusion_core.tiny import tiny_tokenizer

    from .tiny_text import tiny_clip_encoder, tiny_t5_encoder, tiny_t5_tokenizer

    clip_tok, t5_tok = tiny_tokenizer(), tiny_t5_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
            axes_dims_rope=(4, 6, 6),
        ).eval()
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=4,
            block_out_channels=(4, 4, 8, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 6,
            up_block_types=("UpDecoderBlock2D",) * 6, sample_size=1024, use_quant_conv=False,
            use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035,
        ).eval()
        clip = tiny_clip_encoder(clip_tok)
        t5 = tiny_t5_encoder(len(t5_tok))
    return FluxKontextPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER), vae=vae, text_encoder=clip, tokenizer=clip_tok,
        text_encoder_2=t5, tokenizer_2=t5_tok, transformer=transformer,
    )


def build_tiny_flux_kontext(folder: str | os.PathLike) -> Path:
    """A ``FluxKontextPipeline`` diffusers folder (``flux-kontext``)."""
    folder = Path(folder)
    tiny_flux_kontext_pipeline().save_pretrained(folder)
    return folder
