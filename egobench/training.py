"""The shared diffusion finetuning loop (InstructPix2Pix recipe) for LEGO and the baselines.

One loop, three uses:

* **LEGO** (``lego.train``): an 8-channel UNet (noisy target latent + input
  frame latent), CLIP text context plus extra cross-attention tokens from the
  VLLM features (:class:`~lego.conditioning.LEGOConditioning`, an ``extra``
  module passed in the bundle together with an ``extra_condition_fn``);
* **InstructPix2Pix** (the IP2P baseline): the same without extra tokens;
* **text-to-image LDM finetuning** (the SDEdit / ProxEdit baselines): a
  4-channel UNet, no image latent; the loop picks this mode by itself when
  ``unet.config.in_channels == vae latent channels``.

What one training step does (the released ``ddpm_egogen.LatentDiffusion`` and
diffusers' ``examples/instruct_pix2pix/train_instruct_pix2pix.py`` agree on
all of it):

1. target latents = VAE posterior *sample* x 0.18215 (``get_first_stage_encoding``);
2. ``r ~ U(0, 1)`` per sample; CFG dropout bands (:class:`CFGDropout`):
   ``r < 0.05`` text dropped, ``0.05 <= r < 0.10`` text and image dropped,
   ``0.10 <= r < 0.15`` image dropped. Dropped text = CLIP("") embedding and
   zeroed extra (VLLM) tokens; dropped image = zeroed image latent;
3. ``t ~ U{0..999}``, ``eps ~ N(0, I)``, ``x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps``
   with the LDM's schedule (betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2,
   cumulative product in float64 as ``register_schedule``);
4. input-image latents = VAE posterior *mode*, unscaled, concatenated on channels;
5. loss = mean squared error between the UNet output and ``eps``.

AdamW (betas 0.9/0.999, eps 1e-8, weight decay 0.01: torch's and diffusers'
defaults), lr 1e-4, constant schedule. EMA after ``LitEma`` (decay
``min(0.9999, (1 + n) / (10 + n))``). Built on accelerate: gradient
accumulation, mixed precision, DDP, ``save_state``/``load_state`` checkpoints
in ``output_dir/checkpoints/step-N`` (see :func:`_save_checkpoint` for why a
``kill -9`` at any point of a save never leaves a checkpoint that resume would
load half-written), and a resumed run continues with exactly the losses an uninterrupted
run would have (global RNG, optimizer, EMA and data order are all restored or
derived from the step).

The data order is a pure function of ``(seed, step)``: sample positions run
through one seeded permutation per epoch, and the random crop / flip of each
position comes from its own seeded generator, so neither the number of data
loader workers nor an interruption changes what is trained on.

The final model is the EMA weights (as the released inference's
``ema_scope``), saved with the bundle's ``make_pipeline`` through
``save_pretrained`` into a temporary folder whose entries are then moved into
``output_dir`` (``model_index.json`` last, so a folder that has one is complete).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import Sample, Split
from .errors import ConfigError, DataError, UserError
from .io import atomic_write_json, read_json

__all__ = [
    "CFGDropout",
    "EMA",
    "ModelBundle",
    "NoiseSchedule",
    "PairDataset",
    "TrainConfig",
    "TrainResult",
    "collate",
    "diffusion_loss",
    "encode_prompts",
    "inference_scheduler",
    "load_sd_bundle",
    "ip2p_pipeline",
    "t2i_pipeline",
    "train_loop",
    "widen_conv_in",
]

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
TRAINING_RECORD = "training.json"
MixedPrecision = Literal["no", "fp16", "bf16"]


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------
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


@dataclass
class TrainConfig:
    """Settings of :func:`train_loop` (defaults: diffusers' InstructPix2Pix script / LEGO's config)."""

    output_dir: str | os.PathLike
    max_steps: int = 1000  # optimizer steps
    batch_size: int = 4  # micro-batch per process
    grad_accum: int = 1
    learning_rate: float = 1e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_decay: float = 1e-2
    max_grad_norm: float | None = 1.0  # diffusers' default; the released LDM does not clip (None)
    lr_scheduler: str = "constant"  # any diffusers.optimization.get_scheduler name
    lr_warmup_steps: int = 0
    use_ema: bool = True
    ema_decay: float = 0.9999
    #: "step": EMA update per optimizer step (diffusers); "micro-batch": per micro-batch, as
    #: Lightning's on_train_batch_end does in the released code under gradient accumulation
    ema_update: Literal["step", "micro-batch"] = "step"
    mixed_precision: MixedPrecision = "no"
    seed: int = 23  # the released main.py's default
    resolution: int = 256  # crop side (the UNet sees resolution / 8 latents)
    resize: int | None = None  # square LANCZOS resize before the crop; default = resolution
    random_crop: bool = True  # else center crop
    random_flip: float = 0.5  # horizontal flip probability (same flip for input and target)
    cfg_dropout: CFGDropout = field(default_factory=CFGDropout)
    checkpoint_every: int = 500  # optimizer steps; 0 = only the final model
    checkpoints_keep: int | None = 2  # newest checkpoints kept (None: all)
    resume: bool = False  # continue from the newest checkpoint in output_dir/checkpoints
    num_workers: int = 0
    gradient_checkpointing: bool = False
    log_every: int = 10

    def __post_init__(self) -> None:
        def positive(name: str, allow_zero: bool = False) -> None:
            v = getattr(self, name)
            ok = isinstance(v, int) and not isinstance(v, bool) and (v >= 0 if allow_zero else v >= 1)
            if not ok:
                raise ConfigError(f"TrainConfig.{name} must be a {'non-negative' if allow_zero else 'positive'} "
                                  f"integer, got {v!r}")

        for name in ("max_steps", "batch_size", "grad_accum", "resolution", "log_every"):
            positive(name)
        for name in ("lr_warmup_steps", "checkpoint_every", "num_workers"):
            positive(name, allow_zero=True)
        if self.resize is not None:
            positive("resize")
            if self.resize < self.resolution:
                raise ConfigError(f"TrainConfig.resize ({self.resize}) is smaller than the crop ({self.resolution})")
        if self.resolution % 8:
            raise ConfigError(f"TrainConfig.resolution must be a multiple of 8, got {self.resolution}")
        if not self.learning_rate > 0:
            raise ConfigError(f"TrainConfig.learning_rate must be positive, got {self.learning_rate!r}")
        if not 0.0 <= self.random_flip <= 1.0:
            raise ConfigError(f"TrainConfig.random_flip must be in [0, 1], got {self.random_flip!r}")
        if not 0.0 <= self.ema_decay <= 1.0:
            raise ConfigError(f"TrainConfig.ema_decay must be in [0, 1], got {self.ema_decay!r}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ConfigError(f"TrainConfig.mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
        if self.ema_update not in ("step", "micro-batch"):
            raise ConfigError(f"TrainConfig.ema_update must be step or micro-batch, got {self.ema_update!r}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ConfigError(f"TrainConfig.max_grad_norm must be positive or None, got {self.max_grad_norm!r}")
        if self.checkpoints_keep is not None:
            positive("checkpoints_keep")
        if isinstance(self.cfg_dropout, Mapping):
            self.cfg_dropout = CFGDropout(**self.cfg_dropout)

    @property
    def crop_source(self) -> int:
        return self.resize or self.resolution

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["output_dir"] = str(self.output_dir)
        return d

    def resume_key(self) -> dict[str, Any]:
        """Settings that must not change between a run and its resumption."""
        keys = ("batch_size", "grad_accum", "seed", "resolution", "resize", "random_crop", "random_flip",
                "use_ema", "ema_update", "mixed_precision")
        d = {k: getattr(self, k) for k in keys}
        d["cfg_dropout"] = dataclasses.asdict(self.cfg_dropout)
        return d


@dataclass
class TrainResult:
    """What :func:`train_loop` did."""

    output_dir: Path  # the saved pipeline folder (diffusers layout)
    mode: str  # "ip2p" | "t2i"
    steps: int  # optimizer steps done in total (including those before a resume)
    losses: list[float]  # mean training loss of every optimizer step 1..steps
    resumed_from: int | None  # the checkpoint step this call started from
    checkpoints: list[Path]  # checkpoint folders present at the end
    seconds: float  # wall time of this call
    trainable_parameters: int


# ---------------------------------------------------------------------------
# noise schedule
# ---------------------------------------------------------------------------
class NoiseSchedule:
    """The LDM's forward process ``q(x_t | x_0)`` from a diffusers scheduler config.

    ``beta_schedule="scaled_linear"`` is the LDM's ``linear`` schedule
    (linspace of square roots, squared) and ``"linear"`` its ``sqrt_linear``;
    the tables are computed in float64 and stored as float32, as
    ``DDPM.register_schedule`` does.
    """

    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012,
                 beta_schedule: str = "scaled_linear", trained_betas: Sequence[float] | None = None,
                 prediction_type: str = "epsilon"):
        if prediction_type != "epsilon":
            raise ConfigError(f"only epsilon-prediction models can be trained here, got {prediction_type!r}")
        n = int(num_train_timesteps)
        if trained_betas is not None:
            betas = np.asarray(trained_betas, dtype=np.float64)
        elif beta_schedule == "scaled_linear":
            betas = (torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float64) ** 2).numpy()
        elif beta_schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, n, dtype=torch.float64).numpy()
        else:
            raise ConfigError(f"unsupported beta_schedule {beta_schedule!r} (scaled_linear or linear)")
        alphas_cumprod = np.cumprod(1.0 - betas, axis=0)
        self.config = {"num_train_timesteps": n, "beta_start": beta_start, "beta_end": beta_end,
                       "beta_schedule": beta_schedule,
                       "trained_betas": None if trained_betas is None else [float(b) for b in betas]}
        self.num_train_timesteps = len(betas)
        self.alphas_cumprod = torch.tensor(alphas_cumprod, dtype=torch.float32)
        self.sqrt_alphas_cumprod = torch.tensor(np.sqrt(alphas_cumprod), dtype=torch.float32)
        self.sqrt_one_minus_alphas_cumprod = torch.tensor(np.sqrt(1.0 - alphas_cumprod), dtype=torch.float32)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> NoiseSchedule:
        keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type")
        return cls(**{k: config[k] for k in keys if k in config and config[k] is not None})

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (x0.ndim - 1)
        a = self.sqrt_alphas_cumprod.to(x0.device)[t].view(shape)
        s = self.sqrt_one_minus_alphas_cumprod.to(x0.device)[t].view(shape)
        return a.to(x0.dtype) * x0 + s.to(x0.dtype) * noise


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------
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


def widen_conv_in(unet: Any, in_channels: int) -> Any:
    """Give ``unet`` ``in_channels`` input channels, the new ones zero-initialized (InstructPix2Pix).

    The existing channels keep their weights (the first ``old`` input channels),
    the bias is kept; a no-op when the UNet already has ``in_channels``.
    """
    old = unet.conv_in
    if old.in_channels == in_channels:
        return unet
    if old.in_channels > in_channels:
        raise ConfigError(f"cannot narrow the UNet input from {old.in_channels} to {in_channels} channels")
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                    device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels].copy_(old.weight)
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)
    return unet


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

    from .weights import TINY_MARKER

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


def inference_scheduler(noise: NoiseSchedule, k_diffusion: bool = True) -> Any:
    """Euler ancestral on the training schedule (the sampler InstructPix2Pix and LEGO use).

    ``k_diffusion=True``: ``timestep_spacing="linspace"``, no offset (k-diffusion's
    ``get_sigmas``, what LEGO's pipeline expects); False: SD 1.5's ``"leading"`` spacing
    with ``steps_offset=1`` (what diffusers' Stable Diffusion pipelines expect)."""
    from diffusers import EulerAncestralDiscreteScheduler

    spacing = dict(timestep_spacing="linspace", steps_offset=0) if k_diffusion else dict(
        timestep_spacing="leading", steps_offset=1)
    return EulerAncestralDiscreteScheduler(**noise.config, prediction_type="epsilon", **spacing)


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


# ---------------------------------------------------------------------------
# EMA
# ---------------------------------------------------------------------------
class EMA:
    """Exponential moving average of parameters, with ``LitEma``'s decay warm-up.

    Each :meth:`update` increments ``num_updates`` and uses
    ``decay_n = min(decay, (1 + n) / (10 + n))``; shadow ``-= (1 - decay_n) (shadow - param)``.
    Shadows are float32 copies on the parameters' device. ``state_dict`` /
    ``load_state_dict`` make it checkpointable with accelerate.
    """

    def __init__(self, named_params: Sequence[tuple[str, nn.Parameter]], decay: float = 0.9999):
        self.decay = float(decay)
        self.num_updates = 0
        self.params = dict(named_params)
        self.shadow = {k: p.detach().float().clone() for k, p in self.params.items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self) -> None:
        self.num_updates += 1
        one_minus = 1.0 - self.current_decay()
        for k, p in self.params.items():
            s = self.shadow[k]
            s.sub_(one_minus * (s - p.detach().float()))

    @torch.no_grad()
    def copy_to_params(self) -> None:
        for k, p in self.params.items():
            p.copy_(self.shadow[k].to(p.dtype))

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        shadow = state["shadow"]
        if set(shadow) != set(self.shadow):
            raise DataError("EMA checkpoint does not match the trained parameters")
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        for k, v in shadow.items():
            self.shadow[k].copy_(v)


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
TextSource = Literal["description", "action"] | Callable[[Sample], str]
ExtrasFn = Callable[[Sample], dict[str, Any]]


class PairDataset:
    """(input frame, target frame, text) pairs of a split with the released training transform.

    ``EgoGenDataset`` (train): both frames resized to ``resize`` x ``resize``
    with LANCZOS (aspect ratio not kept), mapped to ``2 x / 255 - 1``, then one
    random crop of ``resolution`` and one horizontal flip (probability
    ``flip_prob``) applied to the two frames together.

    ``text``: ``"description"`` (the enriched description,
    ``llava_forecast_finetune``: LEGO), ``"action"`` (the action label: the IP2P
    and LDM baselines) or a function of the sample. ``extras(sample)`` adds
    per-sample arrays to the item (e.g. LEGO's VLLM features); they are stacked
    into the batch.
    """

    def __init__(self, split: Split | Sequence[Sample], resolution: int = 256, resize: int | None = None,
                 random_crop: bool = True, flip_prob: float = 0.5, text: TextSource = "description",
                 extras: ExtrasFn | None = None):
        self.samples = list(split)
        if not self.samples:
            raise DataError("the training split has no samples")
        self.resolution = int(resolution)
        self.resize = int(resize or resolution)
        if self.resize < self.resolution:
            raise ConfigError(f"resize {self.resize} is smaller than the crop {self.resolution}")
        self.random_crop = random_crop
        self.flip_prob = float(flip_prob)
        self.text = text
        self.extras = extras
        if text in ("description", "action"):
            for s in self.samples:
                if not self._text(s):
                    raise DataError(f"sample {s.id}: empty {text} (no training text)")

    def __len__(self) -> int:
        return len(self.samples)

    def _text(self, s: Sample) -> str:
        if callable(self.text):
            return self.text(s)
        if self.text == "description":
            return s.description
        if self.text == "action":
            return s.action
        raise ConfigError(f"unknown text source {self.text!r}; use description, action or a function")

    def _frame(self, path: Path) -> torch.Tensor:
        from PIL import Image

        from .methods import load_rgb

        img = load_rgb(path).resize((self.resize, self.resize), Image.Resampling.LANCZOS)
        return 2 * torch.from_numpy(np.array(img)).float().permute(2, 0, 1) / 255 - 1

    def item(self, index: int, rng: np.random.Generator | None = None) -> dict[str, Any]:
        """Sample ``index`` transformed with ``rng`` (None: center crop, no flip)."""
        s = self.samples[index]
        both = torch.cat([self._frame(s.input_path), self._frame(s.target_path)])
        n, size = self.resolution, self.resize
        if rng is not None and self.random_crop:
            top, left = int(rng.integers(0, size - n + 1)), int(rng.integers(0, size - n + 1))
        else:
            top = left = (size - n) // 2
        both = both[:, top : top + n, left : left + n]
        if rng is not None and rng.random() < self.flip_prob:
            both = both.flip(-1)
        out: dict[str, Any] = {"input": both[:3].contiguous(), "target": both[3:].contiguous(),
                               "text": self._text(s), "index": index}
        if self.extras is not None:
            for k, v in self.extras(s).items():
                if k in out:
                    raise ConfigError(f"extras key {k!r} clashes with a PairDataset field")
                out[k] = torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.item(index)


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        if isinstance(vals[0], torch.Tensor):
            out[k] = torch.stack(vals)
        elif isinstance(vals[0], (int, float)):
            out[k] = torch.tensor(vals)
        else:
            out[k] = vals
    return out


class _Stream(torch.utils.data.Dataset):
    """Position ``p`` of the endless training stream -> (sample of a per-epoch seeded
    permutation, with a crop/flip drawn from a generator seeded by ``p``)."""

    def __init__(self, dataset: PairDataset, seed: int):
        self.dataset = dataset
        self.seed = int(seed)
        self._perm: dict[int, np.ndarray] = {}

    def index(self, pos: int) -> int:
        n = len(self.dataset)
        epoch = pos // n
        if epoch not in self._perm:
            if len(self._perm) > 4:
                self._perm.clear()
            self._perm[epoch] = np.random.default_rng([self.seed, 0x0E0C, epoch]).permutation(n)
        return int(self._perm[epoch][pos % n])

    def __len__(self) -> int:  # pragma: no cover - positions are unbounded; DataLoader uses the batch sampler
        return 2**62

    def __getitem__(self, pos: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, 0xA06, pos])
        return self.dataset.item(self.index(pos), rng)


class _MicroBatches(torch.utils.data.Sampler):
    """Stream positions of micro-batches ``start..stop-1`` for process ``rank`` of ``world``."""

    def __init__(self, start: int, stop: int, batch: int, rank: int, world: int):
        self.start, self.stop, self.batch, self.rank, self.world = start, stop, batch, rank, world

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        for m in range(self.start, self.stop):
            first = (m * self.world + self.rank) * self.batch
            yield list(range(first, first + self.batch))


# ---------------------------------------------------------------------------
# the loss
# ---------------------------------------------------------------------------
def encode_prompts(tokenizer: Any, text_encoder: Any, prompts: Sequence[str], device: torch.device) -> torch.Tensor:
    """CLIP last hidden state, padded/truncated to the tokenizer's 77 tokens (``FrozenCLIPEmbedder``)."""
    ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids
    return text_encoder(ids.to(device))[0]


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
    """The epsilon-prediction loss of one batch (see the module docstring for the recipe).

    ``unet`` / ``extra`` default to the bundle's (pass accelerate-prepared
    ones in training). ``dropout=None`` disables CFG dropout; ``generator``
    makes every draw (latent sample, dropout, timesteps, noise) reproducible
    without touching the global RNG.
    """
    unet = unet if unet is not None else bundle.unet
    extra = extra if extra is not None else bundle.extra
    device = torch.device(device) if device is not None else next(unet.parameters()).device
    vae, mode = bundle.vae, bundle.mode
    target = batch["target"].to(device=device, dtype=weight_dtype)
    bsz = target.shape[0]
    with torch.no_grad():
        posterior = vae.encode(target).latent_dist
        latents = posterior.sample(generator=generator) * vae.config.scaling_factor
        clip = encode_prompts(bundle.tokenizer, bundle.text_encoder, batch["text"], device)
        if dropout is not None:
            r = torch.rand(bsz, generator=generator, device=generator.device if generator else None).to(device)
            drop_text, drop_image = dropout.masks(r)
            if mode == "t2i":
                drop_image = torch.zeros_like(drop_image)
            if drop_text.any():
                null = null_embedding
                if null is None:
                    null = encode_prompts(bundle.tokenizer, bundle.text_encoder, [""], device)
                clip = torch.where(drop_text.view(-1, 1, 1), null.to(clip.dtype), clip)
        else:
            drop_text = drop_image = torch.zeros(bsz, dtype=torch.bool, device=device)
        image_latents = None
        if mode == "ip2p":
            image_latents = vae.encode(batch["input"].to(device=device, dtype=weight_dtype)).latent_dist.mode()
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
    pred = unet(model_in, t, encoder_hidden_states=context).sample
    return F.mse_loss(pred.float(), noise.float(), reduction="mean")


# ---------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------
def _checkpoint_dirs(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first: ``step-N`` folders holding the state file (written last)."""
    root = output_dir / CHECKPOINTS
    found = []
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and p.name.startswith("step-") and p.name[5:].isdigit() and (p / STATE_FILE).is_file():
                found.append((int(p.name[5:]), p))
    return sorted(found)


#: prefixes of checkpoint folders being written or deleted (never loaded; removed by the next run)
_PARTIAL_PREFIXES = (".tmp-step-", ".trash-step-")


def _clean_partial_checkpoints(output_dir: Path) -> None:
    """Remove what killed saves and deletions left behind (``.tmp-step-*``, ``.trash-step-*``)."""
    root = output_dir / CHECKPOINTS
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(_PARTIAL_PREFIXES):
                shutil.rmtree(p, ignore_errors=True)


def _fsync(path: Path) -> None:
    """Flush one file, or a folder's entries (the renames inside it), to disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. no directory fds on this platform
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - fsync of a folder is not supported everywhere
        pass
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` (so a machine crash, not only a killed
    process, cannot leave a renamed checkpoint with empty files)."""
    for path in sorted(folder.rglob("*"), key=lambda p: -len(p.parts)) + [folder]:
        _fsync(path)


def _remove_checkpoint(path: Path) -> None:
    """Take ``path`` out of the checkpoints in one rename, then delete it: a kill during the slow
    delete leaves a ``.trash-step-*`` folder (never loaded, removed by the next run), not a
    half-deleted ``step-N`` that still looks like a checkpoint."""
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _publish(tmp: Path, out: Path) -> None:
    """Move the entries of ``tmp`` into ``out``, ``model_index.json`` last (it marks a complete folder)."""
    index = out / "model_index.json"
    if index.exists():
        index.unlink()
    trash = Path(tempfile.mkdtemp(prefix=".tmp-egobench-old-", dir=out))
    try:
        for entry in sorted(tmp.iterdir(), key=lambda p: p.name == "model_index.json"):
            dest = out / entry.name
            if dest.exists():
                os.replace(dest, trash / entry.name)
            os.replace(entry, dest)
    finally:
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------
StepCallback = Callable[[int, float], None]
#: (pipeline, samples, seed) -> one generated image per sample (anything :class:`~egobench.Scorer` takes)
ValidationGenerate = Callable[[Any, list[Sample], int], Sequence[Any]]


class Validation:
    """Validation metrics during training: every ``every`` optimizer steps (and after the last),
    the current weights (not the EMA) generate the first ``limit`` samples of ``scorer``'s split
    with ``num_inference_steps`` steps, an :class:`egobench.Scorer` scores them, and the numbers
    go to ``validation.jsonl`` in the output folder and to :attr:`history`.

    ``generate`` makes the images (default: an InstructPix2Pix pipeline on the input frame
    with the dataset's training text; a text-to-image pipeline on the text alone); LEGO's
    pipeline needs its own (VLLM features).
    """

    def __init__(self, scorer: Any, every: int, limit: int | None = None, *, num_inference_steps: int = 10,
                 seed: int = 0, generate: ValidationGenerate | None = None):
        if not isinstance(every, int) or every < 1:
            raise ConfigError(f"validation every must be a positive number of steps, got {every!r}")
        self.scorer, self.every, self.steps, self.seed, self.generate = scorer, every, num_inference_steps, seed, generate
        self.samples = list(scorer.split)[:limit] if limit else list(scorer.split)
        if not self.samples:
            raise DataError("the validation split has no samples")
        self.history: list[dict[str, Any]] = []

    def due(self, step: int, max_steps: int) -> bool:
        return step % self.every == 0 or step == max_steps

    def default_generate(self, pipe: Any, samples: list[Sample], seed: int, text: Callable[[Sample], str],
                         resolution: int) -> list[Any]:
        import inspect

        from PIL import Image

        from .methods import load_rgb

        pipe.set_progress_bar_config(disable=True)
        out = []
        for s in samples:
            kwargs: dict[str, Any] = {}
            if "image" in inspect.signature(pipe.__call__).parameters:
                kwargs["image"] = load_rgb(s.input_path).resize((resolution, resolution), Image.Resampling.LANCZOS)
            else:
                kwargs.update(height=resolution, width=resolution)
            gen = torch.Generator(device="cpu").manual_seed(seed)
            out.append(pipe(text(s), num_inference_steps=self.steps, generator=gen, output_type="pil", **kwargs).images[0])
        return out

    def run(self, step: int, pipe: Any, text: Callable[[Sample], str], resolution: int, out: Path) -> dict[str, Any]:
        """Generate, score, log; returns the record of this step."""
        t0 = time.monotonic()
        with torch.no_grad():
            if self.generate is not None:
                images = list(self.generate(pipe, self.samples, self.seed))
            else:
                images = self.default_generate(pipe, self.samples, self.seed, text, resolution)
        self.scorer.reset()
        self.scorer.update([s.id for s in self.samples], images)
        record = {"step": step, "n": len(self.samples), "metrics": self.scorer.compute(),
                  "seconds": round(time.monotonic() - t0, 3)}
        self.history.append(record)
        with open(out / VALIDATION_LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        return record


VALIDATION_LOG = "validation.jsonl"


def _move(module: Any, device: Any = None, dtype: torch.dtype | None = None) -> Any:
    """``module.to`` without a dtype cast when the dtype already matches (diffusers warns on casts)."""
    current = next(module.parameters()).dtype
    if dtype is not None and dtype != current:
        return module.to(device=device, dtype=dtype) if device is not None else module.to(dtype=dtype)
    return module.to(device) if device is not None else module


def _reset_accelerate_state() -> None:
    """Forget the accelerate singletons' per-run settings (mixed precision, accumulation) between runs."""
    with contextlib.suppress(Exception):
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=False)
        GradientState._reset_state()


def train_loop(
    bundle: ModelBundle,
    dataset: PairDataset,
    config: TrainConfig,
    extra_condition_fn: ExtraConditionFn | None = None,
    *,
    on_step: StepCallback | None = None,
    progress: bool = False,
    record: Mapping[str, Any] | None = None,
    validation: Validation | None = None,
) -> TrainResult:
    """Finetune ``bundle`` on ``dataset`` and save the (EMA) pipeline into ``config.output_dir``.

    ``extra_condition_fn(extra_modules, batch, clip_embeddings)`` returns extra
    cross-attention tokens appended after the CLIP tokens (zeroed for samples
    whose text is dropped). ``on_step(step, loss)`` is called after every
    optimizer step (raise from it to stop). ``record`` is stored in
    ``training.json`` beside the model. Launch with ``accelerate launch`` /
    ``torchrun`` for several processes; each process reads its own share of every
    step's micro-batches. ``validation`` scores images of the current weights every N steps
    (main process; see :class:`Validation`).
    """
    from egobench._compat import ensure_torchvision

    ensure_torchvision()
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from diffusers.optimization import get_scheduler

    t0 = time.monotonic()
    out = Path(config.output_dir).expanduser()
    mode = bundle.mode
    if extra_condition_fn is None and bundle.extra and bundle.train_extra:
        raise ConfigError("the bundle has extra modules to train but no extra_condition_fn uses them")
    existing = _checkpoint_dirs(out)
    if existing and not config.resume:
        raise UserError(f"{out} already holds training checkpoints (step {existing[-1][0]}); pass resume=True "
                        "(--resume) to continue, or choose another output folder")
    if (out / TRAINING_RECORD).is_file() and not existing:
        raise UserError(f"{out} already holds a trained model ({out / TRAINING_RECORD}); choose another output "
                        "folder")
    out.mkdir(parents=True, exist_ok=True)
    if int(os.environ.get("RANK", "0")) == 0:  # before accelerate starts; the main process only
        _clean_partial_checkpoints(out)

    _reset_accelerate_state()
    accelerator = Accelerator(
        gradient_accumulation_steps=config.grad_accum,
        mixed_precision=config.mixed_precision,
        project_config=ProjectConfiguration(project_dir=str(out)),
    )
    device = accelerator.device
    set_seed(config.seed)

    weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[accelerator.mixed_precision]
    vae, text_encoder, unet = bundle.vae, bundle.text_encoder, bundle.unet
    for frozen in (vae, text_encoder):
        frozen.requires_grad_(False)
        frozen.eval()
        _move(frozen, device, weight_dtype)
    unet.requires_grad_(True)
    unet.train()
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    extra_names = sorted(bundle.extra)
    for name in extra_names:
        module = bundle.extra[name]
        module.requires_grad_(bundle.train_extra)
        module.train()  # dropout on, as the released LightningModule trains its mixer
        module.to(device)

    trainable: list[tuple[str, nn.Parameter]] = [(f"unet.{k}", p) for k, p in unet.named_parameters()]
    if bundle.train_extra:
        for name in extra_names:
            trainable += [(f"{name}.{k}", p) for k, p in bundle.extra[name].named_parameters()]
    params = [p for _, p in trainable]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
                                  eps=config.adam_epsilon, weight_decay=config.weight_decay)
    lr_scheduler = get_scheduler(
        config.lr_scheduler, optimizer=optimizer,
        num_warmup_steps=config.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=config.max_steps * accelerator.num_processes,
    )
    trained_extra = extra_names if bundle.train_extra else []
    prepared = accelerator.prepare(unet, *[bundle.extra[n] for n in trained_extra], optimizer, lr_scheduler)
    p_unet = prepared[0]
    p_extra = dict(bundle.extra)
    p_extra.update(dict(zip(trained_extra, prepared[1 : 1 + len(trained_extra)])))
    optimizer, lr_scheduler = prepared[-2], prepared[-1]
    ema = EMA(trainable, config.ema_decay) if config.use_ema else None
    if ema is not None:
        accelerator.register_for_checkpointing(ema)

    losses: list[float] = []
    step = 0
    resumed_from = None
    if config.resume and existing:
        ck_step, ck_dir = existing[-1]
        state = read_json(ck_dir / STATE_FILE)
        if state.get("resume_key") != config.resume_key() or state.get("mode") != mode:
            raise UserError(f"{ck_dir}: saved with different settings ({state.get('resume_key')}); "
                            "resume with the settings of the interrupted run")
        if ck_step > config.max_steps:
            raise UserError(f"{ck_dir}: the checkpoint is at step {ck_step}, beyond max_steps {config.max_steps}")
        accelerator.load_state(str(ck_dir))
        step = resumed_from = ck_step
        losses = [float(x) for x in state.get("losses", [])][:step]

    with torch.no_grad():
        null_embedding = encode_prompts(bundle.tokenizer, text_encoder, [""], device)
    stream = _Stream(dataset, config.seed)
    sampler = _MicroBatches(step * config.grad_accum, config.max_steps * config.grad_accum, config.batch_size,
                            accelerator.process_index, accelerator.num_processes)
    # its own generator: a DataLoader iterator otherwise draws its base seed from the global RNG,
    # which would shift every later draw of a resumed run
    loader = torch.utils.data.DataLoader(stream, batch_sampler=sampler, collate_fn=collate,
                                         num_workers=config.num_workers,
                                         generator=torch.Generator().manual_seed(config.seed))
    bar = None
    if progress and accelerator.is_local_main_process:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.max_steps, initial=step, desc="train", unit="step")
    models = [p_unet] + [p_extra[n] for n in trained_extra]
    step_losses: list[float] = []
    for batch in loader:
        with accelerator.accumulate(*models):
            loss = diffusion_loss(
                bundle, batch, unet=p_unet, extra=p_extra, extra_condition_fn=extra_condition_fn,
                dropout=config.cfg_dropout, null_embedding=null_embedding, device=device, weight_dtype=weight_dtype,
            )
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss is {loss.item()} at step {step + 1}")
            step_losses.append(accelerator.gather(loss.detach().reshape(1)).mean().item())
            accelerator.backward(loss)
            if accelerator.sync_gradients and config.max_grad_norm is not None:
                accelerator.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        if ema is not None and config.ema_update == "micro-batch":
            ema.update()
        if not accelerator.sync_gradients:
            continue
        if ema is not None and config.ema_update == "step":
            ema.update()
        step += 1
        losses.append(float(np.mean(step_losses)))
        step_losses = []
        if bar is not None:
            bar.update(1)
            if step % config.log_every == 0:
                bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr_scheduler.get_last_lr()[0]:.2e}")
        if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.max_steps:
            _save_checkpoint(accelerator, out, step, losses, config, mode)
        if validation is not None and validation.due(step, config.max_steps):
            if accelerator.is_main_process:
                _validate(validation, step, bundle, accelerator, p_unet, p_extra, vae, text_encoder, dataset,
                          config, out, bar)
            accelerator.wait_for_everyone()
        if on_step is not None:
            on_step(step, losses[-1])
    if bar is not None:
        bar.close()
    if step != config.max_steps:  # pragma: no cover - the sampler yields exactly the missing micro-batches
        raise RuntimeError(f"training stopped at step {step} of {config.max_steps}")

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if ema is not None:
            ema.copy_to_params()
        components = {
            "vae": _move(vae, dtype=torch.float32), "text_encoder": _move(text_encoder, dtype=torch.float32),
            "tokenizer": bundle.tokenizer, "unet": _move(accelerator.unwrap_model(p_unet), dtype=torch.float32),
            "scheduler": inference_scheduler(bundle.noise, k_diffusion=bundle.make_pipeline is not None),
        }
        for name in extra_names:
            components[name] = _move(accelerator.unwrap_model(p_extra[name]), dtype=torch.float32).eval()
        components["unet"].eval()
        factory = bundle.make_pipeline or (ip2p_pipeline if mode == "ip2p" else t2i_pipeline)
        pipe = factory(components)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-egobench-final-", dir=out))
        pipe.save_pretrained(tmp)
        from .weights import TINY_MARKER

        if bundle.tiny:
            atomic_write_json(tmp / TINY_MARKER, {
                "artifact": None, "note": "trained from tiny random weights by egobench; results are NOT comparable"})
        elif (out / TINY_MARKER).exists():
            (out / TINY_MARKER).unlink()
        _publish(tmp, out)
        atomic_write_json(out / TRAINING_RECORD, {
            "mode": mode, "steps": step, "config": config.to_dict(), "source": bundle.source,
            "train_extra": bundle.train_extra, "extra": extra_names, "examples": len(dataset),
            "final_loss": losses[-1] if losses else None, "losses": losses, "resumed_from": resumed_from,
            "ema": {"used": ema is not None, "updates": ema.num_updates if ema else 0},
            **dict(record or {}),
        })
    accelerator.wait_for_everyone()
    n_trainable = sum(p.numel() for p in params)
    accelerator.free_memory()
    _reset_accelerate_state()
    return TrainResult(
        output_dir=out, mode=mode, steps=step, losses=losses, resumed_from=resumed_from,
        checkpoints=[p for _, p in _checkpoint_dirs(out)], seconds=time.monotonic() - t0,
        trainable_parameters=n_trainable,
    )


def _validate(validation: Validation, step: int, bundle: ModelBundle, accelerator: Any, p_unet: Any,
              p_extra: dict[str, Any], vae: Any, text_encoder: Any, dataset: PairDataset, config: TrainConfig,
              out: Path, bar: Any) -> None:
    """One :meth:`Validation.run` on a pipeline over the modules being trained (eval mode meanwhile)."""
    unet = accelerator.unwrap_model(p_unet)
    components = {"vae": vae, "text_encoder": text_encoder, "tokenizer": bundle.tokenizer, "unet": unet,
                  "scheduler": inference_scheduler(bundle.noise, k_diffusion=bundle.make_pipeline is not None)}
    extra = {name: accelerator.unwrap_model(m) for name, m in p_extra.items()}
    components.update(extra)
    modules = [unet, *extra.values()]
    was_training = [m.training for m in modules]
    factory = bundle.make_pipeline or (ip2p_pipeline if bundle.mode == "ip2p" else t2i_pipeline)
    try:
        for m in modules:
            m.eval()
        with accelerator.autocast():
            rec = validation.run(step, factory(components), dataset._text, config.resolution, out)
    finally:
        for m, training in zip(modules, was_training):
            m.train(training)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in rec["metrics"].items() if isinstance(v, (int, float)))
    message = f"validation at step {step}: {shown} ({rec['n']} samples, {rec['seconds']:.1f} s)"
    from .progress import LOG

    LOG.info(message)
    if bar is not None:
        bar.write(message)


def _save_checkpoint(accelerator: Any, out: Path, step: int, losses: list[float], config: TrainConfig,
                     mode: str) -> None:
    """Write ``checkpoints/step-N`` so that a ``kill -9`` at any point leaves no checkpoint that
    resume would load half-written.

    ``accelerator.save_state`` writes into ``.tmp-step-N``; the state file (what makes a folder a
    checkpoint, :func:`_checkpoint_dirs`) is written last, atomically; the files are flushed to disk;
    one rename publishes the folder. A ``step-N`` it replaces and checkpoints beyond
    ``checkpoints_keep`` are first renamed out of the way, then deleted (:func:`_remove_checkpoint`).
    A kill leaves at worst ``.tmp-``/``.trash-`` folders, which are never loaded and which the next
    run removes; resume then starts from the newest complete checkpoint.
    """
    root = out / CHECKPOINTS
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_json(tmp / STATE_FILE, {"step": step, "losses": losses, "mode": mode,
                                             "resume_key": config.resume_key(), "config": config.to_dict()})
        _fsync_tree(tmp)
        if final.exists():
            _remove_checkpoint(final)
        os.replace(tmp, final)
        _fsync(root)
        if config.checkpoints_keep is not None:
            for _, old in _checkpoint_dirs(out)[: -config.checkpoints_keep]:
                _remove_checkpoint(old)
    accelerator.wait_for_everyone()


def describe_steps(config: TrainConfig, n_examples: int, processes: int = 1) -> str:
    """One line: effective batch and epochs covered by ``config.max_steps``."""
    eff = config.batch_size * config.grad_accum * processes
    epochs = config.max_steps * eff / max(1, n_examples)
    return f"{config.max_steps} steps x effective batch {eff} = {epochs:.2f} epochs of {n_examples} examples"
