"""All eight metrics through the run engine, under both protocols (tiny zoo)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import egobench

EIGHT = ["egovlp", "egovlp-plus", "clip", "fid", "psnr", "lpips", "blip-b", "blip-l"]
#: egobench-v1 adds KID (set metric) after FID; lego-official has the paper's eight columns
COLUMNS = {"lego-official": EIGHT, "egobench-v1": EIGHT[:4] + ["kid"] + EIGHT[4:]}
SET_METRICS = {"fid", "kid"}


@pytest.mark.parametrize("protocol", ["lego-official", "egobench-v1"])
def test_input_copy_on_demo_reports_all_eight_metrics_finite(protocol, tmp_path):
    res = egobench.run("input-copy", "demo", protocol=protocol, limit=6, out=tmp_path / "r", progress=False)
    assert list(res.metrics) == COLUMNS[protocol]
    for name in COLUMNS[protocol]:
        v = res.metrics[name]["value"]
        assert v is not None and math.isfinite(v), (name, v)
    df = pd.read_parquet(res.run_dir / "samples.parquet")
    for name in COLUMNS[protocol]:
        if name not in SET_METRICS:
            assert df[name].notna().all()
    # captions are stored per sample
    assert df["blip-b_caption"].map(lambda c: isinstance(c, str)).all()
    assert res.metrics["fid"]["n"] == 6
    table = res.table()
    assert "blip-l" in table and "egovlp-plus" in table


def test_batch_size_invariance_of_every_metric(tmp_path, monkeypatch):
    monkeypatch.setenv("EGOBENCH_NO_CACHE", "1")
    base = egobench.run("tests.plugins.methods:SlowCopy", "demo", protocol="egobench-v1", limit=7,
                        out=tmp_path / "gen", progress=False, batch_size=7)
    one = egobench.evaluate(base.run_dir / "images", "demo", protocol="egobench-v1", limit=7,
                            out=tmp_path / "b1", progress=False, batch_size=1)
    a = pd.read_parquet(base.run_dir / "samples.parquet")
    b = pd.read_parquet(one.run_dir / "samples.parquet")
    for name in COLUMNS["egobench-v1"]:
        if name in SET_METRICS:
            assert one.metrics[name]["value"] == pytest.approx(base.metrics[name]["value"], rel=1e-6, abs=1e-6)
            continue
        np.testing.assert_allclose(a[name].to_numpy(), b[name].to_numpy(), rtol=1e-6, atol=1e-6, err_msg=name)
    assert list(a["blip-b_caption"]) == list(b["blip-b_caption"])


def test_second_method_computes_no_target_side_features(tmp_path, monkeypatch):
    monkeypatch.setenv("EGOBENCH_CACHE", str(tmp_path / "fresh-cache"))
    first = egobench.run("input-copy", "demo", protocol="egobench-v1", limit=4, out=tmp_path / "a", progress=False)
    assert first.evaluation.cache["misses"] > 0
    second = egobench.run("oracle", "demo", protocol="egobench-v1", limit=4, out=tmp_path / "b", progress=False)
    assert second.evaluation.cache == {"hits": first.evaluation.cache["misses"], "misses": 0, "enabled": True}
    saved = json.loads((second.run_dir / "manifest.json").read_text())
    assert saved["feature_cache"]["misses"] == 0


def test_metrics_listing_says_needs_and_direction():
    from click.testing import CliRunner

    from egobench.cli import main

    out = CliRunner().invoke(main, ["metrics"]).output
    assert "fid" in out and "set" in out and "lower is better" in out
    assert "egovlp-plus" in out and "generated+target+input" in out
