"""HTML pages from stored runs: a metrics table and an image grid.

Renders only from what runs wrote (``metrics.json``, ``samples.parquet``,
``images/``). Every dataset-provided string is escaped by jinja2's autoescape.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import jinja2
from PIL import Image

from egobench.images import BadImageError, open_rgb
from egobench.io import atomic_open, atomic_write_text, read_json

from .tables import load_run, resolve_output

THUMB_HEIGHT = 160
THUMB_WIDTH = 240  # wide frames (EPIC-Kitchens 456x256) are scaled to fit this box, not to overflow their column


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )


def thumb(src: Path | None, dst: Path) -> str | None:
    """Write a JPEG thumbnail of ``src`` (fit into THUMB_WIDTH x THUMB_HEIGHT) to ``dst``
    atomically; return None, or why the frame cannot be shown (missing, unreadable):
    reports are made from stored results and show a placeholder instead."""
    if src is None:
        return "no output recorded"
    try:
        im = open_rgb(src)
    except BadImageError as e:
        return "missing" if not Path(src).exists() else f"unreadable ({str(e).rsplit(': ', 1)[-1][:80]})"
    scale = min(THUMB_WIDTH / im.width, THUMB_HEIGHT / im.height)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    im = im.resize(size, Image.Resampling.BICUBIC)
    with atomic_open(dst, "wb") as f:
        im.save(f, format="JPEG", quality=90)
    return None


def _thumb(src: Path, dst: Path) -> bool:
    return thumb(src, dst) is None


def _fmt(info: dict[str, Any]) -> str:
    v = info.get("value")
    if v is None:
        return "n/a"
    from egobench.evaluator import format_value

    return format_value(info)


#: judge answers shown per judged run (the rest are in its samples.parquet)
JUDGE_ANSWERS = 2


def _printable(text: str) -> str:
    """A model's raw answer for a page: control and other unprintable characters become spaces."""
    return "".join(c if c.isprintable() else " " for c in text)


def judge_rows(sources: list[tuple[str, Path]]) -> list[dict[str, Any]]:
    """The VLM-judge section of a page: per (label, run) and judge column, the overall score (x100),
    the mean sub-scores (0-10), how many answers were parsed and how many were not, and the first
    answers (scores, or why the answer was not parsed, with its raw text)."""
    rows = []
    for label, rd in sources:
        m = read_json(Path(rd) / "metrics.json")
        df = load_run(rd).samples
        for name, info in m["metrics"].items():
            if info.get("metric") != "vlm-judge":
                continue
            sub = info.get("sub_scores") or {}
            answers = []
            for _, r in df.head(JUDGE_ANSWERS).iterrows():
                scores = [str(r.get(f"{name}_judge-{k}", "") or "") for k in ("action", "scene", "quality")]
                answers.append({"id": r["sample_id"], "scores": " / ".join(scores) if all(scores) else "",
                                "error": str(r.get(f"{name}_parse-error", "") or ""),
                                "text": _printable(str(r.get(f"{name}_reasons", "") or r.get(f"{name}_answer", "")
                                                       or ""))[:100]})
            rows.append({"method": label, "column": name, "n": info.get("n"),
                         "unparsed": info.get("n_parse_failures"), "overall": _fmt(info),
                         "sub": [f"{sub[k]:.2f}" if isinstance(sub.get(k), (int, float)) else "n/a"
                                 for k in ("action", "scene", "quality")],
                         "model": (info.get("settings") or {}).get("model", ""), "answers": answers})
    return rows


def render_runs(run_dirs: list[Path], out: Path, title: str, grid_run: Path | None = None, max_rows: int = 48,
                judge_runs: list[tuple[str, Path]] | None = None, links: list[tuple[str, str]] | None = None) -> Path:
    """Write ``out/index.html`` (+ ``assets/``) for ``run_dirs``; return the page path. The judge
    section shows the VLM-judge columns of ``run_dirs`` and of ``judge_runs`` ((label, run) pairs)."""
    out = Path(out)
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    runs = []
    metric_names: list[str] = []
    for rd in run_dirs:
        m = read_json(Path(rd) / "metrics.json")
        runs.append(m)
        for name in m.get("metric_order", m["metrics"]):
            if name not in metric_names:
                metric_names.append(name)
    first = runs[0]
    heads = []
    for name in metric_names:
        info = next(r["metrics"][name] for r in runs if name in r["metrics"])
        heads.append({"name": name, "arrow": "↑" if info["higher_is_better"] else "↓",
                      "higher": info["higher_is_better"]})
    rows = []
    for r in runs:
        cells = []
        for h in heads:
            info = r["metrics"].get(h["name"])
            cells.append(_fmt(info) if info else "")
        rows.append({"method": r["method"], "n": r["n_scored"], "cells": cells, "problems": r["problems"]})
    # bold the best value per column
    for j, h in enumerate(heads):
        vals = []
        for i, r in enumerate(runs):
            info = r["metrics"].get(h["name"]) or {}
            v = info.get("value")
            if v is not None and not math.isnan(v):
                vals.append((v, i))
        if len(vals) > 1:
            best = max(vals)[0] if h["higher"] else min(vals)[0]
            for v, i in vals:
                rows[i].setdefault("best", set())
                if v == best:
                    rows[i]["best"].add(j)
    grid = []
    unshown: dict[str, int] = {}
    grid_dir = Path(grid_run or run_dirs[0])
    df = load_run(grid_dir).samples
    metric_cols = [c for c in metric_names if c in df.columns]
    for _, row in df.head(max_rows).iterrows():
        sid = row["sample_id"]
        cell = {"id": sid, "action": row["action"], "description": row["description"],
                "domain": row["domain"], "status": row["status"], "error": row["error"],
                "scores": []}
        stem = hashlib.sha256(str(sid).encode()).hexdigest()[:16]
        for kind, src in (("input", row["input_path"]), ("target", row["target_path"])):
            dst = assets / f"{stem}_{kind}.jpg"
            why = thumb(Path(src) if src else None, dst)
            cell[kind] = None if why else f"assets/{dst.name}"
            cell[f"{kind}_why"] = why or ""
            if why:
                unshown[kind] = unshown.get(kind, 0) + 1
        dst = assets / f"{stem}_output.jpg"
        why = thumb(resolve_output(grid_dir, row["output"]), dst)
        cell["output"] = None if why else f"assets/{dst.name}"
        if why and row["status"] == "ok":
            unshown["output"] = unshown.get("output", 0) + 1
        for c in metric_cols:
            info = runs[0]["metrics"][c]
            v = row[c]
            cell["scores"].append(f"{c} {v * info.get('display_scale', 1.0):.2f}" if v == v else f"{c} n/a")
        grid.append(cell)
    judge = judge_rows([(r["method"], Path(rd)) for r, rd in zip(runs, run_dirs)] + list(judge_runs or []))
    html = _env().get_template("runs.html.j2").render(
        judge=judge,
        links=[{"label": label, "href": href} for label, href in (links or [])],
        title=title,
        protocol=first["protocol"],
        comparable=all(r["comparable"] for r in runs),
        split_fingerprint=first["split_fingerprint"],
        dataset=first["dataset"],
        heads=heads,
        rows=rows,
        grid=grid,
        grid_method=read_json(grid_dir / "metrics.json")["method"],
        n_total=len(df),
        unshown=unshown,
    )
    page = out / "index.html"
    atomic_write_text(page, html)
    return page
