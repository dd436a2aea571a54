"""Shared fixtures: a small LEGO-layout release built on the fly, a tiny zoo."""

from __future__ import annotations

import json
import os
from pathlib import Path

import egobench._compat as _compat

_compat.ensure_torchvision()  # before anything imports torchvision

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

# The tiny zoo's random weights produce denormal floats that make CPU kernels
# crawl (LPIPS 10x slower); flushing them changes only values below ~1e-38.
torch.set_flush_denormal(True)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _frame(rng: np.random.Generator, w: int, h: int, shift: int) -> Image.Image:
    base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)
    arr = np.array(img)
    arr[h // 3 : h // 3 + 20, 10 + shift : 40 + shift] = [230, 40, 40]
    return Image.fromarray(arr)


def make_release(root: Path, n_per: int = 3, seed: int = 0) -> Path:
    """Write a small release in the official LEGO layout (both sub-datasets)."""
    rng = np.random.default_rng(seed)
    for folder, prefix, size in (("ego4d.fho", "ego4d", (64, 48)), ("epickitchen", "epickitchen", (80, 45))):
        split: dict = {}
        meta: dict = {}
        for i in range(n_per):
            clip = f"{prefix}clip{i // 2}"
            action = f"{prefix}_act{i}"
            inp, tgt = f"{clip}_{100 + i:010d}.jpg", f"{clip}_{200 + i:010d}.jpg"
            d = root / "EgoGen" / folder / "val" / clip / action
            g = root / "EgoGen" / folder / "val_gt_for_metric" / clip / action
            d.mkdir(parents=True, exist_ok=True)
            g.mkdir(parents=True, exist_ok=True)
            _frame(rng, *size, 0).save(d / inp, quality=95)
            t = _frame(rng, *size, 15)
            t.save(d / tgt, quality=95)
            t.save(g / tgt, quality=95)
            label = f"#C C opens drawer {i}" if prefix == "ego4d" else f"open drawer {i}"
            split.setdefault(clip, {})[action] = {
                "image_0": f"{clip}/{action}/{inp}",
                "image_1": f"{clip}/{action}/{tgt}",
                "action": label,
                "llava_forecast_finetune": f"The person pulls the drawer <{i}> & looks inside.",
            }
            meta[clip] = {"height": size[1] * 4, "width": size[0] * 4}
        (root / f"{prefix}_val.json").write_text(json.dumps(split, indent=1))
        (root / f"{prefix}_metadata.json").write_text(json.dumps(meta))
    return root


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return make_release(tmp_path / "lego_release")


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny-zoo")
    os.environ["EGOBENCH_TINY_ZOO"] = str(root)
    return root


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch, tiny_zoo):
    monkeypatch.delenv("EGOBENCH_DATA", raising=False)
    monkeypatch.delenv("EGOBENCH_WEIGHTS", raising=False)
    monkeypatch.setenv("EGOBENCH_TINY_ZOO", str(tiny_zoo))


@pytest.fixture(autouse=True)
def _feature_cache(monkeypatch, tmp_path_factory):
    """Each test session gets its own feature cache (never the user's)."""
    monkeypatch.setenv("EGOBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "feature-cache"))


SMALL_PROTOCOL = """
name: {name}
version: "1.0"
generation:
  seed: 0
  seed_policy: per-sample
  output_format: png
  value_map: clamp
  output_layout: flat
metrics:
"""


def write_protocol(path: Path, metrics=("psnr",), name: str = "small") -> Path:
    """A protocol file scoring only ``metrics`` (fast tests of the run machinery)."""
    text = SMALL_PROTOCOL.format(name=name) + "".join(f"  - name: {m}\n    metric: {m}\n" for m in metrics)
    path.write_text(text)
    return path
