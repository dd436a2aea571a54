"""The committed demo split is exactly what scripts/build_demo_split.py builds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "build_demo_split.py"
COMMITTED = REPO / "egobench" / "data" / "demo"
SUBDIRS = {"ego4d": "ego4d.fho", "epickitchen": "epickitchen"}
JSON_FILES = [f"{d}_{kind}.json" for d in SUBDIRS for kind in ("val", "metadata")]
MAX_BYTES = 3 * 1024 * 1024


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo_build") / "demo"
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], check=True, capture_output=True, text=True)
    return out


def test_json_and_readme_byte_identical(rebuilt):
    for name in JSON_FILES + ["README.md"]:
        assert (rebuilt / name).read_bytes() == (COMMITTED / name).read_bytes(), name


def test_same_file_set(rebuilt):
    assert _files(rebuilt) == _files(COMMITTED)


def test_images_match_committed_pixels(rebuilt):
    jpgs = [f for f in _files(COMMITTED) if f.endswith(".jpg")]
    assert jpgs
    for rel in jpgs:
        with Image.open(COMMITTED / rel) as a, Image.open(rebuilt / rel) as b:
            assert a.format == b.format == "JPEG", rel
            assert a.size == b.size, rel
            pa = np.asarray(a.convert("RGB"), dtype=np.float64)
            pb = np.asarray(b.convert("RGB"), dtype=np.float64)
        mad = float(np.abs(pa - pb).mean())
        assert mad < 1.0, f"{rel}: mean abs diff {mad:.3f}"


@pytest.mark.parametrize("domain", sorted(SUBDIRS))
def test_layout_and_counts(domain):
    base = COMMITTED / "EgoGen" / SUBDIRS[domain]
    split = json.loads((COMMITTED / f"{domain}_val.json").read_text(encoding="utf-8"))
    meta = json.loads((COMMITTED / f"{domain}_metadata.json").read_text(encoding="utf-8"))
    width = {"ego4d": 341, "epickitchen": 456}[domain]
    pairs = [(clip, aid, e) for clip, acts in split.items() for aid, e in acts.items()]
    assert len(pairs) >= 12
    assert set(meta) == set(split)
    for clip, m in meta.items():
        assert m["height"] == 256 and m["width"] == width and m["synthetic"] is True, clip
    labels = set()
    for clip, aid, e in pairs:
        assert set(e) == {"image_0", "image_1", "action", "llava_forecast_finetune"}
        assert e["action"] and len(e["llava_forecast_finetune"]) > 30
        if domain == "ego4d":
            assert e["action"].startswith("#C C "), e["action"]
        else:
            assert not e["action"].startswith("#"), e["action"]
        labels.add(e["action"])
        for key in ("image_0", "image_1"):
            assert e[key].startswith(f"{clip}/{aid}/"), e[key]
        folder = base / "val" / clip / aid
        names = sorted(p.name for p in folder.iterdir())
        inp, tgt = Path(e["image_0"]).name, Path(e["image_1"]).name
        # the official metric code takes the first file in sorted order as the input
        assert names == [inp, tgt] and inp < tgt
        gt = base / "val_gt_for_metric" / clip / aid
        assert sorted(p.name for p in gt.iterdir()) == [tgt]
        assert (gt / tgt).read_bytes() == (folder / tgt).read_bytes()
        for name in names:
            with Image.open(folder / name) as im:
                assert im.size == (width, 256)
    assert len(labels) >= 10
    # nothing stray: every clip/action folder on disk is in the split
    on_disk = {(c.name, a.name) for c in (base / "val").iterdir() for a in c.iterdir()}
    assert on_disk == {(clip, aid) for clip, aid, _ in pairs}


def _zscore(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        x = np.asarray(im.convert("L"), dtype=np.float64)
    return (x - x.mean()) / x.std()


def test_pairs_differ_but_share_the_scene():
    """Input and target are the same scene with a visible change, not copies."""
    for domain, sub in SUBDIRS.items():
        split = json.loads((COMMITTED / f"{domain}_val.json").read_text(encoding="utf-8"))
        for acts in split.values():
            for e in acts.values():
                root = COMMITTED / "EgoGen" / sub / "val"
                a, b = (_zscore(root / e[k]) for k in ("image_0", "image_1"))
                # brightness-normalised, so "switch on the light" counts as the same scene
                changed = float((np.abs(a - b) > 0.75).mean())
                assert 0.02 < changed < 0.5, (e["image_1"], changed)


def test_folder_size_limit():
    total = sum((COMMITTED / f).stat().st_size for f in _files(COMMITTED))
    assert total < MAX_BYTES, total
