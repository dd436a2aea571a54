"""Tiny Qwen-Image-Edit-2509 stand-in: ``QwenImageEditPlusPipeline``'s components shrunk, random weights.

Qwen2.5-VL text encoder (two text layers, one vision block) with a byte-level
BPE tokenizer built here with ``tokenizers`` (the chat and vision special
tokens the pipeline's template uses) wrapped in the fast Qwen2 tokenizer class;
the Qwen2-VL processor with a small pixel budget; the MMDiT transformer; and
the Qwen-Image VAE with five spatial downsamplings (32x, not 8x), because the
pipeline always encodes the input at a 1024 x 1024 area. Not comparable with
anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: the special tokens of Qwen2.5-VL's chat template that the pipeline's prompt template uses
SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
           "<|video_pad|>")
#: Qwen-Image's scheduler settings (dynamic shift by token count)
QWEN_SCHEDULER = dict(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9,
                      base_image_seq_len=256, max_image_seq_len=8192, shift_terminal=0.02,
                      time_shift_type="exponential")
Z_DIM = 4


def tiny_qwen_tokenizer() -> Any:
    """Byte-level BPE (256 bytes, a few merges) plus the chat / vision special tokens, as a Qwen2 fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import Qwen2TokenizerFast

    from diffusion_core.tiny import _bytes_to_unicode

    chars = _bytes_to_unicode()
    merges = [("t", "h"), ("i", "n"), ("e", "r"), ("a", "n"), ("Ġ", "t")]
    vocab = {c: i for i, c in enumerate(chars)}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    wrapped = Qwen2TokenizerFast(tokenizer_object=tok, unk_token=None, bos_token=None, eos_token="<|im_end|>",
                                 pad_token="<|endoftext|>", model_max_length=1024)
    wrapped.add_special_tokens({"additional_special_tokens": [t for t in SPECIAL if t not in ("<|endoftext|>",
                                                                                              "<|im_end|>")]})
    return wrapped


def tiny_qwen_edit_plus_pipeline(seed: int = 0) -> Any:
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPlusPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = tiny_qwen_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                         rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [1, 1, 2]},
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=16, num_heads=2, out_hidden_size=16,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                           fullatt_block_indexes=[0]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = Qwen2_5_VLForConditionalGeneration(config).eval()
        transformer = QwenImageTransformer2DModel(
            patch_size=2, in_channels=4 * Z_DIM, out_channels=Z_DIM, num_layers=2, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=16, guidance_embeds=False, axes_dims_rope=(8, 4, 4),
        ).eval()
        vae = AutoencoderKLQwenImage(
            base_dim=4, z_dim=Z_DIM, dim_mult=[1, 1, 1, 1, 1, 1], num_res_blocks=1,
            temperal_downsample=[False] * 5, latents_mean=[0.0] * Z_DIM, latents_std=[1.0] * Z_DIM,
        ).eval()
    # a small pixel budget: the condition image becomes 4 x 4 patches (the real processor allows ~12.8M pixels)
    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112, patch_size=14, merge_size=2,
                                            temporal_patch_size=2)
    video_processor = Qwen2VLVideoProcessor(min_pixels=56 * 56, max_pixels=112 * 112, patch_size=14, merge_size=2,
                                            temporal_patch_size=2)
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor)
    return QwenImageEditPlusPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**QWEN_SCHEDULER), vae=vae, text_encoder=text_encoder,
        tokenizer=tokenizer, processor=processor, transformer=transformer,
    )


def build_tiny_qwen_edit_plus(folder: str | os.PathLike) -> Path:
    """A ``QwenImageEditPlusPipeline`` diffusers folder (``qwen-image-edit-2509``)."""
    from egobench._compat import ensure_torchvision

    ensure_torchvision()
    folder = Path(folder)
    tiny_qwen_edit_plus_pipeline().save_pretrained(folder)
    return folder
