"""Crashes at random points, concurrent runs, shared caches: nothing lost, nothing corrupt."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from tests.conftest import subprocess_env


def _args(release, out, protocol="egobench-v1"):
    return [sys.executable, "-m", "egobench", "run", "--method", "tests.plugins.methods:SlowCopy",
            "--dataset", "epickitchens", "--data-root", str(release), "--zoo", "tiny", "--protocol", protocol,
            "--quiet", "--batch-size", "1", "--out", str(out)]


def _assert_images_complete(run_dir: Path) -> None:
    for p in (run_dir / "images").rglob("*"):
        if p.is_file() and not p.name.startswith(".tmp-egobench-"):
            assert p.stat().st_size > 0, p
            with Image.open(p) as im:
                im.load()  # a half-written image would fail here


def test_sigkill_at_random_points_then_resume_equals_uninterrupted(release, tmp_path):
    ref = subprocess.run(_args(release, tmp_path / "ref"), env=subprocess_env(EGOBENCH_TEST_SLEEP="0.3"),
                         capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    rng = random.Random(1234)
    out = tmp_path / "killed"
    kills = 0
    for _ in range(5):
        proc = subprocess.Popen(_args(release, out), env=subprocess_env(EGOBENCH_TEST_SLEEP="0.3"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 6.0))  # start-up, generation or evaluation
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        _assert_images_complete(out)
    assert kills >= 3
    final = subprocess.run(_args(release, out), env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    a = pd.read_parquet(tmp_path / "ref" / "samples.parquet")
    b = pd.read_parquet(out / "samples.parquet")
    pd.testing.assert_frame_equal(a, b)
    ma = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    mb = json.loads((out / "metrics.json").read_text())
    assert ma == mb
    assert not list(out.rglob(".tmp-egobench-*"))


def test_second_run_on_the_same_directory_is_refused_while_the_first_runs(release, tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(_args(release, out), env=subprocess_env(EGOBENCH_TEST_SLEEP="1.0"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (out / ".lock").exists() and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        second = subprocess.run(_args(release, out), env=subprocess_env(), capture_output=True, text=True, timeout=600)
        assert second.returncode == 2
        assert "another egobench process is using this run directory" in second.stderr
        assert second.stderr.count("\n") == 1
    finally:
        first.kill()
        first.wait()


def test_concurrent_runs_share_the_feature_cache_without_corrupting_it(release, tmp_path):
    from egobench.metrics.cache import FeatureCache

    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen(_args(release, tmp_path / f"r{i}"), env=subprocess_env(EGOBENCH_CACHE=str(cache)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    whole, damaged = FeatureCache(cache).check()
    assert whole and not damaged
    assert not list(cache.rglob(".tmp-egobench-*"))
    a = pd.read_parquet(tmp_path / "r0" / "samples.parquet")
    b = pd.read_parquet(tmp_path / "r1" / "samples.parquet")
    cols = [c for c in a.columns if c not in ("output",)]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_damaged_cache_entry_is_recomputed(tmp_path):
    from egobench.metrics.cache import FeatureCache

    c = FeatureCache(tmp_path)
    c.put("ns", "abcd", np.arange(4.0))
    c.close()
    path = next(tmp_path.rglob("*.egbpack"))
    path.write_bytes(path.read_bytes()[:-3] + b"bad")  # the record's checksum no longer matches
    c = FeatureCache(tmp_path)
    calls = []
    out = c.get_or_compute("ns", ["abcd"], lambda idx: calls.append(idx) or [np.ones(4)])
    assert calls == [[0]] and np.array_equal(out[0], np.ones(4))
    assert np.array_equal(FeatureCache(tmp_path).get("ns", "abcd"), np.ones(4))
