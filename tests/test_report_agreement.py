"""``egobench report --study DIR --results CSV``: the agreement and Bradley-Terry sections (issue 19 items 2, 3)."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from egobench.agreement import agree
from egobench.cli import main
from reports.cli import write_report
from tests.test_userstudy import _export, results_csv


@pytest.fixture(autouse=True)
def _own_bounds_cache(monkeypatch, tmp_path):
    """Each test's input-copy runs (reports.bounds) in its own cache: a report's rows never depend on which
    tests ran before it in the session."""
    monkeypatch.setattr("reports.bounds.default_bounds_cache", lambda: tmp_path / "bounds")


@pytest.fixture
def study(runs, tmp_path):
    """An exported study of the three demo runs; attentive raters W0-W3 mostly pick the oracle's frame
    (one item split 2-2 between the two copies of the input), W4 fails the attention checks."""
    res = _export(runs, tmp_path / "ex", attention_checks=2)
    key = json.loads(res.key_json.read_text())
    items = sorted(i for i, it in key["items"].items() if it["kind"] == "study")
    answers = {}
    for item, it in key["items"].items():
        for w in ("W0", "W1", "W2", "W3", "W4"):
            if it["kind"] == "attention":
                answers[(w, item)] = next(s for s in it["slots"] if s != it["expected"]) if w == "W4" else it["expected"]
            elif item == items[0]:
                copies = [s for s in it["slots"] if it["slots"][s]["method"] != "oracle"]
                answers[(w, item)] = copies[0] if w in ("W0", "W1") else copies[1]
            else:
                answers[(w, item)] = next(s for s in it["slots"] if it["slots"][s]["method"] == "oracle")
    (tmp_path / "results.csv").write_text(results_csv(res.batch_csv, answers))
    return tmp_path / "ex", tmp_path / "results.csv"


def test_report_has_agreement_and_ranking_sections_with_a_plot(runs, study, tmp_path):
    ex, results = study
    expected = agree(str(ex), str(results), n_boot=200)
    res = write_report([runs["input-copy"], runs["oracle"]], out=tmp_path / "rep",
                       formats=["html", "latex", "md", "csv", "json"], n_boot=200, study=ex, study_results=results)
    assert not res.failed, res.failed
    tables = {t["id"]: t for t in json.loads((tmp_path / "rep" / "tables.json").read_text())}
    agr, rank = tables["agreement-demo"], tables["ranking-demo"]
    assert [c["label"] for c in agr["columns"]] == ["Pairwise acc.", "Kendall tau", "Ceiling (raters)"]
    psnr = next(r for r in agr["rows"] if r["method"] == "psnr")
    m = expected.metrics["psnr"]
    # the report shows what egobench agree computes: accuracy x100 with its interval, tau, the ceiling
    assert psnr["cells"][0]["display"] == pytest.approx(m["pairwise_accuracy"] * 100)
    assert psnr["cells"][0]["ci"] == pytest.approx([m["accuracy_ci_low"] * 100, m["accuracy_ci_high"] * 100])
    assert psnr["cells"][1]["display"] == pytest.approx(m["tau"])
    assert psnr["cells"][2]["display"] == pytest.approx(expected.ceiling["pairwise_accuracy"] * 100)
    assert psnr["n"] == m["pairs"]
    # 5 items where the oracle got every vote: PSNR ranks it first (inf) -> 2 pairs agree each; the split
    # item (copies 2-2, oracle 0) -> 2 pairs disagree: 10 of 12; ceiling 40 of 40 + 6 of 12
    assert psnr["cells"][0]["display"] == pytest.approx(1000 / 12)
    assert psnr["cells"][2]["display"] == pytest.approx(4600 / 52)
    assert any("W4" in n for n in agr["notes"])
    # ranking: oracle first, strengths with intervals beside the win rates (counted from the answers)
    assert [r["label"] for r in rank["rows"]][0] == "oracle"
    oracle = rank["rows"][0]
    assert oracle["cells"][0]["ci"][0] <= oracle["cells"][0]["display"] <= oracle["cells"][0]["ci"][1]
    assert oracle["cells"][2]["display"] == pytest.approx(20 / 24 * 100) and oracle["n"] == 20
    assert oracle["cells"][0]["display"] == pytest.approx(expected.rankings["oracle"]["strength"])
    # every format, and the plot
    md = (tmp_path / "rep" / "tables.md").read_text()
    assert "## Agreement of each metric with the user study" in md and "(Bradley-Terry / Plackett-Luce)" in md
    tex = (tmp_path / "rep" / "tables.tex").read_text()
    assert "Agreement of each metric" in tex and "Kendall tau" in tex and "BT strength" in tex
    rows = list(csv.DictReader(io.StringIO((tmp_path / "rep" / "tables.csv").read_text())))
    assert {r["table"] for r in rows} >= {"agreement-demo", "ranking-demo"}
    html = (tmp_path / "rep" / "index.html").read_text()
    assert 'data-table="agreement-demo"' in html and 'data-table="ranking-demo"' in html
    svg = next(s.split('"')[0] for s in html.split('src="')[1:] if "Bradley-Terry strength" in s.split('alt="')[1][:60])
    root = ET.parse(tmp_path / "rep" / svg).getroot()
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert {"oracle", "input-copy"} <= set(texts) and len(list(root.iter("{http://www.w3.org/2000/svg}rect"))) == 3


def test_study_needs_its_results_and_reads_like_agree(runs, study, tmp_path):
    ex, results = study
    r = CliRunner().invoke(main, ["report", str(runs["oracle"]), "--study", str(ex), "--out", str(tmp_path / "r"),
                                  "--bootstrap", "50"])
    assert r.exit_code == 2 and "--results" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["report", str(runs["input-copy"]), str(runs["oracle"]), "--study", str(ex),
                                  "--results", str(results), "--format", "md", "--out", str(tmp_path / "r"),
                                  "--bootstrap", "50"])
    assert r.exit_code == 0, r.output
    assert "agreement-demo" in r.output and "ranking-demo" in r.output
    bad = CliRunner().invoke(main, ["report", str(runs["oracle"]), "--study", str(tmp_path), "--results",
                                    str(results), "--out", str(tmp_path / "r2"), "--bootstrap", "50"])
    assert bad.exit_code == 2 and "private/key.json" in bad.output
