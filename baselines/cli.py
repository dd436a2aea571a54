"""``egobench train ip2p`` and ``egobench train ldm``: the baselines' finetuning.

Both run the shared loop :func:`egobench.training.train_loop` on the (input
frame, action label) -> action frame pairs of a LEGO-layout split, with the
action label (``sample.action``) as the text, as the LEGO paper finetunes its
baselines ("all are finetuned on the same data"):

- ``train ip2p``: InstructPix2Pix end to end (8-channel UNet: noisy target
  latent + input-frame latent), from ``ip2p-init`` (HF
  ``timbrooks/instruct-pix2pix``) or from ``sd15`` with the input convolution
  widened to 8 channels (zero-initialised); CFG dropout 5/5/5 % (text / both /
  image). Output: the ``ip2p-<dataset>`` folder of the ``ip2p`` method.
- ``train ldm``: Stable Diffusion 1.5 text-to-image on the action frames with
  their labels (4-channel UNet, text dropout 10 %). Output: the
  ``ldm-<dataset>`` folder of ``sdedit`` and ``proxedit``.

The defaults are the loop's (diffusers' InstructPix2Pix script: AdamW lr 1e-4
constant, gradient clipping 1.0, EMA) with the step budget and batch of
``egobench train lego`` (10000 steps x 32 x accumulation 4), so the baselines
see as much data as LEGO. Registered as ``egobench.train`` entry points
``ip2p`` and ``ldm``; torch and diffusers load only inside the commands.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from egobench.errors import UserError
from egobench.weights import parse_weight_overrides
from lego.feedback import library_output

#: --init choices documented for each model
INITS = {"ip2p": ("ip2p-init", "sd15"), "ldm": ("sd15",)}


@dataclass
class BaselineTrainSpec:
    """What :func:`train_baseline` trains (the CLI's options)."""

    model: str  # "ip2p" | "ldm"
    dataset: str  # ego4d | epickitchens
    data_root: str | os.PathLike
    init: str  # diffusers folder or artifact name
    part: str = "train"
    zoo: str = "real"
    weights: dict[str, str] = field(default_factory=dict)
    limit: int | None = None


def train_baseline(spec: BaselineTrainSpec, config: Any, *, on_step: Any = None, progress: bool = False,
                   validation: Any = None) -> Any:
    """Finetune an IP2P or text-to-image LDM baseline; returns :class:`~egobench.training.TrainResult`."""
    from egobench._compat import ensure_torchvision

    ensure_torchvision()
    from egobench.data.lego_release import load_release
    from egobench.training import PairDataset, load_sd_bundle, train_loop
    from egobench.weights import WeightStore
    from lego.train import resolve_folder

    if spec.model not in INITS:
        raise UserError(f"unknown baseline model {spec.model!r}; use ip2p or ldm")
    split = load_release(Path(spec.data_root).expanduser(), spec.dataset, part=spec.part).head(spec.limit)
    dataset = PairDataset(split, resolution=config.resolution, resize=config.resize, random_crop=config.random_crop,
                          flip_prob=config.random_flip, text="action")
    store = WeightStore(zoo=spec.zoo, overrides=spec.weights or None)
    init, tiny = resolve_folder(spec.init, store)
    bundle = load_sd_bundle(init, in_channels=8 if spec.model == "ip2p" else None, tiny=tiny, source=str(init))
    want = "ip2p" if spec.model == "ip2p" else "t2i"
    if bundle.mode != want:
        raise UserError(f"--init {spec.init}: a UNet with {bundle.unet.config.in_channels} input channels cannot "
                        f"be finetuned as {spec.model} (use {' or '.join(INITS[spec.model])})")
    record = {
        "model": spec.model, "dataset": spec.dataset, "part": spec.part, "split_fingerprint": split.short_fingerprint,
        "init": str(spec.init), "init_folder": str(init), "text": "action",
    }
    return train_loop(bundle, dataset, config, on_step=on_step, progress=progress, record=record,
                      validation=validation)


def train_config(out: str | os.PathLike, **overrides: Any) -> Any:
    """The loop's :class:`~egobench.training.TrainConfig` with the given overrides (None = default)."""
    from egobench.training import TrainConfig

    return TrainConfig(output_dir=out, **{k: v for k, v in overrides.items() if v is not None})


def _options(default_init: str, init_help: str):
    """The options both commands share."""

    def deco(f):
        opts = [
            click.option("--dataset", "-d", required=True, type=click.Choice(["ego4d", "epickitchens"]),
                         help="which training set of the LEGO release"),
            click.option("--data-root", required=True,
                         help="LEGO release folder (EgoGen/<dataset>/<part>, <prefix>_<part>.json)"),
            click.option("--out", required=True, help="output diffusers folder (and checkpoints/)"),
            click.option("--init", default=default_init, show_default=True, help=init_help),
            click.option("--part", default="train", show_default=True, help="split part of the release layout"),
            click.option("--max-steps", type=int, default=10000, show_default=True, help="optimizer steps"),
            click.option("--batch-size", type=int, default=32, show_default=True, help="micro-batch per process"),
            click.option("--grad-accum", type=int, default=4, show_default=True, help="gradient accumulation"),
            click.option("--lr", type=float, default=1e-4, show_default=True),
            click.option("--seed", type=int, default=23, show_default=True),
            click.option("--resolution", type=int, default=256, show_default=True),
            click.option("--mixed-precision", type=click.Choice(["no", "fp16", "bf16"]), default="no",
                         show_default=True),
            click.option("--checkpoint-every", type=int, default=1000, show_default=True,
                         help="optimizer steps; 0 = none"),
            click.option("--no-ema", is_flag=True, help="save the raw weights instead of the EMA"),
            click.option("--resume", is_flag=True, help="continue from the newest checkpoint in --out"),
            click.option("--num-workers", type=int, default=0, show_default=True),
            click.option("--limit", type=int, default=None, help="only the first N samples (smoke tests)"),
            click.option("--zoo", type=click.Choice(["real", "tiny"]), default="real", show_default=True,
                         help="resolve --init artifacts in the real or the tiny zoo"),
            click.option("--weights", "weights", multiple=True, metavar="NAME=PATH",
                         help="explicit artifact path (repeatable)"),
            click.option("--val-every", type=int, default=0, show_default=True,
                         help="every N optimizer steps (and after the last), score the current weights on the "
                         "first --val-limit samples of the dataset's test split (validation.jsonl); 0 = off. "
                         "For monitoring only: choosing a checkpoint on it leaks the test set"),
            click.option("--val-limit", type=int, default=8, show_default=True),
            click.option("--val-metrics", default="psnr,lpips,clip", show_default=True,
                         help="protocol columns to score (comma-separated)"),
            click.option("--val-protocol", default="egobench-v1", show_default=True),
            click.option("--quiet", is_flag=True, help="no progress bar"),
        ]
        for opt in reversed(opts):
            f = opt(f)
        return f

    return deco


def _validation(dataset: str, data_root: str, zoo: str, every: int, limit: int, metrics: str, protocol: str) -> Any:
    """``--val-every``: a :class:`~egobench.training.Validation` scoring the test split's first samples."""
    if every <= 0:
        return None
    if limit < 1:
        raise UserError(f"--val-limit must be at least 1, got {limit}")
    from egobench.scorer import Scorer
    from egobench.training import Validation

    names = [m.strip() for m in metrics.split(",") if m.strip()]
    scorer = Scorer(protocol, dataset, data_root=data_root, zoo=zoo, metrics=names or None, limit=limit)
    return Validation(scorer, every=every, limit=limit)


def _run(model: str, option: str, dataset, data_root, out, init, part, max_steps, batch_size, grad_accum, lr, seed,
         resolution, mixed_precision, checkpoint_every, no_ema, resume, num_workers, limit, zoo, weights,
         val_every, val_limit, val_metrics, val_protocol, quiet) -> None:
    spec = BaselineTrainSpec(model=model, dataset=dataset, data_root=data_root, init=init, part=part, zoo=zoo,
                             weights=parse_weight_overrides(weights), limit=limit)
    config = train_config(
        out, max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, learning_rate=lr, seed=seed,
        resolution=resolution, mixed_precision=mixed_precision, checkpoint_every=checkpoint_every,
        use_ema=not no_ema, resume=resume, num_workers=num_workers,
    )
    validation = _validation(dataset, data_root, zoo, val_every, val_limit, val_metrics, val_protocol)
    with library_output(quiet=quiet):
        res = train_baseline(spec, config, progress=not quiet, validation=validation)
    short = {"ego4d": "ego4d", "epickitchens": "epic"}[dataset]
    where = f" (resumed at step {res.resumed_from})" if res.resumed_from is not None else ""
    click.echo(f"trained {res.steps} steps{where}: final loss {res.losses[-1]:.4f}; {model} folder "
               f"{res.output_dir} (use with -o {option}={res.output_dir}, or place it at "
               f"$EGOBENCH_WEIGHTS/{model}-{short})")


@click.command("ip2p")
@_options("ip2p-init", "diffusers folder or artifact: ip2p-init (timbrooks/instruct-pix2pix) or sd15 "
          "(Stable Diffusion 1.5, UNet input widened to 8 channels, new ones zero)")
def train_ip2p(**kw):
    """Finetune InstructPix2Pix end to end with action labels (the 'ip2p' baseline's weights)."""
    _run("ip2p", "model", **kw)


@click.command("ldm")
@_options("sd15", "diffusers Stable Diffusion 1.5 folder or artifact (sd15)")
def train_ldm(**kw):
    """Finetune SD 1.5 text-to-image on action frames with action labels (weights of 'sdedit' and 'proxedit')."""
    _run("ldm", "ldm", **kw)
