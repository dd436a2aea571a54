"""The CUDA path (marked ``gpu``; skipped with a reason where torch sees no CUDA device).

What these tests hold a GPU run to, on the tiny zoo (real on-disk formats, random weights):

1. Every metric of ``egobench-v1`` scored under fp16 and bf16 autocast agrees with the same
   metric in fp32 within the tolerances in ``TOLERANCE`` (per sample and aggregate); the metrics
   that stay fp32 by design (FID / KID's Inception statistics, PSNR) give the identical number.
2. ``lego``, ``ip2p``, ``sdedit`` and ``proxedit`` run in fp16 on CUDA (``egobench-v1``'s
   generation precision) and give the same image, byte for byte, when run twice with the same seed.
3. A run sharded over two processes on one GPU equals the single-process run: with NCCL where
   NCCL allows two ranks on one device (it usually refuses: the test then says so and skips), and
   always with gloo (``EGOBENCH_DIST_BACKEND=gloo``), which only moves CPU objects.

``scripts/device-check.sh`` runs this module and collects what it measured: with
``EGOBENCH_DEVICE_REPORT=<file>`` set, each test appends one JSON line per measurement.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image

import protocols

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA device: torch.cuda.is_available() is False on this machine"),
]

REPO = Path(__file__).resolve().parent.parent
#: where these tests run (a module constant so that the test code itself can be dry-run on a CPU)
DEVICE = "cuda"
#: demo-split samples scored per dataset (the demo split has Ego4D and EPIC samples)
N_SCORED = 8
#: (rtol, atol) of a reduced-precision value against fp32: |x - x32| <= atol + rtol * |x32|.
#: fp16 keeps 10 mantissa bits (relative rounding 4.9e-4 per operation) and bf16 7 (3.9e-3); a
#: network's output accumulates many roundings, so the bounds are about 20x the single-operation
#: rounding, with an atol for the values near 0 (cosines in [-1, 1], LPIPS near 0.05-0.6).
TOLERANCE = {"fp16": (1e-2, 1e-2), "bf16": (8e-2, 5e-2)}
#: a captioning metric's number is a function of a discrete caption: where reduced precision flips a
#: beam-search choice the caption, hence the number, jumps (the tiny zoo's random captioners are
#: near ties everywhere). Its values are held to TOLERANCE on the samples whose caption is unchanged,
#: and the share of changed captions is reported, not bounded.


def _report(record: dict) -> None:
    path = os.environ.get("EGOBENCH_DEVICE_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")


def _v1():
    from egobench.protocol import load_protocol

    return load_protocol("egobench-v1")


def _score(precision: str, dataset: str) -> tuple[dict, dict, dict]:
    """(per-sample columns and captions, aggregate values, effective precision per column) of egobench-v1 at
    ``precision`` on the demo split's first samples, scoring each sample's input frame as the
    generated image (a real photo-like frame that differs from the target)."""
    from egobench.metrics.cache import FeatureCache
    from egobench.scorer import Scorer

    proto = _v1()
    proto = dataclasses.replace(proto, evaluation=dataclasses.replace(proto.evaluation, precision=precision))
    scorer = Scorer(proto, dataset, zoo="tiny", device=DEVICE, limit=N_SCORED, cache=FeatureCache(None))
    ids = [s.id for s in scorer.split]
    scorer.update(ids, [Image.open(s.input_path).convert("RGB") for s in scorer.split])
    ev = scorer.evaluation()
    per_sample = {c.name: ev.samples[c.name].to_numpy(dtype=np.float64) for c in scorer.columns
                  if c.metric.kind == "sample"}
    per_sample.update({k: ev.samples[k].to_numpy() for k in ev.samples.columns if k.endswith("_caption")})
    values = {name: info.get("value") for name, info in ev.metrics.items()}
    effective = {c.name: c.metric.effective_precision for c in scorer.columns}
    return per_sample, values, effective


@pytest.fixture(scope="module")
def fp32_scores():
    return {d: _score("fp32", d) for d in ("demo",)}


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_metrics_under_autocast_agree_with_fp32(fp32_scores, precision):
    rtol, atol = TOLERANCE[precision]
    for dataset, (ref_rows, ref_values, _) in fp32_scores.items():
        rows, values, effective = _score(precision, dataset)
        assert set(rows) == set(ref_rows) and set(values) == set(ref_values)
        for name in ref_values:
            a, b = values[name], ref_values[name]
            keep = np.ones(len(ref_rows[name]), dtype=bool) if name in ref_rows else None
            if f"{name}_caption" in ref_rows:
                keep = rows[f"{name}_caption"] == ref_rows[f"{name}_caption"]
            diff = np.abs(rows[name] - ref_rows[name]) if name in rows else None
            _report({"test": "autocast", "precision": precision, "dataset": dataset, "metric": name,
                     "effective_precision": effective.get(name), "fp32": b, "reduced": a,
                     "abs_diff": None if a is None or b is None else abs(a - b),
                     "max_sample_abs_diff": None if diff is None else float(diff.max()),
                     "max_sample_abs_diff_same_caption": None if diff is None or not keep.any()
                     else float(diff[keep].max()),
                     "changed_captions": None if keep is None else int((~keep).sum()),
                     "samples": None if keep is None else int(len(keep))})
            if effective.get(name, "fp32") == "fp32":
                # FID, KID and PSNR stay fp32 by design: the same computation, the same number
                assert a == b, f"{name} is documented to stay fp32 under {precision} but moved: {a} vs {b}"
                if name in rows:
                    np.testing.assert_array_equal(rows[name], ref_rows[name], err_msg=name)
                continue
            assert effective[name] == precision, (name, effective[name])
            if name not in rows:
                assert a == pytest.approx(b, rel=rtol, abs=atol), name
                continue
            assert np.isfinite(rows[name]).all(), name
            np.testing.assert_allclose(rows[name][keep], ref_rows[name][keep], rtol=rtol, atol=atol, err_msg=name)
            if keep.all():
                assert a == pytest.approx(b, rel=rtol, abs=atol), name


# ---------------------------------------------------------------------------
# Methods in fp16 on CUDA: the same seed gives the same image twice
# ---------------------------------------------------------------------------
LIMIT = 3


@pytest.fixture(scope="module")
def fp16_protocol(tmp_path_factory) -> Path:
    """egobench-v1 as shipped (fp16 generation), 4 sampling steps, PSNR only (the images are what is compared)."""
    data = yaml.safe_load((Path(protocols.__file__).parent / "egobench-v1.yaml").read_text(encoding="utf-8"))
    assert data["generation"]["precision"] == "fp16"
    data["generation"]["steps"] = 4
    data["metrics"] = [m for m in data["metrics"] if m["name"] == "psnr"]
    path = tmp_path_factory.mktemp("protocol") / "egobench-v1-fp16-4steps.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _run(out: Path, protocol: Path, method: str, *options: str) -> None:
    from egobench.cli import main

    args = ["run", "-m", method, "-d", "demo", "--protocol", str(protocol), "--limit", str(LIMIT),
            "--out", str(out), "--zoo", "tiny", "--device", DEVICE, "--quiet"]
    for o in options:
        args += ["-o", o]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("method, options", [
    ("lego", ()),
    ("ip2p", ()),
    ("sdedit", ()),
    ("proxedit", ("steps=4",)),
])
def test_methods_in_fp16_give_the_same_image_twice(tmp_path, fp16_protocol, method, options):
    import time

    t0 = time.perf_counter()
    _run(tmp_path / "a", fp16_protocol, method, *options)
    seconds = time.perf_counter() - t0
    _run(tmp_path / "b", fp16_protocol, method, *options)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    text = json.dumps(manifest)
    assert '"fp16"' in text, f"{method}: the manifest does not record fp16 generation"
    files = sorted((tmp_path / "a" / "images").rglob("*.png"))
    assert len(files) == LIMIT
    differing = [f.name for f in files
                 if f.read_bytes() != (tmp_path / "b" / "images" / f.relative_to(tmp_path / "a" / "images")).read_bytes()]
    pixels = np.stack([np.asarray(Image.open(f)) for f in files]).astype(np.float64)
    _report({"test": "fp16-generation", "method": method, "samples": LIMIT, "first_run_s": round(seconds, 3),
             "differing_images": len(differing), "pixel_std": float(pixels.std())})
    assert not differing, f"{method}: fp16 on CUDA gave different images for the same seed: {differing}"
    assert pixels.std() > 0, f"{method}: constant images (fp16 overflow to NaN clamped?)"


# ---------------------------------------------------------------------------
# Sharding on one GPU: two processes equal one
# ---------------------------------------------------------------------------
def _env(backend: str | None) -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e["OMP_NUM_THREADS"] = "1"
    e.pop("EGOBENCH_DIST_BACKEND", None)
    if backend:
        e["EGOBENCH_DIST_BACKEND"] = backend
    return e


def _sharded(tmp_path: Path, release: Path, backend: str) -> tuple[subprocess.CompletedProcess, Path, Path]:
    common = ["run", "--method", "tests.plugins.methods:SeededNoise", "--dataset", "epickitchens",
              "--data-root", str(release), "--zoo", "tiny", "--protocol", "egobench-v1", "--quiet",
              "--batch-size", "2", "--device", DEVICE]
    one_dir, two_dir = tmp_path / f"one-{backend}", tmp_path / f"two-{backend}"
    one = subprocess.run([sys.executable, "-m", "egobench", *common, "--out", str(one_dir)],
                         capture_output=True, text=True, env=_env(None), cwd=REPO, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "egobench", *common, "--out", str(two_dir)],
                         capture_output=True, text=True, env=_env(backend), cwd=REPO, timeout=600)
    return two, one_dir, two_dir


def _assert_same_run(one: Path, two: Path) -> None:
    import pandas as pd

    a = pd.read_parquet(one / "samples.parquet")
    b = pd.read_parquet(two / "samples.parquet")
    pd.testing.assert_frame_equal(a, b, rtol=1e-6, atol=1e-6)
    for p in (one / "images").iterdir():
        assert p.read_bytes() == (two / "images" / p.name).read_bytes(), p.name
    ma = json.loads((one / "metrics.json").read_text())["metrics"]
    mb = json.loads((two / "metrics.json").read_text())["metrics"]
    for name in ma:
        assert mb[name]["value"] == pytest.approx(ma[name]["value"], rel=1e-6, abs=1e-6), name
    manifest = json.loads((two / "manifest.json").read_text())
    assert manifest["processes"] == 2 and manifest["state"] == "complete"


@pytest.mark.parametrize("backend", ["nccl", "gloo"])
def test_two_processes_on_one_gpu_equal_one(tmp_path, release, backend):
    two, one_dir, two_dir = _sharded(tmp_path, release, backend)
    refused = backend == "nccl" and two.returncode != 0 and (
        "Duplicate GPU" in two.stderr or "ncclInvalidUsage" in two.stderr)
    _report({"test": "sharding-one-gpu", "backend": backend, "returncode": two.returncode,
             "nccl_refused_two_ranks_on_one_gpu": refused})
    if refused and torch.cuda.device_count() == 1:
        pytest.skip("NCCL refuses two ranks on the same GPU (ncclInvalidUsage: duplicate GPU); "
                    "run two GPUs for NCCL, or EGOBENCH_DIST_BACKEND=gloo on one (tested beside this)")
    assert two.returncode == 0, two.stderr[-3000:]
    _assert_same_run(one_dir, two_dir)
