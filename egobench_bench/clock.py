"""Timing the real evaluator from outside: its per-stage hook and forward hooks on the metrics' modules."""

from __future__ import annotations

import contextlib
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def sync(device: str) -> None:
    """Wait for queued CUDA work, so a timer reads what the device did."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def reachable_modules(root: Any, depth: int = 6) -> list[torch.nn.Module]:
    """Every ``torch.nn.Module`` reachable from ``root`` through attributes, dicts, lists and tuples (a
    module's own submodules are not listed: :meth:`Module.modules` gives them)."""
    found: dict[int, torch.nn.Module] = {}
    seen: set[int] = set()
    todo = [(root, 0)]
    while todo:
        obj, d = todo.pop()
        if id(obj) in seen or d > depth or isinstance(obj, (str, bytes, np.ndarray, torch.Tensor, type, types.ModuleType)):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.nn.Module):
            found[id(obj)] = obj
        elif isinstance(obj, dict):
            todo += [(v, d + 1) for v in obj.values()]
        elif isinstance(obj, (list, tuple, set)):
            todo += [(v, d + 1) for v in obj]
        elif hasattr(obj, "__dict__"):
            todo += [(v, d + 1) for v in vars(obj).values()]
    return list(found.values())


class StageClock:
    """Seconds and items per evaluator stage (``stage=clock.stage``) and, with ``hooks``, seconds of model
    forwards per metric column, from forward hooks on every module reachable from the built metrics."""

    def __init__(self, columns: list, device: str, hooks: bool = True):
        self.device = device
        self.stages: dict[str, list[float]] = {"decode": [0.0, 0], **{c.name: [0.0, 0] for c in columns}}
        self.forward_s: dict[str, float] = {c.name: 0.0 for c in columns}
        self._modules = {id(m): m for c in columns for top in reachable_modules(c.metric) for m in top.modules()}
        self._hooks = hooks
        self._handles: list[Any] = []
        self._main = threading.get_ident()
        self._column = ""
        self._depth = 0
        self._t0 = 0.0

    @contextlib.contextmanager
    def stage(self, name: str, items: int) -> Iterator[None]:
        """The evaluator's stage hook: decoding (its own thread) or one metric call."""
        if name != "decode":
            self._column = name
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if name != "decode":
                sync(self.device)
            self.stages[name][0] += time.perf_counter() - t0
            self.stages[name][1] += items

    def _before(self, module: Any, args: Any) -> None:
        if threading.get_ident() == self._main:
            if self._depth == 0:  # the outermost module call: nested ones are inside its time
                sync(self.device)
                self._t0 = time.perf_counter()
            self._depth += 1

    def _after(self, module: Any, args: Any, output: Any) -> None:
        if threading.get_ident() == self._main:
            self._depth -= 1
            if self._depth == 0:
                sync(self.device)
                self.forward_s[self._column] = self.forward_s.get(self._column, 0.0) + time.perf_counter() - self._t0

    def __enter__(self) -> StageClock:
        if self._hooks:
            for m in self._modules.values():
                self._handles += [m.register_forward_pre_hook(self._before), m.register_forward_hook(self._after)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    @property
    def forwards(self) -> float:
        return sum(self.forward_s.values())

    def table(self) -> dict[str, dict[str, float]]:
        """{stage: {seconds, items, per_s}}: decoding, then each column."""
        return {k: {"seconds": s, "items": float(n), "per_s": n / s if s > 0 else float("nan")}
                for k, (s, n) in self.stages.items()}
