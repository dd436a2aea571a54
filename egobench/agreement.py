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
from dataclasses import dataclass

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
        if votes[a] == votes[b] or not (np.isfinite(scores[a]) and np.isfinite(scores[b])):
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

    ok = np.isfinite(scores)
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
