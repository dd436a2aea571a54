"""Work shared between metrics, reduced precision, run logs and progress lines (issue 7)."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch

import egobench
from egobench.data import load_split
from egobench.evaluator import build_metrics, evaluate_samples
from egobench.metrics import autocast_dtype
from egobench.metrics.cache import FeatureCache
from egobench.protocol import load_protocol, parse_protocol
from egobench.weights import WeightStore


def _columns(proto, names=None):
    return build_metrics(proto, WeightStore(zoo="tiny"), "cpu", only=names, cache=FeatureCache(None))


def _demo(n=5):
    split = load_split("demo", None, n)
    return list(split), (lambda s: s.target_path)  # oracle images: the targets themselves


def test_egovlp_metrics_and_blip_text_towers_share_one_model_per_checkpoint():
    cols = {c.name: c.metric for c in _columns(load_protocol("lego-official"))}
    tower = cols["egovlp"].egovlp_model("ego4d")
    assert cols["egovlp-plus"].egovlp_model("ego4d") is tower
    # BLIP-B and BLIP-L compare texts through the same checkpoint's text tower: same object
    assert cols["blip-b"]._text_encoder("ego4d").model is tower
    assert cols["blip-l"]._text_encoder("ego4d").model is tower


def test_egovlp_frames_are_preprocessed_once_per_batch_and_values_do_not_change(monkeypatch):
    from egobench.metrics import egovlp as ev

    proto = load_protocol("egobench-v1")
    samples, locate = _demo(6)
    alone = {}
    for name in ("egovlp", "egovlp-plus"):  # each metric in its own evaluation: nothing to share
        alone[name] = evaluate_samples(samples, locate, _columns(proto, [name]), batch_size=3).samples[name]
    calls = []
    real = ev.preprocess_frame
    monkeypatch.setattr(ev, "preprocess_frame", lambda *a, **k: calls.append(1) or real(*a, **k))
    both = evaluate_samples(samples, locate, _columns(proto, ["egovlp", "egovlp-plus"]), batch_size=3).samples
    # generated, target and input frame: three preprocessings per sample, not 2 + 4 (the input twice)
    assert len(calls) == 3 * len(samples)
    for name in ("egovlp", "egovlp-plus"):
        np.testing.assert_array_equal(both[name].to_numpy(), alone[name].to_numpy())


def test_two_columns_with_one_captioner_share_the_captions(tmp_path, monkeypatch):
    from egobench.metrics.blip_captioner import BlipCaptioner

    text = (tmp_path / "p.yaml")
    text.write_text(
        "name: two-refs\nversion: '1'\nmetrics:\n"
        "  - {name: blip-desc, metric: blip, settings: {model: base, reference: description}}\n"
        "  - {name: blip-act, metric: blip, settings: {model: base, reference: action}}\n")
    proto = load_protocol(text)
    samples, locate = _demo(4)
    calls = []
    real = BlipCaptioner.caption
    monkeypatch.setattr(BlipCaptioner, "caption", lambda self, ims: calls.append(len(ims)) or real(self, ims))
    df = evaluate_samples(samples, locate, _columns(proto), batch_size=4).samples
    assert calls == [4]  # one captioning of the batch for both columns
    assert list(df["blip-desc_caption"]) == list(df["blip-act_caption"])
    assert not np.array_equal(df["blip-desc"], df["blip-act"])  # different reference texts


def test_lpips_batched_equals_one_pair_at_a_time(monkeypatch):
    from egobench.metrics.lpips_metric import LPIPS

    proto = load_protocol("egobench-v1")
    split = list(load_split("demo", None, 6))
    gens = {s.id: s.input_path for s in split}  # inputs as "generated": nonzero distances
    one = evaluate_samples(split, lambda s: gens[s.id], _columns(proto, ["lpips"]), batch_size=6).samples["lpips"]
    monkeypatch.setattr(LPIPS, "chunk_size", lambda self: 1 << 30)
    many = evaluate_samples(split, lambda s: gens[s.id], _columns(proto, ["lpips"]), batch_size=6).samples["lpips"]
    assert (one.to_numpy() > 0).all()
    np.testing.assert_allclose(many.to_numpy(), one.to_numpy(), rtol=1e-5, atol=1e-6)


def test_precision_setting_parses_keeps_default_hashes_and_only_applies_on_cuda(tmp_path):
    base = load_protocol("egobench-v1")
    assert base.evaluation.precision == "fp32"
    src = (egobench.protocol.resources.files("protocols") / "egobench-v1.yaml").read_text()
    no_section = src.replace("evaluation:\n  precision: fp32\n", "")
    assert no_section != src
    assert parse_protocol(no_section, "x").hash == base.hash  # the default does not move the hash
    fast = parse_protocol(src.replace("precision: fp32\nmetrics", "precision: bf16\nmetrics"), "x")
    assert fast.evaluation.precision == "bf16" and fast.hash != base.hash
    with pytest.raises(egobench.errors.ConfigError, match="precision"):
        parse_protocol(src.replace("precision: fp32\nmetrics", "precision: fp8\nmetrics"), "x.yaml")

    assert autocast_dtype("cpu", "fp16") is None
    assert autocast_dtype("cuda:0", "fp32") is None
    assert autocast_dtype("cuda:1", "fp16") is torch.float16
    assert autocast_dtype("cuda", "bf16") is torch.bfloat16

    cols = {c.name: c.metric for c in build_metrics(fast, WeightStore(zoo="tiny"), "cpu", only=["clip", "fid"],
                                                      cache=FeatureCache(None))}
    assert cols["clip"].precision == "bf16" and cols["clip"].effective_precision == "fp32"  # CPU: fp32
    cols["clip"].device = cols["fid"].device = "cuda:0"  # what the choice would be on a GPU (nothing runs)
    assert cols["clip"].compute_dtype is torch.bfloat16 and cols["clip"].effective_precision == "bf16"
    assert cols["fid"].compute_dtype is None  # FID stays fp32 everywhere


def test_reduced_precision_gets_its_own_cache_namespace(tmp_path):
    fast = parse_protocol(
        (egobench.protocol.resources.files("protocols") / "egobench-v1.yaml").read_text()
        .replace("precision: fp32\nmetrics", "precision: fp16\nmetrics"), "x")
    cache = FeatureCache(tmp_path / "c")
    m32 = build_metrics(load_protocol("egobench-v1"), WeightStore(zoo="tiny"), "cpu", only=["clip"], cache=cache)[0]
    m16 = build_metrics(fast, WeightStore(zoo="tiny"), "cpu", only=["clip"], cache=cache)[0]
    seen = []
    for m in (m32.metric, m16.metric):
        m.cached("t", ["k"], lambda idx: seen.append(1) or [np.zeros(2)])
    assert len(seen) == 1  # on a CPU both run fp32: same features, same keys
    m16.metric.device = "cuda:0"
    m16.metric._ns_bases.clear()
    m16.metric.cached("t", ["k"], lambda idx: seen.append(1) or [np.zeros(2)])
    assert len(seen) == 2  # fp16 features never mix with fp32 ones


def test_run_writes_a_log_with_progress_and_results(tmp_path):
    res = egobench.run("input-copy", "demo", protocol="egobench-v1", limit=3, out=tmp_path / "r", progress=False)
    log = (res.run_dir / "logs" / "run.log").read_text()
    assert "method input-copy on demo (3 samples" in log
    assert "generate input-copy: 3/3 samples" in log and "ETA" in log
    assert "evaluate: 3/3 samples" in log
    assert "scored 3 of 3 samples" in log and "results: egovlp " in log
    metrics = json.loads((res.run_dir / "metrics.json").read_text())
    assert metrics["metrics"]["clip"]["precision"] == "fp32"
    # a resumed run appends to the same log
    egobench.run("input-copy", "demo", protocol="egobench-v1", limit=3, out=tmp_path / "r", progress=False)
    again = (res.run_dir / "logs" / "run.log").read_text()
    assert again.startswith(log) and again.count("scored 3 of 3 samples") == 2
    ev = egobench.evaluate(res.run_dir / "images", "demo", protocol="egobench-v1", limit=3, out=tmp_path / "e",
                           progress=False)
    assert "scored 3 of 3 samples" in (ev.run_dir / "logs" / "evaluate.log").read_text()
    assert not logging.getLogger("egobench").handlers  # detached after the run


def test_progress_lines_are_rate_limited_and_carry_rate_and_eta():
    from egobench.progress import Progress

    now = [0.0]
    records = []

    class Sink(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    log = logging.getLogger("egobench.test-progress")
    log.setLevel(logging.INFO)
    log.addHandler(Sink())
    p = Progress(100, "evaluate", bar=False, log=log, clock=lambda: now[0])
    for _ in range(9):
        now[0] += 1.0
        p(10)  # 90 done after 9 s: no line yet (one every 30 s)
    assert records == ["evaluate: 100 samples to do"]
    now[0] += 1.0
    p(10)
    assert records[-1] == "evaluate: 100/100 samples, 10.00 samples/s, elapsed 0:10, ETA 0:00"
    q = Progress(10, "generate", bar=False, log=log, clock=lambda: now[0])
    now[0] += 40.0
    q(2)
    assert records[-1].startswith("generate: 2/10 samples, 0.05 samples/s, elapsed 0:40, ETA 2:40")


def test_samples_table_is_unchanged_by_sharing():
    """A full suite run equals each metric evaluated alone (nothing shared leaks between samples)."""
    proto = load_protocol("lego-official")
    samples, locate = _demo(4)
    together = evaluate_samples(samples, locate, _columns(proto), batch_size=2).samples
    for name in ("egovlp", "egovlp-plus", "blip-b", "lpips"):
        alone = evaluate_samples(samples, locate, _columns(proto, [name]), batch_size=2).samples
        pd.testing.assert_series_equal(together[name], alone[name])


def _count_calls(monkeypatch, cls, name):
    calls = []
    real = getattr(cls, name)

    def wrapped(self, *a, **k):
        calls.append(len(a[0]) if a and hasattr(a[0], "__len__") else 1)
        return real(self, *a, **k)

    monkeypatch.setattr(cls, name, wrapped)
    return calls


def test_killed_evaluation_resumes_from_the_run_cache_and_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    from egobench.metrics.clip_metric import CLIPImage
    from egobench.metrics.fid import FID
    from egobench.metrics.lpips_metric import LPIPS

    monkeypatch.setenv("EGOBENCH_CACHE", str(tmp_path / "target-cache"))
    gen = egobench.run("input-copy", "demo", protocol="egobench-v1", limit=6, out=tmp_path / "gen", progress=False,
                       batch_size=6)
    images = gen.run_dir / "images"
    whole = egobench.evaluate(images, "demo", protocol="egobench-v1", limit=6, out=tmp_path / "whole",
                              progress=False, batch_size=2)
    # the same evaluation killed in its third batch (LPIPS raises there)
    real = LPIPS.compute
    seen = []

    def dies_third(self, batch):
        seen.append(1)
        if len(seen) == 3:
            raise KeyboardInterrupt("killed")
        return real(self, batch)

    monkeypatch.setattr(LPIPS, "compute", dies_third)
    with pytest.raises(KeyboardInterrupt):
        egobench.evaluate(images, "demo", protocol="egobench-v1", limit=6, out=tmp_path / "resumed",
                          progress=False, batch_size=2)
    monkeypatch.setattr(LPIPS, "compute", real)
    clip_calls = _count_calls(monkeypatch, CLIPImage, "compute")
    fid_calls = _count_calls(monkeypatch, FID, "features")
    lpips_calls = _count_calls(monkeypatch, LPIPS, "compute")
    resumed = egobench.evaluate(images, "demo", protocol="egobench-v1", limit=6, out=tmp_path / "resumed",
                                progress=False, batch_size=2)
    # the metrics before LPIPS had scored the third batch before the kill: nothing of theirs is redone;
    # LPIPS (and the BLIP columns after it) score only that batch again
    assert clip_calls == [] and fid_calls == []
    assert lpips_calls == [2]
    assert resumed.evaluation.reused == {"hits": 50, "misses": 10}  # 10: LPIPS, BLIP-B/L scores + captions
    a = pd.read_parquet(whole.run_dir / "samples.parquet")
    b = pd.read_parquet(resumed.run_dir / "samples.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert resumed.metrics["fid"]["value"] == pytest.approx(whole.metrics["fid"]["value"], rel=1e-9)
    assert "run cache:" in (resumed.run_dir / "logs" / "evaluate.log").read_text()

    # a second evaluation of unchanged outputs computes nothing; a changed output only its batch
    clip_calls.clear()
    fid_calls.clear()
    again = egobench.evaluate(images, "demo", protocol="egobench-v1", limit=6, out=tmp_path / "resumed",
                              progress=False, batch_size=2)
    assert clip_calls == [] and fid_calls == []
    pd.testing.assert_frame_equal(pd.read_parquet(again.run_dir / "samples.parquet"), a)
    first = sorted(images.iterdir())[0]
    from PIL import Image

    with Image.open(first) as im:
        flipped = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    flipped.save(first)
    changed = egobench.evaluate(images, "demo", protocol="egobench-v1", limit=6, out=tmp_path / "resumed",
                                progress=False, batch_size=2)
    assert clip_calls == [2] and fid_calls == [1]  # FID features are per image: only the new one
    df = pd.read_parquet(changed.run_dir / "samples.parquet")
    assert (df["clip"] != a["clip"]).sum() == 1


def test_a_metric_returning_an_undeclared_extra_column_is_refused():
    from egobench.evaluator import MetricColumn
    from egobench.metrics import Metric, NoSettings
    from egobench.protocol import MetricSpec

    class Chatty(Metric):
        name = "chatty"

        def compute(self, batch):
            return np.zeros(len(batch)), {"note": ["hi"] * len(batch)}

    samples, locate = _demo(2)
    col = MetricColumn(MetricSpec("chatty", "chatty"), Chatty(NoSettings()))
    with pytest.raises(TypeError, match="chatty returned extra column.*note.*extras"):
        evaluate_samples(samples, locate, [col], batch_size=2)
    Chatty.extras = ("note",)
    df = evaluate_samples(samples, locate, [col], batch_size=2).samples
    assert list(df["chatty_note"]) == ["hi", "hi"]


def test_next_batch_is_decoded_in_the_background_and_its_errors_still_surface(monkeypatch, tmp_path):
    import threading

    from egobench import evaluator
    from egobench.images import BadImageError

    proto = load_protocol("egobench-v1")
    samples, locate = _demo(6)
    threads = []
    real = evaluator.read_rgb
    monkeypatch.setattr(evaluator, "read_rgb", lambda p: threads.append(threading.current_thread().name) or real(p))
    ev = evaluate_samples(samples, locate, _columns(proto, ["psnr"]), batch_size=2)
    assert ev.n_scored == 6
    assert threads and all(name.startswith("egobench-decode") for name in threads)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    broken = [samples[0], samples[1], dataclasses.replace(samples[2], target_path=bad)]
    with pytest.raises(BadImageError, match="bad.jpg"):  # a broken target (batch 2) stops the evaluation
        evaluate_samples(broken, lambda s: s.input_path, _columns(proto, ["psnr"]), batch_size=2)
