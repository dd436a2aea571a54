"""Test-only methods, loaded as ``tests.plugins.methods:Name``."""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from egobench.methods import Method, load_rgb


class SeededNoise(Method):
    """Float output from the sample's seed (or the global RNG): checks seeding."""

    name = "seeded-noise"

    def generate(self, samples, seeds):
        out = []
        for _s, seed in zip(samples, seeds, strict=False):
            g = torch.Generator().manual_seed(seed) if seed is not None else None
            out.append(torch.rand(3, 32, 32, generator=g))
        return out


class SlowCopy(Method):
    """Copies the input slowly; dies after EGOBENCH_TEST_DIE_AFTER images if set."""

    name = "slow-copy"
    calls = 0

    def generate(self, samples, seeds):
        die_after = int(os.environ.get("EGOBENCH_TEST_DIE_AFTER", "-1"))
        out = []
        for s in samples:
            if die_after >= 0 and SlowCopy.calls >= die_after:
                os._exit(9)  # like a SIGKILL: no cleanup, no finally blocks
            SlowCopy.calls += 1
            time.sleep(float(os.environ.get("EGOBENCH_TEST_SLEEP", "0")))
            arr = np.asarray(load_rgb(s.input_path), dtype=np.float32) / 255.0
            out.append(arr[::-1].copy())  # flipped, as floats: exercises post-processing
        return out


class NaNMethod(Method):
    name = "nan"

    def generate(self, samples, seeds):
        return [np.full((16, 16, 3), np.nan, dtype=np.float32) for _ in samples]
