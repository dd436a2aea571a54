"""Breakdown tables: one per-sample metric per dataset part, verb and noun.

Rows are the ``top_k`` most frequent groups (by the number of samples every
method scored), columns the methods of Table 1; a cell is the mean over the
group's samples with a 95% percentile bootstrap interval over those samples.
Runs made before ``samples.parquet`` recorded ``verb``/``noun`` get no verb or
noun table; the report says so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .tables import DATASET_NAMES, LABELS, TABLE1, TABLE2, Cell, Column, Row, Table, _num, _per_sample

GROUPS = (("domain", "Part", "dataset part"), ("verb", "Verb", "verb"), ("noun", "Noun", "noun"))


def _metric(runs: list[Any], wanted: str | None) -> str | None:
    keys = [k for k in TABLE1 + TABLE2 if all(_per_sample(r, k) is not None for r in runs)]
    if wanted:
        return wanted if wanted in keys else None
    return keys[0] if keys else None


def _labels(samples: pd.DataFrame, col: str) -> pd.Series | None:
    if samples.empty or col not in samples.columns:
        return None
    s = samples.set_index("sample_id")[col]
    s = s[s.notna()].astype(str).str.strip()
    s = s[s != ""]
    return s if len(s) else None


def build_breakdowns(t1: Table, runs: list[Any], *, metric: str | None = None, top_k: int = 10,
                     n_boot: int = 1000, seed: int = 0) -> tuple[list[Table], list[str]]:
    """Breakdown tables for the measured rows of Table 1 (``runs`` in row order), and notes
    about breakdowns that could not be made."""
    rows = [r for r in t1.rows if r.kind == "measured"]
    labels = [r.label for r in rows]
    notes: list[str] = []
    key = _metric(runs, metric)
    if key is None:
        if metric:
            notes.append(f"No breakdown by '{metric}': not a per-sample metric every run scored.")
        return [], notes
    series = [_per_sample(r, key) for r in runs]
    common = sorted(set.intersection(*(set(s.index) for s in series)))
    info = next(r.metrics["metrics"][key] for r in runs)
    scale = float(info.get("display_scale", 1.0))
    hib = bool(info.get("higher_is_better", True))
    rng = np.random.default_rng(seed)
    base = runs[0].samples
    out: list[Table] = []
    ds_name = DATASET_NAMES.get(t1.dataset, t1.dataset)
    for col, head, what in GROUPS:
        lab = _labels(base, col)
        if lab is None:
            if col != "domain":
                notes.append(f"No per-{what} table on {ds_name}: the runs' samples.parquet has no '{col}' column "
                             "(runs made before egobench recorded it; re-run 'egobench evaluate' to add it).")
            continue
        lab = lab.reindex(common).dropna()
        counts = lab.value_counts()
        if col == "domain" and len(counts) < 2:
            continue
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
        cols = [Column(f"run{j}", label, hib) for j, label in enumerate(labels)]
        t = Table(f"breakdown-{col}-{t1.dataset}",
                  f"{LABELS.get(key, key)} per {what} on {ds_name} (top {len(top)} of {len(counts)} by count)",
                  t1.dataset, cols, [], t1.protocols, comparable=t1.comparable, row_head=head, kind="breakdown")
        for group, n in top:
            ids = lab.index[lab == group]
            cells = []
            for s in series:
                x = s.reindex(ids).to_numpy(dtype=float)
                v = float(x.mean()) if len(x) else math.nan
                c = Cell(v, _num(v * scale), display=v * scale)
                if len(x) >= 2 and np.isfinite(x).all():
                    d = rng.integers(0, len(x), size=(n_boot, len(x)))
                    lo, hi = np.percentile(x[d].mean(1), [2.5, 97.5])
                    c.ci = (float(lo * scale), float(hi * scale))
                cells.append(c)
            t.rows.append(Row(str(group), "", cells, n=int(n)))
        arrow = "" if hib else " (\u2193 lower is better)"
        t.notes.append(f"{LABELS.get(key, key)}{arrow}" + (" x100" if scale == 100 else "")
                       + f"; n: samples of the {what} scored by every method ({len(common)} in all). "
                       f"Brackets: 95% interval of the mean, percentile bootstrap over the group's samples "
                       f"({n_boot} resamples); none for n < 2.")
        out.append(t)
    return out, notes
