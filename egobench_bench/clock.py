"""Timing the real evaluator from outside: its per-stage hook and forward hooks on the metrics' modules."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch


def sync(device: str) -> None:
    """Wait for queued CUDA work, so a timer reads what the device did."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(device: str, fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of ``fn()``, queued device work included."""
    sync(device)
    t0 = time.perf_counter()
    res = fn()
    sync(device)
    return time.perf_counter() - t0, res


def loaded_modules() -> list[torch.nn.Module]:
    """Every ``torch.nn.Module`` the metrics have loaded (the process-wide memo; tuples such as
    (model, tokenizer) looked into), with their submodules."""
    from egobench.shared_models import loaded_models

    tops = [m for v in loaded_models() for m in (v if isinstance(v, (tuple, list)) else (v,))]
    return list({id(s): s for m in tops if isinstance(m, torch.nn.Module) for s in m.modules()}.values())


class StageClock:
    """Seconds and items per evaluator stage (``stage=clock.stage``) and, with ``hooks``, seconds of model
    forwards per metric column, from forward hooks on every model the metrics loaded (after a warm-up)."""

    def __init__(self, columns: list, device: str, hooks: bool = True):
        self.device, self.hooks, self.handles = device, hooks, []
        self.stages: dict[str, list[float]] = {"decode": [0.0, 0], **{c.name: [0.0, 0] for c in columns}}
        self.forward_s: dict[str, float] = {c.name: 0.0 for c in columns}
        self.modules = loaded_modules() if hooks else []
        self.main, self.column, self.depth, self.t0 = threading.get_ident(), "", 0, 0.0

    @contextlib.contextmanager
    def stage(self, name: str, items: int) -> Iterator[None]:
        """The evaluator's stage hook: decoding (its own thread) or one metric call."""
        self.column = name if name != "decode" else self.column
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if name != "decode":
                sync(self.device)
            self.stages[name][0] += time.perf_counter() - t0
            self.stages[name][1] += items

    def _before(self, module: Any, args: Any) -> None:
        if threading.get_ident() == self.main:
            if self.depth == 0:  # the outermost module call: nested ones are inside its time
                sync(self.device)
                self.t0 = time.perf_counter()
            self.depth += 1

    def _after(self, module: Any, args: Any, output: Any) -> None:
        if threading.get_ident() == self.main:
            self.depth -= 1
            if self.depth == 0:
                sync(self.device)
                self.forward_s[self.column] = self.forward_s.get(self.column, 0.0) + time.perf_counter() - self.t0

    def __enter__(self) -> StageClock:
        for m in self.modules:
            self.handles += [m.register_forward_pre_hook(self._before), m.register_forward_hook(self._after)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    @property
    def forwards(self) -> float:
        return sum(self.forward_s.values())

    def table(self) -> dict[str, dict[str, float]]:
        """{stage: {seconds, items, per_s}}: decoding, then each column."""
        return {k: {"seconds": s, "items": float(n), "per_s": n / s if s > 0 else float("nan")}
                for k, (s, n) in self.stages.items()}
