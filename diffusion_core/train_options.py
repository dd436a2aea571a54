"""The options every finetuning command of the shared loop takes (``egobench train lego|ip2p|ldm``).

:class:`TrainOptions` holds what LEGO and the baselines share (the data, the output folder, the loop's
steps, batch, learning rate, seed, precision, checkpoints, EMA, resume, the weights); each command's
options dataclass subclasses it with its own fields, and :meth:`TrainOptions.loop_settings` gives the
loop's :class:`~diffusion_core.training.TrainConfig` settings. Nothing heavy is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .options import option


@dataclass(kw_only=True)
class TrainOptions:
    """One field per command-line option (``--field-name``) shared by the training commands."""

    dataset: str = option(short="-d", choices=["ego4d", "epickitchens"], help="which training set of the LEGO release")
    data_root: str = option(help="LEGO release folder (EgoGen/<dataset>/<part>, <prefix>_<part>.json)")
    out: str = option(help="output diffusers folder (and checkpoints/)")
    init: str = option("", help="diffusers folder or artifact")
    part: str = option("train", help="split part of the release layout")
    max_steps: int = option(10000, help="optimizer steps")
    batch_size: int = option(32, help="micro-batch per process")
    grad_accum: int = option(4, help="gradient accumulation")
    lr: float = option(1e-4)
    seed: int = option(23)
    resolution: int = option(256)
    mixed_precision: str = option("no", choices=["no", "fp16", "bf16"])
    checkpoint_every: int = option(1000, help="optimizer steps; 0 = none")
    no_ema: bool = option(False, is_flag=True, help="save the raw weights instead of the EMA")
    resume: bool = option(False, is_flag=True, help="continue from the newest checkpoint in --out")
    num_workers: int = option(0)
    limit: int | None = option(None, help="only the first N samples (smoke tests)")
    zoo: str = option("real", choices=["real", "tiny"], help="resolve --init artifacts in the real or the tiny zoo")
    weights: tuple[str, ...] = option((), multiple=True, metavar="NAME=PATH",
                                      help="explicit artifact path (repeatable)")
    quiet: bool = option(False, is_flag=True, help="no progress bar")

    def loop_settings(self) -> dict[str, Any]:
        """The :class:`~diffusion_core.training.TrainConfig` settings these options give (no output_dir)."""
        return dict(max_steps=self.max_steps, batch_size=self.batch_size, grad_accum=self.grad_accum,
                    learning_rate=self.lr, seed=self.seed, resolution=self.resolution,
                    mixed_precision=self.mixed_precision, checkpoint_every=self.checkpoint_every,
                    use_ema=not self.no_ema, resume=self.resume, num_workers=self.num_workers)


def trained_summary(result: Any) -> str:
    """The first half of a training command's last line: steps (and where a resumed run began), final loss."""
    where = f" (resumed at step {result.resumed_from})" if result.resumed_from is not None else ""
    return f"trained {result.steps} steps{where}: final loss {result.losses[-1]:.4f}"
