"""Agreement of metrics with a crowd study, and Luce / Bradley-Terry rankings from it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

from egobench.agreement import (
    StudyItem,
    item_pairwise,
    item_tau,
    luce_strengths,
    metric_agreement,
    rankings,
    rater_ceiling,
)


def _item(votes, methods=("a", "b", "c"), name="i0"):
    choices = tuple(k for k, v in enumerate(votes) for _ in range(v))
    return StudyItem(item=name, sample_id=name, methods=tuple(methods), votes=tuple(votes), choices=choices)


def test_pairwise_accuracy_counts_pairs_with_different_votes_and_metric_ties_half():
    votes = np.array([3, 1, 0])
    assert item_pairwise(np.array([0.9, 0.5, 0.1]), votes) == (3.0, 3)
    assert item_pairwise(np.array([0.1, 0.5, 0.9]), votes) == (0.0, 3)
    assert item_pairwise(np.array([0.5, 0.5, 0.1]), votes) == (2.5, 3)
    # a vote tie is no preference: the pair is not scored; NaN scores are left out
    assert item_pairwise(np.array([0.9, 0.5, 0.1]), np.array([2, 2, 0])) == (2.0, 2)
    assert item_pairwise(np.array([0.9, np.nan, 0.1]), votes) == (1.0, 1)


def test_tau_is_scipys_and_lower_is_better_metrics_are_flipped():
    scores, votes = np.array([0.2, 0.9, 0.4, 0.1]), np.array([1, 3, 0, 0])
    assert item_tau(scores, votes) == pytest.approx(kendalltau(scores, votes).statistic)
    assert np.isnan(item_tau(np.array([0.5, 0.5]), np.array([1, 0])))
    items = [_item((3, 1, 0))]
    good = metric_agreement(items, [np.array([0.1, 0.2, 0.3])], higher_is_better=False, n_boot=50)
    assert good["pairwise_accuracy"] == 1.0 and good["tau"] == pytest.approx(1.0)


def test_rater_ceiling_leaves_each_rater_out():
    # raters chose a, a, b: a-raters see rest votes (1,1,0): pairs (a,c) agree, (b,c) tie -> 1.5 of 2 each;
    # the b-rater sees (2,0,0): (a,b) disagrees, (b,c) ties -> 0.5 of 2
    ceiling = rater_ceiling([_item((2, 1, 0))], n_boot=50)
    assert ceiling["pairwise_accuracy"] == pytest.approx(3.5 / 6) and ceiling["pairs"] == 6


def test_intervals_cover_the_point_and_are_seeded():
    rng = np.random.default_rng(1)
    items = [_item(tuple(rng.multinomial(5, [0.6, 0.3, 0.1])), name=f"i{k}") for k in range(40)]
    scores = [np.array(it.votes, dtype=float) + rng.normal(0, 1.0, 3) for it in items]
    a = metric_agreement(items, scores, higher_is_better=True, n_boot=300, seed=3)
    b = metric_agreement(items, scores, higher_is_better=True, n_boot=300, seed=3)
    assert a == b
    assert a["accuracy_ci_low"] <= a["pairwise_accuracy"] <= a["accuracy_ci_high"]
    assert a["tau_ci_low"] <= a["tau"] <= a["tau_ci_high"]
    assert 0.5 < a["pairwise_accuracy"] < 1.0


def test_luce_strengths_recover_the_generating_strengths():
    """k-way top-1 choices drawn from known strengths: the fit (choix I-LSR) recovers them."""
    true = np.array([1.0, 0.0, -1.0, 0.5])
    methods = ["m0", "m1", "m2", "m3"]
    rng = np.random.default_rng(0)
    items = []
    for k in range(3000):
        shown = rng.choice(4, size=3, replace=False)
        p = np.exp(true[shown]) / np.exp(true[shown]).sum()
        c = int(rng.choice(3, p=p))
        votes = [0, 0, 0]
        votes[c] = 1
        items.append(StudyItem(f"i{k}", f"i{k}", tuple(methods[j] for j in shown), tuple(votes), (c,)))
    est = luce_strengths(items, methods, alpha=0.0)
    np.testing.assert_allclose(est, true - true.mean(), atol=0.1)


def test_bradley_terry_with_two_methods_is_the_log_odds_of_winning():
    items = [_item((1, 0), ("x", "y"), f"w{k}") for k in range(30)] + \
            [_item((0, 1), ("x", "y"), f"l{k}") for k in range(10)]
    est = luce_strengths(items, ["x", "y"], alpha=0.0)
    assert est[0] - est[1] == pytest.approx(np.log(30 / 10), abs=1e-4)
    r = rankings(items, ["x", "y"], n_boot=100)
    assert r["x"]["choice_probability"] == pytest.approx(0.75, abs=1e-3)  # alpha=0.01 shrinks it slightly
    assert r["x"]["ci_low"] <= r["x"]["strength"] <= r["x"]["ci_high"]
