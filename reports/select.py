"""Which runs become table rows: seed siblings, repeated runs, sample selections.

A report never drops or mixes runs silently:

* runs of one method that differ only by their seed (same protocol, options
  and split fingerprint, different ``seeds.seed`` in the manifest) become one
  row with the mean and the standard deviation across seeds;
* several other runs of one method (reruns, ``--limit`` runs, other sample
  selections) are resolved by ``prefer``: ``latest`` (newest manifest time),
  ``largest`` (most scored samples, then newest) or ``all`` (one row each);
  runs given as explicit paths are always shown and win over runs found under
  ``--runs-dir``. The default is ``largest``, so a ``--limit`` run never
  replaces a full one unasked. Every run left out is named in a note with the way to pick it;
* every row says which run(s) it comes from, its n, its split fingerprint and
  its ``--limit`` record.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from egobench.io import truncate

from .tables import RunData

PREFER = ("latest", "largest", "all")


def _seed(run: RunData) -> Any:
    s = run.manifest.get("seeds")
    if isinstance(s, dict):
        return s.get("seed")
    return run.manifest.get("seed")


def _options(run: RunData) -> str:
    m = run.manifest.get("method")
    opts = (m.get("options") if isinstance(m, dict) else None) or {}
    if not isinstance(opts, dict):
        return json.dumps(str(opts))
    return json.dumps({k: v for k, v in opts.items() if k != "seed"}, sort_keys=True, default=str)


def fingerprint(run: RunData) -> str:
    split = run.manifest.get("split")
    fp = split.get("fingerprint") if isinstance(split, dict) else None
    return str(fp or run.metrics.get("split_fingerprint") or "")


def limit_text(run: RunData) -> str:
    """The ``--limit``/selection record of a run ('' for a full split)."""
    split = run.manifest.get("split")
    if not isinstance(split, dict):
        return ""
    sel, lim = split.get("selection"), split.get("limit")
    if isinstance(sel, dict) and lim in (None, ""):
        lim = sel.get("limit")
    if lim not in (None, "", {}, []):
        return f"--limit {truncate(lim, 40)}"
    if sel not in (None, "", {}, []):
        return f"selection {truncate(sel, 60)}"
    return ""


def run_n(run: RunData) -> int | None:
    n = run.metrics.get("n_scored")
    return int(n) if isinstance(n, (int, float)) and not isinstance(n, bool) else None


def run_time(run: RunData) -> str:
    """Sortable time of the run's last write (manifest, else metrics.json mtime)."""
    t = run.manifest.get("updated") or run.manifest.get("created")
    if isinstance(t, str) and t:
        return t
    try:
        import time

        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((run.path / "metrics.json").stat().st_mtime))
    except OSError:
        return ""


def run_id(run: RunData) -> str:
    rid = run.manifest.get("run_id")
    return str(rid) if rid else run.path.name


@dataclass
class RunGroup:
    """One table row's runs: a single run, or seed siblings averaged."""

    runs: list[RunData]
    explicit: bool = False
    metrics: dict[str, Any] = field(init=False)
    samples: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        first = self.runs[0]
        if len(self.runs) == 1:
            self.metrics, self.samples = first.metrics, first.samples
            return
        self.metrics = {**first.metrics, "metrics": {}}
        for key, info in first.metrics["metrics"].items():
            vals = [(r.metrics["metrics"].get(key) or {}).get("value") for r in self.runs]
            if any(v is None for v in vals):
                continue
            vals = [float(v) for v in vals]
            self.metrics["metrics"][key] = {
                **info, "value": float(np.mean(vals)),
                "seed_std": float(np.std(vals, ddof=1)) if all(math.isfinite(v) for v in vals) else None,
                "n_runs": len(vals)}
        self.metrics["n_scored"] = min((run_n(r) or 0) for r in self.runs)
        self.samples = _mean_samples([r.samples for r in self.runs], list(self.metrics["metrics"]))

    # RunData's interface
    @property
    def path(self) -> Path:
        return self.runs[0].path

    @property
    def manifest(self) -> dict[str, Any]:
        return self.runs[0].manifest

    @property
    def method(self) -> str:
        return self.runs[0].method

    @property
    def dataset(self) -> str:
        return self.runs[0].dataset

    @property
    def protocol(self) -> dict[str, Any]:
        return self.runs[0].protocol

    @property
    def comparable(self) -> bool:
        return all(r.comparable for r in self.runs)

    @property
    def vllm_finetuned(self) -> bool | None:
        return self.runs[0].vllm_finetuned

    @property
    def seeds(self) -> list[Any]:
        return [_seed(r) for r in self.runs]

    @property
    def n(self) -> int | None:
        return run_n(self) if len(self.runs) == 1 else self.metrics.get("n_scored")

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.runs[0])

    @property
    def limit(self) -> str:
        return limit_text(self.runs[0])

    def source(self) -> str:
        """Where this row comes from, for the table notes."""
        fp = self.fingerprint[:12] or "unknown"
        n_split = (self.manifest.get("split") or {}).get("n_samples") if isinstance(self.manifest.get("split"),
                                                                                    dict) else None
        n = f"n={self.n}" + (f" of {n_split}" if n_split else "")
        lim = f", {self.limit}" if self.limit else ""
        if len(self.runs) == 1:
            return f"run {run_id(self.runs[0])} ({self.path}), {n}, split {fp}{lim}"
        seeds = ", ".join(str(s) for s in self.seeds)
        where = "; ".join(str(r.path) for r in self.runs)
        return f"mean \u00b1 std over {len(self.runs)} seed runs (seeds {seeds}: {where}), {n}, split {fp}{lim}"


def _mean_samples(frames: list[pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    """Per-sample mean of metric columns over the samples every frame scored."""
    if any(f.empty or "sample_id" not in f.columns for f in frames):
        return pd.DataFrame()

    def ok(f: pd.DataFrame) -> pd.DataFrame:
        return f[f["status"] == "ok"] if "status" in f.columns else f

    common = set(ok(frames[0])["sample_id"])
    for f in frames[1:]:
        common &= set(ok(f)["sample_id"])
    base = frames[0][frames[0]["sample_id"].isin(common)].set_index("sample_id", drop=False)
    base = base.copy()
    for k in keys:
        if k in base.columns and all(k in f.columns for f in frames):
            cols = [f.set_index("sample_id")[k].reindex(base.index).to_numpy(dtype=float) for f in frames]
            base[k] = np.mean(np.stack(cols), axis=0)
    return base.reset_index(drop=True)


def _method_key(run: RunData) -> tuple:
    return (run.dataset, run.method, run.vllm_finetuned, _options(run))


def _pick(cands: list[RunData], prefer: str) -> RunData:
    if prefer == "largest":
        return max(cands, key=lambda r: (run_n(r) or 0, run_time(r), str(r.path)))
    return max(cands, key=lambda r: (run_time(r), str(r.path)))


def _describe(r: RunData) -> str:
    lim = limit_text(r)
    return f"{r.path} (n={run_n(r)}, split {fingerprint(r)[:12] or 'unknown'}{', ' + lim if lim else ''})"


def select_runs(runs: list[RunData], explicit: set[str] | frozenset[str] = frozenset(),
                prefer: str = "largest") -> tuple[list[RunGroup], dict[str, list[str]]]:
    """Table rows from loaded runs, and notes per dataset about what was grouped,
    chosen and left out. ``explicit``: the run paths the user named."""
    if prefer not in PREFER:
        from egobench.errors import UserError

        raise UserError(f"unknown --prefer '{truncate(prefer)}'; use {', '.join(PREFER)}")
    notes: dict[str, list[str]] = {}
    by_key: dict[tuple, list[RunData]] = {}
    for r in runs:
        by_key.setdefault(_method_key(r), []).append(r)
    groups: list[RunGroup] = []
    for key, cands in by_key.items():
        ds, method = key[0], key[1]
        label = method + ("" if key[2] is None else f" (vllm_finetuned={key[2]})")
        named = [r for r in cands if str(r.path) in explicit]
        if named and len(named) < len(cands):
            others = [r for r in cands if str(r.path) not in explicit]
            notes.setdefault(ds, []).append(
                f"{label}: showing the run(s) given on the command line; not shown: "
                + "; ".join(_describe(r) for r in others) + ".")
            cands = named
        # seed siblings: same protocol and sample selection, different seeds
        by_sel: dict[tuple, list[RunData]] = {}
        for r in cands:
            p = r.protocol
            by_sel.setdefault((p.get("name"), p.get("version"), fingerprint(r)), []).append(r)
        entities: list[RunGroup] = []
        for sel in by_sel.values():
            by_seed: dict[str, list[RunData]] = {}
            for r in sel:
                by_seed.setdefault(json.dumps(_seed(r), default=str), []).append(r)
            chosen = []
            for seed_runs in by_seed.values():
                if len(seed_runs) > 1 and not (prefer == "all" or named):
                    keep = _pick(seed_runs, prefer)
                    dropped = [r for r in seed_runs if r is not keep]
                    notes.setdefault(ds, []).append(
                        f"{label}: {len(seed_runs)} runs with the same seed and samples; showing {keep.path} "
                        f"({prefer}); not shown: " + "; ".join(_describe(r) for r in dropped)
                        + ". Pick with --prefer latest|largest|all or give run paths.")
                    chosen.append(keep)
                else:
                    chosen.extend(seed_runs)
            if len(by_seed) > 1 and len(chosen) == len(by_seed) and "null" not in by_seed:
                entities.append(RunGroup(sorted(chosen, key=lambda r: str(r.path)), bool(named)))
            else:
                entities.extend(RunGroup([r], bool(named)) for r in chosen)
        if len(entities) > 1 and not (prefer == "all" or named):
            keep_e = max(entities, key=lambda e: ((e.n or 0) if prefer == "largest" else 0,
                                                  max(run_time(r) for r in e.runs), str(e.path)))
            dropped = [r for e in entities if e is not keep_e for r in e.runs]
            sels = {e.fingerprint for e in entities}
            notes.setdefault(ds, []).append(
                f"{label}: {sum(len(e.runs) for e in entities)} runs; showing {keep_e.path} ({prefer}, n={keep_e.n}); "
                "not shown: " + "; ".join(_describe(r) for r in dropped) + "."
                + (" These runs scored different sample selections (split fingerprints)." if len(sels) > 1 else "")
                + " Pick with --prefer latest|largest|all or give run paths.")
            entities = [keep_e]
        elif len(entities) > 1 and len({e.fingerprint for e in entities}) > 1:
            notes.setdefault(ds, []).append(
                f"{label}: rows from different sample selections: "
                + "; ".join(f"{e.path} (n={e.n}, split {e.fingerprint[:12]}{', ' + e.limit if e.limit else ''})"
                            for e in entities) + ". Their numbers are not directly comparable.")
        groups.extend(entities)
    return groups, notes


def explicit_set(paths: list[str | os.PathLike]) -> set[str]:
    return {str(Path(p)) for p in paths}
