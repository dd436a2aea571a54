"""Which metric agrees with people? Metric-vs-rater agreement and rankings from a crowd study.

The inputs are the study's items: for each item, the candidates shown (one per method), the votes
each candidate received, each rater's choice, and each candidate's per-sample metric value. From
them, per metric:

* **pairwise accuracy** -- over every pair of candidates of an item whose vote counts differ, the
  share where the metric prefers the candidate with more votes (a metric tie counts half);
* **Kendall's tau** -- per item, tau-b between the metric's values (signed so that higher is
  better) and the vote counts (scipy's ``kendalltau``), averaged over the items where it is defined;
* each with a 95% percentile bootstrap interval over items;

beside the **ceiling**: the same pairwise accuracy for one rater's choice (chosen candidate 1, the
others 0) against the other raters' votes, averaged over every (item, rater): how well a person
agrees with the rest.

**Rankings**: Luce's choice model fitted to the k-way choices (Plackett-Luce with top-1 data;
Bradley-Terry when k = 2) by the ``choix`` library (I-LSR, ML estimate, a small ``alpha`` to keep
methods that never win finite), strengths as log-strengths centred on their mean, with 95%
percentile bootstrap intervals over items. The pairwise/tau/ceiling arithmetic is written here
(no library computes agreement with a crowd study); the fits come from choix and scipy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click
import numpy as np

#: bootstrap resamples of items for every interval
N_BOOT = 2000


@dataclass(frozen=True)
class StudyItem:
    """One study item: per candidate its method and the votes it got; each rater's choice."""

    item: str
    sample_id: str
    methods: tuple[str, ...]
    votes: tuple[int, ...]
    #: index of the candidate each judgment chose (one per rater)
    choices: tuple[int, ...]


def _pairs(n: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(n) for b in range(a + 1, n)]


def item_pairwise(scores: np.ndarray, votes: np.ndarray) -> tuple[float, int]:
    """(sum of agreements, number of scored pairs) of one item: pairs with different vote counts;
    1 when the metric's higher score is on the candidate with more votes, 0.5 on a metric tie."""
    total, count = 0.0, 0
    for a, b in _pairs(len(votes)):
        if votes[a] == votes[b] or np.isnan(scores[a]) or np.isnan(scores[b]):  # inf is a value (PSNR)
            continue
        count += 1
        if scores[a] == scores[b]:
            total += 0.5
        elif (scores[a] > scores[b]) == (votes[a] > votes[b]):
            total += 1.0
    return total, count


def item_tau(scores: np.ndarray, votes: np.ndarray) -> float:
    """Kendall's tau-b of one item's metric values and vote counts (NaN where undefined)."""
    from scipy.stats import kendalltau

    ok = ~np.isnan(scores)
    if ok.sum() < 2:
        return float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = kendalltau(scores[ok], np.asarray(votes)[ok]).statistic
    return float(tau) if tau is not None and np.isfinite(tau) else float("nan")


def rater_pairwise(item: StudyItem) -> tuple[float, int]:
    """Leave-one-rater-out: each rater's choice as a 'metric' against the others' votes."""
    total, count = 0.0, 0
    votes = np.asarray(item.votes)
    for choice in item.choices:
        rest = votes.copy()
        rest[choice] -= 1
        mine = np.zeros(len(votes))
        mine[choice] = 1.0
        t, c = item_pairwise(mine, rest)
        total, count = total + t, count + c
    return total, count


def _ratio(parts: np.ndarray) -> float:
    """sum of agreements / sum of pairs over (resampled) items; NaN with no pair."""
    den = parts[:, 1].sum()
    return float(parts[:, 0].sum() / den) if den else float("nan")


def _bootstrap(values: np.ndarray, stat: Callable[[np.ndarray], float], n_boot: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of ``stat`` over item resamples (rows of ``values``)."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = np.array([stat(values[rng.integers(0, n, n)]) for _ in range(n_boot)])
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return float("nan"), float("nan")
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return float(lo), float(hi)


def _nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else float("nan")


def metric_agreement(items: Sequence[StudyItem], scores: Sequence[np.ndarray], higher_is_better: bool, *,
                     n_boot: int = N_BOOT, seed: int = 0) -> dict[str, float | int]:
    """Pairwise accuracy and mean per-item tau of one metric (``scores[i]``: the metric value of each
    candidate of item ``i``, NaN where it has none), with bootstrap intervals over items."""
    sign = 1.0 if higher_is_better else -1.0
    parts = np.array([item_pairwise(sign * np.asarray(s, dtype=np.float64), np.asarray(it.votes))
                      for it, s in zip(items, scores, strict=True)], dtype=np.float64).reshape(-1, 2)
    taus = np.array([item_tau(sign * np.asarray(s, dtype=np.float64), np.asarray(it.votes))
                     for it, s in zip(items, scores, strict=True)], dtype=np.float64)
    acc_lo, acc_hi = _bootstrap(parts, _ratio, n_boot, seed)
    tau_lo, tau_hi = _bootstrap(taus, _nanmean, n_boot, seed)
    return {"pairwise_accuracy": _ratio(parts), "accuracy_ci_low": acc_lo, "accuracy_ci_high": acc_hi,
            "pairs": int(parts[:, 1].sum()), "tau": _nanmean(taus), "tau_ci_low": tau_lo, "tau_ci_high": tau_hi,
            "tau_items": int(np.isfinite(taus).sum())}


def rater_ceiling(items: Sequence[StudyItem], *, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, float | int]:
    """The raters' leave-one-out pairwise accuracy (the ceiling of a metric's), with its interval."""
    parts = np.array([rater_pairwise(it) for it in items], dtype=np.float64).reshape(-1, 2)
    lo, hi = _bootstrap(parts, _ratio, n_boot, seed)
    return {"pairwise_accuracy": _ratio(parts), "accuracy_ci_low": lo, "accuracy_ci_high": hi,
            "pairs": int(parts[:, 1].sum())}


def _top1_data(items: Sequence[StudyItem], index: dict[str, int]) -> list[tuple[int, tuple[int, ...]]]:
    data = []
    for it in items:
        shown = [index[m] for m in it.methods]
        for c in it.choices:
            data.append((shown[c], tuple(x for k, x in enumerate(shown) if k != c)))
    return data


def luce_strengths(items: Sequence[StudyItem], methods: Sequence[str], alpha: float = 0.01) -> np.ndarray:
    """Log-strengths (centred) of Luce's choice model fitted to every judgment's top-1 choice."""
    import choix

    index = {m: i for i, m in enumerate(methods)}
    data = _top1_data(items, index)
    if not data:
        return np.full(len(methods), np.nan)
    params = np.asarray(choix.ilsr_top1(len(methods), data, alpha=alpha), dtype=np.float64)
    return params - params.mean()


def rankings(items: Sequence[StudyItem], methods: Sequence[str], *, n_boot: int = 200, seed: int = 0,
             alpha: float = 0.01) -> dict[str, dict[str, float]]:
    """Per method: log-strength, its 95% bootstrap interval over items, and the model's probability
    of it being chosen among all methods (softmax of the strengths)."""
    point = luce_strengths(items, methods, alpha)
    rng = np.random.default_rng(seed)
    n = len(items)
    draws = np.array([luce_strengths([items[i] for i in rng.integers(0, n, n)], methods, alpha)
                      for _ in range(n_boot)]) if n else np.zeros((0, len(methods)))
    lo, hi = (np.percentile(draws, [2.5, 97.5], axis=0) if len(draws)
              else (np.full(len(methods), np.nan), np.full(len(methods), np.nan)))
    share = np.exp(point) / np.exp(point).sum() if np.isfinite(point).all() else np.full(len(methods), np.nan)
    return {m: {"strength": float(point[j]), "ci_low": float(lo[j]), "ci_high": float(hi[j]),
                "choice_probability": float(share[j])} for j, m in enumerate(methods)}


# ---------------------------------------------------------------------------
# a study and its runs
# ---------------------------------------------------------------------------
@dataclass
class Agreement:
    """Everything ``egobench agree`` prints and saves."""

    study: str
    n_items: int
    n_judgments: int
    excluded_raters: list[str]
    metrics: dict[str, dict[str, float | int]]
    skipped: dict[str, str]
    ceiling: dict[str, float | int]
    rankings: dict[str, dict[str, float]]
    #: per method: share of the kept judgments that chose it (%) with its interval (as import-amt)
    win_rates: dict[str, dict[str, float]] = field(default_factory=dict)
    dataset: str = ""
    #: the protocol records ({name, version, hash}) of the study's runs, whose metrics were compared
    protocols: list[dict[str, Any]] = field(default_factory=list)

    def record(self) -> dict:
        return {"egobench_agreement": 1, "study": self.study, "dataset": self.dataset, "n_items": self.n_items,
                "n_judgments": self.n_judgments, "excluded_raters": self.excluded_raters, "metrics": self.metrics,
                "skipped_metrics": self.skipped, "ceiling": self.ceiling, "rankings": self.rankings,
                "win_rates": self.win_rates, "protocols": self.protocols,
                "interval": f"95% percentile bootstrap over items ({N_BOOT} resamples; rankings 200)",
                "pairwise_accuracy": "pairs of an item's candidates with different vote counts; metric ties half",
                "ranking_model": "Luce's choice model on top-1 choices (Plackett-Luce; Bradley-Terry for 2), "
                                 "choix I-LSR, alpha 0.01; log-strengths centred"}

    def table(self) -> str:
        def iv(lo: float, hi: float) -> str:
            return "n/a" if not np.isfinite(lo) else f"[{lo:.3f}, {hi:.3f}]"

        lines = [f"{'metric':<22} {'pairwise acc.':>13} {'interval':>16} {'tau':>7} {'interval':>18} {'pairs':>6}"]
        for name, m in self.metrics.items():
            lines.append(f"{name:<22} {m['pairwise_accuracy']:>13.3f} {iv(m['accuracy_ci_low'], m['accuracy_ci_high']):>16} "
                         f"{m['tau']:>7.3f} {iv(m['tau_ci_low'], m['tau_ci_high']):>18} {m['pairs']:>6}")
        c = self.ceiling
        lines.append(f"{'raters (ceiling)':<22} {c['pairwise_accuracy']:>13.3f} "
                     f"{iv(c['accuracy_ci_low'], c['accuracy_ci_high']):>16} {'':>7} {'':>18} {c['pairs']:>6}")
        for name, why in self.skipped.items():
            lines.append(f"{name:<22} skipped: {why}")
        lines.append("")
        lines.append(f"{'method':<22} {'strength':>9} {'interval':>18} {'P(chosen)':>10}")
        for m, r in sorted(self.rankings.items(), key=lambda kv: -kv[1]["strength"]):
            lines.append(f"{m:<22} {r['strength']:>9.3f} {iv(r['ci_low'], r['ci_high']):>18} "
                         f"{r['choice_probability']:>10.3f}")
        return "\n".join(lines)


def study_items(study_dir: str, results: str, *, min_attention: float = 1.0) -> tuple[dict, list[StudyItem], list[str],
                                                                                        int]:
    """(key, the study items with votes, excluded raters, judgments kept) of an action study
    exported by ``export-amt`` into ``study_dir`` and answered in the ``results`` CSV. Raters
    who failed the attention checks are left out, as ``import-amt`` does."""
    from pathlib import Path

    from .errors import DataError
    from .io import read_json
    from .userstudy import _check_key, analyze, read_results

    key_path = Path(study_dir) / "private" / "key.json"
    if not key_path.is_file():
        raise DataError(f"{key_path}: not found; --study is the folder export-amt wrote (it holds private/key.json)")
    key = read_json(key_path)
    _check_key(key, key_path)
    if key["study"]["type"] != "action":
        raise DataError(f"{key_path}: a {key['study']['type']} study; agreement needs an action study "
                        "(raters choose among methods' images)")
    judgments, _ = read_results(results, key)
    excluded = analyze(judgments, key, min_attention=min_attention, n_boot=1).excluded
    n_slots = key["study"]["n_candidates"]
    slots = [f"candidate_{k + 1}" for k in range(n_slots)]
    chosen: dict[str, list[int]] = {}
    kept = 0
    for j in judgments:
        it = key["items"][j.item]
        if it["kind"] != "study" or j.worker in excluded or j.answer not in slots:
            continue
        chosen.setdefault(j.item, []).append(slots.index(j.answer))
        kept += 1
    items = []
    for name in sorted(chosen):
        it = key["items"][name]
        votes = [0] * n_slots
        for c in chosen[name]:
            votes[c] += 1
        items.append(StudyItem(item=name, sample_id=str(it["sample_id"]),
                               methods=tuple(it["slots"][s]["method"] for s in slots),
                               votes=tuple(votes), choices=tuple(chosen[name])))
    return key, items, sorted(excluded), kept


def _run_scores(key: dict, overrides: dict[str, str],
                protocols: list[dict[str, Any]] | None = None) -> tuple[dict[str, Any], dict[str, bool], dict[str, str]]:
    """Per run label: its samples table (indexed by sample id); per metric column: higher is better;
    and metrics skipped with the reason (set metrics, columns some run lacks). ``protocols`` collects
    the runs' distinct protocol records."""
    from .errors import DataError, UserError
    from .run_folder import read_run_folder

    tables, direction, kinds = {}, {}, {}
    for r in key["study"]["runs"]:
        path = overrides.get(r["label"], r["path"])
        try:
            run = read_run_folder(path)
            if "sample_id" not in run.samples.columns:
                raise DataError(f"{run.path}: no samples.parquet with a sample_id column")
        except UserError as e:
            what = str(e).split("; ", 1)[0]  # the fact; the hint is this command's
            raise DataError(f"run {r['label']!r}: {what}; give its folder with --runs {r['label']}=PATH") from None
        tables[r["label"]] = run.samples.set_index("sample_id")
        record, metrics = run.metrics, run.metrics["metrics"]
        proto = record.get("protocol")
        if protocols is not None and isinstance(proto, dict):
            rec = {k: proto.get(k) for k in ("name", "version", "hash")}
            if rec not in protocols:
                protocols.append(rec)
        for name, info in metrics.items():
            direction.setdefault(name, bool(info.get("higher_is_better", True)))
            kinds.setdefault(name, set()).add(info.get("kind", "sample"))
    skipped = {}
    for name, k in kinds.items():
        if "set" in k:
            skipped[name] = "a set metric (no per-sample value)"
        elif not all(name in t.columns for t in tables.values()):
            skipped[name] = "not scored by every run in the study"
    return tables, {n: d for n, d in direction.items() if n not in skipped}, skipped


def agree(study_dir: str, results: str, *, runs: dict[str, str] | None = None, min_attention: float = 1.0,
          n_boot: int = N_BOOT, seed: int = 0) -> Agreement:
    """Agreement of every per-sample metric of the study's runs with the raters, the ceiling and the rankings."""
    from .userstudy import win_rates

    key, items, excluded, kept = study_items(study_dir, results, min_attention=min_attention)
    protocols: list[dict[str, Any]] = []
    tables, direction, skipped = _run_scores(key, runs or {}, protocols)
    out = {}
    for name, higher in direction.items():
        scores = [np.array([_value(tables[m], it.sample_id, name) for m in it.methods]) for it in items]
        out[name] = metric_agreement(items, scores, higher, n_boot=n_boot, seed=seed)
    labels = [r["label"] for r in key["study"]["runs"]]
    votes = {it.item: [it.methods[c] for c in it.choices] for it in items}
    return Agreement(key["study"].get("type", "action"), len(items), kept, excluded, out, skipped,
                     rater_ceiling(items, n_boot=n_boot, seed=seed), rankings(items, labels, seed=seed),
                     win_rates=win_rates(votes, labels, n_boot=n_boot, seed=seed),
                     dataset=str(key["study"].get("dataset") or ""), protocols=protocols)


def _value(table: Any, sample_id: str, column: str) -> float:
    try:
        row = table.loc[sample_id]
    except KeyError:
        return float("nan")
    if row.get("status", "ok") != "ok":
        return float("nan")
    return float(row[column])


@click.command("agree")
@click.option("--study", required=True, help="the folder export-amt wrote (holds private/key.json)")
@click.option("--results", required=True, help="the requester site's results CSV of that study")
@click.option("--runs", "runs", multiple=True, metavar="LABEL=RUN_DIR",
              help="where a study run is now, when it moved since export-amt (repeatable)")
@click.option("--min-attention", type=float, default=1.0, show_default=True,
              help="raters below this attention-check pass rate are left out (as import-amt)")
@click.option("--out", default=None, help="also write the result as JSON to this file")
def agree_cmd(study: str, results: str, runs: tuple[str, ...], min_attention: float, out: str | None) -> None:
    """How often each metric prefers the candidate the raters chose, Kendall's tau, the raters' own
    agreement (ceiling), and Luce / Bradley-Terry strengths per method."""
    from .errors import UserError
    from .io import atomic_write_json

    overrides = {}
    for r in runs:
        label, sep, path = r.partition("=")
        if not sep or not label or not path:
            raise UserError(f"--runs {r!r}: use LABEL=RUN_DIR (the label the study key gives the run)")
        overrides[label] = path
    res = agree(study, results, runs=overrides, min_attention=min_attention)
    click.echo(res.table())
    if out:
        atomic_write_json(out, res.record())
        click.echo(f"written: {out}")
