"""Released LEGO checkpoints (CompVis / Lightning ``.ckpt``) -> LEGO diffusers folders.

The released LDMs (``ego4d_diffusion_with_vllm_feature.ckpt``,
``epickitchen_diffusion_with_vllm_feature.ckpt`` and the two "scaleup" ones)
are Lightning checkpoints of ``ddpm_egogen.LatentDiffusion``: a dict whose
``state_dict`` holds

* ``model.diffusion_model.*``: the UNet (CompVis ``openaimodel.UNetModel``, 8
  input channels);
* ``model_ema.*``: ``LitEma`` buffers of the same UNet, named after the
  parameter with the dots removed (``model_ema.diffusion_modelinput_blocks00weight``),
  plus ``model_ema.decay`` / ``model_ema.num_updates``;
* ``first_stage_model.*``: the VAE; ``cond_stage_model.transformer.*``: CLIP's
  text model (``FrozenCLIPEmbedder``);
* ``projection_img.*``, ``projection_txt.*``, ``self_attn_mix.*``: the VLLM
  conditioning (:class:`~lego.conditioning.LEGOConditioning` uses the same names);
* the diffusion schedule buffers (``betas``, ``alphas_cumprod``, ...).

The released inference (``metrics/inference.py``) samples inside
``model.ema_scope()`` with ``load_ema: true``: the UNet it uses is the EMA one,
so that is the default here (``use_ema=False`` takes the raw weights). The EMA
covers the UNet only; the conditioning modules are taken as stored.

The key renaming is diffusers' own (``convert_ldm_unet_checkpoint``,
``convert_ldm_vae_checkpoint``, ``convert_ldm_clip_checkpoint`` from
``diffusers.loaders.single_file_utils``); configs and the CLIP tokenizer come
from a *template* diffusers folder (artifact ``sd15-config``: SD 1.5's configs,
no weights), with the UNet's input channels taken from the checkpoint. Every
converted tensor is loaded with ``strict=True``, so a checkpoint that does not
fit the template fails with the first missing or unexpected key.

The ``.ckpt`` is read with ``torch.load(weights_only=True)`` when it holds only
plain data, otherwise through :func:`egobench.checkpoint.load_checkpoint`
(restricted unpickler: Lightning's hyper-parameter and callback objects become
inert stand-ins; nothing in the file is executed).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egobench.errors import ConfigError, DataError, UserError
from egobench.io import atomic_write_json

from .tiny import SCHEDULER_CONFIG, VARIANT_FLAGS

UNET_PREFIX = "model.diffusion_model."
EMA_PREFIX = "model_ema."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
CONDITIONING_PREFIXES = ("projection_img.", "projection_txt.", "self_attn_mix.")
SCHEDULE_BUFFERS = (
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
    "logvar", "scale_factor", "cond_ids",
)


@dataclass
class ConversionReport:
    """What :func:`convert_lego_checkpoint` read and wrote."""

    out: Path
    ema: bool
    variant: str
    global_step: int | None
    epoch: int | None
    ignored: list[str] = field(default_factory=list)  # keys not converted (other than the known families)


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------
def read_ckpt(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, metadata)`` of a CompVis / Lightning checkpoint (``global_step``, ``epoch``, ...)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError, ValueError):
        from egobench.checkpoint import load_checkpoint

        obj = load_checkpoint(path)  # restricted unpickler (one-line DataError on anything unsafe)
    if not isinstance(obj, Mapping):
        raise DataError(f"{path}: expected a checkpoint dict, got {type(obj).__name__}")
    sd = obj.get("state_dict", obj)
    if not isinstance(sd, Mapping) or not any(str(k).startswith(UNET_PREFIX) for k in sd):
        raise DataError(f"{path}: no '{UNET_PREFIX}*' weights: not a CompVis latent diffusion checkpoint")
    state = {str(k): v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    meta = {k: obj[k] for k in ("global_step", "epoch", "pytorch-lightning_version") if k in obj}
    return state, meta


def ema_unet_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with every ``model.diffusion_model.X`` replaced by its ``LitEma`` shadow
    ``model_ema.diffusion_model<X without dots>`` (the weights the released inference samples with)."""
    out = dict(state)
    missing = []
    for key in state:
        if key.startswith(UNET_PREFIX):
            flat = EMA_PREFIX + "".join(key.split(".")[1:])  # LitEma: name.replace('.', '')
            if flat in state:
                out[key] = state[flat]
            else:
                missing.append(key)
    if missing:
        n_ema = sum(k.startswith(EMA_PREFIX) for k in state)
        what = "has no EMA weights" if n_ema <= 2 else f"lacks the EMA copy of {len(missing)} UNet weights"
        raise DataError(f"the checkpoint {what} (first: {missing[0]}); convert the raw weights with --no-ema")
    return out


def check_schedule(state: Mapping[str, torch.Tensor]) -> None:
    """The checkpoint's ``alphas_cumprod`` must be the LDM schedule the saved scheduler describes."""
    if "alphas_cumprod" not in state:
        return
    c = SCHEDULER_CONFIG
    betas = np.linspace(c["beta_start"] ** 0.5, c["beta_end"] ** 0.5, c["num_train_timesteps"], dtype=np.float64) ** 2
    want = np.cumprod(1 - betas)
    got = state["alphas_cumprod"].double().numpy()
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-5, atol=1e-7):
        raise DataError("the checkpoint's noise schedule (alphas_cumprod) is not the LDM's linear 0.00085..0.012 "
                        "over 1000 steps")


# ---------------------------------------------------------------------------
# converting
# ---------------------------------------------------------------------------
def _read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: template config not found") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


def _load_strict(module: torch.nn.Module, weights: Mapping[str, torch.Tensor], what: str) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        first = f"missing '{missing[0]}'" if missing else f"unexpected '{unexpected[0]}'"
        raise DataError(f"{what}: the checkpoint does not fit the template config ({len(missing)} missing, "
                        f"{len(unexpected)} unexpected keys; {first})")
    bad = [k for k in expected if tuple(expected[k].shape) != tuple(weights[k].shape)]
    if bad:
        raise DataError(f"{what}: '{bad[0]}' is {tuple(weights[bad[0]].shape)} in the checkpoint, "
                        f"{tuple(expected[bad[0]].shape)} in the template config")
    module.load_state_dict({k: v.to(expected[k].dtype).contiguous() for k, v in weights.items()}, strict=True)


def convert_unet(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> Any:
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    cfg = {k: v for k, v in config.items() if not k.startswith("_")}
    conv_in = state.get(UNET_PREFIX + "input_blocks.0.0.weight")
    if conv_in is None:
        raise DataError(f"no {UNET_PREFIX}input_blocks.0.0.weight in the checkpoint")
    cfg["in_channels"] = int(conv_in.shape[1])
    # only the UNet keys: the EMA has been substituted already (or is not wanted)
    weights = convert_ldm_unet_checkpoint({k: v for k, v in state.items() if k.startswith(UNET_PREFIX)}, cfg)
    unet = UNet2DConditionModel.from_config(cfg)
    _load_strict(unet, weights, "UNet")
    return unet.eval()


def convert_vae(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> Any:
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    cfg = {k: v for k, v in config.items() if not k.startswith("_")}
    vae_state = {k: v for k, v in state.items() if k.startswith(VAE_PREFIX)}
    if not vae_state:
        raise DataError(f"no {VAE_PREFIX}* (VAE) weights in the checkpoint")
    vae = AutoencoderKL.from_config(cfg)
    _load_strict(vae, convert_ldm_vae_checkpoint(vae_state, cfg), "VAE")
    return vae.eval()


def convert_text_encoder(state: Mapping[str, torch.Tensor], config_dir: Path) -> Any:
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint
    from transformers import CLIPTextConfig, CLIPTextModel

    clip_state = {k: v for k, v in state.items() if k.startswith(CLIP_PREFIX)}
    if not clip_state:
        raise DataError(f"no {CLIP_PREFIX}* (CLIP text) weights in the checkpoint")
    weights = convert_ldm_clip_checkpoint(clip_state)
    model = CLIPTextModel(CLIPTextConfig.from_pretrained(config_dir))
    wrapped = hasattr(model, "text_model")  # transformers < 5.6 keeps the text_model wrapper
    fixed = {}
    for k, v in weights.items():
        if k.endswith("position_ids"):
            continue  # a buffer old checkpoints saved; recomputed
        k = k if k.startswith("text_model.") else "text_model." + k
        fixed[k if wrapped else k.removeprefix("text_model.")] = v
    _load_strict(model, fixed, "CLIP text encoder")
    return model.eval()


def convert_conditioning(state: Mapping[str, torch.Tensor], variant: str,
                         template_config: Mapping[str, Any] | None = None, **overrides: Any) -> Any:
    """:class:`~lego.conditioning.LEGOConditioning` from ``projection_*`` / ``self_attn_mix`` keys
    (``None`` for the descriptions-only variant). Sizes come from the weights; the head count,
    dropout and token counts (not visible in the weights) from ``template_config`` / ``overrides``
    / the released defaults (8 heads, dropout 0.1, 256 image and 77 text tokens)."""
    from .conditioning import LEGOConditioning

    use_image, use_text = VARIANT_FLAGS[variant]
    if not (use_image or use_text):
        return None
    keep = (("projection_img.",) if use_image else ()) + (("projection_txt.", "self_attn_mix.") if use_text else ())
    weights = {k: v for k, v in state.items() if k.startswith(keep)}
    proj = "projection_img.weight" if use_image else "projection_txt.weight"
    if proj not in weights:
        raise DataError(f"variant '{variant}' needs '{proj}', which the checkpoint lacks")
    context_dim, hidden = weights[proj].shape
    cfg: dict[str, Any] = {"heads": 8, "dropout": 0.1, "image_tokens": 256, "text_tokens": 77, "layers": 2,
                           "ffn": 2048}
    for k in cfg:
        if template_config and k in template_config:
            cfg[k] = template_config[k]
    if use_text:
        cfg["layers"] = len({k.split(".")[2] for k in weights if k.startswith("self_attn_mix.layers.")})
        cfg["ffn"] = int(weights["self_attn_mix.layers.0.linear1.weight"].shape[0])
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    cond = LEGOConditioning(vllm_hidden=int(hidden), context_dim=int(context_dim), use_image=use_image,
                            use_text=use_text, **cfg)
    _load_strict(cond, weights, "VLLM conditioning")
    return cond.eval()


def convert_lego_state_dict(
    state: Mapping[str, torch.Tensor],
    template: str | os.PathLike,
    variant: str = "full",
    use_ema: bool = True,
    **conditioning_overrides: Any,
) -> Any:
    """A :class:`~lego.pipeline.LEGOPipeline` from a CompVis LEGO state dict and a template folder."""
    from diffusers import EulerAncestralDiscreteScheduler
    from transformers import CLIPTokenizer

    from .pipeline import LEGOPipeline

    if variant not in VARIANT_FLAGS:
        raise ConfigError(f"unknown LEGO variant {variant!r}; use one of {', '.join(VARIANT_FLAGS)}")
    template = Path(template).expanduser()
    check_schedule(state)
    unet_state = ema_unet_state(state) if use_ema else state
    cond_cfg_path = template / "conditioning" / "config.json"
    cond_cfg = _read_config(cond_cfg_path) if cond_cfg_path.is_file() else None
    unet_cfg = _read_config(template / "unet" / "config.json")
    if unet_cfg.get("cross_attention_dim") is None:
        raise DataError(f"{template / 'unet' / 'config.json'}: not a UNet2DConditionModel config")
    return LEGOPipeline(
        vae=convert_vae(state, _read_config(template / "vae" / "config.json")),
        text_encoder=convert_text_encoder(state, template / "text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(template / "tokenizer", local_files_only=True),
        unet=convert_unet(unet_state, unet_cfg),
        scheduler=EulerAncestralDiscreteScheduler(**SCHEDULER_CONFIG),
        conditioning=convert_conditioning(state, variant, cond_cfg, **conditioning_overrides),
    )


def _ignored(state: Mapping[str, torch.Tensor]) -> list[str]:
    known = (UNET_PREFIX, EMA_PREFIX, VAE_PREFIX, CLIP_PREFIX) + CONDITIONING_PREFIXES
    return sorted(k for k in state if not k.startswith(known) and k not in SCHEDULE_BUFFERS)


def convert_lego_checkpoint(
    ckpt: str | os.PathLike,
    out: str | os.PathLike,
    template: str | os.PathLike,
    variant: str = "full",
    use_ema: bool = True,
    overwrite: bool = False,
    **conditioning_overrides: Any,
) -> ConversionReport:
    """Convert a released LEGO ``.ckpt`` into a LEGO diffusers folder at ``out``.

    Written to a temporary folder beside ``out`` and renamed into place, so
    ``out`` is either absent or complete. ``conversion.json`` records the source.
    """
    out = Path(out).expanduser()
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite to replace it")
    state, meta = read_ckpt(ckpt)
    pipe = convert_lego_state_dict(state, template, variant, use_ema, **conditioning_overrides)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-egobench-{out.name}-", dir=out.parent))
    report = ConversionReport(out=out, ema=use_ema, variant=variant, global_step=meta.get("global_step"),
                              epoch=meta.get("epoch"), ignored=_ignored(state))
    try:
        pipe.save_pretrained(tmp)
        ck = Path(ckpt).expanduser()
        atomic_write_json(tmp / "conversion.json", {
            "source": str(ck.resolve()), "size": ck.stat().st_size, "ema": use_ema, "variant": variant,
            "global_step": report.global_step, "epoch": report.epoch, "template": str(Path(template).resolve()),
            "ignored_keys": report.ignored,
        })
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


__all__ = [
    "ConversionReport",
    "check_schedule",
    "convert_conditioning",
    "convert_lego_checkpoint",
    "convert_lego_state_dict",
    "convert_text_encoder",
    "convert_unet",
    "convert_vae",
    "ema_unet_state",
    "read_ckpt",
]
