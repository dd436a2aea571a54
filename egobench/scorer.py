"""A streaming scorer for training-time validation (torchmetrics style).

::

    scorer = egobench.Scorer("egobench-v1", "demo", zoo="tiny")
    for ids, images in val_batches:          # images: uint8 HWC arrays, PIL images or float CHW tensors in [0, 1]
        scorer.update(ids, images)
    print(scorer.compute())                  # {"egovlp": 0.61, ..., "fid": 123.4, ...}
    scorer.reset()

Each ``update`` scores its images at once with the protocol's metrics (per-sample
metrics keep one number per sample; set metrics such as FID and KID accumulate
their features), through the evaluator's own batch scoring, so ``compute()``
gives the numbers ``egobench evaluate`` gives on the same images saved losslessly:
per-sample rows and set features are put back in split order before aggregating,
whatever the order of the updates. Float images are mapped to 8 bits as the
``clamp`` value map does (``round(clamp(x, 0, 1) * 255)``); images are scored at
the size given (no resize to the protocol's output size, as ``evaluate``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .config import EVAL_BATCH_SIZE
from .errors import UserError


def to_uint8_image(image: Any, where: str = "image") -> np.ndarray:
    """uint8 (H, W, 3) from a uint8 HWC array, a PIL image, or a float tensor / array in [0, 1]
    (CHW or HWC). Values outside [0, 1] are clamped. A (3, H, 3) shape reads as CHW for a torch
    tensor and as HWC for a numpy array (each library's convention)."""
    from PIL import Image

    chw_first = type(image).__module__.startswith("torch")
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray) and image.dtype == np.uint8:
        arr = image
    else:
        import torch

        if not isinstance(image, (np.ndarray, torch.Tensor)):
            raise UserError(f"{where}: expected a uint8 array, a PIL image or a float tensor, got "
                            f"{type(image).__name__}")
        t = torch.as_tensor(image).detach().to("cpu")
        if t.dtype == torch.uint8:
            arr = t.numpy()
        else:
            if not t.is_floating_point():
                raise UserError(f"{where}: expected uint8 or float values in [0, 1], got {t.dtype}")
            t = t.to(torch.float32)
            if not torch.isfinite(t).all():
                raise UserError(f"{where}: NaN or infinite values")
            arr = (t.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    if arr.ndim == 3 and arr.shape[0] == 3 and (chw_first or arr.shape[-1] != 3):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise UserError(f"{where}: expected an RGB image (H, W, 3) or (3, H, W), got shape {tuple(arr.shape)}")
    return np.ascontiguousarray(arr)


class Scorer:
    """Score generated images of a split's samples as they come: ``update(ids, images)`` then
    ``compute()``. Mirrors what ``egobench evaluate`` computes (see the module docstring).

    ``metrics`` keeps only the named protocol columns (e.g. ``["psnr", "fid"]``, cheaper
    during training); ``limit`` takes the first N samples of the split.
    """

    def __init__(
        self,
        protocol: str | Any = "egobench-v1",
        dataset: str = "demo",
        data_root: str | os.PathLike | None = None,
        *,
        zoo: str = "auto",
        weights: dict[str, str] | Sequence[str] | None = None,
        device: str = "auto",
        metrics: Sequence[str] | None = None,
        limit: int | None = None,
        batch_size: int = EVAL_BATCH_SIZE,
        cache: Any = "default",
    ):
        from .data import load_split
        from .evaluator import build_metrics
        from .protocol import as_protocol
        from .runner import pick_device, preflight_artifacts, resolve_zoo
        from .weights import WeightStore, parse_weight_overrides

        if batch_size < 1:
            raise UserError(f"batch_size must be at least 1, got {batch_size}")
        self.protocol = as_protocol(protocol)
        if metrics is not None:
            names = [m.name for m in self.protocol.metrics]
            unknown = [m for m in metrics if m not in names]
            if unknown:
                raise UserError(f"protocol {self.protocol.name} has no metric {unknown[0]!r}; "
                                f"it has {', '.join(names)}")
        self.split = load_split(dataset, data_root, limit)
        self.dataset = dataset
        self.zoo = resolve_zoo(zoo, dataset)
        self.device = pick_device(device)
        self.store = WeightStore(zoo=self.zoo, overrides=parse_weight_overrides(weights))
        preflight_artifacts(self._scored_protocol(metrics), self.store, self.split)
        self.columns = build_metrics(self.protocol, self.store, self.device, only=metrics, cache=cache,
                                     split=self.split)
        self.batch_size = batch_size
        self._samples = {s.id: s for s in self.split}
        self._order = [s.id for s in self.split]
        self._needs = {n for c in self.columns for n in c.metric.needs}
        self.reset()

    def _scored_protocol(self, metrics: Sequence[str] | None) -> Any:
        import dataclasses

        if metrics is None:
            return self.protocol
        return dataclasses.replace(self.protocol, metrics=tuple(m for m in self.protocol.metrics if m.name in metrics))

    @property
    def comparable(self) -> bool:
        return not self.store.any_tiny and not any(s.meta.get("synthetic") for s in self.split)

    def reset(self) -> None:
        """Forget every update (set metrics' features included)."""
        for c in self.columns:
            if c.metric.kind == "set":
                c.metric.reset()
        self._ids: list[str] = []
        self._values: dict[str, list[float]] = {c.name: [] for c in self.columns}
        self._extras: dict[str, list[Any]] = {}
        self._status: list[str] = []
        self._error: list[str] = []

    def __len__(self) -> int:
        return len(self._ids)

    def update(self, sample_ids: Iterable[str], images: Iterable[Any]) -> None:
        """Score ``images`` as the generated frames of ``sample_ids`` (same length). Unknown ids and
        ids already scored since the last :meth:`reset` are refused, naming the id."""
        from .data.split import file_digest
        from .evaluator import _score_batch
        from .images import read_rgb
        from .metrics import MetricBatch

        ids = [str(i) for i in sample_ids]
        imgs = list(images) if not _is_batched(images) else [images[i] for i in range(len(images))]
        if len(ids) != len(imgs):
            raise UserError(f"update: {len(ids)} sample id(s) but {len(imgs)} image(s)")
        seen = set(self._ids)
        for sid in ids:
            if sid not in self._samples:
                raise UserError(f"update: unknown sample id {sid!r} (not in the {len(self._samples)} samples of "
                                f"split {self.split.name!r})")
            if sid in seen:
                raise UserError(f"update: sample id {sid!r} was already scored (call reset() to start over)")
            seen.add(sid)
        arrays = [to_uint8_image(img, f"update: image of {sid!r}") for sid, img in zip(ids, imgs)]
        for start in range(0, len(ids), self.batch_size):
            chunk = [self._samples[s] for s in ids[start : start + self.batch_size]]
            need_input = "input" in self._needs
            batch = MetricBatch(
                ids=[s.id for s in chunk],
                generated=arrays[start : start + len(chunk)],
                target=[read_rgb(s.target_path) for s in chunk],
                input=[read_rgb(s.input_path) for s in chunk] if need_input else [],
                description=[s.description for s in chunk],
                action=[s.action for s in chunk],
                domain=[str(s.meta.get("domain", s.dataset)) for s in chunk],
                target_keys=[file_digest(s.target_path) for s in chunk],
                input_keys=[file_digest(s.input_path) for s in chunk] if need_input else [],
            )
            _score_batch(batch, [("ok", "")] * len(chunk), self.columns, None,
                         self._values, self._extras, self._status, self._error)
            self._ids.extend(batch.ids)

    def evaluation(self) -> Any:
        """The full :class:`~egobench.evaluator.Evaluation` of the samples scored so far, rows and
        set features in split order (what ``evaluate`` would write to metrics.json)."""
        import pandas as pd

        from .evaluator import aggregate

        if not self._ids:
            raise UserError("compute: nothing scored yet (call update first)")
        pos = {sid: i for i, sid in enumerate(self._ids)}
        order = [sid for sid in self._order if sid in pos]
        idx = [pos[sid] for sid in order]
        df = pd.DataFrame({"sample_id": order, "status": [self._status[i] for i in idx],
                           "error": [self._error[i] for i in idx]})
        for c in self.columns:
            if c.metric.kind == "sample":
                df[c.name] = np.asarray(self._values[c.name], dtype=np.float64)[idx]
            else:  # split order, as an evaluation of the whole folder accumulates them
                try:
                    c.metric.load_states([c.metric.state()], order)
                except NotImplementedError:  # a set metric without shardable state: update order
                    pass
        for k in sorted(self._extras):
            col = self._extras[k] + [None] * (len(self._ids) - len(self._extras[k]))
            df[k] = [col[i] for i in idx]
        caches = {id(c.metric.cache): c.metric.cache for c in self.columns if c.metric.cache is not None}
        stats = {"hits": sum(c.hits for c in caches.values()), "misses": sum(c.misses for c in caches.values()),
                 "enabled": any(c.enabled for c in caches.values())}
        return aggregate(df, self.columns, stats)

    def compute(self, details: bool = False) -> dict[str, Any]:
        """Metric name -> value (as in metrics.json: unscaled); ``details=True``: name -> the full
        record (n, std for KID, notes, settings)."""
        metrics = self.evaluation().metrics
        return metrics if details else {name: info.get("value") for name, info in metrics.items()}


def _is_batched(images: Any) -> bool:
    """A single (N, 3, H, W) / (N, H, W, 3) tensor or array holding the whole batch."""
    shape = getattr(images, "shape", None)
    return shape is not None and len(shape) == 4
