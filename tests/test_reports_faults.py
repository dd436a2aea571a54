"""``egobench report`` faults (issues 13 item 8, 14 items 2-5 and 11): moved data,
bad frames, evaluated folders, output folders, kill -9, LaTeX, plots, run choice."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from egobench.cli import main
from egobench.images import open_rgb
from egobench.io import TMP_PREFIX
from reports.cli import write_report
from tests.conftest import one_line_error
from tests.test_reports import _userstudy, fake_run


@pytest.fixture(autouse=True)
def _own_bounds_cache(monkeypatch, tmp_path):
    """Each test's input-copy runs (reports.bounds) in its own cache: a report's rows never depend on which
    tests ran before it in the session."""
    monkeypatch.setattr("reports.bounds.default_bounds_cache", lambda: tmp_path / "bounds")


REPO = Path(__file__).resolve().parents[1]


def _report(args: list[str]):
    """``egobench report ARGS`` through the top-level command (its one-line error handling)."""
    return CliRunner().invoke(main, ["report"] + args + ["--bootstrap", "50"])


# -- issue 13 item 8: stored results only; moved data root, non-image frames ----------------------------------
def test_report_after_data_root_moved_and_with_bad_frames(runs, tmp_path):
    moved = tmp_path / "other-machine"
    a = moved / "input-copy"
    b = moved / "oracle"
    shutil.copytree(runs["input-copy"], a)  # runs copied elsewhere; their own images travel with them
    shutil.copytree(runs["oracle"], b)
    for d in (a, b):  # the data root is gone on this machine
        df = pd.read_parquet(d / "samples.parquet")
        df["input_path"] = ["/gone/data/root/" + Path(p).name for p in df["input_path"]]
        df["target_path"] = ["/gone/data/root/t_" + Path(p).name for p in df["target_path"]]
        df.to_parquet(d / "samples.parquet", index=False)
    # one frame that is not an image, one output that vanished
    df = pd.read_parquet(a / "samples.parquet")
    notimg = tmp_path / "frame.jpg"
    notimg.write_text("not an image")
    df.loc[0, "target_path"] = str(notimg)
    df.to_parquet(a / "samples.parquet", index=False)
    (b / pd.read_parquet(b / "samples.parquet")["output"][1]).unlink()
    res = _report([str(a), str(b), "--format", "html,latex", "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "placeholder" in res.output and res.exception is None
    html = (tmp_path / "rep" / "index.html").read_text()
    n = len(df)
    assert html.count('<div class="placeholder">input missing') == n
    assert html.count('<div class="placeholder">ground truth missing') == n - 1
    assert html.count('<div class="placeholder">ground truth unreadable') == 1
    assert html.count('<div class="placeholder">output missing') == 1
    assert f"{2 * n + 1} frame(s) could not be shown" in html
    assert "input missing: 8" in html and "target unreadable: 1" in html and "output missing: 1" in html
    for src in [s.split('"')[0] for s in html.split('src="')[1:]]:
        assert (tmp_path / "rep" / src).is_file()
    # tables come from the stored results, untouched by the missing frames
    assert html.count('data-table="table1-demo"') == 1


def test_report_damaged_run_files_are_one_line_errors(runs, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(runs["input-copy"], bad)
    (bad / "samples.parquet").write_bytes(b"PAR1 garbage")
    res = _report([str(bad), "--out", str(tmp_path / "r")])
    one_line_error(res)
    assert "samples.parquet: cannot read" in res.output and "Traceback" not in res.output
    (bad / "samples.parquet").unlink()
    (bad / "metrics.json").write_text("[1, 2]")
    res = _report([str(bad), "--out", str(tmp_path / "r")])
    one_line_error(res)
    assert "metrics.json: not an egobench metrics file" in res.output
    us = tmp_path / "us.json"
    us.write_text(json.dumps({"egobench_userstudy": 1, "methods": {"lego": 3}}))  # no dataset, no rates
    res = _report([str(runs["input-copy"]), "--user-study", str(us), "--out", str(tmp_path / "r")])
    one_line_error(res)
    assert "us.json: user-study file without a dataset" in res.output


# -- issue 14 item 2: an evaluated folder's images, reported from another working directory -------------------
def test_report_grid_of_evaluated_folder_from_another_cwd(runs, tmp_path, monkeypatch):
    from egobench import evaluate
    from egobench.protocol import load_protocol

    src = runs["input-copy"]
    work = tmp_path / "work"
    gen = work / "gen"
    gen.mkdir(parents=True)
    df = pd.read_parquet(src / "samples.parquet")
    for sid, out in zip(df["sample_id"], df["output"]):
        shutil.copyfile(src / out, gen / f"{sid}.png")
    p = load_protocol("egobench-v1")
    p = dataclasses.replace(p, metrics=tuple(m for m in p.metrics if m.name == "psnr"))
    monkeypatch.chdir(work)
    ev = evaluate("gen", "demo", protocol=p, limit=len(df), out="evalrun", progress=False)  # relative folder
    run_dir = (work / ev.run_dir).resolve() if not Path(ev.run_dir).is_absolute() else Path(ev.run_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    write_report([run_dir], out="rep", formats=["html"], n_boot=20)
    html = (elsewhere / "rep" / "index.html").read_text()
    assert "placeholder" not in html.split("<body>")[1] and "<em>missing</em>" not in html
    assert html.count('alt="external-') == len(df)  # every output image shown
    for s in [s.split('"')[0] for s in html.split('src="')[1:]]:
        assert (elsewhere / "rep" / s).is_file()


# -- issue 14 item 3: relative --out with --pdf; a failed PDF step keeps the rest -------------------------------
def _fake_pdflatex(bin_dir: Path) -> None:
    bin_dir.mkdir()
    exe = bin_dir / "pdflatex"
    exe.write_text("#!/bin/sh\necho '! Fake failure for the test.'\nexit 1\n")
    exe.chmod(0o755)


def test_report_failed_pdf_step_keeps_outputs_and_names_the_step(runs, tmp_path, monkeypatch):
    _fake_pdflatex(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    res = _report([str(runs["input-copy"]), "--pdf", "--format", "html,latex,md", "--out", "report/"])
    assert res.exit_code == 2, res.output
    assert "report step 'pdf' failed" in res.output and "Fake failure" in res.output
    for f in ("index.html", "tables.tex", "tables.md"):
        assert (tmp_path / "report" / f).is_file() and f"written: report/{f}" in res.output
    assert not (tmp_path / "report" / "tables.pdf").exists()


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed (CI installs texlive)")
def test_report_pdf_with_relative_out_dir(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    odd = "report dir #1 100%"  # spaces and TeX specials in the folder name
    for out in ("report/", odd):
        res = _report([str(runs["input-copy"]), "--pdf", "--out", out])
        assert res.exit_code == 0, res.output
        assert (tmp_path / out / "tables.pdf").read_bytes().startswith(b"%PDF")
        assert (tmp_path / out / "index.html").is_file()


# -- kill -9 during report: nothing half-written ------------------------------------------------------------------
def _complete(path: Path) -> bool:
    if path.name.startswith(TMP_PREFIX):
        return True  # a temp file is not an output (removed by the next report)
    if path.suffix == ".html":
        return path.read_text().rstrip().endswith("</html>")
    if path.suffix == ".tex":
        return path.read_text().rstrip().endswith(r"\end{document}")
    if path.suffix == ".json":
        json.loads(path.read_text())
        return True
    if path.suffix == ".svg":
        ET.parse(path)
        return True
    if path.suffix == ".jpg":
        open_rgb(path)
        return True
    return path.stat().st_size > 0


def test_kill9_during_report_leaves_no_half_written_output(runs, tmp_path):
    out = tmp_path / "rep"
    code = ("import sys; from reports.cli import write_report; "
            "write_report(sys.argv[1:3], out=sys.argv[3], formats=['json', 'latex', 'html'], n_boot=2000, "
            "max_rows=64)")
    args = [sys.executable, "-c", code, str(runs["input-copy"]), str(runs["oracle"]), str(out)]
    for delay in (0.0, 0.05, 0.3):
        proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not (out / "assets").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for f in out.rglob("*"):
            if f.is_file():
                assert _complete(f), f
    # a finished report afterwards is whole, and leaves no temp file of a killed writer behind
    (out / "assets").mkdir(parents=True, exist_ok=True)
    (out / "assets" / (TMP_PREFIX + "killed.jpg")).write_bytes(b"\xff\xd8 half a jpeg")
    write_report([runs["input-copy"], runs["oracle"]], out=out, formats=["json", "latex", "html"], n_boot=20)
    assert not list(out.rglob(TMP_PREFIX + "*"))
    assert all(_complete(f) for f in out.rglob("*") if f.is_file())


# -- issue 14 item 4: LaTeX captions, float placement, user-study column -----------------------------------------
def _baselines(runs, root: Path) -> Path:
    for i, (m, q) in enumerate((("sdedit", 0.3), ("ip2p", 0.5), ("lego", 0.8))):
        fake_run(runs["input-copy"], root / m, m, q, i)
    return root


def test_latex_caption_once_title_first_and_user_study_column(runs, tmp_path):
    root = _baselines(runs, tmp_path / "runs")  # no ablation variants: the study must still show
    us = _userstudy(tmp_path / "us.json")
    data = json.loads(us.read_text())
    data["methods"]["sdedit"] = {"rate": 10.0, "ci_low": 5.0, "ci_high": 15.0, "votes": 30}
    us.write_text(json.dumps(data))
    # an empty input-copy cache: these rows' made-up metrics (no recorded settings) cannot be rebuilt, so
    # no input-copy row is made (tests/test_reports_copy.py covers it); the rows do not depend on test order
    res = write_report(runs_dir=root, out=tmp_path / "rep", formats=["html", "latex"], userstudy=[us], n_boot=50,
                       pdf=True, bounds_cache=tmp_path / "bounds")
    t3 = next(t for t in res.tables if t.id == "table3-demo")
    assert t3.columns[-1].label == "User Study"
    assert [(r.label, r.cells[-1].text) for r in t3.rows] == [("Action labels", "20.00"), ("+ joint emb.", "50.00")]
    assert any("sdedit 10.00%" in n for n in t3.notes)  # a study method without a row is not lost
    tex = (tmp_path / "rep" / "tables.tex").read_text()
    assert "Table 1: Table 1" not in tex and r"\caption{image metrics on demo (synthetic)}" in tex
    assert r"\setcounter{table}{0}" in tex and r"\setcounter{table}{2}" in tex
    assert tex.index(r"\section*{") < tex.index(r"\suppressfloats[t]") < tex.index(r"\begin{table}")
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "User Study" in html and "50.00" in html
    if not (shutil.which("pdflatex") and shutil.which("pdftotext") and shutil.which("pdftoppm")):
        pytest.skip("pdflatex/pdftotext/pdftoppm not installed: the compiled page is not checked")
    pdf = res.pdf
    assert pdf is not None
    page1 = subprocess.run(["pdftotext", "-layout", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True,
                           text=True, check=True).stdout
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    lines = [ln.strip() for ln in page1.splitlines() if ln.strip()]
    assert lines[0] == "egobench report"  # the title comes first, no float above it
    assert page1.index("egobench report") < page1.index("Table 1: image metrics on demo")
    assert "Table 1: Table 1" not in text and "Table 3: conditioning ablation on demo" in text
    assert "User Study" in text and "50.00" in text and "LEGO (published)" in text
    subprocess.run(["pdftoppm", "-r", "30", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
                   check=True)
    png = next(tmp_path.glob("page*.png"))
    with Image.open(png) as im:  # a rendered landscape page, not blank
        assert im.width > im.height and im.convert("L").getextrema()[0] < 128


# -- issue 14 item 5: plot axes, wide frames ---------------------------------------------------------------------
def test_plot_axis_ends_at_100_and_wide_frames_fit_their_column(runs, tmp_path):
    root = tmp_path / "runs"
    for i, m in enumerate(("ip2p", "lego")):
        d = fake_run(runs["input-copy"], root / m, m, 0.5, i)
        df = pd.read_parquet(d / "samples.parquet")
        df["egovlp"] = 0.97 + 0.01 * i  # shown 97-98: the old axis went to 200
        df.to_parquet(d / "samples.parquet", index=False)
        met = json.loads((d / "metrics.json").read_text())
        met["metrics"]["egovlp"]["value"] = 0.97 + 0.01 * i
        (d / "metrics.json").write_text(json.dumps(met))
    wide = tmp_path / "wide.png"
    Image.new("RGB", (912, 256), (200, 30, 30)).save(wide)  # EPIC-like wide frame, 3.6:1
    df = pd.read_parquet(root / "ip2p" / "samples.parquet")
    df["input_path"] = str(wide)
    df.to_parquet(root / "ip2p" / "samples.parquet", index=False)
    write_report(runs_dir=root, out=tmp_path / "rep", formats=["html"], n_boot=20)
    html = (tmp_path / "rep" / "index.html").read_text()
    svg_name = next(s.split('"')[0] for s in html.split('src="')[1:] if 'EgoVLP on' in s.split('alt="')[1][:40])
    labels = [t.text for t in ET.parse(tmp_path / "rep" / svg_name).getroot().iter("{http://www.w3.org/2000/svg}text")]
    assert "100" in labels and "200" not in labels
    thumbs = [tmp_path / "rep" / s.split('"')[0] for s in html.split('src="')[1:] if 'alt="input"' in s[:80]]
    assert thumbs
    for t in thumbs:
        with Image.open(t) as im:
            assert im.width <= 240 and im.height <= 160
    assert "max-width: 100%" in html and "table-layout: fixed" in html


# -- issue 14 item 11: which run each row comes from; pick; never mix selections silently -------------------------
def _set_manifest(d: Path, **kw) -> None:
    man = json.loads((d / "manifest.json").read_text())
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(man.get(k), dict):
            man[k].update(v)
        else:
            man[k] = v
    (d / "manifest.json").write_text(json.dumps(man))


def test_two_runs_of_one_method_are_named_and_pickable(runs, tmp_path):
    root = tmp_path / "runs"
    old = fake_run(runs["input-copy"], root / "sdedit-full", "sdedit", 0.3, 0)
    new = fake_run(runs["input-copy"], root / "sdedit-limited", "sdedit", 0.35, 1)
    fake_run(runs["input-copy"], root / "lego", "lego", 0.8, 2)
    _set_manifest(old, updated="2026-01-01T00:00:00Z", split={"fingerprint": "a" * 64, "selection": None})
    _set_manifest(new, updated="2026-06-01T00:00:00Z", split={"fingerprint": "b" * 64, "limit": 3,
                                                               "selection": {"limit": 3}})
    met = json.loads((new / "metrics.json").read_text())
    met["n_scored"] = 3
    (new / "metrics.json").write_text(json.dumps(met))

    def t1(**kw):
        res = write_report(runs_dir=root, out=tmp_path / "rep", formats=["json"], n_boot=20, **kw)
        return next(t for t in res.tables if t.id == "table1-demo")

    default = t1()  # the full run, not the newer --limit one
    sd = [r for r in default.rows if r.method == "sdedit"]
    assert len(sd) == 1 and str(old) in sd[0].source and sd[0].n == 8
    note = next(n for n in default.notes if n.startswith("sdedit:"))
    assert str(new) in note and "not shown" in note and "--limit 3" in note and "--prefer" in note
    latest = t1(prefer="latest")
    sd = [r for r in latest.rows if r.method == "sdedit"]
    assert len(sd) == 1 and str(new) in sd[0].source and "--limit 3" in sd[0].source and sd[0].n == 3
    note = next(n for n in latest.notes if n.startswith("sdedit:"))
    assert str(old) in note and "not shown" in note and "different sample selections" in note
    # the chosen limited row sits beside a full-split lego row: the table says so
    assert any(n.startswith("Rows scored different sample selections") and "--limit 3" in n for n in latest.notes)
    both = t1(prefer="all")
    sd = [r for r in both.rows if r.method == "sdedit"]
    assert len(sd) == 2 and len({r.label for r in sd}) == 2 and {r.n for r in sd} == {3, 8}
    assert any("different sample selections" in n and "not directly comparable" in n for n in both.notes)
    # explicit run paths: shown as given
    res = _report([str(old), str(new), "--format", "md", "--out", str(tmp_path / "md")])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "md" / "tables.md").read_text()
    assert md.count("sdedit-full") >= 1 and md.count("sdedit-limited") >= 1


def test_no_direct_pil_open_in_reports():
    for f in (REPO / "reports").glob("*.py"):
        assert "Image.open(" not in f.read_text(), f


def test_import_amt_win_rates_reach_the_report(runs, tmp_path):
    """The real export -> results -> import-amt -> report path, on runs without ablation variants."""
    import numpy as np

    from egobench.userstudy import import_amt
    from tests.test_userstudy import _answers, _export, results_csv

    ex = _export(runs, tmp_path / "ex")
    key = json.loads(ex.key_json.read_text())
    ans = _answers(key, [f"W{i}" for i in range(4)], "oracle", "none", np.random.default_rng(0))
    (tmp_path / "results.csv").write_text(results_csv(ex.batch_csv, ans))
    study, out = import_amt(tmp_path / "results.csv", ex.key_json, tmp_path / "us", seed=1)
    res = _report([str(p) for p in runs.values()] + ["--user-study", str(out / "userstudy.json"), "--format",
                                                     "html,latex", "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "rep" / "index.html").read_text()
    t1 = html.split('data-table="table1-demo"')[1].split("</table>")[0]
    assert "<th>User Study</th>" in t1
    for r in study.rates.values():
        assert f"{r['rate']:.2f}" in t1
    assert "User Study" in (tmp_path / "rep" / "tables.tex").read_text()


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


PROBE = """<script>
window.addEventListener('load', () => {
  const vw = document.documentElement.clientWidth, bad = [];
  let n = 0;
  for (const t of document.querySelectorAll('table.grid')) {
    if (t.getBoundingClientRect().right > vw + 1) bad.push('table wider than the page');
    for (const img of t.querySelectorAll('img')) {
      n += 1;
      const r = img.getBoundingClientRect(), c = img.closest('td').getBoundingClientRect();
      if (!img.complete || r.width < 1) bad.push('not rendered ' + img.src);
      if (r.right > c.right + 1 || r.left < c.left - 1) bad.push('overflows its column ' + img.src);
    }
  }
  const pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify({n: n, bad: bad}); document.body.appendChild(pre);
});
</script>"""


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install chromium): the grid "
                    "layout is checked in a real browser only where one exists")
def test_wide_frames_stay_in_their_grid_columns_in_chromium(runs, tmp_path):
    import tempfile

    root = tmp_path / "runs"
    wide = tmp_path / "wide.png"
    Image.new("RGB", (912, 256), (200, 30, 30)).save(wide)  # wider than EPIC-Kitchens' 456x256
    for i, m in enumerate(("sdedit", "ip2p", "lego")):
        d = fake_run(runs["input-copy"], root / m, m, 0.3 + 0.2 * i, i)
        df = pd.read_parquet(d / "samples.parquet")
        df["input_path"] = df["target_path"] = str(wide)
        df.to_parquet(d / "samples.parquet", index=False)
    write_report(runs_dir=root, out=tmp_path / "rep", formats=["html"], n_boot=20, max_rows=3,
                 bounds_cache=tmp_path / "bounds")  # no input-copy column: 3 methods
    page = tmp_path / "rep" / "probe.html"
    page.write_text((tmp_path / "rep" / "index.html").read_text().replace("</body>", PROBE + "</body>"))
    with tempfile.TemporaryDirectory() as prof:
        proc = subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", f"--user-data-dir={prof}",
             "--window-size=900,700", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    probe = json.loads(proc.stdout.split('<pre id="probe">')[1].split("</pre>")[0].replace("&quot;", '"'))
    assert probe["n"] == 3 * 5 and probe["bad"] == []  # input, 3 methods, ground truth per row
