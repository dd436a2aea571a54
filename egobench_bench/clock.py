"""Timing the real evaluator from outside: its per-stage hook and forward hooks on the metrics' modules."""

from __future__ import annotations

import contextlib
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
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


def reachable_modules(root: Any, depth: int = 6) -> list[torch.nn.Module]:
    """Every ``torch.nn.Module`` reachable from ``root`` through attributes, dicts and sequences (not
    inside a module: :meth:`Module.modules` lists those)."""
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
            continue
        items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple, set)) else (
            vars(obj).values() if hasattr(obj, "__dict__") else ())
        todo += [(v, d + 1) for v in items]
    return list(found.values())


class StageClock:
    """Seconds and items per evaluator stage (``stage=clock.stage``) and, with ``hooks``, seconds of model
    forwards per metric column, from forward hooks on every module reachable from the built metrics."""

    def __init__(self, columns: list, device: str, hooks: bool = True):
        self.device, self.hooks, self.handles = device, hooks, []
        self.stages: dict[str, list[float]] = {"decode": [0.0, 0], **{c.name: [0.0, 0] for c in columns}}
        self.forward_s: dict[str, float] = {c.name: 0.0 for c in columns}
        self.modules = {id(m): m for c in columns for top in reachable_modules(c.metric) for m in top.modules()}
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
        for m in self.modules.values() if self.hooks else ():
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
