"""The bench report: each measurement as a ratio next to its goal, as a table and as JSON."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Goal:
    """What a measurement is held to: ``value op target`` (``info``: reported, never judged)."""

    op: str  # ">=", "<=" or "info"
    target: float
    unit: str  # "x", "MB", "s", "pts" or a count's unit ("files", "batches", "max diff")

    def met(self, value: float) -> bool | None:
        return None if self.op == "info" else value >= self.target if self.op == ">=" else value <= self.target

    def text(self) -> str:
        if self.op == "info":
            return "(reported)"
        return {"MB": f"{self.op} +{self.target:.0f} MB", "s": f"{self.op} {self.target:.2f} s",
                "x": f"{self.op} {self.target:.2f}x", "pts": f"{self.op} {self.target:.4f}"}.get(
            self.unit, f"{self.op} {self.target:g} {self.unit}")


#: the report's fixed lines in order (an item not chosen shows "skipped"), then the optional ones
TITLES = {"naive": "full suite: naive / egobench (cold)", "cache": "target cache: cold / warm",
          "overhead": "harness overhead: egobench / model forwards", "pipeline": "lego / diffusers InstructPix2Pix",
          "memory": "peak RSS growth", "startup": "CLI start (--help, --version, listings)",
          "blip-spread": "BLIP-B/L spread across released-mode draws"}
GOALS = {"naive": Goal(">=", 3.0, "x"), "cache": Goal(">=", 1.8, "x"), "overhead": Goal("<=", 1.10, "x"),
         "pipeline": Goal("<=", 1.10, "x"), "memory": Goal("<=", 100.0, "MB"), "startup": Goal("<=", 1.0, "s"),
         "blip-spread": Goal("info", 0.0, "pts"), "scale-time": Goal("<=", 1.10, "x"),
         "scale-memory": Goal("<=", 100.0, "MB"), "scale-files": Goal("<=", 20.0, "files"),
         "scale-resume": Goal("<=", 1.0, "batches"), "scale-shards": Goal("<=", 1e-6, "max diff")}
TITLES.update({"scale-time": "time per sample: last 10% / first 10%", "scale-memory": "peak RSS: at N - at 1,000",
               "scale-files": "files per 1,000 samples (<run> but images, caches)",
               "scale-resume": "resume after SIGKILL at 60%: batches redone",
               "scale-shards": "2 processes (torchrun, gloo) vs 1: results"})
#: the scale item's lines (:mod:`.scale`)
SCALE_KEYS = ("scale-time", "scale-memory", "scale-files", "scale-resume", "scale-shards")
KEYS = ("naive", "cache", "overhead", "pipeline", "memory", "startup")
#: what ``--items`` chooses from (``metrics`` = items 1-3, measured from one set of runs) ...
ITEMS = ("metrics", "pipeline", "memory", "startup")
#: ... and what is measured only when named: minutes of captioning on a CPU; the scale bench (:mod:`.scale`)
OPTIONAL_ITEMS = ("blip-spread", "scale")


@dataclass
class Measurement:
    """One line of the report: ``value`` against ``goal`` (by default the key's in :data:`GOALS`; a key
    without one is reported, never judged). ``value`` None: not measured, ``note`` says why."""

    key: str
    title: str
    value: float | None
    summary: str = ""  # one line of the underlying numbers
    note: str = ""  # why it is not available, or a caveat
    details: dict[str, Any] = field(default_factory=dict)
    goal: Goal = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.goal = self.goal or GOALS.get(self.key, Goal("info", 0.0, "x"))

    @property
    def available(self) -> bool:
        return self.value is not None and math.isfinite(self.value)

    @property
    def passed(self) -> bool | None:
        return self.goal.met(self.value) if self.available else None  # type: ignore[arg-type]

    @property
    def status(self) -> str:
        if self.goal.op == "info":
            return "" if self.available else "n/a"
        return {True: "pass", False: "miss", None: "n/a"}[self.passed]

    def value_text(self) -> str:
        if not self.available:
            return self.note or "not measured"
        v, unit = float(self.value), self.goal.unit  # type: ignore[arg-type]
        if unit != "x":
            return {"MB": f"{v:+.1f} MB", "s": f"{v:.2f} s", "pts": f"+-{v:.4f}"}.get(unit, f"{v:.3g} {unit}")
        return f"{v:.2f}x ({(v - 1) * 100:+.0f}%)" if self.key == "overhead" else f"{v:.2f}x"

    def to_dict(self) -> dict[str, Any]:
        goal = {"op": self.goal.op, "target": self.goal.target, "text": self.goal.text()}
        return {"key": self.key, "title": self.title, "value": self.value, "unit": self.goal.unit, "goal": goal,
                "status": self.status, "summary": self.summary, "note": self.note, "details": self.details}


@dataclass
class BenchReport:
    """Every measurement of one ``egobench bench`` run, with the machine it ran on; ``stages``: the
    instrumented cold run's {stage: {seconds, items, per_s}}."""

    profile: str
    device: str
    protocol: str
    n: int
    batch_size: int
    measurements: list[Measurement]
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    def __getitem__(self, key: str) -> Measurement:
        return next(m for m in self.measurements if m.key == key)

    def save(self, path: str | os.PathLike) -> Path:
        from egobench.io import atomic_write_text

        data = {k: getattr(self, k) for k in ("profile", "device", "protocol", "n", "batch_size", "wall_s")}
        data.update(measurements=[m.to_dict() for m in self.measurements], stages=self.stages,
                    environment=self.environment)
        atomic_write_text(Path(path), json.dumps(jsonable(data), indent=2) + "\n")
        return Path(path)

    def table(self) -> str:
        head = ["#", "measurement", "result", "goal", ""]
        rows = [[str(i), m.title, m.value_text(), m.goal.text(), m.status] for i, m in enumerate(self.measurements, 1)]
        widths = [max(len(r[k]) for r in [head, *rows]) for k in range(len(head))]
        env, line = self.environment, lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
        lines = [f"egobench bench: profile {self.profile}, device {self.device} ({env.get('device_name', '?')}), "
                 f"protocol {self.protocol}, N={self.n}, batch {self.batch_size}", line(head),
                 "  ".join("-" * w for w in widths)]
        for m, r in zip(self.measurements, rows):
            lines += [line(r)] + ([f"{'':<{widths[0]}}  {m.summary}"] if m.summary else [])
        if self.device.startswith("cuda") and self.stages:
            lines += ["per-stage throughput (cold run of 1):"] + [
                f"  {k:<14} {s['per_s']:10.1f} {'images' if k == 'decode' else 'samples'}/s  ({s['items']:.0f} in "
                f"{s['seconds']:.2f} s)" for k, s in self.stages.items()]
        notes = ["denormals flushed to zero"] if env.get("flush_denormal") else []
        if env.get("loadavg_start") is not None:
            notes.append(f"load average {env['loadavg_start']:.1f} -> {env.get('loadavg_end') or 0:.1f} "
                         f"on {env.get('cpu_count')} CPUs")
        notes += [f"{env['torch_threads']} torch thread(s)"] if env.get("torch_threads") else []
        notes += [f"weights: locked {env['weights_lock']}"] if env.get("weights_lock") else []
        return "\n".join(lines + ["; ".join([*notes, f"wall {self.wall_s:.0f} s"]),
                                  "random weights: timings only, no metric value here is meaningful"])


def jsonable(x: Any) -> Any:
    """``x`` with numpy numbers as Python ones, paths as text and non-finite floats as None."""
    if isinstance(x, (dict, list, tuple)):
        return {str(k): jsonable(v) for k, v in x.items()} if isinstance(x, dict) else [jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    return int(x) if isinstance(x, np.integer) else str(x) if isinstance(x, Path) else x
