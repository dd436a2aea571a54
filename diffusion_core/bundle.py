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
        """The pipeline to save or sample: ``make_pipeline``, else InstructPix2Pix or text-to-image by mode."""
        factory = self.make_pipeline or (ip2p_pipeline if self.mode == "ip2p" else t2i_pipeline)
        return factory(components)



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
