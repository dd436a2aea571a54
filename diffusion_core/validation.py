"""Validation metrics during training: the current weights generate images that a harness scorer scores."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from egobench.data import Sample
from egobench.errors import ConfigError, DataError

from .bundle import ModelBundle
from .data import PairDataset

#: (pipeline, samples, seed) -> one generated image per sample (anything :class:`~egobench.Scorer` takes)
ValidationGenerate = Callable[[Any, list[Sample], int], Sequence[Any]]
VALIDATION_LOG = "validation.jsonl"


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

        from egobench.methods import load_rgb

        pipe.set_progress_bar_config(disable=True)
        out = []
        for s in samples:
            kwargs: dict[str, Any] = {}
            params = inspect.signature(pipe.__call__).parameters
            if "image" in params:
                kwargs["image"] = load_rgb(s.input_path).resize((resolution, resolution), Image.Resampling.LANCZOS)
            if "image" not in params or "height" in params:  # SDXL InstructPix2Pix takes the size too
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



def validate(validation: Validation, step: int, bundle: ModelBundle, accelerator: Any, p_unet: Any,
             p_extra: dict[str, Any], vae: Any, text_encoder: Any, dataset: PairDataset, resolution: int,
             out: Path, bar: Any) -> None:
    """One :meth:`Validation.run` on a pipeline over the modules being trained (eval mode meanwhile)."""
    from .scheduler import inference_scheduler

    unet = accelerator.unwrap_model(p_unet)
    components = {"vae": vae, "text_encoder": text_encoder, "tokenizer": bundle.tokenizer, "unet": unet,
                  "scheduler": inference_scheduler(bundle.noise, k_diffusion=bundle.make_pipeline is not None,
                                                   sdxl=bundle.sdxl)}
    extra = {name: accelerator.unwrap_model(m) for name, m in p_extra.items()}
    components.update(extra)
    modules = [unet, *extra.values()]
    was_training = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        with accelerator.autocast():
            rec = validation.run(step, bundle.build_pipeline(components), dataset.text_of, resolution, out)
    finally:
        for m, training in zip(modules, was_training):
            m.train(training)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in rec["metrics"].items() if isinstance(v, (int, float)))
    message = f"validation at step {step}: {shown} ({rec['n']} samples, {rec['seconds']:.1f} s)"
    from egobench.progress import LOG

    LOG.info(message)
    if bar is not None:
        bar.write(message)
