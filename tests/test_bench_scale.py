"""The scale bench (issue 20 item 2) at a small N: every figure is measured through the real ``egobench run``,
a SIGKILL at 60% is resumed from the run cache, and two torchrun processes give the one-process results."""

from __future__ import annotations

import math

import pytest

from egobench_bench import scale
from egobench_bench.options import BenchOptions
from egobench_bench.report import SCALE_KEYS, BenchReport

N, BATCH = 64, 8


@pytest.fixture(scope="module")
def measured(tmp_path_factory, tiny_zoo):
    opts = BenchOptions(samples=N, batch_size=BATCH, device="cpu", quiet=True).resolved()
    folder = tmp_path_factory.mktemp("scale")
    return {m.key: m for m in scale.measure(opts, folder)}, folder


def test_every_scale_figure_is_measured_and_printed_next_to_its_goal(measured):
    ms, _ = measured
    assert list(ms) == list(SCALE_KEYS)
    for m in ms.values():
        assert m.available and math.isfinite(m.value), (m.key, m.note)
        assert m.details["n"] == N
    assert ms["scale-time"].value > 0
    assert 0 < ms["scale-files"].value < 1000  # fewer files than samples: the caches are packed
    table = BenchReport("tiny", "cpu", "bench-scale", N, BATCH, list(ms.values())).table()
    for m in ms.values():
        assert m.title in table and m.goal.text() in table and m.value_text() in table


def test_a_killed_run_resumes_from_its_run_cache(measured):
    ms, folder = measured
    d = ms["scale-resume"].details
    assert 0.6 * N <= d["kept"] < N  # killed after 60% of the evaluation, before its end
    assert d["recomputed"] <= N - d["kept"] + BATCH  # the rerun scored what was left, not the whole split
    assert d["redone_samples"] <= BATCH and ms["scale-resume"].passed
    assert d["max_diff"] <= 1e-6  # and the resumed run's results equal the uninterrupted run's
    assert (folder / "killed" / "manifest.json").is_file()


def test_two_processes_give_the_one_process_results(measured):
    ms, folder = measured
    assert ms["scale-shards"].value <= 1e-6 and ms["scale-shards"].passed
    assert '"processes": 2' in (folder / "two" / "manifest.json").read_text()
