"""HTML pages from stored runs: a metrics table and an image grid.

Renders only from what runs wrote (``metrics.json``, ``samples.parquet``,
``images/``). Every dataset-provided string is escaped by jinja2's autoescape.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from PIL import Image

from egobench.io import atomic_open, atomic_write_text

THUMB_HEIGHT = 160


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )


def _thumb(src: Path, dst: Path) -> None:
    with Image.open(src) as im:
        im = im.convert("RGB")
        w = max(1, round(im.width * THUMB_HEIGHT / im.height))
        im = im.resize((w, THUMB_HEIGHT), Image.Resampling.BICUBIC)
        with atomic_open(dst, "wb") as f:
            im.save(f, format="JPEG", quality=90)


def _fmt(info: dict[str, Any]) -> str:
    v = info.get("value")
    if v is None:
        return "n/a"
    from egobench.evaluator import format_value

    return format_value(info)


def render_runs(run_dirs: list[Path], out: Path, title: str, grid_run: Path | None = None, max_rows: int = 48) -> Path:
    """Write ``out/index.html`` (+ ``assets/``) for ``run_dirs``; return the page path."""
    out = Path(out)
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    runs = []
    metric_names: list[str] = []
    for rd in run_dirs:
        m = json.loads((Path(rd) / "metrics.json").read_text())
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
    grid_dir = Path(grid_run or run_dirs[0])
    df = pd.read_parquet(grid_dir / "samples.parquet")
    metric_cols = [c for c in metric_names if c in df.columns]
    for _, row in df.head(max_rows).iterrows():
        sid = row["sample_id"]
        cell = {"id": sid, "action": row["action"], "description": row["description"],
                "domain": row["domain"], "status": row["status"], "error": row["error"],
                "scores": []}
        for kind, src in (("input", row["input_path"]), ("target", row["target_path"])):
            dst = assets / f"{sid}_{kind}.jpg"
            _thumb(Path(src), dst)
            cell[kind] = f"assets/{dst.name}"
        out_rel = row["output"]
        out_path = (grid_dir / out_rel) if out_rel and not Path(out_rel).is_absolute() else (Path(out_rel) if out_rel else None)
        if out_path is not None and out_path.is_file():
            dst = assets / f"{sid}_output.jpg"
            _thumb(out_path, dst)
            cell["output"] = f"assets/{dst.name}"
        else:
            cell["output"] = None
        for c in metric_cols:
            info = runs[0]["metrics"][c]
            v = row[c]
            cell["scores"].append(f"{c} {v * info.get('display_scale', 1.0):.2f}" if v == v else f"{c} n/a")
        grid.append(cell)
    html = _env().get_template("runs.html.j2").render(
        title=title,
        protocol=first["protocol"],
        comparable=all(r["comparable"] for r in runs),
        split_fingerprint=first["split_fingerprint"],
        dataset=first["dataset"],
        heads=heads,
        rows=rows,
        grid=grid,
        grid_method=json.loads((grid_dir / "metrics.json").read_text())["method"],
        n_total=len(df),
    )
    page = out / "index.html"
    atomic_write_text(page, html)
    return page
