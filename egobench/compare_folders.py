"""``egobench compare DIR_A DIR_B``: score two folders of paired images against each other.

torch-fidelity's ``--input1/--input2`` habit, with pairs: every image of
``DIR_A`` (the reference, which plays the *target* side) is matched with the
image of ``DIR_B`` (which plays the *generated* side) at the same relative path
without the extension (``a/x.png`` pairs with ``b/x.jpg``). Two files of one
folder that differ only by extension are an error naming both. Images on one
side only are counted, listed in the result and left out.

The metrics are the protocol's that need nothing but the two images: PSNR,
LPIPS, CLIP image similarity, FID and KID between the two sets, and EgoVLP when
``dataset`` (``ego4d`` or ``epickitchens``) says which checkpoint to use.
Metrics that need a text or the input frame (EgoVLP+, BLIP) are skipped and
named in the result. Scoring goes through the evaluator (``evaluate_samples``),
so every number is computed exactly as ``egobench evaluate`` computes it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from .config import EVAL_BATCH_SIZE
from .errors import UserError

#: what a compared pair can give a metric
PAIR_NEEDS = frozenset({"generated", "target"})
#: metrics that also need to know the domain (for the checkpoint choice)
DOMAIN_METRICS = frozenset({"egovlp"})
DOMAINS = ("ego4d", "epickitchens")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class Comparison:
    """Scores of ``b`` against ``a`` on the matched pairs."""

    a: Path
    b: Path
    protocol: str
    metrics: dict[str, dict[str, Any]]
    pairs: pd.DataFrame  # one row per matched pair: key, file_a, file_b, status, per-sample scores
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # metric column -> why it was not scored
    zoo: str = "real"

    @property
    def n_pairs(self) -> int:
        return len(self.pairs)

    def counts_line(self) -> str:
        return (f"{self.n_pairs} matched pair(s); unmatched: {len(self.only_a)} only in {self.a}, "
                f"{len(self.only_b)} only in {self.b}")

    def table(self) -> str:
        from .evaluator import NOT_COMPARABLE, format_value, metric_heads

        heads = metric_heads(self.metrics)
        cells = []
        for info in self.metrics.values():
            text = format_value(info)
            if info.get("std") is not None and text != "n/a":
                text += f" ± {info['std'] * info.get('display_scale', 1.0):.2f}"
            cells.append(text)
        widths = [max(len(h), len(c)) for h, c in zip(heads, cells)]
        lines = [self.counts_line(),
                 "  ".join(h.ljust(w) for h, w in zip(heads, widths)),
                 "  ".join(c.ljust(w) for c, w in zip(cells, widths))]
        failed = int((self.pairs["status"] != "ok").sum()) if len(self.pairs) else 0
        if failed:
            lines.append(f"{failed} pair(s) not scored (unreadable image in {self.b}); see the report's pairs")
        if self.skipped:
            lines.append("skipped: " + "; ".join(f"{k} ({v})" for k, v in self.skipped.items()))
        if self.zoo == "tiny":
            lines.append(NOT_COMPARABLE)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        pairs = self.pairs.astype(object).where(self.pairs.notna(), None)
        return {
            "a": str(self.a), "b": str(self.b), "protocol": self.protocol, "zoo": self.zoo,
            "n_pairs": self.n_pairs, "n_only_a": len(self.only_a), "n_only_b": len(self.only_b),
            "only_a": self.only_a, "only_b": self.only_b, "skipped": self.skipped,
            "metrics": self.metrics, "pairs": pairs.to_dict(orient="records"),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }  # fmt: skip


def index_folder(folder: Path) -> dict[str, Path]:
    """Image files under ``folder`` by relative path without extension (POSIX separators).
    Two files with the same key (``x.png`` and ``x.jpg``) are an error naming both."""
    found: dict[str, Path] = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            p = Path(root) / name
            if p.suffix.lower() not in IMAGE_EXTS or name.startswith("."):
                continue
            key = str(PurePosixPath(p.relative_to(folder).with_suffix("").as_posix()))
            if key in found:
                raise UserError(f"ambiguous pair: {found[key]} and {p} both match '{key}'; keep one of them")
            found[key] = p
    return found


def select_metrics(proto: Any, dataset: str | None) -> tuple[list[str], dict[str, str]]:
    """(columns to score, skipped column -> reason) for image pairs."""
    from .metrics import METRICS

    keep, skipped = [], {}
    for spec in proto.metrics:
        cls = METRICS.get(spec.metric)
        extra = sorted(set(cls.needs) - PAIR_NEEDS)
        if extra:
            skipped[spec.name] = f"needs {'+'.join(extra)}"
        elif cls.needs_split:
            skipped[spec.name] = "needs the split's labels (scores a run of a dataset, not a folder pair)"
        elif spec.metric in DOMAIN_METRICS and dataset is None:
            skipped[spec.name] = "needs --dataset ego4d|epickitchens for its checkpoint"
        else:
            keep.append(spec.name)
    return keep, skipped


def compare(
    a: str | os.PathLike,
    b: str | os.PathLike,
    *,
    protocol: str | Any = "egobench-v1",
    dataset: str | None = None,
    zoo: str = "real",
    weights: dict[str, str] | list[str] | None = None,
    device: str = "auto",
    batch_size: int = EVAL_BATCH_SIZE,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> Comparison:
    """Score the images of ``b`` against those of ``a`` paired by relative path (see the module
    docstring); ``out`` writes the result as JSON. Mirrors ``egobench compare``."""
    from .data.split import Sample
    from .evaluator import build_metrics, evaluate_samples
    from .metrics import METRICS
    from .progress import Progress
    from .protocol import as_protocol
    from .runner import pick_device
    from .weights import WeightStore, parse_weight_overrides

    # 1. check inputs before anything heavy
    dir_a, dir_b = Path(a), Path(b)
    for d in (dir_a, dir_b):
        if not d.is_dir():
            raise UserError(f"{d}: folder does not exist")
    if dataset is not None and dataset not in DOMAINS:
        raise UserError(f"--dataset {dataset!r}: compare needs a domain for EgoVLP's checkpoint, "
                        f"one of {', '.join(DOMAINS)}")
    if zoo not in ("real", "tiny"):
        raise UserError(f"unknown zoo '{zoo}'; use real or tiny")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    proto = as_protocol(protocol)

    # 2. pair the files
    files_a, files_b = index_folder(dir_a), index_folder(dir_b)
    keys = sorted(set(files_a) & set(files_b))
    only_a = sorted(set(files_a) - set(files_b))
    only_b = sorted(set(files_b) - set(files_a))
    if not keys:
        raise UserError(f"no image pairs: {len(files_a)} image(s) in {dir_a}, {len(files_b)} in {dir_b}, none at "
                        "the same relative path (extension ignored)")

    # 3. metrics and their weights
    names, skipped = select_metrics(proto, dataset)
    if not names:
        raise UserError(f"protocol {proto.name} has no metric that scores image pairs (skipped: {', '.join(skipped)})")
    store = WeightStore(zoo=zoo, overrides=parse_weight_overrides(weights))
    domains = [dataset] if dataset else []
    for i, spec in enumerate(proto.metrics):
        if spec.name in names:
            cls = METRICS.get(spec.metric)
            settings = cls.parse_settings(spec.settings, f"{proto.source}: metrics[{i}].settings")
            for art in cls.artifacts_for(settings, domains):
                store.resolve(art)  # MissingArtifactError: one line naming the command that fetches it
    device = pick_device(device)
    columns = build_metrics(proto, store, device, only=names)

    # 4. score through the evaluator: A plays the target, B the generated image
    samples = [Sample(id=k, dataset=dataset or "folders", input_path=files_a[k], target_path=files_a[k],
                      action="", meta={"domain": dataset or "folders"}) for k in keys]
    with Progress(len(samples), "compare", bar=progress, log=None) as tick:
        evaluation = evaluate_samples(samples, lambda s: files_b[s.id], columns, batch_size=batch_size,
                                      progress=tick)
    pairs = evaluation.samples.rename(columns={"sample_id": "key"})
    pairs.insert(1, "file_a", [str(files_a[k]) for k in keys])
    pairs.insert(2, "file_b", [str(files_b[k]) for k in keys])
    result = Comparison(dir_a, dir_b, proto.name, evaluation.metrics, pairs, only_a, only_b, skipped,
                        zoo="tiny" if store.any_tiny else "real")
    if out is not None:
        from .io import atomic_write_json

        atomic_write_json(Path(out), _strict(json.loads(json.dumps(result.to_dict(), default=_jsonable))))
    return result


def _strict(value: Any) -> Any:
    """Plain JSON: non-finite floats (PSNR of identical images) become the strings "inf" / "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)
