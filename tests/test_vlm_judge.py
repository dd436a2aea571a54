"""vlm-judge: prompts, the strict answer rule, VIEScore's combination, the answer cache, the tiny judge end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest

from egobench.errors import ConfigError
from egobench.metrics import MetricBatch
from egobench.metrics.settings import BUILTIN_SETTINGS, VLMJudgeSettings
from egobench.metrics.vlm_judge import (
    KEYS,
    PROMPTS,
    QWEN2_VL_2B,
    VLMJudge,
    judge_action_text,
    judge_messages,
    parse_answer,
    viescore_overall,
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Never the network (the loader also passes local_files_only=True)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


# ---------------------------------------------------------------------------
# prompts
# ---------------------------------------------------------------------------
def test_prompt_shows_input_then_generated_frame_and_asks_the_three_questions_about_the_action():
    msgs = judge_messages("opens the drawer", "1")
    assert [m["role"] for m in msgs] == ["user"]
    parts = msgs[0]["content"]
    assert [p["type"] for p in parts] == ["text", "image", "text", "image", "text"]
    assert parts[0]["text"] == PROMPTS["1"].before and parts[2]["text"] == PROMPTS["1"].after
    question = parts[4]["text"]
    assert question.count('"opens the drawer"') == 2
    for key in KEYS:
        assert f"- {key}:" in question
    assert '{"action": N, "scene": N, "quality": N' in question  # the literal braces survive format()
    assert "{action}" not in question
    with pytest.raises(ConfigError, match="prompt_version"):
        judge_messages("opens the drawer", "0")


def test_action_text_drops_the_narrator_tag():
    assert judge_action_text("#C C opens the drawer") == "opens the drawer"
    assert judge_action_text("cut onion") == "cut onion"


def test_settings_are_checked_and_registered_without_torch():
    assert BUILTIN_SETTINGS["vlm-judge"] is VLMJudgeSettings is VLMJudge.Settings
    s = VLMJudgeSettings()
    assert (s.model, s.prompt_version, s.batch_size) == ("qwen2-vl-2b-instruct", "1", 4)
    with pytest.raises(ConfigError):
        VLMJudgeSettings(max_new_tokens=0)
    with pytest.raises(ConfigError):
        VLMJudge.parse_settings({"prompt_version": "2"}, "metric vlm-judge")
    assert VLMJudge.artifacts(s) == [QWEN2_VL_2B.name]
    assert QWEN2_VL_2B.hf_repo == "Qwen/Qwen2-VL-2B-Instruct" and not QWEN2_VL_2B.sha256


# ---------------------------------------------------------------------------
# the strict answer rule
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, scores, reasons", [
    ('{"action": 7, "scene": 8, "quality": 6, "reasons": "the hand pulls the drawer"}', (7, 8, 6),
     "the hand pulls the drawer"),
    ('```json\n{"action": 0, "scene": 10, "quality": 10}\n```', (0, 10, 10), ""),
    ("action: 7\nscene: 8\nquality: 6", (7, 8, 6), ""),
    ("- Action: 3 - no hand on the drawer\n- Scene: 9\n- **quality**: 10", (3, 9, 10), "action: no hand on the drawer"),
    # text in other languages around valid numbers
    ('Voici mon évaluation : {"action": 5, "scene": 4, "quality": 9} Merci !', (5, 4, 9), ""),
    ("评分如下：\naction: 2\nscene: 7\nquality: 8\n以上。", (2, 7, 8), ""),
    ("Bewertung:\naction: 6, die Hand greift zu\nscene: 6\nquality: 1\nreasons: unscharf", (6, 6, 1),
     "action: die Hand greift zu; unscharf"),
])
def test_valid_answers_parse(text, scores, reasons):
    got = parse_answer(text)
    assert got.ok and got.error == ""
    assert tuple(got.scores[k] for k in KEYS) == scores
    assert got.reasons == reasons


@pytest.mark.parametrize("text, why", [
    ("", "empty"),
    ("The frame looks fine to me.", "no action, scene, quality"),
    ('{"action": 7, "scene": 8}', "without 'quality'"),
    ('{"action": 7, "scene": 8, "quality": 11}', "outside 0-10"),
    ('{"action": -1, "scene": 8, "quality": 5}', "outside 0-10"),
    ('{"action": 7.5, "scene": 8, "quality": 5}', "not an integer"),
    ('{"action": "7", "scene": 8, "quality": 5}', "not an integer"),
    ('{"action": true, "scene": 8, "quality": 5}', "not an integer"),
    ("action: 7\nscene: 8", "no quality"),
    ("action: 12\nscene: 8\nquality: 5", "outside 0-10"),
    ("action: 7.5\nscene: 8\nquality: 5", "integer"),
    ("action: 7/10\nscene: 8/10\nquality: 5/10", "integer"),
    ("action: seven\nscene: eight\nquality: five", "integer"),  # numbers as words are refused
    ("action: sieben\nscene: 8\nquality: 5", "integer"),
    ("action: ７\nscene: 8\nquality: 5", "integer"),  # full-width digits are not ASCII digits
    ("action: 7\naction: 3\nscene: 8\nquality: 5", "given twice"),
    ('{"action": 7, "scene": 8, "quality": 6', "no action, scene, quality"),  # a cut-off JSON object
])
def test_malformed_out_of_range_or_incomplete_answers_are_parse_failures(text, why):
    got = parse_answer(text)
    assert not got.ok and got.scores is None
    assert why in got.error


# ---------------------------------------------------------------------------
# VIEScore's combination
# ---------------------------------------------------------------------------
def test_viescore_overall_is_the_geometric_mean_of_min_semantics_and_quality():
    assert viescore_overall(10, 10, 10) == 1.0
    assert viescore_overall(0, 10, 10) == 0.0 and viescore_overall(10, 10, 0) == 0.0
    assert viescore_overall(8, 5, 8) == pytest.approx(math.sqrt(0.5 * 0.8))
    assert viescore_overall(2, 10, 10) == pytest.approx(math.sqrt(0.2))  # the min, not the mean
    assert viescore_overall(10, 2, 10) == viescore_overall(2, 10, 10)
    assert viescore_overall(9, 9, 4) == pytest.approx(0.6)


# ---------------------------------------------------------------------------
# the metric with a scripted judge
# ---------------------------------------------------------------------------
class _Inputs(dict):
    def to(self, device):
        return self


class FakeProcessor:
    """Chat template, batch encoding and decoding of a scripted judge: answers by action text."""

    def __init__(self, script: dict[str, str]):
        self.script = script
        self.batches: list[list[str]] = []

    def apply_chat_template(self, messages, add_generation_prompt, tokenize):
        assert add_generation_prompt and not tokenize
        content = messages[0]["content"]
        assert sum(p["type"] == "image" for p in content) == 2
        return content[-1]["text"]

    def __call__(self, text, images, padding, return_tensors):
        import torch

        assert padding and return_tensors == "pt" and all(len(i) == 2 for i in images)
        self.batches.append(list(text))
        return _Inputs(input_ids=torch.zeros((len(text), 3), dtype=torch.long))

    def batch_decode(self, new, skip_special_tokens):
        texts = self.batches[-1]
        assert new.shape[0] == len(texts) and skip_special_tokens
        return [next(a for act, a in self.script.items() if f'"{act}"' in t) for t in texts]


class FakeModel:
    def __init__(self):
        self.calls = 0
        self.kwargs: list[dict] = []

    def generate(self, input_ids, **kwargs):
        import torch

        self.calls += 1
        self.kwargs.append(kwargs)
        return torch.cat([input_ids, torch.ones((input_ids.shape[0], 2), dtype=torch.long)], dim=1)


class FakeWeights:
    """A weights store whose judge artifact is a folder of placeholder files (their digest keys the cache)."""

    def __init__(self, folder):
        from egobench.weights import Resolved

        folder.mkdir(parents=True, exist_ok=True)
        for f in QWEN2_VL_2B.files:
            if not (folder / f).exists():
                (folder / f).write_text(f"placeholder {f}\n")
        self.res = Resolved(QWEN2_VL_2B.name, folder, "override", False)

    def resolve(self, name):
        assert name == QWEN2_VL_2B.name
        return self.res


SCRIPT = {
    "opens the drawer": '{"action": 8, "scene": 5, "quality": 8, "reasons": "drawer half open"}',
    "cuts the onion": "action: 2\nscene: 10\nquality: 10",
    "washes the plate": "I cannot rate this image.",
    "turns on the tap": '{"action": 10, "scene": 10, "quality": 11}',
    "stirs the pot": "action: 10\nscene: 9\nquality: 9",
}


def _batch(actions: list[str], seed: int = 0) -> MetricBatch:
    rng = np.random.default_rng(seed)
    n = len(actions)
    return MetricBatch(ids=[f"s{i}" for i in range(n)],
                       generated=[rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(n)],
                       target=[], input=[rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(n)],
                       action=[f"#C C {a}" for a in actions])


@pytest.fixture
def scripted(monkeypatch, tmp_path):
    """(make metric, the fake model): every metric made shares the model, the processor and a feature cache."""
    from egobench.metrics import vlm_judge
    from egobench.metrics.cache import FeatureCache

    model, processor = FakeModel(), FakeProcessor(SCRIPT)
    loads = []
    monkeypatch.setattr(vlm_judge, "load_judge", lambda folder, device, dtype: loads.append(folder) or (model, processor))
    cache = FeatureCache(tmp_path / "features")
    weights = FakeWeights(tmp_path / "judge")

    def make(**settings) -> VLMJudge:
        return VLMJudge(VLMJudgeSettings(**settings), weights=weights, device="cpu", cache=cache)

    make.loads = loads
    make.weights = weights
    return make, model


def test_scores_extras_and_summary_from_scripted_answers(scripted):
    make, model = scripted
    metric = make(batch_size=2)
    actions = list(SCRIPT)
    values, extras = metric.compute(_batch(actions))
    assert model.calls == 3 == metric.generate_calls  # 5 samples, 2 per generate call
    assert all(k["do_sample"] is False and k["max_new_tokens"] == 160 for k in model.kwargs)
    assert values[0] == pytest.approx(math.sqrt(0.5 * 0.8))
    assert values[1] == pytest.approx(math.sqrt(0.2 * 1.0))
    assert np.isnan(values[2]) and np.isnan(values[3])  # parse failures are NaN, never 0
    assert values[4] == pytest.approx(0.9)
    assert extras["judge-action"] == ["8", "2", "", "", "10"]
    assert extras["judge-scene"] == ["5", "10", "", "", "9"]
    assert extras["judge-quality"] == ["8", "10", "", "", "9"]
    assert extras["answer"] == list(SCRIPT.values())  # the raw answer, parsed or not
    assert extras["reasons"][0] == "drawer half open"
    assert extras["parse-error"][0] == "" and "outside 0-10" in extras["parse-error"][3]
    assert set(extras) == set(VLMJudge.extras) and all(isinstance(v, str) for col in extras.values() for v in col)
    s = metric.summary(values, extras)
    assert s["n"] == 3 and s["n_parse_failures"] == 2
    assert s["value"] == pytest.approx(np.mean([math.sqrt(0.4), math.sqrt(0.2), 0.9]))
    assert s["sub_scores"] == {"action": pytest.approx(20 / 3), "scene": 8.0, "quality": pytest.approx(27 / 3)}
    none = metric.summary(np.array([np.nan]), {k: [""] for k in VLMJudge.extras})
    assert none["value"] is None and none["n"] == 0 and none["n_parse_failures"] == 1


def test_a_second_scoring_of_the_same_images_asks_the_model_nothing(scripted):
    make, model = scripted
    batch = _batch(list(SCRIPT))
    first = make().compute(batch)
    assert model.calls == 2
    again = make()  # a new metric (another run) on the same feature cache
    second = again.compute(batch)
    assert model.calls == 2 and again.generate_calls == 0
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]
    # another action text, another generated image: asked again (only those samples)
    changed = _batch(list(SCRIPT))
    changed.action[0] = "#C C stirs the pot"
    changed.generated[1] = changed.generated[1][::-1].copy()
    values, extras = again.compute(changed)
    assert again.generate_calls == 1 and model.calls == 3
    assert values[0] == pytest.approx(0.9) and extras["answer"][2:] == list(SCRIPT.values())[2:]
    # other judge weights: nothing is reused
    (make.weights.res.path / QWEN2_VL_2B.files[2]).write_text("other weights\n")
    other = make()
    other.compute(batch)
    assert other.generate_calls == 2


def test_the_prompt_version_and_decoding_settings_key_the_cache(scripted):
    make, model = scripted
    batch = _batch(["opens the drawer"])
    make().compute(batch)
    make(max_new_tokens=64).compute(batch)
    assert model.calls == 2 and model.kwargs[-1]["max_new_tokens"] == 64


# ---------------------------------------------------------------------------
# the tiny judge end to end
# ---------------------------------------------------------------------------
def _judge_run(tmp_path, device: str = "cpu", precision: str | None = None):
    """(metric, Evaluation) of egobench-v2's vlm-judge column with the tiny zoo on the demo split's first
    3 samples, the ground-truth frames as the 'generated' images; answers cut at 12 new tokens (the random
    judge never stops by itself, and 160 greedy steps would dominate the test's time)."""
    import dataclasses
    import shutil
    from importlib import resources

    from egobench.data import load_split
    from egobench.evaluator import build_metrics, evaluate_samples
    from egobench.metrics.cache import FeatureCache
    from egobench.protocol import load_protocol
    from egobench.weights import WeightStore

    v2 = (resources.files("protocols") / "egobench-v2.yaml").read_text()
    assert v2.count("max_new_tokens: 160") == 1
    path = tmp_path / "judge-e2e.yaml"
    path.write_text(v2.replace("name: egobench-v2", "name: judge-e2e").replace("max_new_tokens: 160", "max_new_tokens: 12"))
    protocol = load_protocol(path)
    if precision is not None:
        protocol = dataclasses.replace(protocol, evaluation=dataclasses.replace(protocol.evaluation, precision=precision))
    split = load_split("demo", None, 3)
    gen = tmp_path / "gen"
    gen.mkdir()
    for s in split:
        shutil.copyfile(s.target_path, gen / f"{s.id}.img")
    (col,) = build_metrics(protocol, WeightStore(zoo="tiny"), device, only=["vlm-judge"], cache=FeatureCache(None),
                           split=split)
    assert isinstance(col.metric, VLMJudge)
    ev = evaluate_samples(split, lambda s: gen / f"{s.id}.img", [col], batch_size=4,
                          run_cache=FeatureCache(tmp_path / "run"))
    return col.metric, ev


def _check_rows(metric: VLMJudge, ev) -> None:
    """Every sample a score in [0, 1] or a recorded parse failure (NaN, its raw answer, why)."""
    info = ev.metrics["vlm-judge"]
    rows = ev.samples
    assert len(rows) == 3 and metric.generate_calls == 1  # 3 samples, batch_size 4: one generate call
    values = rows["vlm-judge"].to_numpy(dtype=float)
    failed = ~np.isfinite(values)
    assert np.all((values[~failed] >= 0) & (values[~failed] <= 1))
    assert info["n"] + info["n_parse_failures"] == 3 and info["n_parse_failures"] == int(failed.sum())
    assert (info["value"] is None) == bool(failed.all())
    assert all(isinstance(a, str) for a in rows["vlm-judge_answer"])
    assert all(e for e, f in zip(rows["vlm-judge_parse-error"], failed, strict=True) if f)


def test_tiny_judge_on_the_demo_split_through_the_evaluator(tmp_path, tiny_zoo):
    """The real loader, processor and chat template and greedy generation on the tiny zoo's random
    Qwen2-VL (in the real repo's file layout): scores or recorded parse failures, never a crash."""
    from egobench.weights import TINY_MARKER

    metric, ev = _judge_run(tmp_path)
    res = metric.weights.resolve(QWEN2_VL_2B.name)
    assert res.tiny and (res.path / TINY_MARKER).is_file()
    assert all((res.path / f).is_file() for f in QWEN2_VL_2B.files)  # the real repo's file names
    model, processor = metric.judge()
    assert type(model).__name__ == "Qwen2VLForConditionalGeneration"
    assert processor.tokenizer.padding_side == "left"
    text = processor.apply_chat_template(judge_messages("opens the drawer", "1"), add_generation_prompt=True,
                                         tokenize=False)
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 2 and text.endswith("<|im_start|>assistant\n")
    assert PROMPTS["1"].before in text and '"opens the drawer"' in text
    assert ev.metrics["vlm-judge"]["precision"] == "fp32"
    _check_rows(metric, ev)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA device: torch.cuda.is_available() is False on this machine")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_tiny_judge_on_cuda_loads_and_runs_in_the_protocols_reduced_precision(tmp_path, tiny_zoo, precision):
    import torch

    metric, ev = _judge_run(tmp_path, "cuda", precision)
    model, _ = metric.judge()
    assert model.dtype == {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    assert next(model.parameters()).device.type == "cuda"
    assert ev.metrics["vlm-judge"]["precision"] == precision  # the record says the judge ran reduced
    _check_rows(metric, ev)
