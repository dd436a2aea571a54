"""Paper tables from runs (reports.tables / latex / plots / cli): layout, significance, escaping, LaTeX."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from egobench.plots import bar_chart_svg
from reports.cli import compile_latex, report_cmd, write_report
from reports.latex import latex_escape, render_document
from reports.tables import build_tables, load_run
from tests.test_userstudy import NASTY


@pytest.fixture(autouse=True)
def _own_bounds_cache(monkeypatch, tmp_path):
    """Each test's input-copy runs (reports.bounds) in its own cache: a report's rows never depend on which
    tests ran before it in the session."""
    monkeypatch.setattr("reports.bounds.default_bounds_cache", lambda: tmp_path / "bounds")


SAMPLE_METRICS = {  # name: (higher_is_better, display_scale)
    "egovlp": (True, 100.0), "egovlp-plus": (True, 100.0), "clip": (True, 100.0), "psnr": (True, 1.0),
    "lpips": (False, 100.0), "blip-b": (True, 100.0), "blip-l": (True, 100.0),
}


def fake_run(src: Path, dst: Path, method: str, quality: float, seed: int, options: dict | None = None,
             action: str | None = None) -> Path:
    """A copy of a real run with every paper metric filled in (per-sample values ~ quality)."""
    shutil.copytree(src, dst)
    rng = np.random.default_rng(seed)
    df = pd.read_parquet(dst / "samples.parquet")
    n = len(df)
    m = json.loads((dst / "metrics.json").read_text())
    m["method"] = method
    metrics = {}
    for name, (hib, scale) in SAMPLE_METRICS.items():
        if name == "psnr":
            vals = 10 + 5 * quality + rng.normal(0, 0.2, n)
        else:
            vals = np.clip((quality if hib else 1 - quality) * 0.8 + rng.normal(0, 0.02, n), 0, 1)
        df[name] = vals
        metrics[name] = {"metric": name, "kind": "sample", "higher_is_better": hib, "display_scale": scale,
                         "value": float(vals.mean()), "n": n}
    metrics["fid"] = {"metric": "fid", "kind": "set", "higher_is_better": False, "display_scale": 1.0,
                      "value": 40 - 20 * quality, "n": n}
    m["metrics"] = metrics
    m["metric_order"] = ["egovlp", "egovlp-plus", "clip", "fid", "psnr", "lpips", "blip-b", "blip-l"]
    if action is not None:
        df["action"] = action
        df["description"] = action
    df["output"] = [str(src / o) for o in df["output"]]
    df.to_parquet(dst / "samples.parquet", index=False)
    (dst / "metrics.json").write_text(json.dumps(m))
    man = json.loads((dst / "manifest.json").read_text())
    man["method"] = {"name": method, "options": options or {}}
    (dst / "manifest.json").write_text(json.dumps(man))
    return dst


@pytest.fixture
def zoo(runs, tmp_path) -> Path:
    """Runs for every table: baselines, the ablation variants, LEGO with/without VLLM finetuning."""
    root = tmp_path / "zoo"
    src = runs["input-copy"]
    specs = [("sdedit", 0.3, {}), ("ip2p", 0.5, {}), ("lego-desc", 0.55, {}), ("lego-img", 0.6, {}),
             ("lego-txt", 0.62, {}), ("lego", 0.8, {"vllm_finetuned": True}), ("lego", 0.6, {"vllm_finetuned": False})]
    for i, (m, q, opt) in enumerate(specs):
        fake_run(src, root / "demo" / f"{m}-{i}", m, q, i, opt)
    return root


def _userstudy(path: Path) -> Path:
    data = {"egobench_userstudy": 1, "study": "action", "dataset": "demo",
            "methods": {"ip2p": {"rate": 20.0, "ci_low": 10.0, "ci_high": 30.0, "votes": 60},
                        "lego": {"rate": 50.0, "ci_low": 40.0, "ci_high": 60.0, "votes": 150},
                        "lego-desc": {"rate": 30.0, "ci_low": 20.0, "ci_high": 40.0, "votes": 90}}}
    path.write_text(json.dumps(data))
    return path


def test_tables_layout_bold_dagger_and_intervals(zoo, tmp_path):
    runs = [load_run(p) for p in sorted((zoo / "demo").iterdir())]
    us = json.loads(_userstudy(tmp_path / "us.json").read_text())
    tables = {t.id: t for t in build_tables(runs, userstudy=[us], n_boot=300)}
    assert set(tables) == {"table1-demo", "table2-demo", "table3-demo", "table4-demo"}
    t1 = tables["table1-demo"]
    assert [c.label for c in t1.columns] == ["EgoVLP", "EgoVLP+", "CLIP", "FID", "PSNR", "LPIPS"]
    assert [r.label for r in t1.rows] == ["sdedit", "ip2p", "lego"]  # no ablation-only or off-the-shelf rows
    lego = t1.rows[2]
    assert all(c.best for c in lego.cells) and not any(c.behind for c in lego.cells)
    sd = t1.rows[0]
    fid_col = [c.key for c in t1.columns].index("fid")
    assert all(c.behind for j, c in enumerate(sd.cells) if j != fid_col)  # clearly worse: significant
    assert sd.cells[fid_col].ci is None and not sd.cells[fid_col].behind
    assert any("FID" in n and "per-sample features" in n for n in t1.notes)
    ego = lego.cells[0]
    assert ego.text == f"{ego.value * 100:.2f}" and ego.ci[0] <= ego.value * 100 <= ego.ci[1]
    assert [c.label for c in tables["table2-demo"].columns] == ["BLIP-B", "BLIP-L"]
    t3 = tables["table3-demo"]
    assert [r.label for r in t3.rows] == ["Action labels", "Descriptions", "+ image emb.", "+ text emb.",
                                          "+ joint emb."]
    assert t3.columns[-1].label == "User Study"
    assert [r.cells[-1].text for r in t3.rows] == ["20.00", "30.00", "--", "--", "50.00"]
    assert t3.rows[-1].cells[-1].best
    t4 = tables["table4-demo"]
    assert [r.label for r in t4.rows] == ["lego w/o finetuning", "lego finetuned"]
    assert all(t.protocol_line.startswith("Protocol egobench-v1 v") for t in tables.values())


def test_report_html_latex_and_pdf(zoo, tmp_path):
    res = write_report(runs_dir=zoo, out=tmp_path / "rep", formats=["html", "latex", "json"],
                       userstudy=[_userstudy(tmp_path / "us.json")], n_boot=200, pdf=True)
    html = (tmp_path / "rep" / "index.html").read_text()
    assert 'id="not-comparable"' in html
    assert len([t for t in res.tables if t.kind == "paper"]) == 4
    n_tables = len([t for t in res.tables if t.kind != "published"])  # paper tables and breakdowns
    assert html.count('class="protocol">Protocol egobench-v1 v') == n_tables
    assert html.count("<b>") > 0 and "†" in html and "LPIPS ↓" in html and "FID ↓" in html
    assert html.count('class="grid"') == 1 and html.count("<svg") == 0 and ".svg" in html
    for src in [s.split('"')[0] for s in html.split('src="')[1:]]:
        assert (tmp_path / "rep" / src).is_file()
    for svg in (tmp_path / "rep" / "assets").glob("*.svg"):
        ET.parse(svg)
    tex = (tmp_path / "rep" / "tables.tex").read_text()
    # measured tables + the paper's published Tables 1-2 on both datasets (the demo split has none)
    assert tex.count(r"\toprule") == tex.count(r"\bottomrule") == len(res.tables) and r"\usepackage{booktabs}" in tex
    assert tex.count(r"\begin{table}") == len(res.tables) and len(res.tables) >= 8
    assert tex.count("Protocol egobench-v1 v") == n_tables and "Not comparable" in tex
    assert r"LPIPS $\downarrow$" in tex and r"\textbf{" in tex and r"$^\dagger$" in tex
    if shutil.which("pdflatex"):
        assert res.pdf is not None and res.pdf.read_bytes().startswith(b"%PDF")
    else:
        assert res.pdf is None  # structural checks above are the fallback
    assert json.loads((tmp_path / "rep" / "tables.json").read_text())[0]["id"] == "table1-demo"


def test_report_escapes_dataset_and_method_strings(runs, tmp_path):
    root = tmp_path / "nasty"
    fake_run(runs["input-copy"], root / "a", NASTY, 0.4, 0, action=NASTY)
    fake_run(runs["input-copy"], root / "b", "lego", 0.7, 1, action=NASTY)
    res = write_report(runs_dir=root, out=tmp_path / "rep", formats=["html", "latex"], n_boot=50, pdf=True)
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; 100% of_x {a} &#34;dq&#34; &#39;sq&#39;" in html
    tex = (tmp_path / "rep" / "tables.tex").read_text()
    assert latex_escape(NASTY) in tex and NASTY not in tex
    if shutil.which("pdflatex"):
        assert res.pdf is not None


def test_latex_escape_specials(tmp_path):
    s = latex_escape(r"a\b{c}$d&e#f^g_h%i~j<k>l\"m'n--o")
    assert s == (r"a\textbackslash{}b\{c\}\$d\&e\#f\textasciicircum{}g\_h\%i\textasciitilde{}j\textless{}k"
                 r"\textgreater{}l\textbackslash{}\textquotedbl{}m\textquotesingle{}n-{}-o")
    if shutil.which("pdflatex"):
        doc = render_document([], title=NASTY + " " + r"a\b{c}$d&e#f^g_h%i~j<k>l\"m'n--o")
        (tmp_path / "t.tex").write_text(doc)
        assert compile_latex(tmp_path / "t.tex") is not None


def test_bar_chart_svg_is_valid_xml_with_escaped_labels():
    svg = bar_chart_svg([NASTY, "b"], [40.0, float("inf")], [30.0, None], [50.0, None], title=NASTY, unit="%")
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert NASTY in texts and "inf" in texts


def test_report_command(runs, tmp_path):
    res = CliRunner().invoke(report_cmd, [str(runs["input-copy"]), str(runs["oracle"]), "--format", "html,latex",
                                          "--bootstrap", "50", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "table1-demo" in res.output and (tmp_path / "r" / "index.html").is_file()
    bad = CliRunner().invoke(report_cmd, ["--format", "pdf", "--runs-dir", str(tmp_path), "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0
