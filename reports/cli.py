"""``egobench report``: the paper's tables (HTML and/or LaTeX) from stored runs.

Registered through the ``egobench.commands`` entry-point group
(``report = "reports.cli:report_cmd"``).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click

from egobench.errors import UserError
from egobench.io import atomic_write_text

from .latex import render_document
from .plots import bar_chart_svg
from .tables import DATASET_NAMES, TABLE1, RunData, build_tables, find_runs, load_run, tables_json

FORMATS = ("html", "latex", "json")


@dataclass
class ReportResult:
    out: Path
    files: list[Path] = field(default_factory=list)
    tables: list = field(default_factory=list)
    pdf: Path | None = None


def _name(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def _grids(runs: list[RunData], tables, assets: Path, max_rows: int) -> list[dict]:
    from .html import _thumb

    grids = []
    for ds in dict.fromkeys(t.dataset for t in tables if t.id.startswith("table1-")):
        t1 = next(t for t in tables if t.id == f"table1-{ds}")
        rs = [next(r for r in runs if str(r.path) == row.run) for row in t1.rows]
        if not rs or any(r.samples.empty for r in rs):
            continue
        ok = [set(r.samples.loc[r.samples["status"] == "ok", "sample_id"]) for r in rs]
        base = rs[0].samples.set_index("sample_id", drop=False)
        common = [s for s in base.index if all(s in o for o in ok)]
        rows = []
        for sid in common[:max_rows]:
            s = base.loc[sid]
            entry = {"id": sid, "action": s["action"], "description": s["description"], "domain": s["domain"],
                     "outputs": []}
            for kind in ("input", "target"):
                dst = assets / f"{_name(ds, sid, kind)}.jpg"
                if not dst.is_file():
                    _thumb(Path(s[f"{kind}_path"]), dst)
                entry[kind] = f"assets/{dst.name}"
            for r in rs:
                out = r.samples.set_index("sample_id").loc[sid, "output"]
                p = Path(out) if out and Path(out).is_absolute() else (r.path / out if out else None)
                if p is not None and p.is_file():
                    dst = assets / f"{_name(str(r.path), sid)}.jpg"
                    _thumb(p, dst)
                    entry["outputs"].append(f"assets/{dst.name}")
                else:
                    entry["outputs"].append(None)
            rows.append(entry)
        grids.append({"dataset": ds, "dataset_name": DATASET_NAMES.get(ds, ds), "methods": [row.label for row in t1.rows],
                      "rows": rows, "n_total": len(common)})
    return grids


def _plots(tables, userstudies: list[dict], assets: Path) -> list[dict]:
    plots = []
    for t in tables:
        if not t.id.startswith("table1-"):
            continue
        for j, c in enumerate(t.columns):
            if c.key not in TABLE1:
                continue
            vals, lows, highs, labels = [], [], [], []
            for r in t.rows:
                cell = r.cells[j]
                if cell.value is None:
                    continue
                labels.append(r.label)
                try:
                    vals.append(float(cell.text))
                except ValueError:
                    vals.append(math.inf)
                lows.append(cell.ci[0] if cell.ci else None)
                highs.append(cell.ci[1] if cell.ci else None)
            if not labels:
                continue
            title = f"{c.label}{'' if c.higher_is_better else ' (lower is better)'} on {DATASET_NAMES.get(t.dataset, t.dataset)}"
            svg = bar_chart_svg(labels, vals, lows, highs, title=title)
            name = f"plot-{_name(t.id, c.key)}.svg"
            atomic_write_text(assets / name, svg)
            plots.append({"src": f"assets/{name}", "alt": title})
    for us in userstudies:
        labels = list(us["methods"])
        m = us["methods"]
        measure = "win rate" if us.get("study", "action") == "action" else "aligned"
        title = f"User study {measure} on {DATASET_NAMES.get(us['dataset'], us['dataset'])}"
        svg = bar_chart_svg(labels, [m[k]["rate"] for k in labels], [m[k]["ci_low"] for k in labels],
                            [m[k]["ci_high"] for k in labels], title=title, unit="%", vmax=100.0)
        name = f"plot-{_name('userstudy', us['dataset'], us.get('study', 'action'))}.svg"
        atomic_write_text(assets / name, svg)
        plots.append({"src": f"assets/{name}", "alt": title})
    return plots


def compile_latex(tex: Path, timeout: int = 120) -> Path | None:
    """Run pdflatex on ``tex`` if installed; return the PDF, None without pdflatex.
    A LaTeX error raises UserError with the first error line of the log."""
    exe = shutil.which("pdflatex")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "-output-directory", tmp, str(tex)],
                              capture_output=True, text=True, timeout=timeout, cwd=tmp)
        pdf = Path(tmp) / (tex.stem + ".pdf")
        if proc.returncode != 0 or not pdf.is_file():
            err = next((ln for ln in proc.stdout.splitlines() if ln.startswith("!")), f"exit {proc.returncode}")
            raise UserError(f"{tex}: pdflatex failed: {err}")
        dst = tex.with_suffix(".pdf")
        shutil.copyfile(pdf, dst)
        return dst


def write_report(
    runs: Sequence[str | os.PathLike] = (),
    *,
    runs_dir: str | os.PathLike | None = None,
    out: str | os.PathLike,
    formats: Sequence[str] = ("html", "latex"),
    userstudy: Sequence[str | os.PathLike] = (),
    title: str = "egobench report",
    n_boot: int = 1000,
    seed: int = 0,
    max_rows: int = 24,
    pdf: bool = False,
) -> ReportResult:
    from egobench.userstudy import load_userstudy

    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise UserError(f"unknown report format '{bad[0]}'; use {', '.join(FORMATS)}")
    paths = [Path(r) for r in runs]
    if runs_dir is not None:
        paths += find_runs(runs_dir)
    if not paths:
        raise UserError("no runs: give run directories or --runs-dir with runs under it")
    loaded = [load_run(p) for p in dict.fromkeys(paths)]
    studies = [load_userstudy(p) for p in userstudy]
    tables = build_tables(loaded, userstudy=studies, n_boot=n_boot, seed=seed)
    comparable = all(r.comparable for r in loaded)
    out = Path(out)
    res = ReportResult(out, tables=tables)
    if "json" in formats:
        atomic_write_text(out / "tables.json", tables_json(tables))
        res.files.append(out / "tables.json")
    if "latex" in formats:
        tex = out / "tables.tex"
        atomic_write_text(tex, render_document(tables, title=title, comparable=comparable))
        res.files.append(tex)
        if pdf:
            res.pdf = compile_latex(tex)
    if "html" in formats:
        import jinja2

        assets = out / "assets"
        assets.mkdir(parents=True, exist_ok=True)
        env = jinja2.Environment(loader=jinja2.PackageLoader("reports", "templates"),
                                 autoescape=jinja2.select_autoescape(["html", "j2"]),
                                 undefined=jinja2.StrictUndefined)
        html = env.get_template("report.html.j2").render(
            title=title, comparable=comparable, tables=tables, plots=_plots(tables, studies, assets),
            grids=_grids(loaded, tables, assets, max_rows))
        atomic_write_text(out / "index.html", html)
        res.files.append(out / "index.html")
    return res


@click.command("report")
@click.argument("runs", nargs=-1)
@click.option("--runs-dir", default=None, help="take every run under this folder")
@click.option("--format", "formats", default="html,latex", show_default=True, help="comma list of html, latex, json")
@click.option("--user-study", "userstudy", multiple=True, help="userstudy.json from egobench import-amt (Table 3)")
@click.option("--title", default="egobench report", show_default=True)
@click.option("--bootstrap", "n_boot", type=int, default=1000, show_default=True, help="bootstrap resamples")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--pdf", is_flag=True, help="also compile tables.tex with pdflatex (when installed)")
@click.option("--out", required=True, help="report folder")
def report_cmd(runs, runs_dir, formats, userstudy, title, n_boot, seed, pdf, out):
    """Tables 1-4 of the paper (HTML with image grids and plots, LaTeX) from runs."""
    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    res = write_report(runs, runs_dir=runs_dir, out=out, formats=fmts, userstudy=userstudy, title=title,
                       n_boot=n_boot, seed=seed, pdf=pdf)
    click.echo(f"{len(res.tables)} table(s): {', '.join(t.id for t in res.tables) or 'none'}")
    for f in res.files:
        click.echo(f"written: {f}")
    if pdf:
        click.echo(f"pdf: {res.pdf}" if res.pdf else "pdf: skipped (pdflatex not installed)")
