"""kill -9 at many points of a run (generation, scoring, the target-side feature cache, the
run cache, the result files) never loses or changes a result: the rerun completes and equals a
clean run byte for byte, and every cache entry left behind loads (issue 13 "also cover")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from egobench.metrics.cache import FeatureCache
from tests.conftest import write_protocol


def _cmd(proto: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "egobench", "run", "-m", "input-copy", "-d", "demo", "-p", str(proto),
            "--limit", "8", "--batch-size", "1", "--eval-batch-size", "2", "--out", str(out), "--quiet"]


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["EGOBENCH_CACHE"] = str(cache)
    return env


def _count(folder: Path, pattern: str) -> int:
    return len(list(folder.rglob(pattern))) if folder.exists() else 0


def _cached(folder: Path) -> int:
    """Bytes in the cache's packs (> 0 once an entry is being written)."""
    return sum(p.stat().st_size for p in folder.rglob("*.egbpack")) if folder.exists() else 0


def test_sigkill_anywhere_then_resume_equals_clean_run(tmp_path):
    proto = write_protocol(tmp_path / "kill.yaml", ("psnr", "fid"), name="kill-test")
    clean = tmp_path / "clean"
    subprocess.run(_cmd(proto, clean), env=_env(tmp_path / "cache-clean"), check=True, capture_output=True,
                   timeout=600)

    out, cache = tmp_path / "killed", tmp_path / "cache-killed"
    # kill points: mid-generation, mid-scoring (run cache being written), and after the target-side
    # feature cache got entries (tests/test_faults.py kills at random points of an evaluation too)
    points = [
        ("generation", lambda: _count(out / "images", "*.png") >= 3),
        ("run cache", lambda: _cached(out / "cache") >= 1),
        ("target cache", lambda: _cached(cache) >= 1),
    ]
    killed_at = []
    for name, ready in points:
        p = subprocess.Popen(_cmd(proto, out), env=_env(cache), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 300
        while p.poll() is None and not ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            killed_at.append(name)
        p.wait()
        # whatever was left on disk is whole: every cache entry decodes (a record cut short by the
        # kill at the end of a pack is skipped, not damage)
        for root in (cache, out / "cache"):
            assert not FeatureCache(root).check()[1], root
    assert killed_at, "the run finished before any kill; the test proved nothing"
    subprocess.run(_cmd(proto, out), env=_env(cache), check=True, capture_output=True, timeout=600)

    a = pd.read_parquet(out / "samples.parquet")
    b = pd.read_parquet(clean / "samples.parquet")
    assert a["psnr"].tolist() == b["psnr"].tolist()
    ma = json.loads((out / "metrics.json").read_text())["metrics"]
    mb = json.loads((clean / "metrics.json").read_text())["metrics"]
    assert ma["fid"]["value"] == mb["fid"]["value"] and ma["psnr"]["value"] == mb["psnr"]["value"]
    imgs_a = {p.name: p.read_bytes() for p in (out / "images").iterdir()}
    imgs_b = {p.name: p.read_bytes() for p in (clean / "images").iterdir()}
    assert imgs_a == imgs_b
    assert not list(Path(out).rglob(".tmp-egobench-*"))
