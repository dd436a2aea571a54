"""Strange frames and misbehaving methods: a clear error or a recorded failure, never a silent zero."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import egobench
from egobench.errors import UserError
from egobench.images import BadImageError, read_rgb
from egobench.methods import Method, load_rgb


def _first_target(release):
    data = json.loads((release / "ego4d_val.json").read_text())
    clip = sorted(data)[0]
    act = sorted(data[clip])[0]
    name = data[clip][act]["image_1"].split("/")[-1]
    return release / "EgoGen/ego4d.fho/val_gt_for_metric" / clip / act / name


def _variant(kind: str, rgb: np.ndarray, path):
    im = Image.fromarray(rgb)
    if kind == "grayscale":
        im.convert("L").save(path, format="JPEG")
    elif kind == "rgba":
        im.convert("RGBA").save(path, format="PNG")
    elif kind == "16bit":
        g = (np.asarray(im.convert("L"), dtype=np.uint16) * 257)
        Image.fromarray(g).save(path, format="PNG")
    elif kind == "cmyk":
        im.convert("CMYK").save(path, format="JPEG")
    elif kind == "exif-rotated":
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 on display
        im.transpose(Image.Transpose.ROTATE_90).save(path, format="JPEG", exif=exif)
    elif kind == "palette":
        im.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(path, format="PNG")


@pytest.mark.parametrize("kind", ["grayscale", "rgba", "16bit", "cmyk", "exif-rotated", "palette"])
def test_odd_but_valid_frames_are_decoded_sensibly(kind, tmp_path):
    rng = np.random.default_rng(0)
    rgb = np.kron(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), np.ones((8, 8, 1), dtype=np.uint8))
    p = tmp_path / f"f.{kind}"
    _variant(kind, rgb, p)
    out = read_rgb(p)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    if kind == "exif-rotated":
        assert out.shape[:2] == rgb.shape[:2]  # orientation applied
    if kind == "16bit":
        ref = np.asarray(Image.fromarray(rgb).convert("L"))
        assert np.abs(out[..., 0].astype(int) - ref).max() <= 1  # not clipped to white
    if kind in ("rgba", "palette"):
        assert np.abs(out.astype(int) - rgb).mean() < 8


@pytest.mark.parametrize("kind", ["zero-byte", "truncated", "text"])
def test_broken_frames_are_named(kind, tmp_path):
    p = tmp_path / "x.jpg"
    Image.new("RGB", (32, 32), (9, 9, 9)).save(p)
    if kind == "zero-byte":
        p.write_bytes(b"")
    elif kind == "truncated":
        p.write_bytes(p.read_bytes()[:100])
    else:
        p.write_text("hello")
    with pytest.raises(BadImageError, match=str(p)):
        read_rgb(p)


def test_unicode_and_spaces_in_paths(release, tmp_path):
    root = tmp_path / "dätä ünd spaces" / "LEGO release"
    shutil.copytree(release, root)
    res = egobench.run("input-copy", "ego4d", protocol="egobench-v1", data_root=root, zoo="tiny",
                       out=tmp_path / "rün dir", progress=False)
    assert all(math.isfinite(v) for v in pd.read_parquet(res.run_dir / "samples.parquet")["psnr"])


class RaisesOnOne(Method):
    name = "raises-on-one"

    def generate(self, samples, seeds):
        if any(s.id.endswith("act1") for s in samples):
            raise ValueError("boom on act1")
        return [load_rgb(s.input_path) for s in samples]


class WrongCount(Method):
    name = "wrong-count"

    def generate(self, samples, seeds):
        return [load_rgb(s.input_path) for s in samples][:-1] if len(samples) > 1 else []


class WrongShape(Method):
    name = "wrong-shape"

    def generate(self, samples, seeds):
        return [np.zeros((5, 7), dtype=np.float32) for _ in samples]


class Infinite(Method):
    name = "infinite"

    def generate(self, samples, seeds):
        return [np.full((8, 8, 3), np.inf, dtype=np.float32) for _ in samples]


@pytest.mark.parametrize(
    "cls, expect",
    [(RaisesOnOne, "raised ValueError: boom on act1"), (WrongCount, "returned 0 images for 1 samples"),
     (WrongShape, "expected an image of 3 dims"), (Infinite, "NaN or infinite")],
)
def test_misbehaving_methods_are_recorded_per_sample(cls, expect, release, tmp_path, monkeypatch):
    from egobench import runner

    monkeypatch.setattr(runner, "resolve_method", lambda name: cls)
    res = egobench.run(cls.name, "ego4d", protocol="egobench-v1", data_root=release, zoo="tiny",
                       out=tmp_path / "r", progress=False, batch_size=3)
    df = pd.read_parquet(res.run_dir / "samples.parquet")
    failed = df[df["status"] == "failed"]
    assert len(failed) >= 1
    assert failed["error"].str.contains(expect, regex=False).all(), failed["error"].tolist()
    assert failed["psnr"].isna().all()
    if cls is RaisesOnOne:  # only the bad sample is lost
        assert len(failed) == 1 and (df["status"] == "ok").sum() == 2
        rec = json.loads(next((res.run_dir / "failures").glob("*.json")).read_text())
        assert "Traceback" in rec["traceback"]


def test_duplicate_sample_ids_are_refused(release):
    p = release / "ego4d_val.json"
    data = json.loads(p.read_text())
    clip = sorted(data)[0]
    act = sorted(data[clip])[0]
    data[clip][act.replace("_", "-")] = data[clip][act]  # sanitises to the same id
    data[clip][act.replace("_", " ")] = data[clip][act]
    p.write_text(json.dumps(data))
    with pytest.raises(UserError, match="same sample id"):
        egobench.load_split("ego4d", release)


def test_wrong_types_in_split_json(release):
    p = release / "ego4d_val.json"
    data = json.loads(p.read_text())
    clip = sorted(data)[0]
    act = sorted(data[clip])[0]
    data[clip][act]["action"] = 42
    p.write_text(json.dumps(data))
    with pytest.raises(UserError, match="'action' must be a non-empty string"):
        egobench.load_split("ego4d", release)
