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


def test_a_metric_that_matches_the_votes_scores_one_and_its_reverse_zero():
    rng = np.random.default_rng(4)
    items = []
    for k in range(25):
        votes = rng.permutation([4, 2, 1, 0])
        items.append(StudyItem(f"i{k}", f"i{k}", ("a", "b", "c", "d"), tuple(int(v) for v in votes),
                               tuple(c for c, v in enumerate(votes) for _ in range(v))))
    same = [np.array(it.votes, dtype=float) * 0.1 for it in items]
    match = metric_agreement(items, same, higher_is_better=True, n_boot=100)
    reverse = metric_agreement(items, same, higher_is_better=False, n_boot=100)
    assert (match["pairwise_accuracy"], match["tau"]) == (1.0, pytest.approx(1.0))
    assert (reverse["pairwise_accuracy"], reverse["tau"]) == (0.0, pytest.approx(-1.0))
    assert match["accuracy_ci_low"] == match["accuracy_ci_high"] == 1.0


def test_agree_on_an_exported_study_with_ties_missing_votes_and_an_inattentive_rater(tmp_path, tmp_path_factory):
    """export-amt on three demo runs, a results file where every attentive rater picks the oracle's
    frame (except one item split evenly, one item nobody answered), and W4 fails the checks."""
    import json

    from click.testing import CliRunner

    from egobench.agreement import agree, agree_cmd
    from tests.conftest import make_runs
    from tests.test_userstudy import _export, results_csv

    runs = make_runs(tmp_path_factory.getbasetemp() / "shared-runs")
    res = _export(runs, tmp_path / "ex", attention_checks=2)
    key = json.loads(res.key_json.read_text())
    study_items = sorted(i for i, it in key["items"].items() if it["kind"] == "study")
    answers = {}
    for item, it in key["items"].items():
        for w in ("W0", "W1", "W2", "W3", "W4"):
            if it["kind"] == "attention":
                answers[(w, item)] = next(s for s in it["slots"] if s != it["expected"]) if w == "W4" else it["expected"]
            elif item == study_items[0]:
                continue  # nobody answered this item
            elif item == study_items[1]:  # a tie between the two copies of the input
                tie = [s for s in it["slots"] if it["slots"][s]["method"] != "oracle"]
                answers[(w, item)] = tie[0] if w in ("W0", "W1") else tie[1]
            else:
                answers[(w, item)] = next(s for s in it["slots"] if it["slots"][s]["method"] == "oracle")
    (tmp_path / "results.csv").write_text(results_csv(res.batch_csv, answers))
    out = agree(str(tmp_path / "ex"), str(tmp_path / "results.csv"), n_boot=200)
    assert out.excluded_raters == ["W4"] and out.n_items == len(study_items) - 1
    assert out.n_judgments == 4 * (len(study_items) - 1)
    # PSNR (the runs' only metric) ranks the oracle's frame first (infinite PSNR): it agrees on both scored
    # pairs of the 4 items where the oracle was chosen (the two copies' pair has equal votes: not scored)
    # and disagrees on both of the tied item, where the copies got 2 votes each and the oracle none: 8 / 10
    assert out.metrics["psnr"]["pairwise_accuracy"] == pytest.approx(8 / 10) and out.metrics["psnr"]["pairs"] == 10
    # ceiling: 4 raters x 2 pairs x 4 items all agree (32 / 32); on the tied item each rater's choice
    # agrees on 1.5 of 3 pairs against the other three raters' votes (6 / 12)
    assert out.ceiling["pairwise_accuracy"] == pytest.approx(38 / 44)
    ranked = sorted(out.rankings, key=lambda m: -out.rankings[m]["strength"])
    assert ranked[0] == "oracle"
    r = CliRunner().invoke(agree_cmd, ["--study", str(tmp_path / "ex"), "--results", str(tmp_path / "results.csv"),
                                      "--out", str(tmp_path / "agree.json")])
    assert r.exit_code == 0, r.output
    assert "psnr" in r.output and "raters (ceiling)" in r.output and "oracle" in r.output
    saved = json.loads((tmp_path / "agree.json").read_text())
    assert saved["metrics"]["psnr"]["pairwise_accuracy"] == pytest.approx(0.8) and saved["excluded_raters"] == ["W4"]
    bad = CliRunner().invoke(agree_cmd, ["--study", str(tmp_path), "--results", str(tmp_path / "results.csv")])
    assert bad.exit_code != 0 and "private/key.json" in str(bad.exception) + bad.output


def test_run_scores_read_run_folders_and_a_moved_run_names_runs_label_path(tmp_path):
    """The study's runs are read by the one run-folder reader: a good folder gives its samples by id and
    the metric directions; a moved, empty or damaged one is one line naming --runs LABEL=PATH."""
    import json

    import pandas as pd

    from egobench.agreement import _run_scores
    from egobench.errors import DataError
    from tests.conftest import assert_one_line

    def folder(name, samples=True):
        d = tmp_path / name
        d.mkdir()
        metrics = {"psnr": {"value": 1.0, "higher_is_better": True, "kind": "sample"},
                   "fid": {"value": 2.0, "higher_is_better": False, "kind": "set"}}
        (d / "metrics.json").write_text(json.dumps({"method": "m", "dataset": "demo", "metrics": metrics,
                                                    "protocol": {"name": "p", "version": "1", "hash": "h"}}))
        if samples:
            pd.DataFrame({"sample_id": ["s0", "s1"], "psnr": [1.0, 2.0]}).to_parquet(d / "samples.parquet")
        return d

    key = {"study": {"runs": [{"label": "A", "path": str(folder("a"))}]}}
    protocols: list = []
    tables, direction, skipped = _run_scores(key, {}, protocols)
    assert list(tables["A"].index) == ["s0", "s1"] and tables["A"].loc["s1", "psnr"] == 2.0
    assert direction == {"psnr": True} and set(skipped) == {"fid"}
    assert protocols == [{"name": "p", "version": "1", "hash": "h"}]

    moved = {"study": {"runs": [{"label": "A", "path": str(tmp_path / "gone")}]}}
    with pytest.raises(DataError) as e:
        _run_scores(moved, {})
    assert_one_line(str(e.value), "run 'A'", "not a run folder", "--runs A=PATH")
    assert str(e.value).count("give ") == 1  # one hint: this command's, not also the reader's
    # the override is what is read
    assert list(_run_scores(moved, {"A": str(tmp_path / "a")})[0]) == ["A"]
    with pytest.raises(DataError) as e:
        _run_scores(moved, {"A": str(folder("empty", samples=False))})
    assert_one_line(str(e.value), "no samples.parquet", "--runs A=PATH")
    bad = folder("bad")
    (bad / "samples.parquet").write_bytes(b"PAR1 not parquet")
    with pytest.raises(DataError) as e:
        _run_scores(moved, {"A": str(bad)})
    assert_one_line(str(e.value), "samples.parquet: cannot read", "--runs A=PATH")
