"""Out of memory during generation: the batch is retried at half its size down to 1, then the samples fail."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import torch

import egobench
from egobench.methods import Method, load_rgb
from egobench.protocol import load_protocol
from egobench.runner import is_out_of_memory

#: every batch size the constructed methods were called with, in order
CALLS: list[int] = []


class OOMAboveTwo(Method):
    """Copies the input; a batch of more than two samples runs out of accelerator memory."""

    name = "oom-above-two"
    limit = 2

    def generate(self, samples, seeds):
        CALLS.append(len(samples))
        if len(samples) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return [np.asarray(load_rgb(s.input_path), dtype=np.float32) / 255.0 for s in samples]


class CPUOOMAlways(OOMAboveTwo):
    """torch's CPU allocator fails at every batch size."""

    name = "cpu-oom-always"

    def generate(self, samples, seeds):
        CALLS.append(len(samples))
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:114] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 85899345920 bytes.")


def _psnr_protocol():
    p = load_protocol("egobench-v1")
    return dataclasses.replace(p, metrics=tuple(m for m in p.metrics if m.name == "psnr"))


def _run(tmp_path, method, name):
    CALLS.clear()
    return egobench.run(f"tests.test_oom_retry:{method}", "demo", protocol=_psnr_protocol(), limit=5, zoo="tiny",
                        batch_size=5, out=tmp_path / name, progress=False)


def test_an_out_of_memory_batch_is_retried_in_halves_and_every_image_is_made(tmp_path):
    res = _run(tmp_path, "OOMAboveTwo", "halves")
    assert CALLS == [5, 3, 2, 1, 2]  # 5 fails, 3 (first half) fails, its halves 2 + 1 pass, then the other 2
    assert res.generated == 5 and res.failed == 0
    assert not (res.run_dir / "failures").exists()


def test_a_sample_that_runs_out_of_memory_alone_is_recorded_as_failed_with_the_reason(tmp_path):
    res = _run(tmp_path, "CPUOOMAlways", "fails")
    assert CALLS[0] == 5 and CALLS.count(1) == 5 and max(CALLS[1:]) == 3  # halved, never retried at 5
    assert res.generated == 0 and res.failed == 5
    records = [json.loads(p.read_text()) for p in sorted((res.run_dir / "failures").glob("*.json"))]
    assert len(records) == 5
    for r in records:
        assert "ran out of memory" in r["error"] and "DefaultCPUAllocator" in r["error"]
        assert r["error"].count("\n") == 0 and "batch sizes 5, " in r["error"] and r["error"].count(", 1;") == 1


def test_only_allocation_failures_count_as_out_of_memory():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("DefaultCPUAllocator: can't allocate memory"))
