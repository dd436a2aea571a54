"""The paper's tables from stored runs, with paired bootstrap intervals.

Reads only what runs wrote (``metrics.json``, ``samples.parquet``,
``manifest.json``). Layout follows the LEGO paper:

* Table 1 -- per dataset: EgoVLP, EgoVLP+, CLIP, FID (lower), PSNR, LPIPS (lower)
* Table 2 -- per dataset: BLIP-B, BLIP-L
* Table 3 -- conditioning ablation rows (ip2p "Action labels", lego-desc
  "Descriptions", lego-img "+ image emb.", lego-txt "+ text emb.", lego
  "+ joint emb."), plus a "User Study" column from ``egobench import-amt``
* Table 4 -- LEGO with the VLLM without finetuning vs finetuned
  (``vllm_finetuned`` false / true in the run's method options)

Values print as ``value * display_scale`` with two decimals; the best value per
column is bold. Per-sample metrics get 95% paired bootstrap intervals over the
samples every row of the table scored (the same resampled indices for every
row), and a row is marked with a dagger where the paired bootstrap interval of
its difference to the best row excludes zero. Every table has an ``input-copy``
row (reports.bounds makes it when no run was given), and a cell is marked with a
double dagger where the paired bootstrap interval of its difference to that row
does not lie above zero: not significantly better than copying the input. Set
metrics (FID) get neither: resampling FID needs the per-sample Inception
features, which runs do not keep.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from egobench.errors import UserError
from egobench.run_folder import RunFolder, read_run_folder

LABELS = {"egovlp": "EgoVLP", "egovlp-plus": "EgoVLP+", "clip": "CLIP", "fid": "FID", "psnr": "PSNR",
          "lpips": "LPIPS", "blip-b": "BLIP-B", "blip-l": "BLIP-L", "action-top1": "Action@1",
          "action-top5": "Action@5", "verb-top1": "Verb@1", "verb-top5": "Verb@5", "noun-top1": "Noun@1",
          "noun-top5": "Noun@5", "action-sensitivity": "Sensitivity", "action-sim": "Action-sim",
          "vlm-judge": "VLM judge"}
TABLE1 = ("egovlp", "egovlp-plus", "clip", "fid", "psnr", "lpips")
TABLE2 = ("blip-b", "blip-l")
#: egobench-v2's action-faithfulness columns (oracle = ceiling, input-copy = floor)
ACTION_TABLE = ("action-top1", "action-top5", "verb-top1", "verb-top5", "noun-top1", "noun-top5",
                "action-sensitivity", "action-sim", "vlm-judge")
ZERO_SHOT = " (zero-shot)"
ABLATION = (("ip2p", "Action labels"), ("lego-desc", "Descriptions"), ("lego-img", "+ image emb."),
            ("lego-txt", "+ text emb."), ("lego", "+ joint emb."))
ABLATION_ONLY = {"lego-desc", "lego-img", "lego-txt"}
DATASET_NAMES = {"ego4d": "Ego4D", "epickitchens": "EPIC-Kitchens", "demo": "demo (synthetic)"}
USER_STUDY = "user-study"
PAPER_ORDER = ("input-copy", "proxedit", "sdedit", "ip2p", "lego", "oracle")  # Table 1's row order; others follow
#: the method every table shows as a row, and marks the cells that do not beat (egobench.bounds.InputCopy)
COPY = "input-copy"
COPY_MARK = "\u2021"
COPY_LEGEND = (f"{COPY_MARK} not significantly better than {COPY} (paired bootstrap of the difference to the "
               f"{COPY} row of the same protocol over the samples both scored, 95%: its lower end is not above 0).")


#: a run's stored results (reports' name for egobench's run folder record)
RunData = RunFolder


def load_run(path: str | Path) -> RunData:
    """A run's stored results; a damaged file is a one-line error naming it."""
    return read_run_folder(path)


def resolve_output(run_dir: Path, output: Any) -> Path | None:
    """Where a run's stored output path points: relative to the run directory
    (or absolute, kept as is); runs made before that stored paths relative to
    the working directory of the call, tried second."""
    if output is None or (isinstance(output, float) and math.isnan(output)) or not str(output):
        return None
    p = Path(run_dir) / str(output)
    if p.is_file():
        return p
    q = Path(str(output))
    return q if q.is_file() else p


def find_runs(runs_dir: str | Path) -> list[Path]:
    """Every run directory (holding metrics.json) under ``runs_dir``, sorted."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise UserError(f"{root}: runs folder does not exist")
    return sorted(p.parent for p in root.rglob("metrics.json") if (p.parent / "samples.parquet").is_file())


@dataclass
class Column:
    key: str
    label: str
    higher_is_better: bool
    unit: str = ""  # "%" for the user study


@dataclass
class Cell:
    value: float | None = None  # raw value (before display scale)
    text: str = ""
    ci: tuple[float, float] | None = None  # display scale
    best: bool = False
    behind: bool = False  # significantly behind the best (paired bootstrap)
    not_above_copy: bool = False  # not significantly better than the input-copy row (paired bootstrap)
    display: float | None = None  # value in display units (x display_scale)
    std: float | None = None  # display scale; across seed runs
    delta: float | None = None  # display scale; measured minus published (same protocol, real weights)

    @property
    def ci_text(self) -> str:
        return "" if self.ci is None else f"[{_num(self.ci[0])}, {_num(self.ci[1])}]"

    @property
    def delta_text(self) -> str:
        return "" if self.delta is None else f"{self.delta:+.2f}"


@dataclass
class Row:
    label: str
    method: str
    cells: list[Cell]
    run: str = ""
    kind: str = "measured"  # or "published" (reference numbers from the paper)
    n: int | None = None  # samples scored
    source: str = ""  # which run(s) the row comes from
    ref: int = 0  # footnote number of ``source`` (1-based; 0: none)


@dataclass
class Table:
    id: str
    title: str
    dataset: str
    columns: list[Column]
    rows: list[Row]
    protocols: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    comparable: bool = True
    row_head: str = "Method"
    kind: str = "paper"  # "paper" (Tables 1-4), "published" (reference only), "breakdown"

    @property
    def number(self) -> int | None:
        """The paper's table number (``table3-...`` -> 3), None for other tables."""
        m = re.match(r"(?:published-)?table(\d+)-", self.id)
        return int(m.group(1)) if m else None

    @property
    def caption(self) -> str:
        """The title without its "Table N: " prefix (LaTeX numbers its captions)."""
        return re.sub(r"^Table \d+:\s*", "", self.title)

    @property
    def sources(self) -> list[Row]:
        return [r for r in self.rows if r.ref]

    @property
    def protocol_line(self) -> str:
        parts = [f"{p.get('name')} v{p.get('version')} ({str(p.get('hash', ''))[:12]})" for p in self.protocols]
        line = "Protocol " + "; ".join(parts)
        if len(parts) > 1:
            line += " -- MIXED PROTOCOLS: rows are not comparable with each other"
        return line


def _num(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    t = f"{v:.2f}"
    return "0.00" if t == "-0.00" else t


def _per_sample(run: RunData, key: str) -> pd.Series | None:
    info = run.metrics["metrics"].get(key) or {}
    if info.get("kind", "sample") != "sample" or key not in run.samples.columns:
        return None
    df = run.samples
    ok = df[df["status"] == "ok"] if "status" in df.columns else df
    x = pd.Series(ok[key].to_numpy(dtype=float), index=ok["sample_id"].to_numpy())
    return x[~np.isnan(x.to_numpy())]  # NaN: not scored (e.g. a sample without a label); inf is a value


def _fill(table: Table, runs: list[RunData], userstudy: dict[str, dict] | None, n_boot: int, seed: int) -> Table:
    """Compute cells, bold, intervals and daggers for ``table`` (rows already labelled)."""
    by_label = {r.label: run for r, run in zip(table.rows, runs)}
    rng = np.random.default_rng(seed)
    skipped_set, nonfinite = [], []
    for col in table.columns:
        cells = []
        for row in table.rows:
            run = by_label[row.label]
            if col.key == USER_STUDY:
                r = (userstudy or {}).get(run.method)
                if r is None:
                    cells.append(Cell(None, "--"))
                else:
                    cells.append(Cell(r["rate"], _num(r["rate"]), (r["ci_low"], r["ci_high"]), display=r["rate"]))
                continue
            info = run.metrics["metrics"].get(col.key)
            if not info or info.get("value") is None:
                cells.append(Cell(None, "--"))
                continue
            scale = float(info.get("display_scale", 1.0))
            v = float(info["value"])
            std = info.get("seed_std")  # seed groups (reports.select); not a metric's own "std" (KID)
            std = float(std) * scale if isinstance(std, (int, float)) and math.isfinite(std) else None
            text = _num(v * scale) + (f" \u00b1 {_num(std)}" if std is not None else "")
            cells.append(Cell(v, text, display=v * scale, std=std))
        for row, c in zip(table.rows, cells):
            row.cells.append(c)
        vals = [(c.value, i) for i, c in enumerate(cells) if c.value is not None and not math.isnan(c.value)]
        if not vals:
            continue
        best_v = (max if col.higher_is_better else min)(v for v, _ in vals)
        best_rows = [i for v, i in vals if v == best_v]
        for i in best_rows:
            cells[i].best = len(vals) > 1
        if col.key == USER_STUDY:
            continue
        # paired bootstrap over the samples every row scored
        series = [(_per_sample(by_label[row.label], col.key) if cells[i].value is not None else None)
                  for i, row in enumerate(table.rows)]
        if any(s is None for s, c in zip(series, cells) if c.value is not None):
            skipped_set.append(col.label)
            continue
        present = [i for i, s in enumerate(series) if s is not None]
        _mark_copy(table, by_label, cells, series, col.higher_is_better, n_boot, seed)
        scale = float(by_label[table.rows[present[0]].label].metrics["metrics"][col.key].get("display_scale", 1.0)) \
            if present else 1.0
        # interval of each row over its own samples (rows may have scored different samples)
        for i in present:
            x = series[i].to_numpy(dtype=float)
            if len(x) < 2:
                continue
            if not np.isfinite(x).all():
                nonfinite.append(f"{col.label} of {table.rows[i].label}")
                continue
            d = rng.integers(0, len(x), size=(n_boot, len(x)))
            lo, hi = np.percentile(x[d].mean(1), [2.5, 97.5])
            cells[i].ci = (float(lo * scale), float(hi * scale))
        # significance: paired bootstrap over the samples every row scored
        common = sorted(set.intersection(*(set(series[i].index) for i in present))) if present else []
        if len(common) < 2:
            continue
        X = np.stack([series[i].reindex(common).to_numpy(dtype=float) for i in present])  # rows x samples
        draws = rng.integers(0, len(common), size=(n_boot, len(common)))
        finite_row = np.isfinite(X).all(1)
        means = np.full((len(present), n_boot), np.nan)
        for r in range(len(present)):
            if finite_row[r]:
                means[r] = X[r][draws].mean(1)
        best_idx = [r for r, i in enumerate(present) if i in best_rows]
        if not best_idx or not finite_row[best_idx[0]]:
            continue
        b = best_idx[0]
        sign = 1.0 if col.higher_is_better else -1.0
        for r, i in enumerate(present):
            if i in best_rows or not finite_row[r]:
                continue
            diff = sign * (means[b] - means[r])
            if np.percentile(diff, 2.5) > 0:
                cells[i].behind = True
    if skipped_set:
        table.notes.append(f"No interval or significance test for {', '.join(dict.fromkeys(skipped_set))}: a set "
                           "metric; resampling it needs per-sample features, which runs do not keep.")
    if nonfinite:
        table.notes.append(f"No interval for {', '.join(nonfinite)} (infinite per-sample values, e.g. PSNR of an "
                           "exact copy).")
    return table


def copy_rows(table: Table, by_label: dict[str, Any]) -> dict[int, int]:
    """For each row index, the index of the input-copy row it is compared with: the one of the same
    protocol hash, else of the same protocol name and version; rows without one are left out."""
    copies = [i for i, r in enumerate(table.rows) if r.kind == "measured" and by_label[r.label].method == COPY]
    out: dict[int, int] = {}
    for i, row in enumerate(table.rows):
        if row.kind != "measured" or i in copies:
            continue
        p = by_label[row.label].protocol
        same = [c for c in copies if by_label[table.rows[c].label].protocol.get("hash") == p.get("hash")]
        if not same:
            same = [c for c in copies if (by_label[table.rows[c].label].protocol.get("name"),
                                          by_label[table.rows[c].label].protocol.get("version"))
                    == (p.get("name"), p.get("version"))]
        if same:
            out[i] = same[0]
    return out


def _mark_copy(table: Table, by_label: dict[str, Any], cells: list[Cell], series: list, higher_is_better: bool,
               n_boot: int, seed: int) -> None:
    """Mark each cell whose paired bootstrap difference to its input-copy row does not lie above zero
    (over the samples both rows scored; its own generator, so the other marks do not move)."""
    rng = np.random.default_rng([seed, 1])
    sign = 1.0 if higher_is_better else -1.0
    for i, c in copy_rows(table, by_label).items():
        a, b = series[i], series[c]
        if a is None or b is None or cells[i].value is None:
            continue
        common = sorted(set(a.index) & set(b.index))
        if len(common) < 2:
            continue
        x = a.reindex(common).to_numpy(dtype=float)
        y = b.reindex(common).to_numpy(dtype=float)
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            continue
        d = rng.integers(0, len(common), size=(n_boot, len(common)))
        diff = sign * (x - y)[d].mean(1)
        cells[i].not_above_copy = bool(np.percentile(diff, 2.5) <= 0)


def _base_notes(table: Table, runs: list[RunData]) -> None:
    cols = {c.key for c in table.columns}
    scaled = [c.label for c in table.columns if c.key not in ("psnr", "fid", USER_STUDY)]
    table.notes.insert(0, (f"{', '.join(scaled)} x100; " if scaled else "") + ("PSNR in dB; " if "psnr" in cols else "")
                       + ("FID as is; " if "fid" in cols else "") + "best in bold; \u2193 lower is better; "
                       "\u2020 significantly behind the best (paired bootstrap over the samples every row scored, 95%). "
                       "Brackets: 95% interval of the mean, percentile bootstrap over the row's own samples; "
                       "\u00b1: standard deviation across seed runs. n: samples scored.")
    for run in runs:
        fid = run.metrics["metrics"].get("fid")
        if "fid" in cols and fid and fid.get("value") is not None:
            table.notes.append(f"FID of {run.method} over {fid.get('n')} images")
        probs = run.metrics.get("problems") or {}
        if probs:
            table.notes.append(f"{run.method}: not scored " + ", ".join(f"{k} {v}" for k, v in sorted(probs.items())))
    if USER_STUDY in cols:
        table.notes.append("User Study: win rate (%) from egobench import-amt, 95% bootstrap interval over items.")
    if any(r.method == COPY for r in runs):
        table.notes.insert(1, COPY_LEGEND)
    table.notes.append(weights_footer(runs))


def zero_shot(run: Any) -> bool:
    """The run's manifest says the method's weights never saw this benchmark's training data."""
    return ((run.manifest.get("method") or {}).get("config") or {}).get("finetuned_on_benchmark") is False


def row_label(run: Any) -> str:
    """A row's label: the method, marked when it is a zero-shot (off-the-shelf) model."""
    return run.method + (ZERO_SHOT if zero_shot(run) else "")


def weights_footer(runs: list[RunData]) -> str:
    """"weights: locked <hash>" when every row ran under one weights lock, else how many of the
    rows' artifacts matched no pin ("weights: N unverified")."""
    from egobench.provenance import footer

    locks = {str((r.manifest.get("weights_lock") or {}).get("digest") or "") for r in runs}
    if len(locks) == 1 and "" not in locks:
        return footer({}, locks.pop()[:12])
    artifacts = {f"{r.path}:{name}": rec for r in runs for name, rec in (r.manifest.get("artifacts") or {}).items()
                 if isinstance(rec, dict)}
    return footer(artifacts)


def _protocols(runs: list[RunData]) -> list[dict[str, Any]]:
    seen: dict[str, dict] = {}
    for r in runs:
        p = r.protocol
        seen.setdefault(str(p.get("hash")), {"name": p.get("name"), "version": p.get("version"), "hash": p.get("hash")})
    return list(seen.values())


def _columns(runs: list[RunData], keys: tuple[str, ...] | None) -> list[Column]:
    cols: list[Column] = []
    order: list[str] = []
    for r in runs:
        for k in r.metrics.get("metric_order", list(r.metrics["metrics"])):
            if k not in order:
                order.append(k)
    if keys is not None:
        order = [k for k in keys if k in order]
    for k in order:
        info = next(r.metrics["metrics"][k] for r in runs if k in r.metrics["metrics"])
        cols.append(Column(k, LABELS.get(k, k), bool(info["higher_is_better"])))
    return cols


def _unique_labels(labels: list[str]) -> list[str]:
    out, count = [], {}
    for lab in labels:
        n = labels.count(lab)
        if n > 1:
            count[lab] = count.get(lab, 0) + 1
            lab = f"{lab} ({count[lab]})"
        out.append(lab)
    return out


def _make(tid: str, title: str, dataset: str, runs: list[RunData], labels: list[str], keys, userstudy, n_boot,
          seed, with_study: bool = False) -> Table | None:
    cols = _columns(runs, keys)
    if with_study:
        cols.append(Column(USER_STUDY, "User Study", True, "%"))
    if not cols or not runs:
        return None
    rows = [Row(lab, r.method, [], str(r.path), n=_row_n(r), source=_row_source(r))
            for lab, r in zip(_unique_labels(labels), runs)]
    t = Table(tid, title, dataset, cols, rows, _protocols(runs), comparable=all(r.comparable for r in runs))
    _fill(t, runs, userstudy, n_boot, seed)
    _base_notes(t, runs)
    for k, row in enumerate(t.rows, 1):
        row.ref = k if row.source else 0
    from .published import add_published

    add_published(t, runs)
    return t


def _row_n(run) -> int | None:
    n = run.metrics.get("n_scored")
    return int(n) if isinstance(n, (int, float)) and not isinstance(n, bool) else None


def _row_source(run) -> str:
    if hasattr(run, "source"):
        return run.source()
    split = run.manifest.get("split") if isinstance(run.manifest.get("split"), dict) else {}
    fp = str(split.get("fingerprint") or run.metrics.get("split_fingerprint") or "")[:12]
    return f"run {run.manifest.get('run_id') or run.path.name} ({run.path}), n={_row_n(run)}, split {fp or 'unknown'}"


def build_tables(
    runs: list[RunData], *, userstudy: list[dict[str, Any]] | None = None, n_boot: int = 1000, seed: int = 0
) -> list[Table]:
    """Tables 1-4 for whatever the runs cover (a table without rows is left out)."""
    studies: dict[str, dict[str, dict]] = {}
    for us in userstudy or []:
        if us.get("study", "action") == "action":
            studies.setdefault(us["dataset"], {}).update(us["methods"])
    tables: list[Table] = []
    datasets = list(dict.fromkeys(r.dataset for r in runs))
    for ds in datasets:
        name = DATASET_NAMES.get(ds, ds)
        in_ds = [r for r in runs if r.dataset == ds]
        main = [r for r in in_ds if r.method not in ABLATION_ONLY and r.vllm_finetuned is not False]
        main.sort(key=lambda r: PAPER_ORDER.index(r.method) if r.method in PAPER_ORDER else len(PAPER_ORDER))
        abl = []
        for method, label in ABLATION:
            abl += [(label, r) for r in in_ds if r.method == method and r.vllm_finetuned is not False]
        has_t3 = bool(abl) and ((len(abl) >= 2 and any(r.method in ABLATION_ONLY for _, r in abl)) or ds in studies)
        study_in_t1 = ds in studies and not has_t3  # the win rates go to Table 3, else to Table 1
        if main:
            t1 = _make(f"table1-{ds}", f"Table 1: image metrics on {name}", ds, main, [row_label(r) for r in main],
                       TABLE1, studies.get(ds), n_boot, seed, with_study=study_in_t1)
            if t1 and t1.columns:
                if study_in_t1:
                    _study_notes(t1, studies[ds])
                tables.append(t1)
            if any(k in r.metrics["metrics"] for r in main for k in TABLE2):
                t2 = _make(f"table2-{ds}", f"Table 2: BLIP caption similarity on {name}", ds, main,
                           [row_label(r) for r in main], TABLE2, None, n_boot, seed)
                if t2:
                    _blip_dropout_note(t2, main)
                    tables.append(t2)
            if any(k in r.metrics["metrics"] for r in main for k in ACTION_TABLE):
                ta = _make(f"action-{ds}", f"Action faithfulness on {name}", ds, main, [row_label(r) for r in main],
                           ACTION_TABLE, None, n_boot, seed)
                if ta:
                    ta.notes.append("Does the frame show the asked action? (egobench-v2) The oracle row (ground-truth "
                                    "frames) is the ceiling and input-copy the floor; sensitivity 50 means the action "
                                    "is ignored (input-copy scores exactly 50).")
                    tables.append(ta)
            if any(zero_shot(r) for r in main):
                for t in tables[-3:]:
                    if t.dataset == ds and not any(ZERO_SHOT.strip() in n for n in t.notes):
                        t.notes.append("(zero-shot): off-the-shelf weights, not trained on this benchmark's data.")
        if has_t3:
            rs = [r for _, r in abl]
            copies = _copies_for(in_ds, rs)
            rs, labels = copies + rs, [COPY] * len(copies) + [lab for lab, _ in abl]
            t3 = _make(f"table3-{ds}", f"Table 3: conditioning ablation on {name}", ds, rs, labels,
                       TABLE1 + TABLE2, studies.get(ds), n_boot, seed, with_study=ds in studies)
            if t3:
                if ds in studies:
                    _study_notes(t3, studies[ds])
                tables.append(t3)
        ft = [r for r in in_ds if r.vllm_finetuned is not None]
        pairs = []
        for method in dict.fromkeys(r.method for r in ft):
            off = [r for r in ft if r.method == method and r.vllm_finetuned is False]
            on = [r for r in ft if r.method == method and r.vllm_finetuned is True]
            if off and on:
                pairs += [(f"{method} w/o finetuning", r) for r in off] + [(f"{method} finetuned", r) for r in on]
        if pairs:
            rs = [r for _, r in pairs]
            copies = _copies_for(in_ds, rs)
            t4 = _make(f"table4-{ds}", f"Table 4: VLLM without vs with finetuning on {name}", ds, copies + rs,
                       [COPY] * len(copies) + [lab for lab, _ in pairs], TABLE1 + TABLE2, None, n_boot, seed)
            if t4:
                tables.append(t4)
    return tables


def _copies_for(in_ds: list, rows: list) -> list:
    """The input-copy runs of a dataset for a table of ``rows``: those of the rows' protocols (by hash,
    else by name and version); the table's rows are compared with them."""
    copies = [r for r in in_ds if r.method == COPY and r not in rows]
    hashes = {r.protocol.get("hash") for r in rows}
    same = [c for c in copies if c.protocol.get("hash") in hashes]
    if not same:
        names = {(r.protocol.get("name"), r.protocol.get("version")) for r in rows}
        same = [c for c in copies if (c.protocol.get("name"), c.protocol.get("version")) in names]
    return same


def _blip_dropout_note(t: Table, runs: list) -> None:
    """BLIP columns captioned in the released training mode (lego-official): say how far their values
    move across captioner seeds (the largest ``draw_std`` the runs measured with BLIP ``draws`` > 1)."""
    released, spreads = False, []
    for run in runs:
        for key in TABLE2:
            info = (getattr(run, "metrics", {}).get("metrics") or {}).get(key) or {}
            if (info.get("settings") or {}).get("mode") == "released":
                released = True
                if isinstance(info.get("draw_std"), (int, float)):
                    spreads.append(float(info["draw_std"]) * float(info.get("display_scale", 1.0)))
    if released:
        x = max(spreads) if spreads else None  # below the table's 2 decimals: one significant digit
        t.notes.append("BLIP-B/L: released captioner runs with dropout; values vary "
                       + (f"by about +-{_num(x) if x >= 0.005 or x == 0 else f'{x:.1g}'} across seeds"
                          if x is not None else "across seeds (spread not measured: BLIP draws = 1)"))


def _study_notes(t: Table, study: dict[str, dict]) -> None:
    """Name the user-study methods that have no row in ``t`` (their rates are not lost)."""
    shown = {r.method for r in t.rows}
    rest = [f"{m} {_num(v.get('rate'))}% [{_num(v.get('ci_low'))}, {_num(v.get('ci_high'))}]"
            for m, v in study.items() if m not in shown and isinstance(v, dict)]
    if rest:
        t.notes.append("User study methods without a row here: " + "; ".join(rest) + ".")


def tables_json(tables: list[Table]) -> str:
    out = []
    for t in tables:
        out.append({
            "id": t.id, "title": t.title, "dataset": t.dataset, "comparable": t.comparable, "kind": t.kind,
            "row_head": t.row_head,
            "protocols": t.protocols, "notes": t.notes,
            "columns": [{"key": c.key, "label": c.label, "higher_is_better": c.higher_is_better} for c in t.columns],
            "rows": [{"label": r.label, "method": r.method, "run": r.run, "kind": r.kind, "n": r.n,
                      "source": r.source,
                      "cells": [{"value": _json_num(c.value), "display": _json_num(c.display),
                                 "text": c.text, "ci": list(c.ci) if c.ci else None, "best": c.best,
                                 "behind": c.behind, "not_above_input_copy": c.not_above_copy, "std": c.std,
                                 "delta_published": c.delta}
                                for c in r.cells]} for r in t.rows],
        })
    return json.dumps(out, indent=2, ensure_ascii=False) + "\n"


def _json_num(v: float | None) -> float | str | None:
    return v if v is None or math.isfinite(v) else str(v)
