"""Stable Diffusion 1.5's UNet, VAE and text encoder at real size with random weights (no download).

For timing only (``egobench bench --profile full-arch``): the same layers and widths as SD 1.5, so a
step costs what a real one costs; the tokenizer is the tiny zoo's byte-level one (the text encoder
keeps CLIP's 49,408-token embedding table).
"""

from __future__ import annotations

from typing import Any

#: SD 1.5's UNet (the input channel count is set per model), VAE and CLIP ViT-L/14 text encoder
SD15_UNET = dict(sample_size=32, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768,
                 attention_head_dim=8)
SD15_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, sample_size=256, scaling_factor=0.18215)
SD15_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, hidden_act="quick_gelu", max_position_embeddings=77)


def sd15_components(seed: int = 0, in_channels: int = 8) -> dict[str, Any]:
    """Tokenizer, UNet (``in_channels``: 8 for InstructPix2Pix / LEGO), VAE and text encoder in eval mode,
    without gradients; deterministic, the global RNG untouched."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from .tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        models = dict(unet=UNet2DConditionModel(in_channels=in_channels, **SD15_UNET), vae=AutoencoderKL(**SD15_VAE),
                      text_encoder=CLIPTextModel(CLIPTextConfig(**SD15_TEXT, **ids)))
    for m in models.values():
        m.eval().requires_grad_(False)
    return dict(tokenizer=tokenizer, **models)
