"""Every report table carries the input-copy row (issue 17 item 4): made once through the harness and
cached, and each cell not significantly better than copying the input is marked."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from reports.bounds import CopyKey, copy_key, ensure_input_copy, rebuild_protocol
from reports.cli import write_report
from reports.tables import COPY, COPY_MARK, build_tables, load_run

FORMATS = ["html", "latex", "md", "csv", "json"]


def _method_copy(src: Path, dst: Path, method: str, psnr: np.ndarray | None = None) -> Path:
    """A copy of a real run under another method name, its per-sample PSNR replaced by ``psnr``."""
    shutil.copytree(src, dst)
    df = pd.read_parquet(dst / "samples.parquet")
    m = json.loads((dst / "metrics.json").read_text())
    m["method"] = method
    if psnr is not None:
        df["psnr"] = psnr
        m["metrics"]["psnr"]["value"] = float(np.mean(psnr))
    df["output"] = [str(src / o) for o in df["output"]]
    df.to_parquet(dst / "samples.parquet", index=False)
    (dst / "metrics.json").write_text(json.dumps(m))
    man = json.loads((dst / "manifest.json").read_text())
    man["method"] = {"name": method, "options": {}}
    (dst / "manifest.json").write_text(json.dumps(man))
    return dst


def _methods(runs, root: Path) -> tuple[Path, Path]:
    """'copier' (PSNR equal to copying the input, sample by sample) and 'better' (+3 dB on every sample)."""
    ic = pd.read_parquet(runs["input-copy"] / "samples.parquet")["psnr"].to_numpy(dtype=float)
    rng = np.random.default_rng(0)
    copier = _method_copy(runs["tests.plugins.methods:SlowCopy"], root / "copier", "copier", ic.copy())
    better = _method_copy(runs["tests.plugins.methods:SlowCopy"], root / "better", "better",
                          ic + 3 + rng.normal(0, 0.1, len(ic)))
    return copier, better


def _psnr_cell(table: dict, label: str) -> dict:
    col = [c["key"] for c in table["columns"]].index("psnr")
    return next(r for r in table["rows"] if r["label"] == label)["cells"][col]


def test_input_copy_row_made_once_cached_and_marks_in_every_format(runs, tmp_path, monkeypatch):
    copier, better = _methods(runs, tmp_path / "runs")
    cache = tmp_path / "bounds"
    res = write_report([copier, better], out=tmp_path / "r1", formats=FORMATS, n_boot=300, bounds_cache=cache)
    assert not res.failed, res.failed
    # made once, in the folder keyed by split fingerprint, protocol hash and zoo
    key = copy_key(load_run(copier))
    folder = key.folder(cache)
    assert folder.parent == cache / COPY / "demo" and (folder / "metrics.json").is_file()
    assert folder.name.startswith(f"{key.fingerprint[:16]}-{key.protocol_hash[:16]}-tiny")
    made = load_run(folder)
    assert made.method == COPY and made.protocol["hash"] == load_run(copier).protocol["hash"]
    # the harness's values: the same as the input-copy run the tests made themselves
    assert made.metrics["metrics"]["psnr"]["value"] == load_run(runs["input-copy"]).metrics["metrics"]["psnr"]["value"]
    paper = [t for t in json.loads((tmp_path / "r1" / "tables.json").read_text()) if t["kind"] == "paper"]
    assert paper and all(any(r["label"] == COPY for r in t["rows"]) for t in paper)
    t1 = next(t for t in paper if t["id"] == "table1-demo")
    assert _psnr_cell(t1, "copier")["not_above_input_copy"] is True
    assert _psnr_cell(t1, "better")["not_above_input_copy"] is False
    assert _psnr_cell(t1, COPY)["not_above_input_copy"] is False
    # every format shows the row, the mark and its legend
    md = (tmp_path / "r1" / "tables.md").read_text()
    assert f"| {COPY} " in md.replace("\\-", "-") and COPY_MARK in md and f"{COPY_MARK} not significantly better" in md
    tex = (tmp_path / "r1" / "tables.tex").read_text()
    assert "input-copy" in tex and r"$^\ddagger$" in tex and "not significantly better than input-copy" in tex
    html = (tmp_path / "r1" / "index.html").read_text()
    assert '<td title="' in html and f">{COPY}<" in html and 'title="not significantly better than input-copy">‡' in html
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r1" / "tables.csv").read_text())))
    marks = {(r["row"], r["column"]): r["not_above_input_copy"] for r in rows if r["table"] == "table1-demo"}
    assert marks[("copier", "PSNR")] == "1" and marks[("better", "PSNR")] == "0" and (COPY, "PSNR") in marks
    assert any(str(folder) in n for n in t1["notes"])  # says where it is cached
    # a second report reuses the cached run: the harness is not called again
    import egobench.runner

    def no_run(*a, **k):
        raise AssertionError("the input-copy run was made again")

    monkeypatch.setattr(egobench.runner, "run", no_run)
    before = (folder / "manifest.json").read_bytes()
    res2 = write_report([copier, better], out=tmp_path / "r2", formats=["json", "md"], n_boot=300, bounds_cache=cache)
    assert not res2.failed, res2.failed
    assert (folder / "manifest.json").read_bytes() == before
    t1b = next(t for t in json.loads((tmp_path / "r2" / "tables.json").read_text()) if t["id"] == "table1-demo")
    assert [r["label"] for r in t1b["rows"]] == [r["label"] for r in t1["rows"]]


def test_a_given_input_copy_run_is_used_and_nothing_is_made(runs, tmp_path):
    copier, _ = _methods(runs, tmp_path / "runs")
    cache = tmp_path / "bounds"
    res = write_report([runs["input-copy"], copier], out=tmp_path / "r", formats=["json"], n_boot=100,
                       bounds_cache=cache)
    assert not res.failed and not cache.exists()
    t1 = json.loads((tmp_path / "r" / "tables.json").read_text())[0]
    assert [r["run"] for r in t1["rows"] if r["label"] == COPY] == [str(runs["input-copy"])]


def test_ablation_and_finetuning_tables_carry_the_copy_row(runs, tmp_path):
    ic = pd.read_parquet(runs["input-copy"] / "samples.parquet")["psnr"].to_numpy(dtype=float)
    src = runs["tests.plugins.methods:SlowCopy"]
    paths = [runs["input-copy"]]
    for i, m in enumerate(("ip2p", "lego-desc", "lego")):
        paths.append(_method_copy(src, tmp_path / m, m, ic + i))
    tables = {t.id: t for t in build_tables([load_run(p) for p in paths], n_boot=200)}
    t3 = tables["table3-demo"]
    assert [r.label for r in t3.rows] == [COPY, "Action labels", "Descriptions", "+ joint emb."]
    col = [c.key for c in t3.columns].index("psnr")
    assert [r.cells[col].not_above_copy for r in t3.rows] == [False, True, False, False]
    assert any(n.startswith(COPY_MARK) for n in t3.notes)


def test_unrebuildable_protocol_is_a_note_not_a_wrong_row(runs, tmp_path):
    bad = _method_copy(runs["oracle"], tmp_path / "odd", "odd")
    m = json.loads((bad / "metrics.json").read_text())
    m["protocol"] = {**m["protocol"], "hash": "0" * 64}
    (bad / "metrics.json").write_text(json.dumps(m))
    run = load_run(bad)
    assert rebuild_protocol(run) is None and rebuild_protocol(load_run(runs["oracle"])) is not None
    out = ensure_input_copy([run], tmp_path / "bounds")
    assert out.runs == [] and not (tmp_path / "bounds").exists()
    assert any("cannot be rebuilt" in n and "give an input-copy run" in n for n in out.notes["demo"])
    assert isinstance(copy_key(run), CopyKey)
