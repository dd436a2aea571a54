"""Results bundles (issue 16 item 3): export-results -> validate-results on demo runs, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from egobench.results_bundle import (
    bootstrap_interval,
    export_results,
    export_results_cmd,
    schema_path,
    training_flag,
    validate_results_cmd,
)
from tests.conftest import REPO, one_line_error, write_protocol

_RUNS: dict[str, dict[str, Path]] = {}


def demo_runs(base: Path) -> dict[str, Path]:
    """input-copy and oracle on 6 demo samples (PSNR, LPIPS) plus an 'evaluate' of noisy copies of
    input-copy's images (outside code), made once per test session; 'protocol' is the YAML file."""
    key = str(base)
    if key not in _RUNS:
        import torch
        from PIL import Image

        from egobench import evaluate, run

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny models: more threads only spin on a busy machine
        base.mkdir(parents=True, exist_ok=True)
        proto = write_protocol(base / "share.yaml", metrics=("psnr", "lpips"), name="share")
        out = {"protocol": proto}
        for m in ("input-copy", "oracle"):
            out[m] = run(m, "demo", protocol=str(proto), limit=6, out=base / m, progress=False).run_dir
        df = pd.read_parquet(out["input-copy"] / "samples.parquet")
        noisy = base / "outside-images"
        noisy.mkdir()
        rng = np.random.default_rng(0)
        for sid, rel in zip(df["sample_id"], df["output"]):
            a = np.asarray(Image.open(out["input-copy"] / rel).convert("RGB"), dtype=np.int16)
            a = np.clip(a + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(noisy / f"{sid}.png")
        out["outside"] = evaluate(noisy, "demo", protocol=str(proto), limit=6, out=base / "outside",
                                  progress=False).run_dir
        torch.set_num_threads(threads)
        _RUNS[key] = out
    return _RUNS[key]


@pytest.fixture
def runs(tmp_path_factory) -> dict[str, Path]:
    return demo_runs(tmp_path_factory.getbasetemp() / "bundle-runs")


def cli(cmd, *args: str):
    """Invoke the command through ``egobench`` itself (its entry point; one-line errors, exit 2)."""
    from egobench.cli import main

    return CliRunner().invoke(main, [cmd.name, *map(str, args)])


@pytest.fixture
def bundle(runs, tmp_path) -> Path:
    r = cli(export_results_cmd, runs["input-copy"], runs["oracle"], runs["outside"], "--out", tmp_path / "bundle",
            "--images")
    assert r.exit_code == 0, r.output
    return tmp_path / "bundle" / "results.json"


def edited(src: Path, dst: Path, edit) -> Path:
    doc = json.loads(src.read_text())
    edit(doc)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(doc))
    return dst


def test_schema_is_shipped_in_the_package_and_at_the_repository_root():
    import jsonschema

    root = REPO / "schema" / "results-v1.json"
    assert root.is_file() and os.path.samefile(root, schema_path())
    schema = json.loads(root.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["format_version"] == {"const": 1}


def test_export_validate_round_trip(runs, bundle, tmp_path):
    import jsonschema

    from egobench.protocol import load_protocol

    doc = json.loads(bundle.read_text())
    jsonschema.validate(doc, json.loads(schema_path().read_text()))  # the reference library, independently
    res = {r["method"]["name"]: r for r in doc["results"]}
    assert set(res) == {"input-copy", "oracle", "external-outside-images"}
    assert res["external-outside-images"]["source"]["kind"] == "evaluate"
    assert res["input-copy"]["source"]["kind"] == "run"
    proto_hash = load_protocol(str(runs["protocol"])).hash
    for name, d in (("input-copy", runs["input-copy"]), ("oracle", runs["oracle"]),
                    ("external-outside-images", runs["outside"])):
        r = res[name]
        manifest = json.loads((d / "manifest.json").read_text())
        metrics = json.loads((d / "metrics.json").read_text())
        assert r["protocol"] == {"name": "share", "version": "1.0", "hash": proto_hash}
        assert r["split"]["fingerprint"] == manifest["split"]["fingerprint"]
        assert r["environment"]["packages"] == manifest["environment"]["packages"]
        assert set(r["weights"]["artifacts"]) == set(manifest["artifacts"]) == {"lpips-squeeze-backbone"}
        art = r["weights"]["artifacts"]["lpips-squeeze-backbone"]
        assert art["files"] == manifest["artifacts"]["lpips-squeeze-backbone"]["files"]
        assert "path" not in art and r["weights"]["lock"] is None
        assert r["method"]["training"] == "unknown"
        assert r["metrics"]["lpips"]["value"] == pytest.approx(metrics["metrics"]["lpips"]["value"])
        # the interval, recomputed here from the run's per-sample values with numpy
        x = pd.read_parquet(d / "samples.parquet")["lpips"].to_numpy(float)
        draws = np.random.default_rng(0).integers(0, len(x), size=(1000, len(x)))
        lo, hi = np.percentile(x[draws].mean(1), [2.5, 97.5])
        iv = r["metrics"]["lpips"]["interval"]
        assert (iv["low"], iv["high"]) == pytest.approx((lo, hi)) and iv["low"] <= r["metrics"]["lpips"]["value"]
        assert len(r["samples"]) == 6 and all(s["image"].startswith(f"images/{r['id']}/") for s in r["samples"])
        for s in r["samples"]:
            assert (bundle.parent / s["image"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert s["verb"] and s["noun"]
    # PSNR of the oracle is infinite: written as "inf", no interval, a note saying why
    assert res["oracle"]["metrics"]["psnr"]["value"] == "inf"
    assert res["oracle"]["metrics"]["psnr"]["interval"] is None and "infinite" in res["oracle"]["metrics"]["psnr"][
        "interval_note"]
    r = cli(validate_results_cmd, bundle, "--dataset", "demo", "--protocol", runs["protocol"])
    assert r.exit_code == 0, r.output
    assert r.output.count("split demo") == 3 and "valid:" in r.output
    # without --per-sample/--images: no per-sample records
    export_results([runs["oracle"]], tmp_path / "small")
    small = json.loads((tmp_path / "small" / "results.json").read_text())
    assert "samples" not in small["results"][0] and not (tmp_path / "small" / "images").exists()


def test_bootstrap_interval_matches_scipy():
    from scipy import stats

    x = np.random.default_rng(3).normal(10.0, 2.0, size=40)
    ours = bootstrap_interval(x, n_boot=10000, seed=1)
    ref = stats.bootstrap((x,), np.mean, n_resamples=10000, method="percentile", confidence_level=0.95,
                          random_state=np.random.default_rng(2)).confidence_interval
    width = ref.high - ref.low
    assert ours[0] == pytest.approx(ref.low, abs=0.05 * width) and ours[1] == pytest.approx(ref.high, abs=0.05 * width)
    assert bootstrap_interval([1.0, float("inf")]) is None and bootstrap_interval([1.0]) is None


def test_training_flag_from_the_method_config():
    assert training_flag({"method": {"config": {"finetuned_on_benchmark": False}}}) == "zero-shot"
    assert training_flag({"method": {"config": {"finetuned_on_benchmark": True}}}) == "finetuned"
    assert training_flag({"method": {"config": {}}}) == "unknown"


def test_schema_errors_name_the_json_path(bundle, tmp_path):
    cases = [
        (lambda d: d["results"][0]["metrics"]["psnr"].__setitem__("value", "high"), "$.results[0].metrics.psnr.value"),
        (lambda d: d["results"][1]["protocol"].__setitem__("hash", "abc"), "$.results[1].protocol.hash"),
        (lambda d: d.pop("format_version"), "$: 'format_version' is a required property"),
        (lambda d: d["results"][0]["samples"][0].__setitem__("image", "images/../../etc/passwd"),
         "$.results[0].samples[0].image"),
        (lambda d: d["results"][2]["metrics"].__setitem__("my metric", {"x": 1}), '$.results[2].metrics["my metric"]'),
    ]
    for i, (edit, where) in enumerate(cases):
        bad = edited(bundle, tmp_path / f"bad{i}" / "results.json", edit)
        line = one_line_error(cli(validate_results_cmd, bad), "schema error at", where)
        assert str(bad) in line


def test_unknown_protocol_split_mismatch_and_lock_mismatch_are_one_line(runs, bundle, tmp_path):
    from egobench.provenance import make_lock

    # the test protocol is not shipped: its hash is unknown unless its YAML is given
    one_line_error(cli(validate_results_cmd, bundle), "unknown protocol hash", "--protocol FILE")
    other = edited(bundle, tmp_path / "other" / "results.json",
                   lambda d: d["results"][0]["split"].__setitem__("fingerprint", "0" * 64))
    for s in json.loads(other.read_text())["results"][0]["samples"]:  # images travel with the edited copy
        (other.parent / s["image"]).parent.mkdir(parents=True, exist_ok=True)
        (other.parent / s["image"]).write_bytes((bundle.parent / s["image"]).read_bytes())
    one_line_error(cli(validate_results_cmd, other, "--dataset", "demo", "--protocol", runs["protocol"]),
                   "split fingerprint mismatch on demo", "000000000000")
    # no result on the dataset asked for
    one_line_error(cli(validate_results_cmd, bundle, "--dataset", "ego4d", "--protocol", runs["protocol"]),
                   "no result on dataset 'ego4d'")
    # a lock of the same weights passes; one file's digest changed in the lock is refused
    manifest = json.loads((runs["oracle"] / "manifest.json").read_text())
    good = make_lock(manifest["artifacts"])
    (tmp_path / "good.lock").write_text(json.dumps(good.to_json()))
    r = cli(validate_results_cmd, bundle, "--protocol", runs["protocol"], "--weights-lock", tmp_path / "good.lock")
    assert r.exit_code == 0 and "weights match lock" in r.output, r.output
    # a result made under another lock is refused by name of both digests
    locked = edited(bundle, tmp_path / "locked" / "results.json",
                    lambda d: [r["weights"].__setitem__("lock", {"digest": "a" * 64}) or r.pop("samples")
                               for r in d["results"]])
    one_line_error(cli(validate_results_cmd, locked, "--protocol", runs["protocol"], "--weights-lock",
                       tmp_path / "good.lock"), "weights lock mismatch", "made under lock aaaaaaaaaaaa",
                   good.digest[:12])
    arts = json.loads(json.dumps(manifest["artifacts"]))
    arts["lpips-squeeze-backbone"]["files"]["squeezenet1_1-b8a52dc0.pth"]["sha256"] = "f" * 64
    (tmp_path / "bad.lock").write_text(json.dumps(make_lock(arts).to_json()))
    one_line_error(cli(validate_results_cmd, bundle, "--protocol", runs["protocol"], "--weights-lock",
                       tmp_path / "bad.lock"), "weights lock mismatch", "lpips-squeeze-backbone",
                   "squeezenet1_1-b8a52dc0.pth", "f" * 64)


def test_bad_bundles_and_bad_exports(runs, bundle, tmp_path):
    # a missing image, malformed JSON, a duplicate key, a folder without results.json
    gone = edited(bundle, tmp_path / "gone" / "results.json", lambda d: None)
    one_line_error(cli(validate_results_cmd, gone, "--protocol", runs["protocol"]), "samples[0].image",
                   "not a file in the bundle folder")
    first = json.loads(bundle.read_text())["results"][0]["samples"][0]["image"]
    (bundle.parent / first).write_bytes(b"<html>not an image</html>")
    one_line_error(cli(validate_results_cmd, bundle, "--protocol", runs["protocol"]), "samples[0].image",
                   "is not a PNG image (found other bytes)")
    twice = edited(bundle, tmp_path / "twice" / "results.json",
                   lambda d: d["results"][0]["samples"].append(d["results"][0]["samples"][0]))
    one_line_error(cli(validate_results_cmd, twice), "$.results[0].samples[6].sample_id", "listed twice")
    (tmp_path / "broken.json").write_text('{"format": "egobench-results",')
    one_line_error(cli(validate_results_cmd, tmp_path / "broken.json"), "malformed JSON")
    (tmp_path / "dup.json").write_text('{"format": 1, "format": 2}')
    one_line_error(cli(validate_results_cmd, tmp_path / "dup.json"), "duplicate key 'format'")
    (tmp_path / "empty").mkdir()
    one_line_error(cli(validate_results_cmd, tmp_path / "empty"), "no results.json")
    # export: not a run folder; an --out folder that is not a bundle is never overwritten
    one_line_error(cli(export_results_cmd, tmp_path / "empty", "--out", tmp_path / "b2"), "not a run folder")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    one_line_error(cli(export_results_cmd, runs["oracle"], "--out", tmp_path / "mine"), "not an egobench results bundle")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    # a failure part-way (second run unfinished) leaves the old bundle whole and no temporary folder
    unfinished = tmp_path / "unfinished"
    import shutil

    shutil.copytree(runs["oracle"], unfinished)
    man = json.loads((unfinished / "manifest.json").read_text())
    man["state"] = "running"
    (unfinished / "manifest.json").write_text(json.dumps(man))
    before = bundle.read_bytes()
    one_line_error(cli(export_results_cmd, runs["oracle"], unfinished, "--out", bundle.parent), "not complete")
    assert bundle.read_bytes() == before
    assert not [p for p in bundle.parent.parent.iterdir() if p.name.startswith(".bundle")]
    # a killed earlier export left its temporary folder (its process is gone): the next export removes it
    dead = _dead_pid()
    stale = bundle.parent.parent / f".bundle.tmp-{dead}-abc"
    stale.mkdir()
    (stale / "results.json").write_text("{")
    # a second export replaces its own bundle whole
    r = cli(export_results_cmd, runs["oracle"], "--out", bundle.parent)
    assert r.exit_code == 0, r.output
    assert len(json.loads(bundle.read_text())["results"]) == 1 and not (bundle.parent / "images").exists()
    assert not stale.exists()


def _dead_pid() -> int:
    """The id of a process that has exited."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_bundles_and_report_tables_read_run_folders_with_one_reader(runs, tmp_path):
    """export-results and the paper's tables read a run folder through egobench.run_folder: the same record;
    only a bundle requires the run's provenance (manifest); a damaged samples.parquet is named by both."""
    import shutil

    from egobench.errors import DataError
    from egobench.results_bundle import read_run
    from egobench.run_folder import RunFolder
    from reports.tables import load_run

    bundled, tabled = read_run(runs["oracle"]), load_run(runs["oracle"])
    assert type(bundled) is type(tabled) is RunFolder
    assert (bundled.metrics, bundled.manifest, bundled.method, bundled.comparable) == \
        (tabled.metrics, tabled.manifest, "oracle", False)
    pd.testing.assert_frame_equal(bundled.samples, tabled.samples)
    bare = tmp_path / "bare"
    shutil.copytree(runs["oracle"], bare)
    (bare / "manifest.json").unlink()
    assert load_run(bare).manifest == {} and load_run(bare).vllm_finetuned is None
    with pytest.raises(DataError, match="no readable manifest.json"):
        read_run(bare)
    shutil.copy(runs["oracle"] / "manifest.json", bare / "manifest.json")
    (bare / "samples.parquet").write_bytes(b"not parquet")
    for reader in (load_run, read_run):
        with pytest.raises(DataError, match="samples.parquet: cannot read"):
            reader(bare)
