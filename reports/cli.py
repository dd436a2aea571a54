"""``egobench report``: the paper's tables (HTML, LaTeX, Markdown, CSV, JSON) from stored runs.

Registered through the ``egobench.commands`` entry-point group
(``report = "reports.cli:report_cmd"``). Reports read only what runs stored;
frames are read for thumbnails only, and a missing or unreadable one becomes a
placeholder. Every file is written atomically.
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
from egobench.io import atomic_write_bytes, atomic_write_text, clean_stale_temps, truncate
from egobench.plots import bar_chart_svg

from .breakdown import build_breakdowns
from .formats import tables_csv, tables_markdown
from .latex import render_document
from .published import reference_tables
from .select import PREFER, explicit_set, select_runs
from .tables import DATASET_NAMES, TABLE1, build_tables, find_runs, load_run, resolve_output, tables_json

FORMATS = ("html", "latex", "md", "csv", "json")


@dataclass
class ReportResult:
    out: Path
    files: list[Path] = field(default_factory=list)
    tables: list = field(default_factory=list)
    pdf: Path | None = None
    pdf_skipped: str = ""
    failed: list[tuple[str, str]] = field(default_factory=list)  # (step, reason)
    unshown: int = 0  # grid frames shown as placeholders


def _name(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def _grids(runs: list, tables, assets: Path, max_rows: int) -> list[dict]:
    """Image grids (input | each Table 1 method | ground truth) from stored paths.
    A frame that is missing (data root moved, run copied elsewhere) or not an
    image becomes a placeholder; the grid says how many."""
    from .html import thumb

    grids = []
    for ds in dict.fromkeys(t.dataset for t in tables if t.id.startswith("table1-")):
        t1 = next(t for t in tables if t.id == f"table1-{ds}")
        measured = [row for row in t1.rows if row.kind == "measured"]
        rs = [next(r for r in runs if str(r.path) == row.run) for row in measured]
        if not rs or any(r.samples.empty for r in rs):
            continue
        ok = [set(r.samples.loc[r.samples["status"] == "ok", "sample_id"]) if "status" in r.samples.columns
              else set(r.samples["sample_id"]) for r in rs]
        base = rs[0].samples.set_index("sample_id", drop=False)
        common = [s for s in base.index if all(s in o for o in ok)]
        outs = [r.samples.set_index("sample_id")["output"] if "output" in r.samples.columns else None for r in rs]
        rows = []
        unshown: dict[str, int] = {}
        for sid in common[:max_rows]:
            s = base.loc[sid]
            entry = {"id": sid, "action": s.get("action", ""), "description": s.get("description", ""),
                     "domain": s.get("domain", ""), "outputs": [], "why": {}}
            for kind in ("input", "target"):
                dst = assets / f"{_name(ds, str(sid), kind)}.jpg"
                src = s.get(f"{kind}_path")
                why = thumb(Path(str(src)) if isinstance(src, str) and src else None, dst)
                entry[kind] = None if why else f"assets/{dst.name}"
                entry["why"][kind] = why or ""
                if why:
                    unshown[f"{kind} {why.split(' (')[0]}"] = unshown.get(f"{kind} {why.split(' (')[0]}", 0) + 1
            for r, o in zip(rs, outs):
                dst = assets / f"{_name(str(r.path), str(sid))}.jpg"
                why = thumb(resolve_output(r.path, o.get(sid) if o is not None else None), dst)
                entry["outputs"].append({"src": None if why else f"assets/{dst.name}", "why": why or ""})
                if why:
                    unshown[f"output {why.split(' (')[0]}"] = unshown.get(f"output {why.split(' (')[0]}", 0) + 1
            rows.append(entry)
        grids.append({"dataset": ds, "dataset_name": DATASET_NAMES.get(ds, ds), "methods": [row.label for row in measured],
                      "rows": rows, "n_total": len(common), "unshown": unshown,
                      "n_unshown": sum(unshown.values())})
    return grids


def _plots(tables, userstudies: list[dict], assets: Path, scales: dict[str, float]) -> list[dict]:
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
                if r.kind != "measured" or cell.value is None or cell.display is None:
                    continue
                labels.append(r.label)
                vals.append(cell.display)
                lows.append(cell.ci[0] if cell.ci else None)
                highs.append(cell.ci[1] if cell.ci else None)
            if not labels:
                continue
            # a fraction shown x100 lives in 0-100: the axis ends at 100, not at the next "nice" number
            top = [v for v in vals + [h for h in highs if h is not None] if math.isfinite(v)]
            vmax = 100.0 if scales.get(c.key) == 100.0 and top and max(top) <= 100.0 else None
            title = f"{c.label}{'' if c.higher_is_better else ' (lower is better)'} on {DATASET_NAMES.get(t.dataset, t.dataset)}"
            svg = bar_chart_svg(labels, vals, lows, highs, title=title, vmax=vmax)
            name = f"plot-{_name(t.id, c.key)}.svg"
            atomic_write_text(assets / name, svg)
            plots.append({"src": f"assets/{name}", "alt": title})
    for t in tables:
        if t.kind == "ranking":
            from .agreement import ranking_plot

            title, svg = ranking_plot(t)
            name = f"plot-{_name(t.id, 'strength')}.svg"
            atomic_write_text(assets / name, svg)
            plots.append({"src": f"assets/{name}", "alt": title})
    for us in userstudies:
        m = {k: v for k, v in us["methods"].items() if isinstance(v, dict)}
        labels = list(m)
        measure = "win rate" if us.get("study", "action") == "action" else "aligned"
        title = f"User study {measure} on {DATASET_NAMES.get(us['dataset'], us['dataset'])}"
        svg = bar_chart_svg(labels, [m[k].get("rate") for k in labels], [m[k].get("ci_low") for k in labels],
                            [m[k].get("ci_high") for k in labels], title=title, unit="%", vmax=100.0)
        name = f"plot-{_name('userstudy', str(us['dataset']), str(us.get('study', 'action')))}.svg"
        atomic_write_text(assets / name, svg)
        plots.append({"src": f"assets/{name}", "alt": title})
    return plots


def compile_latex(tex: Path, timeout: int = 120) -> Path | None:
    """Run pdflatex on ``tex`` if installed; return the PDF beside it, None without
    pdflatex. The document is copied into a temporary folder and compiled there,
    so any output path works (relative, spaces, special characters); the PDF is
    written atomically. A LaTeX error raises UserError with its first error line."""
    exe = shutil.which("pdflatex")
    if exe is None:
        return None
    tex = Path(tex).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(tex, Path(tmp) / "doc.tex")
        try:
            proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "doc.tex"],
                                  capture_output=True, text=True, timeout=timeout, cwd=tmp, errors="replace",
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise UserError(f"{tex}: pdflatex took more than {timeout} s; stopped") from None
        pdf = Path(tmp) / "doc.pdf"
        if proc.returncode != 0 or not pdf.is_file():
            err = next((ln for ln in proc.stdout.splitlines() if ln.startswith("!")), f"exit {proc.returncode}")
            raise UserError(f"{tex}: pdflatex failed: {truncate(err, 200)}")
        dst = tex.with_suffix(".pdf")
        atomic_write_bytes(dst, pdf.read_bytes())
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
    prefer: str = "largest",
    top_k: int = 10,
    breakdown_metric: str | None = None,
    input_copy: bool = True,
    bounds_cache: str | os.PathLike | None = None,
    study: str | os.PathLike | None = None,
    study_results: str | os.PathLike | None = None,
    study_runs: dict[str, str] | None = None,
) -> ReportResult:
    """Write the report's files under ``out``; every file is written atomically.

    The steps (json, md, csv, latex, html, then pdf) run in that order; a step
    that fails is recorded in ``ReportResult.failed`` with its reason and the
    other steps still run, so the outputs already made are kept.

    ``input_copy``: give every table its input-copy row, made through the harness (and cached in
    ``bounds_cache``, see :mod:`reports.bounds`) where the runs include none. ``study`` (the folder
    export-amt wrote) with ``study_results`` (its results CSV): the agreement and ranking sections
    (:mod:`reports.agreement`; ``study_runs``: label -> run folder for study runs that moved)."""
    from egobench.userstudy import load_userstudy

    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise UserError(f"unknown report format '{truncate(bad[0])}'; use {', '.join(FORMATS)}")
    if top_k < 1:
        raise UserError(f"--top-k {top_k}: give a positive number")
    if (study is None) != (study_results is None):
        raise UserError("--study and --results go together: the folder export-amt wrote and the results CSV of "
                        "that study")
    paths = [Path(r) for r in runs]
    if runs_dir is not None:
        paths += find_runs(runs_dir)
    if not paths:
        raise UserError("no runs: give run directories or --runs-dir with runs under it")
    unique: dict[Path, Path] = {}
    for p in paths:  # one run named twice (a path and --runs-dir, relative and absolute) is loaded once
        unique.setdefault(p.resolve(), p)
    loaded = [load_run(p) for p in unique.values()]
    groups, sel_notes = select_runs(loaded, explicit=explicit_set(list(runs)), prefer=prefer)
    if input_copy:
        from .bounds import ensure_input_copy
        from .select import RunGroup

        copies = ensure_input_copy(groups, bounds_cache)
        groups += [RunGroup([r]) for r in copies.runs]
        for ds, notes in copies.notes.items():
            sel_notes.setdefault(ds, []).extend(notes)
    studies = [load_userstudy(p) for p in userstudy]
    for p, us in zip(userstudy, studies):
        if not isinstance(us.get("dataset"), str) or not isinstance(us.get("methods"), dict) or not all(
                isinstance(v, dict) and isinstance(v.get("rate"), (int, float)) for v in us["methods"].values()):
            raise UserError(f"{p}: user-study file without a dataset or per-method rates; "
                            "re-make it with egobench import-amt")
    tables = build_tables(groups, userstudy=studies, n_boot=n_boot, seed=seed)
    by_path = {str(g.path): g for g in groups}
    for t in tables:
        t.notes.extend(sel_notes.get(t.dataset, []))
        rows = [(r, by_path[r.run]) for r in t.rows if r.kind == "measured" and r.run in by_path]
        sels: dict[str, list[str]] = {}
        for r, g in rows:
            sels.setdefault(g.fingerprint[:12] or "unknown", []).append(f"{r.label} (n={g.n}"
                                                                        + (f", {g.limit}" if g.limit else "") + ")")
        if len(sels) > 1:  # never mix sample selections silently
            t.notes.append("Rows scored different sample selections: " + "; ".join(
                f"split {fp}: {', '.join(labels)}" for fp, labels in sels.items())
                + ". Their values are not directly comparable; \u2020 uses only the samples every row scored.")
    # breakdowns (per dataset part, verb, noun) after each dataset's Table 1
    with_bd: list = []
    for t in tables:
        with_bd.append(t)
        if t.id.startswith("table1-"):
            rs = [next(g for g in groups if str(g.path) == row.run) for row in t.rows if row.kind == "measured"]
            bds, notes = build_breakdowns(t, rs, metric=breakdown_metric, top_k=top_k, n_boot=n_boot, seed=seed)
            with_bd.extend(bds)
            t.notes.extend(notes)
    tables = with_bd + reference_tables([t.dataset for t in tables])
    if study is not None:
        from egobench.agreement import agree

        from .agreement import agreement_tables

        tables += agreement_tables(agree(str(study), str(study_results), runs=study_runs, n_boot=n_boot, seed=seed))
    comparable = all(r.comparable for r in groups)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; give a folder for --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(out)  # leftovers of a killed earlier report
    except OSError as e:
        raise UserError(f"{out}: cannot write the report there ({e.strerror or e}); give another --out") from None
    res = ReportResult(out, tables=tables)
    banner = "" if comparable else ("Not comparable with published numbers: made with tiny-zoo (random) metric "
                                    "weights and/or the synthetic demo split.")
    scales = {k: float(info.get("display_scale", 1.0)) for g in groups for k, info in g.metrics["metrics"].items()}

    def step(name: str, fn) -> None:
        try:
            fn()
        except (UserError, OSError, subprocess.SubprocessError) as e:
            res.failed.append((name, truncate(str(e), 300)))

    if "json" in formats:
        step("json", lambda: (atomic_write_text(out / "tables.json", tables_json(tables)),
                              res.files.append(out / "tables.json")))
    if "md" in formats:
        step("md", lambda: (atomic_write_text(out / "tables.md", tables_markdown(tables, title=title, banner=banner)),
                            res.files.append(out / "tables.md")))
    if "csv" in formats:
        step("csv", lambda: (atomic_write_text(out / "tables.csv", tables_csv(tables)),
                             res.files.append(out / "tables.csv")))
    if "latex" in formats:
        step("latex", lambda: (atomic_write_text(out / "tables.tex",
                                                 render_document(tables, title=title, comparable=comparable)),
                               res.files.append(out / "tables.tex")))
    if "html" in formats:
        def html() -> None:
            import jinja2

            assets = out / "assets"
            assets.mkdir(parents=True, exist_ok=True)
            env = jinja2.Environment(loader=jinja2.PackageLoader("reports", "templates"),
                                     autoescape=jinja2.select_autoescape(["html", "j2"]),
                                     undefined=jinja2.StrictUndefined)
            grids = _grids(groups, tables, assets, max_rows)
            res.unshown = sum(g["n_unshown"] for g in grids)
            page = env.get_template("report.html.j2").render(
                title=title, comparable=comparable, tables=tables, plots=_plots(tables, studies, assets, scales),
                grids=grids)
            atomic_write_text(out / "index.html", page)
            res.files.append(out / "index.html")

        step("html", html)
    if pdf:
        if "latex" not in formats:
            res.failed.append(("pdf", "needs the latex format (--format ...,latex)"))
        elif (out / "tables.tex").is_file() and not any(n == "latex" for n, _ in res.failed):
            def make_pdf() -> None:
                res.pdf = compile_latex(out / "tables.tex")
                if res.pdf is None:
                    res.pdf_skipped = "pdflatex not installed"

            step("pdf", make_pdf)
    return res


@click.command("report")
@click.argument("runs", nargs=-1)
@click.option("--runs-dir", default=None, help="take every run under this folder")
@click.option("--format", "formats", default="html,latex", show_default=True,
              help="comma list of html, latex, md, csv, json")
@click.option("--user-study", "userstudy", multiple=True, help="userstudy.json from egobench import-amt: the User Study column of Table 3 (of Table 1 "
              "when there are no ablation runs)")
@click.option("--title", default="egobench report", show_default=True)
@click.option("--bootstrap", "n_boot", type=int, default=1000, show_default=True, help="bootstrap resamples")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--prefer", type=click.Choice(PREFER), default="largest", show_default=True,
              help="several runs of one method: the one with most samples (then the newest), the newest, "
                   "or all as rows (runs given as paths are always shown); the others are named in a note")
@click.option("--top-k", "top_k", type=int, default=10, show_default=True,
              help="rows of the per-verb / per-noun tables (most frequent first)")
@click.option("--breakdown-metric", default=None, help="metric of the breakdown tables (default: the first "
              "per-sample metric of Table 1)")
@click.option("--bounds-cache", default=None, help="where the input-copy runs the report makes are cached "
              "(default: $EGOBENCH_CACHE/bounds, else ~/.cache/egobench/bounds)")
@click.option("--no-input-copy", "no_copy", is_flag=True, help="do not make the input-copy row when no input-copy "
              "run is given (tables then have no such row and no \u2021 marks)")
@click.option("--study", default=None, help="a crowd study's folder (export-amt): agreement and ranking sections "
              "(with --results)")
@click.option("--results", "study_results", default=None, help="the results CSV of --study (as egobench agree)")
@click.option("--study-run", "study_runs", multiple=True, metavar="LABEL=RUN_DIR",
              help="where a study run is now, when it moved since export-amt (repeatable)")
@click.option("--pdf", is_flag=True, help="also compile tables.tex with pdflatex (when installed)")
@click.option("--out", required=True, help="report folder")
def report_cmd(runs, runs_dir, formats, userstudy, title, n_boot, seed, prefer, top_k, breakdown_metric, bounds_cache,
               no_copy, study, study_results, study_runs, pdf, out):
    """Tables 1-4 of the paper with published rows and breakdowns (HTML with image grids
    and plots, LaTeX, Markdown, CSV, JSON) from runs."""
    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    moved = {}
    for r in study_runs:
        label, sep, path = r.partition("=")
        if not sep or not label or not path:
            raise UserError(f"--study-run {truncate(r)}: use LABEL=RUN_DIR (the label the study key gives the run)")
        moved[label] = path
    res = write_report(runs, runs_dir=runs_dir, out=out, formats=fmts, userstudy=userstudy, title=title,
                       n_boot=n_boot, seed=seed, pdf=pdf, prefer=prefer, top_k=top_k,
                       breakdown_metric=breakdown_metric, input_copy=not no_copy, bounds_cache=bounds_cache,
                       study=study, study_results=study_results, study_runs=moved)
    click.echo(f"{len(res.tables)} table(s): {', '.join(t.id for t in res.tables) or 'none'}")
    for f in res.files:
        click.echo(f"written: {f}")
    if res.unshown:
        click.echo(f"note: {res.unshown} frame(s) missing or unreadable, shown as placeholders "
                   "(see the note under each image grid)")
    if pdf and not any(n == "pdf" for n, _ in res.failed):
        click.echo(f"pdf: {res.pdf}" if res.pdf else f"pdf: skipped ({res.pdf_skipped or 'not made'})")
    if res.failed:
        made = ", ".join(str(f) for f in res.files) or "nothing"
        raise UserError("; ".join(f"report step '{n}' failed: {why}" for n, why in res.failed)
                        + f" (kept: {made})")
