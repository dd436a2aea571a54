"""The dataset registry: ``ego4d``, ``epickitchens`` and the embedded ``demo``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import DataError, UserError
from ..registry import Registry
from .lego_release import LAYOUTS, load_release
from .split import Split

DatasetLoader = Callable[..., Split]
DATASETS: Registry[DatasetLoader] = Registry("dataset", entry_point_group="egobench.datasets")

DEMO_ROOT = Path(__file__).parent / "demo"


def _resolve_root(dataset: str, data_root: str | os.PathLike | None) -> Path:
    root = data_root or os.environ.get("EGOBENCH_DATA")
    if not root:
        prefix = LAYOUTS[dataset].prefix
        raise UserError(
            f"no data root for dataset '{dataset}': pass --data-root PATH or set EGOBENCH_DATA "
            f"(a LEGO release folder holding {prefix}_val.json and EgoGen/{LAYOUTS[dataset].folder}/val)"
        )
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: data root does not exist")
    return root


@DATASETS.register("ego4d")
def load_ego4d(data_root: str | os.PathLike | None = None) -> Split:
    """Ego4D FHO val split of the LEGO release (the paper's test set)."""
    return load_release(_resolve_root("ego4d", data_root), "ego4d")


@DATASETS.register("epickitchens")
def load_epickitchens(data_root: str | os.PathLike | None = None) -> Split:
    """EPIC-KITCHENS-100 val split of the LEGO release (the paper's test set)."""
    return load_release(_resolve_root("epickitchens", data_root), "epickitchens")


@DATASETS.register("demo")
def load_demo(data_root: str | os.PathLike | None = None) -> Split:
    """The embedded synthetic demo split: an Ego4D-like and an EPIC-like part."""
    root = Path(data_root) if data_root else DEMO_ROOT
    parts = [
        load_release(root, ds, name="demo", extra_meta={"synthetic": True})
        for ds in ("ego4d", "epickitchens")
    ]
    samples = [s for p in parts for s in p.samples]
    sources = [src for p in parts for src in p.sources]
    return Split("demo", samples, sources=sources, root=root)


def load_split(dataset: str, data_root: str | os.PathLike | None = None, limit: int | None = None) -> Split:
    """Load a registered dataset's test split (optionally the first ``limit`` samples)."""
    loader = DATASETS.get(dataset)
    split = loader(data_root=data_root)
    if limit is not None:
        if limit < 1:
            raise UserError(f"--limit must be at least 1, got {limit}")
        split = split.head(limit)
    return split
