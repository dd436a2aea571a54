"""The run engine: generation, resume, seeds, results files, outside folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import egobench
from egobench.errors import UserError

REPO = Path(__file__).resolve().parent.parent


def _run(release, tmp_path, method="input-copy", protocol="egobench-v1", name="run", **kw):
    return egobench.run(method, "ego4d", protocol=protocol, data_root=release, zoo="tiny",
                        out=tmp_path / name, progress=False, **kw)


def test_input_copy_run_writes_results_and_reruns_nothing(release, tmp_path):
    res = _run(release, tmp_path)
    assert res.generated == 3
    rd = res.run_dir
    for f in ("manifest.json", "metrics.json", "samples.parquet"):
        assert (rd / f).is_file()
    df = pd.read_parquet(rd / "samples.parquet")
    assert list(df["status"]) == ["ok"] * 3
    assert set(df.columns) >= {"sample_id", "seed", "psnr", "lpips", "action", "description"}
    metrics = json.loads((rd / "metrics.json").read_text())
    assert metrics["protocol"]["name"] == "egobench-v1"
    assert metrics["comparable"] is False  # tiny zoo
    assert metrics["metrics"]["psnr"]["value"] == pytest.approx(df["psnr"].mean())
    manifest = json.loads((rd / "manifest.json").read_text())
    assert manifest["state"] == "complete"
    assert manifest["artifacts"]["lpips-squeeze-backbone"]["tiny"] is True
    # input-copy output = the input frame resized to the target aspect (PNG, lossless)
    s = res.split[0]
    out = np.asarray(Image.open(rd / "images" / f"{s.id}.png"))
    assert out.shape == (256, round(s.meta["width"] / s.meta["height"] * 256), 3)
    mtimes = {p: p.stat().st_mtime_ns for p in (rd / "images").iterdir()}
    res2 = _run(release, tmp_path)
    assert res2.generated == 0
    assert {p: p.stat().st_mtime_ns for p in (rd / "images").iterdir()} == mtimes
    pd.testing.assert_frame_equal(df, pd.read_parquet(rd / "samples.parquet"))


def test_oracle_is_exact_under_v1_and_reencoded_under_official(release, tmp_path):
    v1 = egobench.run("oracle", "ego4d", protocol="egobench-v1", data_root=release, zoo="tiny",
                      out=tmp_path / "v1", progress=False)
    # targets are 64x48 with 4:3 metadata -> resized to 256 high, then back for scoring: not identical
    assert v1.metrics["psnr"]["value"] > 20
    official = egobench.run("oracle", "ego4d", protocol="lego-official", data_root=release, zoo="tiny",
                            out=tmp_path / "off", progress=False)
    files = sorted(p.relative_to(official.run_dir / "images") for p in (official.run_dir / "images").rglob("*.jpg"))
    # official layout: <clip>/<action>/<target file name>
    s = official.split[0]
    assert Path(s.clip_id) / s.action_id / Path(s.meta["image_1"]).name in files


def test_per_sample_seeds_do_not_depend_on_batch_size_or_order(release, tmp_path):
    a = _run(release, tmp_path, method="tests.plugins.methods:SeededNoise", name="a", batch_size=1)
    b = _run(release, tmp_path, method="tests.plugins.methods:SeededNoise", name="b", batch_size=3)
    for s in a.split:
        pa = a.run_dir / "images" / f"{s.id}.png"
        pb = b.run_dir / "images" / f"{s.id}.png"
        assert pa.read_bytes() == pb.read_bytes()
    # different samples got different noise
    imgs = [np.asarray(Image.open(a.run_dir / "images" / f"{s.id}.png")) for s in a.split]
    assert not np.array_equal(imgs[0], imgs[1])
    seeds = pd.read_parquet(a.run_dir / "samples.parquet")["seed"]
    assert seeds.notna().all() and seeds.nunique() == len(seeds)


def test_global_seed_policy_matches_released_behaviour(release, tmp_path):
    """lego-official: one RNG seeded once, consumed in order -> batching-independent only in order."""
    a = egobench.run("tests.plugins.methods:SeededNoise", "ego4d", protocol="lego-official", data_root=release,
                     zoo="tiny", out=tmp_path / "g1", progress=False, batch_size=1)
    b = egobench.run("tests.plugins.methods:SeededNoise", "ego4d", protocol="lego-official", data_root=release,
                     zoo="tiny", out=tmp_path / "g2", progress=False, batch_size=2)
    files_a = sorted((a.run_dir / "images").rglob("*.jpg"))
    files_b = sorted((b.run_dir / "images").rglob("*.jpg"))
    assert [f.read_bytes() for f in files_a] == [f.read_bytes() for f in files_b]
    assert pd.read_parquet(a.run_dir / "samples.parquet")["seed"].isna().all()


def _cli(args, env=None, **kw):
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "egobench", *args], capture_output=True, text=True, env=e,
                          cwd=REPO, **kw)


def test_killed_run_resumes_to_the_same_samples_parquet(release, tmp_path):
    args = ["run", "--method", "tests.plugins.methods:SlowCopy", "--dataset", "epickitchens",
            "--data-root", str(release), "--zoo", "tiny", "--protocol", "egobench-v1", "--quiet",
            "--batch-size", "2"]
    full = _cli(args + ["--out", str(tmp_path / "full")])
    assert full.returncode == 0, full.stderr
    killed = _cli(args + ["--out", str(tmp_path / "killed")], env={"EGOBENCH_TEST_DIE_AFTER": "2"})
    assert killed.returncode == 9
    imgs = list((tmp_path / "killed" / "images").glob("*.png"))
    assert len(imgs) == 2
    assert not (tmp_path / "killed" / "samples.parquet").exists()
    resumed = _cli(args + ["--out", str(tmp_path / "killed")])
    assert resumed.returncode == 0, resumed.stderr
    assert "generated 1 image(s), 2 already present" in resumed.stdout
    a = pd.read_parquet(tmp_path / "full" / "samples.parquet")
    b = pd.read_parquet(tmp_path / "killed" / "samples.parquet")
    pd.testing.assert_frame_equal(a, b)
    for p in (tmp_path / "full" / "images").iterdir():
        assert p.read_bytes() == (tmp_path / "killed" / "images" / p.name).read_bytes()


def test_stale_temp_files_are_removed_on_resume(release, tmp_path):
    res = _run(release, tmp_path)
    stale = res.run_dir / "images" / ".tmp-egobench-abc.png"
    stale.write_bytes(b"half an image")
    _run(release, tmp_path)
    assert not stale.exists()


def test_nan_output_is_recorded_not_scored(release, tmp_path):
    res = _run(release, tmp_path, method="tests.plugins.methods:NaNMethod")
    df = pd.read_parquet(res.run_dir / "samples.parquet")
    assert list(df["status"]) == ["failed"] * 3
    assert df["error"].str.contains("NaN").all()
    assert df["psnr"].isna().all()
    assert res.evaluation.problems == {"failed": 3}
    assert "not scored: failed 3" in res.table()


def test_same_run_dir_with_other_settings_is_refused(release, tmp_path):
    _run(release, tmp_path)
    with pytest.raises(UserError, match="holds a run of .input-copy. with a different identity"):
        _run(release, tmp_path, method="oracle")


def test_evaluate_outside_folder_in_both_layouts_matches_run(release, tmp_path):
    res = _run(release, tmp_path, method="tests.plugins.methods:SlowCopy")
    flat = res.run_dir / "images"
    nested = tmp_path / "nested"
    for s in res.split:
        d = nested / s.clip_id / s.action_id
        d.mkdir(parents=True)
        (d / (Path(s.meta["image_1"]).stem + ".png")).write_bytes((flat / f"{s.id}.png").read_bytes())
    e1 = egobench.evaluate(flat, "ego4d", protocol="egobench-v1", data_root=release, zoo="tiny",
                           out=tmp_path / "e1", progress=False)
    e2 = egobench.evaluate(nested, "ego4d", protocol="egobench-v1", data_root=release, zoo="tiny",
                           out=tmp_path / "e2", progress=False)
    for name in ("psnr", "lpips"):
        assert e1.metrics[name]["value"] == pytest.approx(res.metrics[name]["value"], rel=1e-12)
        assert e2.metrics[name]["value"] == pytest.approx(res.metrics[name]["value"], rel=1e-12)
    (flat / f"{res.split[0].id}.png").unlink()
    with pytest.raises(UserError, match="no image for 1 of 3 samples"):
        egobench.evaluate(flat, "ego4d", protocol="egobench-v1", data_root=release, zoo="tiny",
                          out=tmp_path / "e3", progress=False)
    e4 = egobench.evaluate(flat, "ego4d", protocol="egobench-v1", data_root=release, zoo="tiny",
                           out=tmp_path / "e4", progress=False, allow_missing=True)
    assert e4.evaluation.problems == {"missing": 1}
    assert e4.metrics["psnr"]["n"] == 2


def test_a_resumed_run_keeps_the_records_of_the_weights_that_made_its_images(release, tmp_path):
    """The method resolves its weights only when it generates; a call with nothing left to generate
    keeps their records (path, sha256, tiny) and so stays not comparable after tiny-zoo weights."""
    from egobench.runner import RunContext, RunOptions, prepare_run
    from tests.conftest import write_protocol

    proto = write_protocol(tmp_path / "p.yaml", metrics=("psnr",))  # scoring needs no weights
    kwargs = dict(protocol=str(proto), data_root=release, zoo="tiny", out=tmp_path / "run", progress=False)
    method = "tests.plugins.methods:WeightedCopy"
    first = egobench.run(method, "ego4d", **kwargs)
    m1 = json.loads((first.run_dir / "manifest.json").read_text())
    again = egobench.run(method, "ego4d", **kwargs)
    m2 = json.loads((again.run_dir / "manifest.json").read_text())
    assert (first.generated, again.generated) == (3, 0)
    assert list(m1["artifacts"]) == ["lpips-squeeze-backbone"] and m2["artifacts"] == m1["artifacts"]
    assert m1["artifacts"]["lpips-squeeze-backbone"]["tiny"] is True
    assert (m1["comparable"], m2["comparable"], again.comparable) == (False, False, False)
    assert json.loads((again.run_dir / "metrics.json").read_text())["comparable"] is False

    # what a run resolved before writing anything, as one typed context
    ctx = prepare_run(method, "ego4d", protocol=str(proto), data_root=release, zoo="tiny", out=tmp_path / "run")
    assert isinstance(ctx, RunContext) and ctx.run_id == m1["run_id"] and ctx.identity == m1["identity"]
    assert ctx.run_dir == tmp_path / "run" and ctx.zoo == "tiny" and len(ctx.split) == 3
    with pytest.raises(UserError, match="--batch-size must be at least 1, got 0"):
        RunOptions(batch_size=0)


def test_run_keywords_are_the_fields_of_its_records(release, tmp_path):
    """run()/prepare_run() keywords are declared once (RunSpec, RunOptions): their signatures show them, a
    misspelled keyword is a TypeError before anything is written, eval_batch_size=None is the default."""
    import dataclasses
    import inspect

    from egobench.config import EVAL_BATCH_SIZE
    from egobench.runner import RunOptions, RunSpec, prepare_run, run

    spec = [f.name for f in dataclasses.fields(RunSpec)]
    assert list(inspect.signature(prepare_run).parameters) == ["method", "dataset", *spec]
    assert list(inspect.signature(run).parameters) == ["method", "dataset", *spec,
                                                       *(f.name for f in dataclasses.fields(RunOptions))]
    assert inspect.signature(run).parameters["protocol"].default == "lego-official"
    for fn, bad in ((prepare_run, "keep_going"), (run, "batchsize")):  # keep_going is run()'s, not prepare_run()'s
        with pytest.raises(TypeError, match=f"unexpected keyword argument '{bad}'"):
            fn("input-copy", "ego4d", data_root=release, out=tmp_path / "never", **{bad: 2})
    assert not (tmp_path / "never").exists()
    assert RunOptions(eval_batch_size=None).eval_batch_size == EVAL_BATCH_SIZE


def test_run_and_evaluate_options_are_the_fields_of_the_api_records(monkeypatch):
    """`egobench run` / `evaluate` / `ablate` options come from the RunSpec / RunOptions / EvaluateOptions
    fields: every field is an option named by it, and what the command passes to the API call is the
    field's value (--quiet is progress=False, -o KEY=VALUE the method_options dict, --weights a list)."""
    import dataclasses
    import inspect
    from types import SimpleNamespace

    from click.testing import CliRunner

    from egobench import cli, runner
    from egobench.config import EVAL_BATCH_SIZE
    from egobench.run_spec import COMMON_FIELDS, EVALUATE_FIELDS, EvaluateOptions, RunOptions, RunSpec

    fields = [f.name for r in (RunSpec, RunOptions) for f in dataclasses.fields(r)]
    assert {p.name for p in cli.run_cmd.params} == {"method", "dataset", "seeds", *fields}
    assert {p.name for p in cli.evaluate_cmd.params} == {"images", "dataset", *EVALUATE_FIELDS}
    assert set(COMMON_FIELDS) < {p.name for p in cli.ablate_cmd.params}
    assert list(inspect.signature(runner.evaluate).parameters) == ["images", "dataset", *EVALUATE_FIELDS]
    assert inspect.signature(runner.evaluate).parameters["batch_size"].default == EVAL_BATCH_SIZE
    assert [f.name for f in dataclasses.fields(EvaluateOptions)] == ["name", "batch_size", "allow_missing"]

    calls = []
    done = SimpleNamespace(generated=0, present=0, failed=0, table=lambda: "table")
    monkeypatch.setattr(runner, "run", lambda *a, **kw: calls.append((a, kw)) or done)
    monkeypatch.setattr(runner, "evaluate", lambda *a, **kw: calls.append((a, kw)) or done)

    def invoke(args):
        r = CliRunner().invoke(cli.main, args)
        assert r.exit_code == 0 and r.output.endswith("table\n"), (r.output, r.exception)

    invoke(["run", "-m", "input-copy", "-d", "demo", "--quiet", "-o", "steps=3", "-o", "name=x",
                      "--weights", "a=/p", "--eval-batch-size", "5", "--seed", "7", "--zoo", "tiny"])
    (args, kw), = calls
    assert args == ("input-copy", "demo")
    defaults = {f.name: f.default for r in (RunSpec, RunOptions) for f in dataclasses.fields(r)}
    assert kw == {**defaults, "progress": False, "method_options": {"steps": 3, "name": "x"}, "weights": ["a=/p"],
                  "eval_batch_size": 5, "seed": 7, "zoo": "tiny"}
    calls.clear()
    invoke(["evaluate", "--images", "imgs", "-d", "demo", "--batch-size", "3", "--allow-missing"])
    (args, kw), = calls
    assert args == ("imgs", "demo")
    assert kw == {"name": None, "batch_size": 3, "allow_missing": True,
                  **{k: defaults[k] for k in COMMON_FIELDS}, "weights": []}
