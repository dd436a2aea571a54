"""The models of one finetuning run (:class:`ModelBundle`), loaded from a diffusers Stable Diffusion folder."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from egobench.errors import ConfigError, DataError

from .noise import NoiseSchedule
from .unet import widen_conv_in

PipelineFactory = Callable[[dict[str, Any]], Any]
#: (extra modules as prepared for training, the batch, CLIP text embeddings (B, 77, D)) -> extra tokens (B, N, D)
ExtraConditionFn = Callable[[dict[str, nn.Module], dict[str, Any], torch.Tensor], torch.Tensor]


@dataclass
class ModelBundle:
    """The models a finetuning run works on.

    ``extra`` holds additional modules saved with the pipeline and (unless
    ``train_extra`` is False) optimized with the UNet, e.g.
    ``{"conditioning": LEGOConditioning}``. ``make_pipeline(components)`` builds
    the pipeline to save from ``vae``, ``text_encoder``, ``tokenizer``, ``unet``
    and the ``extra`` modules (default: InstructPix2Pix or text-to-image
    pipeline by mode).
    """

    vae: Any
    text_encoder: Any
    tokenizer: Any
    unet: Any
    noise: NoiseSchedule = field(default_factory=NoiseSchedule)
    extra: dict[str, nn.Module] = field(default_factory=dict)
    train_extra: bool = True
    make_pipeline: PipelineFactory | None = None
    tiny: bool = False  # built from the tiny zoo: the output is marked as such
    source: str = ""  # where the weights came from (recorded in training.json)
    #: SDXL: the second text encoder (with projection: its pooled output feeds the added time embedding)
    text_encoder_2: Any = None
    tokenizer_2: Any = None

    @property
    def sdxl(self) -> bool:
        """An SDXL UNet: two text encoders, added text / time conditioning (``addition_embed_type`` text_time)."""
        return self.text_encoder_2 is not None

    @property
    def mode(self) -> str:
        latent = self.vae.config.latent_channels
        cin = self.unet.config.in_channels
        if cin == 2 * latent:
            return "ip2p"
        if cin == latent:
            return "t2i"
        raise ConfigError(f"UNet has {cin} input channels; expected {latent} (text-to-image) or {2 * latent} "
                          "(InstructPix2Pix: noise + image latent)")

    def build_pipeline(self, components: dict[str, Any]) -> Any:
        """The pipeline to save or sample: ``make_pipeline``, else (SDXL) InstructPix2Pix or text-to-image."""
        if self.make_pipeline is not None:
            return self.make_pipeline(components)
        if self.sdxl:
            if self.mode != "ip2p":
                raise ConfigError("an SDXL bundle is finetuned as InstructPix2Pix only (8-channel UNet)")
            return sdxl_ip2p_pipeline({"text_encoder_2": self.text_encoder_2, "tokenizer_2": self.tokenizer_2,
                                       **components})
        return (ip2p_pipeline if self.mode == "ip2p" else t2i_pipeline)(components)

    def text_encoders(self) -> list[Any]:
        """The frozen text encoders (one; two for SDXL)."""
        return [self.text_encoder] + ([self.text_encoder_2] if self.sdxl else [])



def load_sd_bundle(folder: str | os.PathLike, in_channels: int | None = None, **bundle_kwargs: Any) -> ModelBundle:
    """A :class:`ModelBundle` from a diffusers Stable Diffusion folder (SD 1.5 layout).

    Loads ``vae``, ``text_encoder``, ``tokenizer``, ``unet`` and the noise
    schedule from ``scheduler/scheduler_config.json``; ``in_channels=8`` widens a
    text-to-image UNet for InstructPix2Pix training (zero-initialized extra
    channels). Never touches the network.
    """
    from egobench._compat import ensure_torchvision

    ensure_torchvision()
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from egobench.weights import TINY_MARKER

    folder = Path(folder).expanduser()
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        if not (folder / sub).is_dir():
            raise DataError(f"{folder}: not a diffusers Stable Diffusion folder (no {sub}/)")
    sched_path = folder / "scheduler" / "scheduler_config.json"
    try:
        sched = json.loads(sched_path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{sched_path}: cannot read the scheduler config ({e})") from None
    kw = dict(local_files_only=True)
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", **kw)
    if in_channels is not None:
        widen_conv_in(unet, in_channels)
    bundle_kwargs.setdefault("tiny", (folder / TINY_MARKER).is_file())
    bundle_kwargs.setdefault("source", str(folder))
    if unet.config.addition_embed_type == "text_time":  # SDXL
        from transformers import CLIPTextModelWithProjection

        for sub in ("text_encoder_2", "tokenizer_2"):
            if not (folder / sub).is_dir():
                raise DataError(f"{folder}: an SDXL UNet but no {sub}/ (not a diffusers SDXL folder)")
        bundle_kwargs.setdefault("text_encoder_2", CLIPTextModelWithProjection.from_pretrained(
            folder, subfolder="text_encoder_2", **kw))
        bundle_kwargs.setdefault("tokenizer_2", CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer_2", **kw))
    return ModelBundle(
        vae=AutoencoderKL.from_pretrained(folder, subfolder="vae", **kw),
        text_encoder=CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", **kw),
        tokenizer=CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", **kw),
        unet=unet,
        noise=NoiseSchedule.from_config(sched),
        **bundle_kwargs,
    )



def ip2p_pipeline(components: dict[str, Any]) -> Any:
    """diffusers ``StableDiffusionInstructPix2PixPipeline`` (no safety checker) from trained components."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    return StableDiffusionInstructPix2PixPipeline(
        vae=components["vae"], text_encoder=components["text_encoder"], tokenizer=components["tokenizer"],
        unet=components["unet"], scheduler=components["scheduler"], safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )


def sdxl_ip2p_pipeline(components: dict[str, Any]) -> Any:
    """diffusers ``StableDiffusionXLInstructPix2PixPipeline`` (no watermark: the benchmark scores pixels)."""
    from diffusers import StableDiffusionXLInstructPix2PixPipeline

    return StableDiffusionXLInstructPix2PixPipeline(
        vae=components["vae"], text_encoder=components["text_encoder"], text_encoder_2=components["text_encoder_2"],
        tokenizer=components["tokenizer"], tokenizer_2=components["tokenizer_2"], unet=components["unet"],
        scheduler=components["scheduler"], add_watermarker=False,
    )


def t2i_pipeline(components: dict[str, Any]) -> Any:
    """diffusers ``StableDiffusionPipeline`` (no safety checker) from trained components."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=components["vae"], text_encoder=components["text_encoder"], tokenizer=components["tokenizer"],
        unet=components["unet"], scheduler=components["scheduler"], safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )



def encode_prompts(tokenizer: Any, text_encoder: Any, prompts: Sequence[str], device: torch.device) -> torch.Tensor:
    """CLIP last hidden state, padded/truncated to the tokenizer's 77 tokens (``FrozenCLIPEmbedder``)."""
    ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids
    return text_encoder(ids.to(device))[0]


@dataclass
class TextCondition:
    """What the UNet is conditioned on by the text: cross-attention tokens and, for SDXL, the pooled
    text embedding of the second encoder (its added time embedding also takes the six size / crop numbers)."""

    context: torch.Tensor  # (B, 77, D)
    pooled: torch.Tensor | None = None  # SDXL: (B, projection dim)

    def added_cond_kwargs(self, size: int) -> dict[str, torch.Tensor] | None:
        """SDXL's ``added_cond_kwargs`` for square ``size`` images: original size, crop (0, 0), target size
        (as diffusers' SDXL InstructPix2Pix pipeline and training script pass them); None for SD 1.5."""
        if self.pooled is None:
            return None
        ids = torch.tensor([[size, size, 0, 0, size, size]], dtype=self.pooled.dtype, device=self.pooled.device)
        return {"text_embeds": self.pooled, "time_ids": ids.repeat(self.pooled.shape[0], 1)}


def encode_text(bundle: ModelBundle, prompts: Sequence[str], device: torch.device) -> TextCondition:
    """The text conditioning of ``prompts``: SD 1.5's CLIP last hidden state; SDXL's penultimate hidden
    states of both encoders side by side, and the second encoder's projected pooled output (the
    conditioning diffusers' SDXL pipelines compute)."""
    if not bundle.sdxl:
        return TextCondition(encode_prompts(bundle.tokenizer, bundle.text_encoder, prompts, device))
    states, pooled = [], None
    for tokenizer, encoder in ((bundle.tokenizer, bundle.text_encoder), (bundle.tokenizer_2, bundle.text_encoder_2)):
        ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors="pt").input_ids
        out = encoder(ids.to(device), output_hidden_states=True)
        states.append(out.hidden_states[-2])
        pooled = out[0]  # the last encoder's: CLIPTextModelWithProjection's text_embeds
    return TextCondition(torch.cat(states, dim=-1), pooled)
