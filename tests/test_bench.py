"""``egobench bench``: all six measurements come back finite on the tiny profile, and
the CLI prints them. Timings are never asserted (CI machines are noisy)."""

from __future__ import annotations

import json
import math
import time

import pytest
from click.testing import CliRunner

from egobench import bench as bench_mod
from egobench.cli import main
from egobench.errors import UserError

KEYS = ["naive", "cache", "overhead", "pipeline", "memory", "startup"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    t0 = time.perf_counter()
    rep = bench_mod.bench(
        "tiny", device="cpu", n=2, batch_size=2, mem_sizes=(2, 4), steps=1, repeats=1, threads=1,
        out=tmp_path_factory.mktemp("bench") / "bench.json", progress=False,
    )
    rep.environment["test_wall_s"] = time.perf_counter() - t0
    return rep


def test_tiny_bench_returns_six_finite_measurements(report):
    assert [m.key for m in report.measurements] == KEYS
    for m in report.measurements:
        if m.key == "pipeline" and not m.available:
            assert m.note == "not available yet" and m.status == "n/a"
            continue
        assert m.value is not None and math.isfinite(m.value), (m.key, m.value, m.note, m.details)
        assert m.status in ("pass", "miss")
        assert m.passed == m.goal.met(m.value)
    assert report["naive"].details["naive_s"] > 0 and report["naive"].details["egobench_s"] > 0
    # the cold run computed every target feature, the warm one none
    assert report["cache"].details["warm_cache"]["misses"] == 0
    assert report["cache"].details["warm_cache"]["hits"] == report["cache"].details["cold_cache"]["misses"] > 0
    # the naive pipeline computes what the evaluator computes
    for name, agree in report["naive"].details["agreement"].items():
        if "max_abs_diff" in agree:
            assert agree["max_abs_diff"] < 1e-4, (name, agree)
    runs = report["memory"].details["runs"]
    assert [r["n"] for r in runs] == [2, 4] and all(r["n_scored"] == r["n"] for r in runs)
    assert set(report.stages) >= {"decode", "fid", "lpips"}


def test_tiny_bench_writes_json(report, tmp_path):
    path = report.save(tmp_path / "r.json")
    data = json.loads(path.read_text())
    assert [m["key"] for m in data["measurements"]] == KEYS
    assert all(m["goal"]["text"] for m in data["measurements"])


def test_table_shows_ratio_goal_and_mark(report):
    table = report.table()
    for m in report.measurements:
        assert m.title in table and m.goal.text() in table
    assert "pass" in table or "miss" in table


def test_not_available_pipeline_is_not_a_pass(monkeypatch, tmp_path):
    monkeypatch.setattr(bench_mod, "lego_pipeline_status", lambda: (None, "lego.pipeline does not exist"))
    m = bench_mod._pipeline_measurement("tiny", "cpu", 1, 1, 1, tmp_path, False)
    assert m.value is None and m.status == "n/a" and m.passed is None
    assert "not available yet" in m.value_text()


def test_cli_prints_the_six_lines(report, monkeypatch, tmp_path):
    seen = {}

    def fake_bench(profile, **kwargs):
        seen.update(kwargs, profile=profile)
        if kwargs.get("out"):
            report.save(kwargs["out"])
        return report

    monkeypatch.setattr(bench_mod, "bench", fake_bench)
    out_json = tmp_path / "b.json"
    res = CliRunner().invoke(main, ["bench", "--profile", "tiny", "--n", "4", "--batch-size", "4",
                                    "--mem-sizes", "4,8", "--json", str(out_json), "--quiet",
                                    "--weights-dir", str(tmp_path / "w"), "--items", "metrics, memory"])
    assert res.exit_code == 0, res.output
    assert seen == {"profile": "tiny", "device": "auto", "n": 4, "batch_size": 4, "out": str(out_json),
                    "protocol": "egobench-v1", "mem_sizes": (4, 8), "progress": False,
                    "weights_dir": str(tmp_path / "w"), "items": ["metrics", "memory"]}
    for i, m in enumerate(report.measurements, 1):
        line = next(ln for ln in res.output.splitlines() if ln.startswith(f"{i}  "))
        assert m.title in line and m.goal.text() in line and m.status in line
    assert json.loads(out_json.read_text())["profile"] == "tiny"


def test_cli_rejects_bad_mem_sizes():
    res = CliRunner().invoke(main, ["bench", "--mem-sizes", "a,b"])
    assert res.exit_code == 2 and "--mem-sizes" in res.output


def test_bench_rejects_bad_arguments():
    with pytest.raises(bench_mod.UserError):
        bench_mod.bench("huge")
    with pytest.raises(bench_mod.UserError):
        bench_mod.bench("tiny", n=1)
    with pytest.raises(bench_mod.UserError):
        bench_mod.bench("tiny", mem_sizes=(8, 4))


def test_bench_items_skip_measurements_and_refuse_unknown_ones(tmp_path):
    with pytest.raises(UserError, match="unknown item"):
        bench_mod.bench("tiny", items=["metrics", "speed"], progress=False)
    rep = bench_mod.bench("tiny", items=["pipeline"], progress=False, workdir=tmp_path)
    assert [m.key for m in rep.measurements] == KEYS
    assert rep["pipeline"].available
    for key in ("naive", "cache", "overhead", "memory", "startup"):
        assert not rep[key].available and "skipped" in rep[key].value_text()


def test_startup_item_times_every_listing_command_in_a_fresh_process():
    rep = bench_mod.bench("tiny", items=["startup"], progress=False)
    m = rep["startup"]
    assert m.available and m.goal.unit == "s"
    secs = m.details["seconds"]
    assert set(secs) == {" ".join(c) for c in bench_mod.STARTUP_COMMANDS}
    assert m.value == max(secs.values()) > 0
    assert "--help" in m.summary and f"{m.value:.2f} s" in m.value_text()


def test_blip_spread_item_reports_the_draw_std_x100(tmp_path, monkeypatch):
    """Plumbing of the opt-in item (the captioning itself is tested in test_blip.py): it runs
    lego-official's BLIP columns only, with draws=3, and reports each column's draw_std x100."""
    import egobench.runner as runner_mod

    seen = {}

    class Fake:
        metrics = {"blip-b": {"draw_std": 0.012, "display_scale": 100.0},
                   "blip-l": {"draw_std": 0.034, "display_scale": 100.0}}

    def fake_run(method, dataset, protocol, **kw):
        seen["method"], seen["dataset"] = method, dataset
        seen["metrics"] = [(m.name, m.settings.get("draws"), m.settings.get("mode")) for m in protocol.metrics]
        return Fake()

    monkeypatch.setattr(runner_mod, "run", fake_run)
    m = bench_mod._blip_spread_measurement(3, tmp_path, False)
    assert seen["method"] == "input-copy" and seen["dataset"] == "demo"
    assert seen["metrics"] == [("blip-b", 3, "released"), ("blip-l", 3, "released")]
    assert m.value == pytest.approx(3.4) and m.details["std_x100"]["blip-b"] == pytest.approx(1.2)
    assert m.value_text() == "+-3.4000" and m.status == "" and "blip-spread" not in bench_mod.ITEMS
