"""Test-only methods, loaded as ``tests.plugins.methods:Name``."""

from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class EchoOptions:
    flavour: str = "plain"
    features_root: str | None = None
    compute_features: bool = False


class OptionsEcho(Method):
    """Copies the input; takes options (the manifest records them): checks what a runner passes."""

    name = "options-echo"
    options_class = EchoOptions

    def __init__(self, protocol, weights=None, device="cpu", **options):
        from egobench.config import from_dict

        super().__init__(protocol, weights=weights, device=device)
        self.options = from_dict(EchoOptions, options, f"method '{self.name}' options")

    def config(self):
        return {"name": self.name, "options": dataclasses.asdict(self.options)}

    def generate(self, samples, seeds):
        return [load_rgb(s.input_path) for s in samples]


class WeightedCopy(Method):
    """Copies the input after resolving a weight artifact (as a model's method does when it loads)."""

    name = "weighted-copy"
    artifacts = ("lpips-squeeze-backbone",)

    def __init__(self, protocol, weights=None, device="cpu", **options):
        super().__init__(protocol, weights=weights, device=device, **options)
        for name in self.artifacts:
            weights.resolve(name)

    def generate(self, samples, seeds):
        return [load_rgb(s.input_path) for s in samples]
