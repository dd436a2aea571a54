"""Action-faithfulness metrics (egobench-v2): action-acc and action-sim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from egobench.data.split import Sample
from egobench.errors import ConfigError
from egobench.metrics import MetricBatch
from egobench.metrics.action import (
    ActionAccSettings,
    ActionAccuracy,
    ActionSensitivity,
    ActionSensitivitySettings,
    ActionSimilarity,
    ActionSimSettings,
    action_similarity,
    counterfactual_prompts,
    label_of,
    label_text,
    pick_exemplars,
    sensitivity_outcome,
    topk_hits,
    vocabularies,
)


def _sample(i: int, action: str, clip: str, dataset: str = "ego4d", **meta) -> Sample:
    return Sample(id=f"s{i}", dataset=dataset, input_path=Path(f"/x/in{i}.jpg"), target_path=Path(f"/x/t{i}.jpg"),
                  action=action, meta={"clip_id": clip, "domain": dataset, **meta})


def test_topk_hits_counts_the_true_label_among_the_k_best_and_breaks_ties_by_vocabulary_order():
    scores = np.array([
        [0.9, 0.1, 0.0],   # truth 0: best
        [0.9, 0.8, 0.1],   # truth 1: second
        [0.5, 0.5, 0.5],   # truth 2: tied with both, ranked third (lower indices first)
        [0.5, 0.5, 0.1],   # truth 0: tied with 1, ranked first
    ])
    truth = np.array([0, 1, 2, 0])
    np.testing.assert_array_equal(topk_hits(scores, truth, 1), [1, 0, 0, 1])
    np.testing.assert_array_equal(topk_hits(scores, truth, 2), [1, 1, 0, 1])
    np.testing.assert_array_equal(topk_hits(scores, truth, 3), [1, 1, 1, 1])


def test_labels_and_their_texts():
    ego = _sample(0, "#C C opens the  drawer", "c0")
    epic = _sample(1, "put down plate", "c1", dataset="epickitchens", verb="put-down", noun="pan:frying")
    assert label_of(ego, "action") == "opens the drawer"
    assert (label_of(ego, "verb"), label_of(ego, "noun")) == ("open", "drawer")
    assert label_text(label_of(epic, "verb"), "verb") == "put down"
    assert label_text(label_of(epic, "noun"), "noun") == "frying pan"
    vocab = vocabularies([ego, epic, _sample(2, "#C C opens a cupboard", "c2")], "verb", lambda s: s.dataset)
    assert vocab == {"ego4d": ["open"], "epickitchens": ["put-down"]}


def _stub_acc(monkeypatch, samples, vocabulary: str, k: int) -> ActionAccuracy:
    """An action-acc whose text tower maps label j to basis vector e_j and whose generated clips are
    the vectors given per sample id (no model is loaded)."""
    metric = ActionAccuracy(ActionAccSettings(vocabulary=vocabulary, k=k), weights=None, device="cpu")
    metric.bind_split(samples)

    def labels(family):
        return np.eye(len(metric._vocab[family]))

    monkeypatch.setattr(metric, "_label_embeddings", labels)
    return metric


def test_action_acc_on_known_directions_gives_the_exact_accuracies(monkeypatch):
    samples = [_sample(0, "#C C opens drawer", "c0"), _sample(1, "#C C cuts onion", "c1"),
               _sample(2, "#C C washes cup", "c2"), _sample(3, "#C C looks around", "c3")]
    # vocabulary (sorted): cut, look, open, wash -> e0..e3
    gen = {
        "s0": np.array([0.0, 0.0, 1.0, 0.0]),   # open: right at top-1
        "s1": np.array([0.1, 0.0, 0.9, 0.0]),   # cut second behind open: top-2 only
        "s2": np.array([0.6, 0.5, 0.0, 0.5]),   # wash behind cut, and tied with look (index 1 < 3): third
        "s3": np.array([1.0, 0.0, 0.5, 0.5]),   # look is last
    }
    batch = MetricBatch(ids=[s.id for s in samples], generated=[None] * 4, target=[], domain=["ego4d"] * 4)
    expected = {1: [1, 0, 0, 0], 2: [1, 1, 0, 0], 3: [1, 1, 1, 0], 4: [1, 1, 1, 1]}
    for k, want in expected.items():
        metric = _stub_acc(monkeypatch, samples, "verb", k)
        monkeypatch.setattr(metric, "_generated_embeddings", lambda b: [gen[i] for i in b.ids])
        got = metric.compute(batch)
        np.testing.assert_array_equal(got, want)
        assert metric.summary(got, {})["value"] == pytest.approx(np.mean(want))
    # "looks around" has no object: no noun label, left out of the noun accuracy
    metric = _stub_acc(monkeypatch, samples, "noun", 1)
    assert metric._vocab == {"ego4d": ["cup", "drawer", "onion"]}
    monkeypatch.setattr(metric, "_generated_embeddings",
                        lambda b: [np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]),
                                   np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])])
    got = metric.compute(batch)
    assert got[:3].tolist() == [1.0, 1.0, 0.0] and np.isnan(got[3])
    assert metric.summary(got, {}) == {"value": pytest.approx(2 / 3), "n": 3, "n_unlabelled": 1,
                                            "vocabulary_size": {"ego4d": 3}}


def test_action_acc_without_the_split_is_refused_before_any_work():
    from egobench.evaluator import build_metrics
    from egobench.protocol import load_protocol
    from egobench.weights import WeightStore

    with pytest.raises(ConfigError, match="action-top1.*whole split"):
        build_metrics(load_protocol("egobench-v2"), WeightStore(zoo="tiny"), "cpu", only=["action-top1"])


def test_exemplars_are_deterministic_never_from_the_own_clip_and_within_the_dataset():
    samples = [_sample(i, f"#C C {verb} thing", clip) for i, (verb, clip) in enumerate([
        ("opens", "a"), ("opens", "a"), ("opens", "b"), ("opens", "c"), ("cuts", "b"), ("cuts", "d"),
        ("washes", "e")])]
    samples.append(_sample(99, "open door", "z", dataset="epickitchens", verb="open", noun="door"))
    def group(s):
        return s.dataset

    picks = pick_exemplars(samples, 2, group)
    assert picks == pick_exemplars(list(reversed(samples)), 2, group)   # order of the split does not matter
    by_id = {s.id: s for s in samples}
    for s in samples:
        same, other = picks[s.id]
        assert len(same) <= 2 and len(other) <= 2
        for e in same + other:
            assert by_id[e].clip_id != s.clip_id and by_id[e].dataset == s.dataset
        assert all(by_id[e].verb == s.verb for e in same) and all(by_id[e].verb != s.verb for e in other)
    assert sorted(picks["s0"][0]) == ["s2", "s3"]           # s1 shares clip "a": never chosen
    assert picks["s99"] == ([], [])                          # alone in its dataset
    assert picks["s6"][0] == [] and len(picks["s6"][1]) == 2
    # k larger than the candidates: all of them, in the hashed order
    assert sorted(pick_exemplars(samples, 10, group)["s0"][1]) == ["s4", "s5", "s6"]


def test_action_similarity_formula():
    g = np.array([1.0, 0.0])
    same = np.array([[1.0, 0.0], [1.0, 1.0]])                 # cosines 1 and 1/sqrt(2)
    other = np.array([[0.0, 3.0], [-1.0, 0.0]])               # cosines 0 and -1
    assert action_similarity(g, same, other) == pytest.approx((1 + 2 ** -0.5) / 2 - (0 - 1) / 2)
    assert np.isnan(action_similarity(g, same[:0], other))
    assert ActionSimSettings().k == 5
    with pytest.raises(ConfigError):
        ActionSimSettings(k=0)


def test_egobench_v2_action_metrics_on_the_demo_split(tiny_zoo):
    """End to end through the Scorer on the tiny zoo: every value finite, accuracies in [0, 1];
    the ground-truth frames and the input frames (ceiling and floor) both score."""
    from PIL import Image

    from egobench.metrics.cache import FeatureCache
    from egobench.scorer import Scorer

    names = ["action-top1", "action-top5", "verb-top1", "noun-top5", "action-sim"]
    scorer = Scorer("egobench-v2", "demo", zoo="tiny", device="cpu", metrics=names, limit=12,
                    cache=FeatureCache(None))
    for c in scorer.columns:
        assert isinstance(c.metric, (ActionAccuracy, ActionSimilarity))
    values = {}
    for side in ("target_path", "input_path"):
        scorer.reset()
        scorer.update([s.id for s in scorer.split], [Image.open(getattr(s, side)).convert("RGB") for s in scorer.split])
        values[side] = scorer.compute(details=True)
    for side, metrics in values.items():
        for name in names:
            v = metrics[name]["value"]
            assert v is not None and np.isfinite(v), (side, name)
            if name != "action-sim":
                assert 0.0 <= v <= 1.0
        assert metrics["action-top5"]["value"] >= metrics["action-top1"]["value"]
        assert metrics["action-top1"]["n"] == 12 and metrics["action-sim"]["n"] >= 1


# ---------------------------------------------------------------------------
# counterfactual action sensitivity
# ---------------------------------------------------------------------------
def test_counterfactual_prompts_keep_the_object_change_the_verb_and_do_not_depend_on_order():
    samples = [
        _sample(0, "#C C opens the drawer", "a"),
        _sample(1, "#C C closes the drawer", "b"),
        _sample(2, "#C C turns on the tap", "c"),
        _sample(3, "#C C picks up the cup", "d"),
        _sample(4, "open fridge", "e", dataset="epickitchens", verb="open", noun="fridge"),
        _sample(5, "put down plate", "f", dataset="epickitchens", verb="put-down", noun="plate"),
    ]
    cf = counterfactual_prompts(samples)
    assert cf == counterfactual_prompts(list(reversed(samples)))
    assert cf["s0"] == {"prompt": "#C C closes the drawer", "verb": "close", "source": "same-noun"}
    assert cf["s1"]["prompt"] == "#C C opens the drawer"
    # no other verb with "tap": a verb of the Ego4D vocabulary, written as its sample writes it;
    # the particle after the sample's own verb goes with it
    assert cf["s2"]["source"] == "vocabulary" and cf["s2"]["verb"] in ("open", "close", "pick")
    assert cf["s2"]["prompt"].startswith("#C C ") and cf["s2"]["prompt"].endswith(" the tap")
    assert " on " not in cf["s2"]["prompt"]
    # EPIC: only EPIC verbs, no narrator prefix, the particle verb replaced whole
    assert cf["s5"] == {"prompt": "open plate", "verb": "open", "source": "vocabulary"}
    assert cf["s4"]["prompt"] == "put down fridge"
    for sid, c in cf.items():
        assert c["verb"] != next(s.verb for s in samples if s.id == sid)


def test_sensitivity_outcome_and_summary():
    assert sensitivity_outcome(0.9, 0.5, identical=False) == 1.0
    assert sensitivity_outcome(0.5, 0.9, identical=False) == 0.0
    assert sensitivity_outcome(0.7, 0.7, identical=False) == 0.5
    assert sensitivity_outcome(0.9, 0.1, identical=True) == 0.5     # identical images always tie
    metric = ActionSensitivity(ActionSensitivitySettings(), weights=None, device="cpu")
    s = metric.summary(np.array([1.0, 0.0, 1.0, 1.0, np.nan]), {})
    assert s["value"] == 0.75 and s["n"] == 4 and s["n_without_counterfactual"] == 1
    assert s["se"] == pytest.approx(np.sqrt(0.75 * 0.25 / 4))


def _sensitivity_eval(tmp_path, true_side: str, cf_side: str | None, limit: int = 6):
    """action-sensitivity through the evaluator on the demo split: the 'generated' image is each
    sample's ``true_side`` frame and the counterfactual its ``cf_side`` frame (None: no probe)."""
    import shutil

    from egobench.data import load_split
    from egobench.evaluator import build_metrics, evaluate_samples
    from egobench.metrics.cache import FeatureCache
    from egobench.protocol import load_protocol
    from egobench.weights import WeightStore

    split = load_split("demo", None, limit)
    folder = tmp_path / f"{true_side}-{cf_side}"
    gen, cf = folder / "gen", folder / "cf"
    gen.mkdir(parents=True)
    cf.mkdir()
    for s in split:
        shutil.copyfile(getattr(s, true_side), gen / f"{s.id}.img")
        if cf_side:
            shutil.copyfile(getattr(s, cf_side), cf / f"{s.id}.img")
    cols = build_metrics(load_protocol("egobench-v2"), WeightStore(zoo="tiny"), "cpu",
                         only=["action-sensitivity", "psnr"], cache=FeatureCache(None), split=split)
    return evaluate_samples(split, lambda s: gen / f"{s.id}.img", cols, batch_size=4,
                            counterfactual=lambda s: cf / f"{s.id}.img" if cf_side else None)


def test_input_copy_scores_exactly_one_half_and_a_perfect_method_one(tmp_path, tiny_zoo):
    ev = _sensitivity_eval(tmp_path, "input_path", "input_path")
    assert ev.metrics["action-sensitivity"]["value"] == 0.5
    assert set(ev.samples["action-sensitivity"]) == {0.5}
    # the target for the true action, the input for the counterfactual: always closer
    ev = _sensitivity_eval(tmp_path, "target_path", "input_path")
    assert ev.metrics["action-sensitivity"]["value"] == 1.0 and ev.metrics["action-sensitivity"]["se"] == 0.0
    # the reverse: never
    assert _sensitivity_eval(tmp_path, "input_path", "target_path").metrics["action-sensitivity"]["value"] == 0.0
    # without the probe's images the metric has no value, and the other metrics are untouched
    ev = _sensitivity_eval(tmp_path, "input_path", None)
    assert ev.metrics["action-sensitivity"]["value"] is None
    assert ev.metrics["action-sensitivity"]["n_without_counterfactual"] == 6 and ev.n_scored == 6
    assert np.isfinite(ev.metrics["psnr"]["value"])
