"""Sharded runs (torchrun, 2 CPU processes over gloo) equal a single-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent


def _env():
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e["OMP_NUM_THREADS"] = "1"
    return e


def test_two_processes_give_the_single_process_results(release, tmp_path):
    common = ["run", "--method", "tests.plugins.methods:SeededNoise", "--dataset", "epickitchens",
              "--data-root", str(release), "--zoo", "tiny", "--protocol", "egobench-v1", "--quiet",
              "--batch-size", "2"]
    one = subprocess.run([sys.executable, "-m", "egobench", *common, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=_env(), cwd=REPO, timeout=600)
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "egobench", *common, "--out", str(tmp_path / "two")],
        capture_output=True, text=True, env=_env(), cwd=REPO, timeout=600,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a = pd.read_parquet(tmp_path / "one" / "samples.parquet")
    b = pd.read_parquet(tmp_path / "two" / "samples.parquet")
    pd.testing.assert_frame_equal(a, b, rtol=1e-6, atol=1e-6)
    for p in (tmp_path / "one" / "images").iterdir():
        assert p.read_bytes() == (tmp_path / "two" / "images" / p.name).read_bytes()
    ma = json.loads((tmp_path / "one" / "metrics.json").read_text())["metrics"]
    mb = json.loads((tmp_path / "two" / "metrics.json").read_text())["metrics"]
    for name in ma:
        assert mb[name]["value"] == pytest.approx(ma[name]["value"], rel=1e-6, abs=1e-6), name
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["processes"] == 2 and manifest["state"] == "complete"
