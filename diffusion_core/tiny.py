"""Tiny Stable Diffusion components for the tiny zoo: SD 1.5's layout shrunk, deterministic random weights.

Same formats as the real thing, small enough to run on a CPU in well under a second
per step; the VAE downsamples by 8 like SD's, so 256 x 256 frames give 32 x 32
latents. LEGO's and the baselines' tiny models are built on these. Results made with
them are not comparable with anything.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

#: SD 1.5's UNet layout, shrunk (the input channel count is set per model)
TINY_UNET = dict(
    sample_size=32, out_channels=4, layers_per_block=1,
    block_out_channels=(16, 32), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
    attention_head_dim=8, norm_num_groups=8, flip_sin_to_cos=True, freq_shift=0,
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


def write_slow_tokenizer_files(folder: str | os.PathLike) -> None:
    """``vocab.json`` / ``merges.txt`` / ``special_tokens_map.json`` in ``folder/tokenizer``, as Hub SD
    folders ship them (transformers 5 writes ``tokenizer.json`` instead)."""
    from egobench.io import atomic_write_json

    write_tiny_tokenizer(Path(folder) / "tokenizer")
    atomic_write_json(Path(folder) / "tokenizer" / "special_tokens_map.json", {
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>"})


def tiny_tokenizer() -> Any:
    """The byte-level CLIPTokenizer of :func:`write_tiny_tokenizer` (77 tokens, as CLIP's)."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_tiny_tokenizer(tmp)
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=77)


def draw_tiny_models(tokenizer: Any) -> dict[str, Any]:
    """An 8-channel UNet, the VAE and the CLIP text encoder, drawn in that order from the global RNG
    (callers fork and seed it, so what they draw next continues the same stream)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    # 8 input channels: noise + image latent (InstructPix2Pix / LEGO)
    unet = UNet2DConditionModel(in_channels=8, **TINY_UNET)
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
    return dict(unet=unet, vae=vae, text_encoder=text_encoder)


def tiny_components(seed: int = 0) -> dict[str, Any]:
    """Tokenizer, 8-channel UNet, VAE and text encoder in eval mode (deterministic, global RNG untouched)."""
    import torch

    tokenizer = tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        models = draw_tiny_models(tokenizer)
    for m in models.values():
        m.eval()
    return dict(tokenizer=tokenizer, **models)


def build_tiny_sd15(folder: Path) -> None:
    """A tiny SD 1.5 folder: the tiny components with a 4-channel UNet, PNDM scheduler as SD's."""
    import torch
    from diffusers import PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    comps = tiny_components(seed=15)
    cfg = {k: v for k, v in dict(comps["unet"].config).items() if not k.startswith("_")}
    cfg["in_channels"] = 4
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(15)
        unet = UNet2DConditionModel(**cfg)
    unet.load_state_dict({k: v for k, v in comps["unet"].state_dict().items() if not k.startswith("conv_in.weight")},
                         strict=False)
    with torch.no_grad():
        unet.conv_in.weight.copy_(comps["unet"].conv_in.weight[:, :4])
    scheduler = PNDMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=comps["vae"], text_encoder=comps["text_encoder"], tokenizer=comps["tokenizer"], unet=unet.eval(),
        scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    write_slow_tokenizer_files(folder)  # the HF repo's tokenizer files (transformers 5 writes tokenizer.json)
