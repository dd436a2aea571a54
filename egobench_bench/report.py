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
    unit: str  # "x", "MB", "s" or "pts"

    def met(self, value: float) -> bool | None:
        if self.op == "info":
            return None
        return value >= self.target if self.op == ">=" else value <= self.target

    def text(self) -> str:
        if self.op == "info":
            return "(reported)"
        if self.unit == "MB":
            return f"{self.op} +{self.target:.0f} MB"
        return f"{self.op} {self.target:.2f} s" if self.unit == "s" else f"{self.op} {self.target:.2f}x"


GOALS: dict[str, Goal] = {
    "naive": Goal(">=", 3.0, "x"),
    "cache": Goal(">=", 1.8, "x"),
    "overhead": Goal("<=", 1.10, "x"),
    "pipeline": Goal("<=", 1.10, "x"),
    "memory": Goal("<=", 100.0, "MB"),
    "startup": Goal("<=", 1.0, "s"),
    "blip-spread": Goal("info", 0.0, "pts"),
}
#: what ``--items`` chooses from (``metrics`` = items 1-3, measured from one set of runs)
ITEMS = ("metrics", "pipeline", "memory", "startup")
#: measured only when named (``--items blip-spread``): minutes of captioning on a CPU
OPTIONAL_ITEMS = ("blip-spread",)
TITLES = {
    "naive": "full suite: naive / egobench (cold)",
    "cache": "target cache: cold / warm",
    "overhead": "harness overhead: egobench / model forwards",
    "pipeline": "lego / diffusers InstructPix2Pix",
    "memory": "peak RSS growth",
    "startup": "CLI start (--help, --version, listings)",
    "blip-spread": "BLIP-B/L spread across released-mode draws",
}


@dataclass
class Measurement:
    """One line of the report: ``value`` against its goal (None: not measured, see ``note``)."""

    key: str
    title: str
    value: float | None
    summary: str = ""  # one line of the underlying numbers
    note: str = ""  # why it is not available, or a caveat
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def skipped(cls, key: str) -> Measurement:
        return cls(key, TITLES[key], None, note="skipped (--items)")

    @property
    def goal(self) -> Goal:
        return GOALS[self.key]

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
        if unit in ("MB", "s", "pts"):
            return {"MB": f"{v:+.1f} MB", "s": f"{v:.2f} s", "pts": f"+-{v:.4f}"}[unit]
        return f"{v:.2f}x ({(v - 1) * 100:+.0f}%)" if self.key == "overhead" else f"{v:.2f}x"

    def to_dict(self) -> dict[str, Any]:
        goal = {"op": self.goal.op, "target": self.goal.target, "text": self.goal.text()}
        return {"key": self.key, "title": self.title, "value": self.value, "unit": self.goal.unit, "goal": goal,
                "status": self.status, "summary": self.summary, "note": self.note, "details": self.details}


@dataclass
class BenchReport:
    """Every measurement of one ``egobench bench`` run, with the machine it ran on."""

    profile: str
    device: str
    protocol: str
    n: int
    batch_size: int
    measurements: list[Measurement]
    #: per-stage throughput of the instrumented cold run: {stage: {seconds, items, per_s}}
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    def __getitem__(self, key: str) -> Measurement:
        return next(m for m in self.measurements if m.key == key)

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "device": self.device, "protocol": self.protocol, "n": self.n,
                "batch_size": self.batch_size, "wall_s": self.wall_s,
                "measurements": [m.to_dict() for m in self.measurements], "stages": self.stages,
                "environment": self.environment}

    def save(self, path: str | os.PathLike) -> Path:
        from egobench.io import atomic_write_text

        path = Path(path)
        atomic_write_text(path, json.dumps(jsonable(self.to_dict()), indent=2) + "\n")
        return path

    def table(self) -> str:
        head = ["#", "measurement", "result", "goal", ""]
        rows = [[str(i), m.title, m.value_text(), m.goal.text(), m.status] for i, m in enumerate(self.measurements, 1)]
        widths = [max(len(r[k]) for r in [head, *rows]) for k in range(len(head))]
        env = self.environment
        lines = [f"egobench bench: profile {self.profile}, device {self.device} ({env.get('device_name', '?')}), "
                 f"protocol {self.protocol}, N={self.n}, batch {self.batch_size}",
                 "  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip(), "  ".join("-" * w for w in widths)]
        for m, r in zip(self.measurements, rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            if m.summary:
                lines.append(f"{'':<{widths[0]}}  {m.summary}")
        if self.device.startswith("cuda") and self.stages:
            lines.append("per-stage throughput (cold run of 1):")
            for name, st in self.stages.items():
                unit = "images" if name == "decode" else "samples"
                lines.append(f"  {name:<14} {st['per_s']:10.1f} {unit}/s  ({st['items']:.0f} in {st['seconds']:.2f} s)")
        notes = ["denormals flushed to zero"] if env.get("flush_denormal") else []
        if env.get("loadavg_start") is not None:
            notes.append(f"load average {env['loadavg_start']:.1f} -> {env.get('loadavg_end', 0):.1f} "
                         f"on {env.get('cpu_count')} CPUs")
        if env.get("torch_threads"):
            notes.append(f"{env['torch_threads']} torch thread(s)")
        lines += ["; ".join([*notes, f"wall {self.wall_s:.0f} s"]),
                  "random weights: timings only, no metric value here is meaningful"]
        return "\n".join(lines)


def jsonable(x: Any) -> Any:
    """``x`` with numpy numbers as Python ones, paths as text and non-finite floats as None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return str(x) if isinstance(x, Path) else x
