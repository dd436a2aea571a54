"""The epsilon-prediction loss of one batch, with classifier-free-guidance dropout (the InstructPix2Pix recipe)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from egobench.errors import ConfigError

from .bundle import ExtraConditionFn, ModelBundle, encode_text


@dataclass(frozen=True)
class CFGDropout:
    """Classifier-free-guidance dropout bands over one uniform draw ``r`` per sample.

    ``r < text_only``: text dropped; ``text_only <= r < text_only + both``: text
    and image dropped; the next ``image_only``: image dropped. The default is
    InstructPix2Pix's / LEGO's (``uncond = 0.05``: ``prompt_mask = r < 2u``,
    ``input_mask = 0 where u <= r < 3u``). In text-to-image mode only the text
    bands apply (text dropped with probability ``text_only + both``).
    """

    text_only: float = 0.05
    both: float = 0.05
    image_only: float = 0.05

    def __post_init__(self) -> None:
        for name in ("text_only", "both", "image_only"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ConfigError(f"CFGDropout.{name} must be in [0, 1], got {v!r}")
        if self.text_only + self.both + self.image_only > 1.0 + 1e-12:
            raise ConfigError("CFGDropout bands add up to more than 1")

    def masks(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(drop_text, drop_image)`` boolean masks for uniform draws ``r``."""
        a, b, c = self.text_only, self.both, self.image_only
        drop_text = r < a + b
        drop_image = (r >= a) & (r < a + b + c)
        return drop_text, drop_image



def diffusion_loss(
    bundle: ModelBundle,
    batch: dict[str, Any],
    *,
    unet: Any | None = None,
    extra: dict[str, nn.Module] | None = None,
    extra_condition_fn: ExtraConditionFn | None = None,
    dropout: CFGDropout | None = CFGDropout(),
    null_embedding: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    weight_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The epsilon-prediction loss of one batch (the recipe: :mod:`diffusion_core.training`'s docstring).

    ``unet`` / ``extra`` default to the bundle's (pass accelerate-prepared
    ones in training). ``dropout=None`` disables CFG dropout; ``generator``
    makes every draw (latent sample, dropout, timesteps, noise) reproducible
    without touching the global RNG.
    """
    unet = unet if unet is not None else bundle.unet
    extra = extra if extra is not None else bundle.extra
    device = torch.device(device) if device is not None else next(unet.parameters()).device
    vae, mode = bundle.vae, bundle.mode
    if bundle.sdxl and extra_condition_fn is not None:
        raise ConfigError("extra condition tokens are not supported with an SDXL UNet")
    vae_dtype = next(vae.parameters()).dtype  # SDXL's VAE stays in fp32 under mixed precision (force_upcast)
    target = batch["target"].to(device=device, dtype=vae_dtype)
    bsz = target.shape[0]
    with torch.no_grad():
        posterior = vae.encode(target).latent_dist
        latents = (posterior.sample(generator=generator) * vae.config.scaling_factor).to(weight_dtype)
        text = encode_text(bundle, batch["text"], device)
        clip = text.context
        if dropout is not None:
            r = torch.rand(bsz, generator=generator, device=generator.device if generator else None).to(device)
            drop_text, drop_image = dropout.masks(r)
            if mode == "t2i":
                drop_image = torch.zeros_like(drop_image)
            if drop_text.any():
                null = null_embedding
                if null is None:
                    null = encode_text(bundle, [""], device).context
                clip = torch.where(drop_text.view(-1, 1, 1), null.to(clip.dtype), clip)
        else:
            drop_text = drop_image = torch.zeros(bsz, dtype=torch.bool, device=device)
        image_latents = None
        if mode == "ip2p":
            image_latents = vae.encode(batch["input"].to(device=device, dtype=vae_dtype)).latent_dist.mode()
            image_latents = image_latents * (~drop_image).view(-1, 1, 1, 1).to(image_latents.dtype)
    gen_device = generator.device if generator is not None else None
    t = torch.randint(0, bundle.noise.num_train_timesteps, (bsz,), generator=generator, device=gen_device).to(device)
    noise = torch.randn(latents.shape, generator=generator, device=gen_device, dtype=latents.dtype).to(device)
    noisy = bundle.noise.add_noise(latents, noise, t)
    context = clip
    if extra_condition_fn is not None:
        tokens = extra_condition_fn(extra, batch, clip)
        if tokens.ndim != 3 or tokens.shape[0] != bsz or tokens.shape[2] != clip.shape[2]:
            raise ConfigError(f"extra_condition_fn must return (batch, tokens, {clip.shape[2]}), "
                              f"got {tuple(tokens.shape)}")
        # the released get_input: (1 - prompt_mask) * projected features
        tokens = tokens * (~drop_text).view(-1, 1, 1).to(tokens.dtype)
        context = torch.cat([clip, tokens.to(clip.dtype)], dim=1)
    model_in = noisy if image_latents is None else torch.cat([noisy, image_latents.to(noisy.dtype)], dim=1)
    # SDXL: the pooled text and size / crop ids (not dropped with the text, as diffusers' SDXL IP2P script)
    added = text.added_cond_kwargs(int(batch["target"].shape[-1]))
    kwargs = {"added_cond_kwargs": added} if added is not None else {}
    pred = unet(model_in, t, encoder_hidden_states=context, **kwargs).sample
    return F.mse_loss(pred.float(), noise.float(), reduction="mean")
