"""``egobench bench``: all six measurements come back finite on the tiny profile, the naive pipeline (the
reference libraries) agrees with the evaluator, the forward hooks see the metrics' models, and the command
prints every ratio next to its goal. Timings are never asserted (CI machines are noisy)."""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from egobench.errors import UserError
from egobench_bench import BenchOptions, bench, extras, naive, pipeline
from egobench_bench import run as run_mod
from egobench_bench.cli import bench_cmd
from egobench_bench.report import GOALS, ITEMS, Goal, Measurement

KEYS = ["naive", "cache", "overhead", "pipeline", "memory", "startup"]
#: naive vs evaluator. Per-sample: float32 vs float64 rounding. FID: torch-fidelity's statistics from
#: float64 features and eigenvalues of S_t S_g against egobench-v1's exact SVD trace from float32
#: features (relative). KID: the same subsets, float64 vs float32 features (absolute, KID is near 0 here).
PER_SAMPLE_TOL, FID_REL_TOL, KID_ABS_TOL = 1e-4, 1e-3, 1e-5


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return bench(BenchOptions(profile="tiny", device="cpu", n=2, batch_size=2, mem_sizes=(2, 4), steps=1, repeats=1,
                              threads=1, out=str(tmp_path_factory.mktemp("bench") / "bench.json"), quiet=True))


def test_tiny_bench_returns_six_finite_measurements(report):
    assert [m.key for m in report.measurements] == KEYS
    for m in report.measurements:
        if m.key == "pipeline" and not m.available:
            assert m.note == "not available yet" and m.status == "n/a"
            continue
        assert m.value is not None and math.isfinite(m.value), (m.key, m.value, m.note, m.details)
        assert m.status == ("pass" if m.goal.met(m.value) else "miss")
    assert report["naive"].details["naive_s"] > 0 and report["naive"].details["egobench_s"] > 0
    # the cold run computed every target feature, the warm one none
    assert report["cache"].details["warm_cache"]["misses"] == 0
    assert report["cache"].details["warm_cache"]["hits"] == report["cache"].details["cold_cache"]["misses"] > 0
    mem = report["memory"].details  # the real run, ticked after each batch: 2 samples, then 4
    assert [t[1] for t in mem["ticks"]] == [2, 4, -1] and mem["n_scored"] == 4 and mem["weights"]["zoo"] == "tiny"
    assert set(report.stages) >= {"decode", "fid", "lpips"}


def test_naive_pipeline_computes_what_the_evaluator_computes(report):
    agree = report["naive"].details["agreement"]
    columns = list(report["overhead"].details["per_metric"])
    assert set(agree) == set(columns)  # every column, per-sample and set metrics alike
    for name, a in agree.items():
        if name == "fid":
            assert a["ours"] > 0 and a["rel_diff"] < FID_REL_TOL, a
        elif name == "kid":
            assert a["abs_diff"] < KID_ABS_TOL, a
        else:
            assert a["max_abs_diff"] < PER_SAMPLE_TOL, (name, a)
    assert agree["blip-b"]["captions_equal"] == agree["blip-l"]["captions_equal"] == "2/2"


def test_forward_hooks_time_each_metrics_models_inside_the_evaluator(report):
    d = report["overhead"].details
    per = d["per_metric"]
    for name in ("egovlp", "egovlp-plus", "clip", "fid", "lpips", "blip-b", "blip-l"):
        assert 0 < per[name]["forward_s"] <= per[name]["evaluator_s"], (name, per[name])
    assert per["psnr"]["forward_s"] == 0  # no model: all of PSNR is harness time
    assert d["forwards_s"] == pytest.approx(sum(p["forward_s"] for p in per.values()))
    assert report["overhead"].value == pytest.approx(d["egobench_s"] / d["forwards_s"])


@pytest.mark.parametrize(("key", "value", "status"), [
    ("naive", 3.0, "pass"), ("naive", 2.99, "miss"), ("cache", 1.79, "miss"), ("overhead", 1.10, "pass"),
    ("overhead", 1.11, "miss"), ("memory", 100.0, "pass"), ("memory", 100.5, "miss"), ("startup", 1.01, "miss"),
    ("naive", None, "n/a"), ("memory", float("nan"), "n/a"), ("blip-spread", 2.0, ""),
])
def test_status_follows_the_goal(key, value, status):
    m = Measurement(key, key, value)
    assert m.status == status
    assert m.passed is {"pass": True, "miss": False}.get(status)


def test_memory_compares_per_batch_peaks():
    """Rows [seconds, samples, peak RSS during the batch, RSS after it, CUDA peak]; the closing row (-1) is the
    results' writing and belongs to the last window."""
    from egobench_bench.child import peak_between

    ticks = [[0, 8, 900, 500, 0], [1, 16, 510, 505, 0], [2, 24, 530, 520, 0], [3, 32, 515, 510, 0], [4, -1, 560, 0, 0]]
    assert peak_between(ticks, 0, 16) == 900 and peak_between(ticks, 16, math.inf) == 560
    assert peak_between(ticks, 8, 16) == 510 and peak_between(ticks, 16, 32) == 530


def test_tiny_bench_writes_json(report, tmp_path):
    data = json.loads(report.save(tmp_path / "r.json").read_text())
    assert [m["key"] for m in data["measurements"]] == KEYS
    assert all(m["goal"]["text"] == GOALS[m["key"]].text() for m in data["measurements"])
    assert set(data) == {"profile", "device", "protocol", "n", "batch_size", "wall_s", "measurements", "stages",
                         "environment"}


def test_table_shows_ratio_goal_and_mark(report):
    table = report.table()
    for m in report.measurements:
        assert m.title in table and m.goal.text() in table
    assert "pass" in table or "miss" in table


def test_not_available_pipeline_is_not_a_pass(monkeypatch):
    monkeypatch.setattr(pipeline, "lego_pipeline_status", lambda: (None, "lego.pipeline does not exist"))
    m = pipeline.measure(BenchOptions(steps=1, pipeline_repeats=1, quiet=True).resolved(), "cpu")
    assert m.value is None and m.status == "n/a" and m.passed is None
    assert "not available yet" in m.value_text()


def test_cli_prints_the_six_lines(report, monkeypatch, tmp_path):
    seen = []

    def fake_bench(opts):
        seen.append(opts)
        if opts.out:
            report.save(opts.out)
        return report

    monkeypatch.setattr(run_mod, "bench", fake_bench)
    out_json = tmp_path / "b.json"
    res = CliRunner().invoke(bench_cmd, ["--profile", "tiny", "--n", "4", "--batch-size", "4", "--mem-sizes", "4,8",
                                         "--json", str(out_json), "--quiet", "--weights-dir", str(tmp_path / "w"),
                                         "--items", "metrics, memory", "--samples", "40", "--weights-lock", "w.lock"])
    assert res.exit_code == 0, res.output
    assert seen[0].resolved() == BenchOptions(
        profile="tiny", device="auto", n=4, batch_size=4, protocol="egobench-v1", mem_sizes=(4, 8), out=str(out_json),
        weights_dir=str(tmp_path / "w"), items=("metrics", "memory"), samples=40, weights_lock="w.lock",
        quiet=True).resolved()
    for i, m in enumerate(report.measurements, 1):
        line = next(ln for ln in res.output.splitlines() if ln.startswith(f"{i}  "))
        assert m.title in line and m.goal.text() in line and m.status in line
    assert json.loads(out_json.read_text())["profile"] == "tiny"
    assert CliRunner().invoke(bench_cmd, ["-p", "lego-official"]).exit_code == 0
    assert seen[-1] == BenchOptions(protocol="lego-official")
    help_text = CliRunner().invoke(bench_cmd, ["--help"]).output
    for flag in ("--profile", "--device", "--n", "--batch-size", "--protocol", "-p", "--mem-sizes", "--json",
                 "--weights-dir", "--weights-lock", "--items", "--samples", "--quiet"):
        assert re.search(rf"(^|[ ,]){re.escape(flag)}[ ,]", help_text, re.M), flag


def test_cli_rejects_bad_mem_sizes():
    from egobench.cli import main

    res = CliRunner().invoke(main, ["bench", "--mem-sizes", "a,b"])
    assert res.exit_code == 2 and "--mem-sizes" in res.output and "Traceback" not in res.output


def test_bench_rejects_bad_arguments():
    for bad in ({"profile": "huge"}, {"n": 1}, {"mem_sizes": (8, 4)}, {"domain": "mars"}, {"items": ()},
                {"samples": 1}):
        with pytest.raises(UserError):
            bench(BenchOptions(**bad))


def test_bench_items_skip_measurements_and_refuse_unknown_ones(tmp_path):
    with pytest.raises(UserError, match="unknown item"):
        bench(BenchOptions(items=("metrics", "speed"), quiet=True))
    rep = bench(BenchOptions(items=("pipeline",), quiet=True, workdir=str(tmp_path)))
    assert [m.key for m in rep.measurements] == KEYS
    assert rep["pipeline"].available
    for key in ("naive", "cache", "overhead", "memory", "startup"):
        assert not rep[key].available and "skipped" in rep[key].value_text()


def test_startup_item_times_every_listing_command_in_a_fresh_process():
    m = bench(BenchOptions(items=("startup",), quiet=True))["startup"]
    assert m.available and m.goal.unit == "s"
    secs = m.details["seconds"]
    assert set(secs) == {" ".join(c) for c in extras.STARTUP_COMMANDS}
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
    m = extras.blip_spread(3, tmp_path, False)
    assert seen["method"] == "input-copy" and seen["dataset"] == "demo"
    assert seen["metrics"] == [("blip-b", 3, "released"), ("blip-l", 3, "released")]
    assert m.value == pytest.approx(3.4) and m.details["std_x100"]["blip-b"] == pytest.approx(1.2)
    assert m.value_text() == "+-3.4000" and m.status == "" and "blip-spread" not in ITEMS


def _fake_startup(monkeypatch) -> list:
    ran: list = []
    monkeypatch.setattr(extras, "startup", lambda: ran.append(1) or Measurement("startup", "start", 0.5))
    return ran


def test_weights_lock_refuses_a_changed_weight_file_before_measuring(report, tiny_zoo, tmp_path, monkeypatch):
    """``--weights-lock``: every weight the bench loads is resolved against the lock first (as run/evaluate
    do); one changed byte in one weight file ends the bench in one line naming artifact, file and both
    digests, before any item runs. The lock is made by the real ``egobench weights lock``."""
    from egobench.cli import main

    lock = tmp_path / "weights.lock"
    res = CliRunner().invoke(main, ["weights", "lock", "--zoo", "tiny", "-p", "egobench-v1", "--out", str(lock)])
    assert res.exit_code == 0, res.output
    ran = _fake_startup(monkeypatch)
    rep = bench(BenchOptions(items=("startup",), weights_lock=str(lock), quiet=True))
    assert ran == [1] and re.search(r"weights: locked [0-9a-f]{12}", rep.table())
    zoo = tmp_path / "zoo"  # the same zoo, CLIP's weights copied with their last byte changed
    zoo.mkdir()
    for d in tiny_zoo.iterdir():
        if d.name != "clip-vit-l-14":
            (zoo / d.name).symlink_to(d)
    shutil.copytree(tiny_zoo / "clip-vit-l-14", zoo / "clip-vit-l-14")
    weights = zoo / "clip-vit-l-14" / "open_clip_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    monkeypatch.setenv("EGOBENCH_TINY_ZOO", str(zoo))
    with pytest.raises(UserError, match=r"artifact 'clip-vit-l-14', file open_clip_model\.safetensors: expected "
                                        r"sha256 [0-9a-f]{64}, found [0-9a-f]{64}") as e:
        bench(BenchOptions(items=("startup",), weights_lock=str(lock), quiet=True))
    assert "\n" not in str(e.value) and ran == [1]  # one line, and nothing was measured


def test_scale_item_runs_only_when_named_and_joins_the_report(monkeypatch, tmp_path):
    """The hook of the scale bench: ``scale.measure(opts, folder) -> list[Measurement]``, called only when
    ``scale`` is among the items, with the resolved options (``--samples``) and a work folder."""
    seen = []

    def measure(opts, folder):
        seen.append((opts, folder))
        return [Measurement("scale-time", "time per sample: last 10% / first 10%", 1.02, goal=Goal("<=", 1.1, "x"))]

    monkeypatch.setitem(sys.modules, "egobench_bench.scale", types.SimpleNamespace(measure=measure))
    _fake_startup(monkeypatch)
    rep = bench(BenchOptions(items=("startup", "scale"), samples=40, quiet=True, workdir=str(tmp_path)))
    assert [m.key for m in rep.measurements] == [*KEYS, "scale-time"] and rep["scale-time"].status == "pass"
    (opts, folder), = seen
    assert opts.samples == 40 and opts.batch_size == 8 and isinstance(folder, Path) and tmp_path in folder.parents
    assert "scale" not in ITEMS and "time per sample: last 10% / first 10%" in rep.table()
    bench(BenchOptions(items=("startup",), quiet=True))
    assert len(seen) == 1


def test_full_arch_stand_ins_are_declared_by_their_models():
    """``--profile full-arch`` asks the registry for each artifact's real-size builder; the models whose tiny
    stand-in is smaller than the real one declare one (built and loaded in the full-arch profile, not in CI)."""
    from egobench.registry import _import_ref
    from egobench.weights import ARTIFACTS

    for name in ("clip-vit-l-14", "egovlp-ego4d", "egovlp-epic"):
        assert callable(_import_ref(ARTIFACTS.get(name).full_arch)), name


def test_blip_full_arch_stand_ins_are_declared():
    from egobench.weights import ARTIFACTS

    for name in ("blip-base-caption", "blip-large-caption", "blip-base-caption-original",
                 "blip-large-caption-original", "blip-bert-tokenizer"):
        assert ARTIFACTS.get(name).full_arch, name


def test_the_harness_imports_no_bench_and_the_bench_no_metric_maths():
    """egobench never imports egobench_bench; the naive side has no formula of its own and calls no metric class."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, egobench, egobench.cli, egobench.evaluator, egobench.runner\n"
            "print(sorted(m for m in sys.modules if m.startswith('egobench_bench')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
    source = "\n".join(p.read_text() for p in Path(extras.__file__).parent.glob("*.py"))
    for maths in ("log10(", "sqrtm(", "np.cov(", "linalg.", ".norm(", "eigvals(", ".mean((", "** 2"):
        assert maths not in source, maths
    metric_import = (r"from egobench\.metrics(\.(psnr|lpips_metric|clip_metric|fid|kid|blip|egovlp))? import [^\n]*"
                     r"\b(PSNR|LPIPS|CLIPImage|FID|KID|BLIPSimilarity|EgoVLP|EgoVLPPlus|METRICS)\b")
    assert not re.search(metric_import, Path(naive.__file__).read_text())
