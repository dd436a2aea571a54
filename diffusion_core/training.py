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
in ``output_dir/checkpoints/step-N`` (see :func:`~diffusion_core.checkpoints.save_checkpoint` for why a
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

import dataclasses
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from egobench.errors import ConfigError, UserError
from egobench.io import atomic_write_json, read_json

from .bundle import ExtraConditionFn, ModelBundle, encode_text
from .checkpoints import STATE_FILE, checkpoint_dirs, clean_partial_checkpoints, publish, save_checkpoint
from .data import MicroBatches, PairDataset, TrainingStream, collate
from .ema import EMA
from .folders import TRAINING_RECORD
from .loop import OptimizerSteps, StepCallback, progress_bar, reset_accelerate_state, start_accelerator
from .loss import CFGDropout, diffusion_loss
from .scheduler import inference_scheduler
from .validation import Validation, validate

MixedPrecision = Literal["no", "fp16", "bf16"]


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


def move(module: Any, device: Any = None, dtype: torch.dtype | None = None) -> Any:
    """``module.to`` without a dtype cast when the dtype already matches (diffusers warns on casts)."""
    current = next(module.parameters()).dtype
    if dtype is not None and dtype != current:
        return module.to(device=device, dtype=dtype) if device is not None else module.to(dtype=dtype)
    return module.to(device) if device is not None else module



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
    (main process; see :class:`~diffusion_core.validation.Validation`).
    """
    from diffusers.optimization import get_scheduler

    t0 = time.monotonic()
    out = Path(config.output_dir).expanduser()
    mode = bundle.mode
    if extra_condition_fn is None and bundle.extra and bundle.train_extra:
        raise ConfigError("the bundle has extra modules to train but no extra_condition_fn uses them")
    existing = checkpoint_dirs(out)
    if existing and not config.resume:
        raise UserError(f"{out} already holds training checkpoints (step {existing[-1][0]}); pass resume=True "
                        "(--resume) to continue, or choose another output folder")
    if (out / TRAINING_RECORD).is_file() and not existing:
        raise UserError(f"{out} already holds a trained model ({out / TRAINING_RECORD}); choose another output "
                        "folder")
    out.mkdir(parents=True, exist_ok=True)
    if int(os.environ.get("RANK", "0")) == 0:  # before accelerate starts; the main process only
        clean_partial_checkpoints(out)

    accelerator = start_accelerator(config.grad_accum, config.mixed_precision, config.seed, project_dir=str(out))
    device = accelerator.device

    weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[accelerator.mixed_precision]
    vae, text_encoder, unet = bundle.vae, bundle.text_encoder, bundle.unet
    for frozen in (vae, *bundle.text_encoders()):
        frozen.requires_grad_(False)
        frozen.eval()
        # SDXL's VAE overflows in fp16 (its config says force_upcast): it stays in fp32, as diffusers' SDXL scripts
        keep_fp32 = frozen is vae and bool(getattr(vae.config, "force_upcast", False)) and bundle.sdxl
        move(frozen, device, torch.float32 if keep_fp32 else weight_dtype)
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
        null_embedding = encode_text(bundle, [""], device).context
    stream = TrainingStream(dataset, config.seed)
    sampler = MicroBatches(step * config.grad_accum, config.max_steps * config.grad_accum, config.batch_size,
                           accelerator.process_index, accelerator.num_processes)
    # its own generator: a DataLoader iterator otherwise draws its base seed from the global RNG,
    # which would shift every later draw of a resumed run
    loader = torch.utils.data.DataLoader(stream, batch_sampler=sampler, collate_fn=collate,
                                         num_workers=config.num_workers,
                                         generator=torch.Generator().manual_seed(config.seed))
    bar = progress_bar(accelerator, progress, config.max_steps, step, "train")

    def loss_of(batch: dict[str, Any]) -> torch.Tensor:
        return diffusion_loss(
            bundle, batch, unet=p_unet, extra=p_extra, extra_condition_fn=extra_condition_fn,
            dropout=config.cfg_dropout, null_embedding=null_embedding, device=device, weight_dtype=weight_dtype,
        )

    def after_micro_batch() -> None:
        if ema is not None and config.ema_update == "micro-batch":
            ema.update()

    def after_step(step: int, loss: float) -> None:
        if ema is not None and config.ema_update == "step":
            ema.update()
        losses.append(loss)
        if bar is not None:
            bar.update(1)
            if step % config.log_every == 0:
                bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr_scheduler.get_last_lr()[0]:.2e}")
        if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.max_steps:
            save_checkpoint(accelerator, out, step, losses, config, mode)
        if validation is not None and validation.due(step, config.max_steps):
            if accelerator.is_main_process:
                validate(validation, step, bundle, accelerator, p_unet, p_extra, vae, text_encoder, dataset,
                         config.resolution, out, bar)
            accelerator.wait_for_everyone()
        if on_step is not None:
            on_step(step, losses[-1])

    steps = OptimizerSteps(accelerator, [p_unet] + [p_extra[n] for n in trained_extra], params, optimizer,
                           lr_scheduler, max_grad_norm=config.max_grad_norm, check_finite=True)
    step = steps.run(loader, loss_of, step=step, max_steps=config.max_steps, on_step=after_step,
                     on_micro_batch=after_micro_batch)
    if bar is not None:
        bar.close()
    if step != config.max_steps:  # pragma: no cover - the sampler yields exactly the missing micro-batches
        raise RuntimeError(f"training stopped at step {step} of {config.max_steps}")

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if ema is not None:
            ema.copy_to_params()
        components = {
            "vae": move(vae, dtype=torch.float32), "text_encoder": move(text_encoder, dtype=torch.float32),
            "tokenizer": bundle.tokenizer, "unet": move(accelerator.unwrap_model(p_unet), dtype=torch.float32),
            "scheduler": inference_scheduler(bundle.noise, k_diffusion=bundle.make_pipeline is not None,
                                             sdxl=bundle.sdxl),
        }
        if bundle.sdxl:
            components.update(text_encoder_2=move(bundle.text_encoder_2, dtype=torch.float32),
                              tokenizer_2=bundle.tokenizer_2)
        for name in extra_names:
            components[name] = move(accelerator.unwrap_model(p_extra[name]), dtype=torch.float32).eval()
        components["unet"].eval()
        pipe = bundle.build_pipeline(components)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-egobench-final-", dir=out))
        pipe.save_pretrained(tmp)
        from egobench.weights import TINY_MARKER

        if bundle.tiny:
            atomic_write_json(tmp / TINY_MARKER, {
                "artifact": None, "note": "trained from tiny random weights by egobench; results are NOT comparable"})
        elif (out / TINY_MARKER).exists():
            (out / TINY_MARKER).unlink()
        publish(tmp, out)
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
    reset_accelerate_state()
    return TrainResult(
        output_dir=out, mode=mode, steps=step, losses=losses, resumed_from=resumed_from,
        checkpoints=[p for _, p in checkpoint_dirs(out)], seconds=time.monotonic() - t0,
        trainable_parameters=n_trainable,
    )


def describe_steps(config: TrainConfig, n_examples: int, processes: int = 1) -> str:
    """One line: effective batch and epochs covered by ``config.max_steps``."""
    eff = config.batch_size * config.grad_accum * processes
    epochs = config.max_steps * eff / max(1, n_examples)
    return f"{config.max_steps} steps x effective batch {eff} = {epochs:.2f} epochs of {n_examples} examples"
