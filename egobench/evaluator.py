"""Scoring generated images against targets, streamed batch by batch.

Each image is decoded once per batch and the decoded arrays are shared by all
metrics; the next batch is decoded in a background thread while the metrics
score the current one. Memory does not grow with the split: only per-sample
numbers are kept (two batches of pixels at most).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data.split import Sample, file_digest
from .errors import ConfigError
from .images import BadImageError, read_rgb
from .metrics import METRICS, Metric, MetricBatch
from .protocol import MetricSpec, Protocol

#: ``stage(name, items)``: a context manager around one decode ("decode") or one metric call (the column's name)
Stage = Callable[[str, int], contextlib.AbstractContextManager[Any]]


def _no_stage(name: str, items: int) -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext()


@dataclass
class MetricColumn:
    spec: MetricSpec
    metric: Metric

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class Evaluation:
    """Per-sample table plus aggregate numbers."""

    samples: pd.DataFrame
    metrics: dict[str, dict[str, Any]]
    n_samples: int
    n_scored: int
    problems: dict[str, int] = field(default_factory=dict)
    cache: dict[str, int] = field(default_factory=dict)  # target-side feature cache hits / misses
    #: the run cache's hits / misses (scores and generated-side features reused from an earlier evaluation)
    reused: dict[str, int] = field(default_factory=dict)


def build_metrics(
    protocol: Protocol, weights: Any, device: str, only: Sequence[str] | None = None, cache: Any = "default",
    split: Sequence[Sample] | None = None,
) -> list[MetricColumn]:
    """The protocol's metric columns (``only``: those named). ``split``: every sample that will be
    scored (all shards'), handed to the metrics that read the whole split (a label vocabulary);
    such a metric without it is refused here, before any work."""
    from .metrics.cache import FeatureCache, default_cache_dir

    if cache == "default":
        cache = FeatureCache(default_cache_dir())
    cols = []
    for i, spec in enumerate(protocol.metrics):
        if only is not None and spec.name not in only:
            continue
        cls = METRICS.get(spec.metric)
        settings = cls.parse_settings(spec.settings, f"{protocol.source}: metrics[{i}].settings")
        metric = cls(settings, weights=weights, device=device, cache=cache)
        metric.precision = protocol.evaluation.precision
        if metric.needs_split:
            if split is None:
                raise ConfigError(f"metric {spec.name!r} ({spec.metric}) reads the whole split (its label "
                                  "vocabulary); this caller scores images without a split")
            metric.bind_split(split)
        cols.append(MetricColumn(spec, metric))
    return cols


def evaluate_samples(
    samples: Sequence[Sample],
    locate: Callable[[Sample], Path | None],
    columns: list[MetricColumn],
    *,
    batch_size: int = 8,
    status: dict[str, tuple[str, str]] | None = None,
    progress: Callable[[int], None] | None = None,
    run_cache: Any = None,
    stage: Stage | None = None,
    counterfactual: Callable[[Sample], Path | None] | None = None,
) -> Evaluation:
    """Score every sample whose generated image ``locate`` finds.

    ``status`` may carry an earlier failure per sample id (``(status, reason)``),
    e.g. a generation failure; such samples are reported, not scored.

    ``run_cache`` (a :class:`~egobench.metrics.cache.FeatureCache`, usually
    ``<run dir>/cache``) keeps every batch's per-sample scores and generated-side set
    features keyed by the content of everything they were computed from: a killed
    evaluation resumes where it stopped, and re-scoring unchanged outputs computes
    nothing. A batch whose scores are all there is not recomputed; otherwise the whole
    batch is (so its samples are scored together, as in an uninterrupted run).

    A per-sample metric with a :attr:`~egobench.metrics.Metric.group_size` is scored on groups
    of exactly that many consecutive scored samples in order, whatever ``batch_size`` is (its
    rows are filled in when a group is complete); its run-cache keys come from
    :meth:`~egobench.metrics.Metric.score_keys`.

    ``stage`` (for ``egobench bench``, which reads per-stage times through it) wraps each image
    decode (``stage("decode", 1)``, in the decoding thread) and each metric call
    (``stage(column name, samples)``); it changes nothing else.

    ``counterfactual`` locates each sample's image made for a counterfactual action (the
    action-sensitivity probe's, ``<run>/probes/counterfactual/``), read only when a metric needs
    it; only such a metric sees it (a sample without one is scored by every other metric).
    """
    stage = stage or _no_stage
    status = dict(status or {})
    if run_cache is not None and not run_cache.enabled:
        run_cache = None
    for c in columns:
        c.metric.run_cache = run_cache
        c.metric.begin()
    groups = _Groups(columns, stage)
    needs = {n for c in columns for n in c.metric.needs}
    values: dict[str, list[float]] = {c.name: [] for c in columns}
    extras: dict[str, list[Any]] = {}
    rows_status: list[str] = []
    rows_error: list[str] = []
    def load(chunk: Sequence[Sample]) -> tuple[list[tuple[str, str]], MetricBatch]:
        """Decode one batch (every image once) and key its files."""
        gens, tgts, inps, gen_keys, cfs, cf_keys = [], [], [], [], [], []
        row_state = []
        for s in chunk:
            if s.id in status:
                row_state.append(status[s.id])
                continue
            path = locate(s)
            if path is None:
                row_state.append(("missing", "no generated image"))
                continue
            try:
                with stage("decode", 1):
                    g = read_rgb(path)
            except BadImageError as e:
                row_state.append(("failed", str(e)))
                continue
            with stage("decode", 2 if "input" in needs else 1):
                t = read_rgb(s.target_path)
                inp = read_rgb(s.input_path) if "input" in needs else None
            row_state.append(("ok", ""))
            if run_cache is not None:
                gen_keys.append(hashlib.sha256(Path(path).read_bytes()).hexdigest())
            gens.append(g)
            tgts.append(t)
            if inp is not None:
                inps.append(inp)
            if "counterfactual" in needs:
                cf, key = _read_counterfactual(counterfactual(s) if counterfactual else None)
                cfs.append(cf)
                cf_keys.append(key)
        ok_samples = [chunk[i] for i in range(len(chunk)) if row_state[i][0] == "ok"]
        return row_state, MetricBatch(
            ids=[s.id for s in ok_samples],
            generated=gens,
            target=tgts,
            input=inps,
            description=[s.description for s in ok_samples],
            action=[s.action for s in ok_samples],
            domain=[str(s.meta.get("domain", s.dataset)) for s in ok_samples],
            target_keys=[file_digest(s.target_path) for s in ok_samples],
            input_keys=[file_digest(s.input_path) for s in ok_samples] if "input" in needs else [],
            generated_keys=gen_keys,
            counterfactual=cfs,
            counterfactual_keys=cf_keys,
        )

    chunks = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    # the next batch is decoded in a thread while the metrics score this one (PIL releases the GIL)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="egobench-decode")
    try:
        upcoming = pool.submit(load, chunks[0]) if chunks else None
        for k, chunk in enumerate(chunks):
            row_state, batch = upcoming.result()  # type: ignore[union-attr]
            upcoming = pool.submit(load, chunks[k + 1]) if k + 1 < len(chunks) else None
            _score_batch(batch, row_state, columns, run_cache,
                         values, extras, rows_status, rows_error, groups)
            if progress:
                progress(len(chunk))
    except BaseException:
        # Ctrl-C or an error: do not wait for the next batch's decoding to finish
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    groups.flush(run_cache, values, extras, final=True)

    df = pd.DataFrame(
        {
            "sample_id": [s.id for s in samples],
            "status": rows_status,
            "error": rows_error,
        }
    )
    for c in columns:
        if c.metric.kind == "sample":
            df[c.name] = np.asarray(values[c.name], dtype=np.float64)
    for k in sorted(extras):
        col = extras[k] + [None] * (len(df) - len(extras[k]))
        df[k] = col
    caches = {id(c.metric.cache): c.metric.cache for c in columns if getattr(c.metric, "cache", None) is not None}
    stats = {
        "hits": sum(c.hits for c in caches.values()),
        "misses": sum(c.misses for c in caches.values()),
        "enabled": any(c.enabled for c in caches.values()),
    }
    for c in columns:
        c.metric.run_cache = None
    set_names = [c.name for c in columns if c.metric.kind == "set"]
    phase = getattr(progress, "phase", None)
    if set_names and phase is not None:
        n_ok = int((df["status"] == "ok").sum())
        with phase(f"set-level {', '.join(set_names)} over {n_ok} images"):
            evaluation = aggregate(df, columns, stats, stage)
    else:
        evaluation = aggregate(df, columns, stats, stage)
    if run_cache is not None:
        evaluation.reused = {"hits": run_cache.hits, "misses": run_cache.misses}
    return evaluation


def _read_counterfactual(path: Path | None) -> tuple[np.ndarray | None, str]:
    """(the counterfactual image, the sha256 of its file), or (None, "") when there is none or it
    cannot be read (its metric then leaves the sample out)."""
    if path is None or not Path(path).is_file():
        return None, ""
    try:
        return read_rgb(path), hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except BadImageError:
        return None, ""


def _score_batch(batch: MetricBatch, row_state: list[tuple[str, str]], columns: list[MetricColumn],
                 run_cache: Any, values: dict[str, list[float]], extras: dict[str, list[Any]],
                 rows_status: list[str], rows_error: list[str], groups: _Groups | None = None) -> None:
    """Score one decoded batch with every metric and append its rows (``row_state``: every sample
    of the chunk in order, scored or not). Metrics scored in fixed groups get placeholders, filled
    when ``groups`` has a full group."""
    groups = groups if groups is not None else _Groups([])
    stage = groups.stage
    first_row = len(rows_status)
    score_keys = _score_keys(batch) if run_cache is not None and len(groups) < len(columns) else None
    per_col: dict[str, np.ndarray] = {}
    per_extra: dict[str, list[Any]] = {}
    for c in columns:
        if c in groups:
            continue
        if c.metric.kind == "sample":
            with stage(c.name, len(batch)):
                res, more = _sample_scores(c.metric, batch, run_cache, score_keys)
            for k, v in more.items():
                per_extra[f"{c.name}_{k}"] = list(v)
            per_col[c.name] = np.asarray(res, dtype=np.float64)
            if len(per_col[c.name]) != len(batch):
                raise RuntimeError(f"metric {c.name} returned {len(per_col[c.name])} values for {len(batch)}")
        elif len(batch):
            with stage(c.name, len(batch)), c.metric.autocast():
                c.metric.update(batch)
    j = 0
    for st, err in row_state:
        rows_status.append(st)
        rows_error.append(err)
        for c in columns:
            if c.metric.kind != "sample":
                continue
            values[c.name].append(float(per_col[c.name][j]) if st == "ok" and c.name in per_col else math.nan)
        for k in set(per_extra) | set(extras):
            col = extras.setdefault(k, [None] * (len(rows_status) - 1))
            col.append(per_extra[k][j] if st == "ok" and k in per_extra else None)
        if st == "ok":
            j += 1
    if groups:
        groups.add(batch, [first_row + i for i, (st, _) in enumerate(row_state) if st == "ok"])
        groups.flush(run_cache, values, extras, final=False)


class _Groups:
    """Per-sample metrics scored in fixed groups of consecutive scored samples
    (:attr:`Metric.group_size`, e.g. BLIP's released captioner: batches of 30 in split order from one
    random stream), whatever the evaluation batch size: batches are buffered until a group is full,
    then the group is scored and its rows, left as placeholders, are filled in."""

    def __init__(self, columns: list[MetricColumn], stage: Stage = _no_stage):
        self.stage = stage
        self.columns: dict[int, list[MetricColumn]] = {}
        for c in columns:
            size = c.metric.group_size if c.metric.kind == "sample" else None
            if size:
                self.columns.setdefault(int(size), []).append(c)
        # per group size: buffered (batch, positions in it, their row indices), oldest first
        self.pending: dict[int, list[tuple[MetricBatch, list[int], list[int]]]] = {n: [] for n in self.columns}

    def __len__(self) -> int:
        return sum(len(cols) for cols in self.columns.values())

    def __contains__(self, column: MetricColumn) -> bool:
        return any(column is c for cols in self.columns.values() for c in cols)

    def add(self, batch: MetricBatch, rows: list[int]) -> None:
        """Buffer a batch's scored samples (``rows``: their row indices in the samples table)."""
        if rows:
            for pending in self.pending.values():
                pending.append((batch, list(range(len(rows))), rows))

    def flush(self, run_cache: Any, values: dict[str, list[float]], extras: dict[str, list[Any]],
              final: bool) -> None:
        """Score every full group (and, when ``final``, what is left)."""
        for size, cols in self.columns.items():
            pending = self.pending[size]
            while pending and (final or sum(len(p[1]) for p in pending) >= size):
                parts, rows, need = [], [], size
                while pending and need:
                    batch, idx, r = pending[0]
                    parts.append((batch, idx[:need]))
                    rows += r[:need]
                    if len(idx) > need:
                        pending[0] = (batch, idx[need:], r[need:])
                        need = 0
                    else:
                        pending.pop(0)
                        need -= len(idx)
                _score_group(_merge_batches(parts), rows, cols, run_cache, values, extras, self.stage)


def _merge_batches(parts: list[tuple[MetricBatch, list[int]]]) -> MetricBatch:
    """One batch of the samples at the given positions of each batch, in order (a fresh memo)."""
    fields = [f.name for f in dataclasses.fields(MetricBatch) if f.name != "memo"]
    merged: dict[str, list[Any]] = {name: [] for name in fields}
    for batch, idx in parts:
        n = len(batch)
        for name in fields:
            col = getattr(batch, name)
            if len(col) == n:  # optional columns (input, keys) are empty when not needed
                merged[name] += [col[i] for i in idx]
    return MetricBatch(**merged)


def _score_group(group: MetricBatch, rows: list[int], columns: list[MetricColumn], run_cache: Any,
                 values: dict[str, list[float]], extras: dict[str, list[Any]], stage: Stage = _no_stage) -> None:
    """Score one group with its metrics and fill in its rows."""
    keys = _score_keys(group) if run_cache is not None else None
    for c in columns:
        with stage(c.name, len(group)):
            res, more = _sample_scores(c.metric, group, run_cache, keys)
        if len(res) != len(group):
            raise RuntimeError(f"metric {c.name} returned {len(res)} values for {len(group)}")
        n_rows = len(values[c.name])
        for j, row in enumerate(rows):
            values[c.name][row] = float(res[j])
        for k, v in more.items():
            col = extras.setdefault(f"{c.name}_{k}", [None] * n_rows)
            col += [None] * (n_rows - len(col))
            for j, row in enumerate(rows):
                col[row] = v[j]


def _score_keys(batch: MetricBatch) -> list[str]:
    """Per sample: a key over the content of everything a per-sample metric may read."""
    n = len(batch)

    def at(values: list[Any], i: int) -> str:
        return str(values[i]) if len(values) == n else ""

    return [
        hashlib.sha256("\x1f".join([batch.generated_keys[i], at(batch.target_keys, i), at(batch.input_keys, i),
                                    at(batch.description, i), at(batch.action, i), at(batch.domain, i)])
                       .encode()).hexdigest()
        for i in range(n)
    ]


def _sample_scores(metric: Metric, batch: MetricBatch, run_cache: Any,
                   keys: list[str] | None) -> tuple[np.ndarray, dict[str, list[Any]]]:
    """(values, extra columns) of a per-sample metric on ``batch``, through the run cache when given."""
    if len(batch) == 0:
        return np.empty(0), {}

    def run() -> tuple[np.ndarray, dict[str, list[Any]]]:
        with metric.autocast():
            res = metric.compute(batch)
        more: dict[str, Any] = {}
        if isinstance(res, tuple):
            res, more = res
        undeclared = sorted(set(more) - set(metric.extras))
        if undeclared:  # a resumed run could not give them back
            raise TypeError(f"metric {metric.name} returned extra column(s) {', '.join(undeclared)} "
                            f"not declared in its 'extras' class attribute")
        return np.asarray(res, dtype=np.float64), {k: list(v) for k, v in more.items()}

    if run_cache is None or keys is None:
        return run()
    keys = metric.score_keys(batch, keys)
    fresh: dict[str, Any] = {}

    def compute_once() -> tuple[np.ndarray, dict[str, list[Any]]]:
        if "r" not in fresh:
            fresh["r"] = run()
            if len(fresh["r"][0]) != len(batch):  # checked by the caller too; never cache a short answer
                raise RuntimeError(f"metric {metric.name} returned {len(fresh['r'][0])} values for {len(batch)}")
        return fresh["r"]

    values = metric.cached("score", keys, lambda idx: [np.array([compute_once()[0][i]]) for i in idx],
                           cache=run_cache)
    extras: dict[str, list[Any]] = {}
    for name in metric.extras:
        got = metric.cached(f"score-{name}", keys,
                            lambda idx, name=name: [np.array(str(compute_once()[1][name][i])) for i in idx],
                            cache=run_cache)
        extras[name] = [str(np.asarray(x).reshape(-1)[0]) for x in got]  # stored 1-element arrays
    if "r" in fresh:  # computed now: the batch's own numbers, all of them from this computation
        return fresh["r"]
    return np.array([float(v.reshape(-1)[0]) for v in values], dtype=np.float64), extras


def aggregate(df: pd.DataFrame, columns: list[MetricColumn], cache_stats: dict[str, Any],
              stage: Stage = _no_stage) -> Evaluation:
    """Split-level numbers from the per-sample table and the set metrics' state."""
    n_scored = int((df["status"] == "ok").sum())
    agg: dict[str, dict[str, Any]] = {}
    for c in columns:
        info = {
            "metric": c.spec.metric,
            "kind": c.metric.kind,
            "higher_is_better": c.metric.higher_is_better,
            "version": c.metric.version,
            "display_scale": c.metric.display_scale,
            "settings": c.metric.settings_record(),
            "precision": c.metric.effective_precision,
        }
        if c.metric.kind == "sample":
            col = df[c.name].to_numpy()
            ok = col[df["status"].to_numpy() == "ok"]
            info["value"] = float(np.mean(ok)) if len(ok) else None
            info["n"] = int(len(ok))
            info["n_infinite"] = int(np.isinf(ok).sum())
            scored = df["status"].to_numpy() == "ok"
            more = {k: list(df[f"{c.name}_{k}"].to_numpy()[scored]) for k in c.metric.extras
                    if f"{c.name}_{k}" in df.columns}
            info.update(c.metric.summary(ok, more) if len(ok) else {})
        else:
            with stage(c.name, 0):
                res = c.metric.result() if n_scored else {}
            info.update(res)
            info.setdefault("n", n_scored)
        agg[c.name] = info
    problems = df["status"][df["status"] != "ok"].value_counts().to_dict()
    return Evaluation(df, agg, len(df), n_scored, {str(k): int(v) for k, v in problems.items()}, dict(cache_stats))


def format_value(info: dict[str, Any]) -> str:
    v = info.get("value")
    if v is None:
        return "n/a"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    text = f"{v * info.get('display_scale', 1.0):.2f}"
    return "0.00" if text == "-0.00" else text


#: the warning every table prints under numbers from tiny-zoo weights or synthetic data
NOT_COMPARABLE = "NOT COMPARABLE with published numbers (tiny-zoo weights or synthetic demo data)"


def metric_heads(metrics: dict[str, dict[str, Any]]) -> list[str]:
    """Column heads of a results table: each metric's name with its better direction."""
    return [f"{n} {'↑' if info['higher_is_better'] else '↓'}" for n, info in metrics.items()]
