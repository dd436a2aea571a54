"""One accelerate optimization loop for every trainer here (diffusion finetuning, VLLM instruction tuning).

A trainer hands :meth:`OptimizerSteps.run` its micro-batches and a step function (micro-batch ->
loss); the loop does gradient accumulation, the cross-process loss mean, clipping, the optimizer
and learning-rate steps, and calls back once per micro-batch and once per optimizer step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

#: one micro-batch -> its (scalar) training loss
StepFn = Callable[[Any], torch.Tensor]
#: (optimizer step reached, mean loss of its micro-batches over all processes)
StepCallback = Callable[[int, float], None]


def reset_accelerate_state() -> None:
    """Forget the accelerate singletons' per-run settings (mixed precision, accumulation) between runs."""
    with contextlib.suppress(Exception):
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=False)
        GradientState._reset_state()


def start_accelerator(grad_accum: int, mixed_precision: str, seed: int, project_dir: str | None = None) -> Any:
    """A fresh ``Accelerator`` (singleton state of an earlier run forgotten) with the global RNGs seeded."""
    from egobench._compat import ensure_torchvision

    ensure_torchvision()
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed

    reset_accelerate_state()
    kwargs: dict[str, Any] = {}
    if project_dir is not None:
        kwargs["project_config"] = ProjectConfiguration(project_dir=project_dir)
    accelerator = Accelerator(gradient_accumulation_steps=grad_accum, mixed_precision=mixed_precision, **kwargs)
    set_seed(seed)
    return accelerator


def progress_bar(accelerator: Any, show: bool, total: int, initial: int, desc: str) -> Any:
    """A tqdm bar over optimizer steps on the local main process, or None."""
    if not (show and accelerator.is_local_main_process):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step")


@dataclass
class OptimizerSteps:
    """What one run optimizes: the modules ``accumulate`` wraps, the clipped parameters, optimizer and schedule."""

    accelerator: Any
    models: Sequence[Any]
    params: Sequence[torch.nn.Parameter]
    optimizer: Any
    lr_scheduler: Any
    max_grad_norm: float | None = None
    check_finite: bool = False  # raise on a NaN / inf loss (naming the step) instead of training on

    def run(self, batches: Iterable[Any], step_fn: StepFn, *, step: int, max_steps: int, on_step: StepCallback,
            on_micro_batch: Callable[[], None] | None = None) -> int:
        """Optimizer steps ``step + 1 .. max_steps`` (fewer if the batches end); returns the step reached."""
        acc = self.accelerator
        losses: list[float] = []
        if step >= max_steps:
            return step
        for batch in batches:
            with acc.accumulate(*self.models):
                loss = step_fn(batch)
                if self.check_finite and not torch.isfinite(loss):
                    raise FloatingPointError(f"training loss is {loss.item()} at step {step + 1}")
                losses.append(acc.gather(loss.detach().reshape(1)).mean().item())
                acc.backward(loss)
                if acc.sync_gradients and self.max_grad_norm is not None:
                    acc.clip_grad_norm_(self.params, self.max_grad_norm)
                self.optimizer.step()
                self.lr_scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
            if on_micro_batch is not None:
                on_micro_batch()
            if not acc.sync_gradients:
                continue
            step += 1
            on_step(step, float(np.mean(losses)))
            losses = []
            if step >= max_steps:
                break
        return step
