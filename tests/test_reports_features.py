"""``egobench report`` additions (issue 14 "expected"): published rows, breakdowns,
Markdown/CSV tables, intervals, seed groups."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from reports.cli import write_report
from reports.formats import md_escape
from reports.published import PUBLISHED_FILE
from tests.test_reports import fake_run
from tests.test_userstudy import NASTY


@pytest.fixture(autouse=True)
def _own_bounds_cache(monkeypatch, tmp_path):
    """Each test's input-copy runs (reports.bounds) in its own cache: a report's rows never depend on which
    tests ran before it in the session."""
    monkeypatch.setattr("reports.bounds.default_bounds_cache", lambda: tmp_path / "bounds")


def _as(d: Path, *, dataset: str | None = None, protocol: str | None = None, comparable: bool | None = None,
        seed: int | None = None) -> Path:
    met = json.loads((d / "metrics.json").read_text())
    man = json.loads((d / "manifest.json").read_text())
    if dataset:
        met["dataset"] = man["dataset"] = dataset
    if protocol:
        met["protocol"] = {**met["protocol"], "name": protocol}
    if comparable is not None:
        met["comparable"] = man["comparable"] = comparable
    if seed is not None:
        man["seeds"] = {**man.get("seeds", {}), "seed": seed}
    (d / "metrics.json").write_text(json.dumps(met))
    (d / "manifest.json").write_text(json.dumps(man))
    return d


def test_published_file_has_tables_1_and_2_for_both_datasets():
    pub = yaml.safe_load(PUBLISHED_FILE.read_text())
    assert "2312.03849" in pub["source"] and pub["protocol"] == "lego-official"
    for no, width in (("table1", 6), ("table2", 2)):
        for ds in ("ego4d", "epickitchens"):
            rows = pub["tables"][no][ds]
            assert set(rows) == {"proxedit", "sdedit", "ip2p", "lego"}
            assert all(len(v) == width for v in rows.values())
    assert pub["tables"]["table1"]["ego4d"]["lego"] == [65.65, 80.44, 80.61, 23.83, 12.29, 36.43]
    assert pub["tables"]["table2"]["epickitchens"]["ip2p"] == [25.37, 26.36]


def test_published_rows_beside_measured_with_difference_only_when_comparable(runs, tmp_path):
    root = tmp_path / "runs"
    official = _as(fake_run(runs["input-copy"], root / "lego", "lego", 0.8, 0), dataset="ego4d",
                   protocol="lego-official", comparable=True)
    _as(fake_run(runs["input-copy"], root / "ip2p", "ip2p", 0.5, 1), dataset="ego4d", comparable=False)
    res = write_report(runs_dir=root, out=tmp_path / "rep", formats=["html", "latex", "md", "csv"], n_boot=20)
    t1 = next(t for t in res.tables if t.id == "table1-ego4d")
    pub = {r.label: r for r in t1.rows if r.kind == "published"}
    assert list(pub) == ["ProxEdit (published)", "SDEdit (published)", "IP2P (published)", "LEGO (published)"]
    assert [c.text for c in pub["LEGO (published)"].cells] == ["65.65", "80.44", "80.61", "23.83", "12.29", "36.43"]
    assert not any(c.best or c.behind for r in pub.values() for c in r.cells)
    lego = next(r for r in t1.rows if r.kind == "measured" and r.method == "lego")
    ego = lego.cells[0]
    assert ego.delta == pytest.approx(ego.display - 65.65)
    ip2p = next(r for r in t1.rows if r.kind == "measured" and r.method == "ip2p")
    assert all(c.delta is None for c in ip2p.cells)  # not comparable: no difference shown
    assert any("2312.03849" in n and "Table 1" in n for n in t1.notes)
    t2 = next(t for t in res.tables if t.id == "table2-ego4d")
    assert [c.text for c in next(r for r in t2.rows if r.label == "LEGO (published)").cells] == ["20.38", "20.70"]
    assert not any(t.kind == "published" for t in res.tables if t.dataset == "ego4d")  # rows are in the table
    html = (tmp_path / "rep" / "index.html").read_text()
    assert html.count('<tr class="published">') == 8 and "vs published" in html
    assert "LEGO (published)" in (tmp_path / "rep" / "tables.tex").read_text()
    assert "LEGO (published)" in (tmp_path / "rep" / "tables.md").read_text()
    rows = list(csv.DictReader((tmp_path / "rep" / "tables.csv").open()))
    d = next(r for r in rows if r["table"] == "table1-ego4d" and r["row"] == "lego" and r["column"] == "EgoVLP")
    assert float(d["delta_published"]) == pytest.approx(ego.delta)
    assert str(official) in d["source"]


def test_demo_report_shows_the_published_reference_tables(runs, tmp_path):
    res = write_report([runs["input-copy"]], out=tmp_path / "rep", formats=["md"], n_boot=20)
    ref = [t.id for t in res.tables if t.kind == "published"]
    assert ref == ["published-table1-ego4d", "published-table2-ego4d", "published-table1-epickitchens",
                   "published-table2-epickitchens"]
    md = (tmp_path / "rep" / "tables.md").read_text()
    assert "published numbers on Ego4D" in md and "65.65" in md


def test_breakdowns_per_part_verb_and_noun_with_counts_and_intervals(runs, tmp_path):
    root = tmp_path / "runs"
    verbs = ["open", "open", "open", "pour", "pour", "cut", "wash", "open"]
    nouns = ["drawer", "drawer", "tap", "water", "water", "onion", "pan", ""]
    for i, (m, q) in enumerate((("ip2p", 0.5), ("lego", 0.8))):
        d = fake_run(runs["input-copy"], root / m, m, q, i)
        df = pd.read_parquet(d / "samples.parquet")
        df["verb"], df["noun"] = verbs, nouns
        df["domain"] = ["ego4d"] * 5 + ["epickitchens"] * 3
        df.to_parquet(d / "samples.parquet", index=False)
    res = write_report(runs_dir=root, out=tmp_path / "rep", formats=["html", "csv"], n_boot=50, top_k=3)
    by_id = {t.id: t for t in res.tables}
    ids = [t.id for t in res.tables]
    assert ids.index("table1-demo") < ids.index("breakdown-domain-demo") < ids.index("breakdown-verb-demo")
    verb = by_id["breakdown-verb-demo"]
    assert [(r.label, r.n) for r in verb.rows] == [("open", 4), ("pour", 2), ("cut", 1)]  # top 3, ties by name
    assert [c.label for c in verb.columns] == ["ip2p", "lego"] and verb.row_head == "Verb"
    lego_df = pd.read_parquet(root / "lego" / "samples.parquet")
    assert verb.rows[0].cells[1].display == pytest.approx(lego_df.loc[lego_df["verb"] == "open", "egovlp"].mean() * 100)
    assert verb.rows[0].cells[1].ci is not None and verb.rows[2].cells[1].ci is None  # n=1: no interval
    assert "top 3 of 4" in verb.title and any("percentile bootstrap" in n for n in verb.notes)
    noun = by_id["breakdown-noun-demo"]
    assert sum(r.n for r in noun.rows) <= 7 and noun.rows[0].label in ("drawer", "water")  # empty noun left out
    part = by_id["breakdown-domain-demo"]
    assert [(r.label, r.n) for r in part.rows] == [("ego4d", 5), ("epickitchens", 3)]
    assert 'data-table="breakdown-verb-demo"' in (tmp_path / "rep" / "index.html").read_text()
    # runs made before verb/noun were recorded: no table, and the report says why
    old = fake_run(runs["input-copy"], tmp_path / "old-run", "lego", 0.8, 3)
    df = pd.read_parquet(old / "samples.parquet")
    df.drop(columns=[c for c in ("verb", "noun") if c in df.columns]).to_parquet(old / "samples.parquet", index=False)
    res = write_report([old], out=tmp_path / "rep2", formats=["json"], n_boot=20)
    t1 = next(t for t in res.tables if t.id == "table1-demo")
    assert any("No per-verb table" in n and "re-run 'egobench evaluate'" in n for n in t1.notes)
    assert not any(t.id.startswith("breakdown-verb") for t in res.tables)


def test_markdown_and_csv_tables_escape_run_strings(runs, tmp_path):
    root = tmp_path / "runs"
    fake_run(runs["input-copy"], root / "a", "=HYPERLINK(1)" + NASTY, 0.4, 0)
    fake_run(runs["input-copy"], root / "b", "lego", 0.7, 1)
    write_report(runs_dir=root, out=tmp_path / "rep", formats=["md", "csv"], n_boot=20)
    md = (tmp_path / "rep" / "tables.md").read_text()
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert md_escape("a|b") == "a\\|b" and md_escape("<i>") == "&lt;i&gt;"
    lines = md.splitlines()
    hostile = [i for i, ln in enumerate(lines) if ln.startswith("| ") and "HYPERLINK" in ln]
    assert hostile
    for i in hostile:  # the hostile label cannot add a column: same number of unescaped pipes as its header
        head = next(lines[j] for j in range(i, -1, -1) if lines[j + 1].startswith("|---"))
        assert len(re.findall(r"(?<!\\)\|", lines[i])) == len(re.findall(r"(?<!\\)\|", head))
    rows = list(csv.reader((tmp_path / "rep" / "tables.csv").open()))
    cells = [c for r in rows for c in r]
    assert not any(c.startswith(("=", "+", "@")) for c in cells)
    assert any(c.startswith("'=HYPERLINK(1)") for c in cells)
    head = rows[0]
    lo, hi, val = head.index("ci_low"), head.index("ci_high"), head.index("value")
    r = next(r for r in rows[1:] if r[head.index("row")] == "lego" and r[head.index("column")] == "PSNR")
    assert float(r[lo]) <= float(r[val]) <= float(r[hi])  # intervals in the CSV, numbers as numbers


def test_seed_runs_become_one_row_with_mean_and_std(runs, tmp_path):
    root = tmp_path / "runs"
    vals = []
    for seed in (0, 1, 2):
        d = _as(fake_run(runs["input-copy"], root / f"lego-s{seed}", "lego", 0.6 + 0.05 * seed, seed), seed=seed)
        vals.append(json.loads((d / "metrics.json").read_text())["metrics"]["egovlp"]["value"] * 100)
    fake_run(runs["input-copy"], root / "ip2p", "ip2p", 0.5, 9)
    res = write_report(runs_dir=root, out=tmp_path / "rep", formats=["md"], n_boot=20)
    t1 = next(t for t in res.tables if t.id == "table1-demo")
    lego = [r for r in t1.rows if r.method == "lego"]
    assert len(lego) == 1
    c = lego[0].cells[0]
    assert c.display == pytest.approx(np.mean(vals)) and c.std == pytest.approx(np.std(vals, ddof=1))
    assert c.text == f"{np.mean(vals):.2f} \u00b1 {np.std(vals, ddof=1):.2f}"
    assert "3 seed runs" in lego[0].source and "seeds 0, 1, 2" in lego[0].source
    assert "\u00b1" in (tmp_path / "rep" / "tables.md").read_text()
