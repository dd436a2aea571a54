"""``egobench demo``: the strongest available method on the demo split.

Runs with the tiny zoo (no downloads), writes an HTML page with the metrics
table and an input | output | target grid, and returns its path. As stronger
methods land (LEGO, then the baselines) the demo picks them up by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .methods import METHODS
from .runner import RunResult, run

PREFERENCE = ("lego", "ip2p", "sdedit", "proxedit", "input-copy")


@dataclass
class DemoResult:
    page: Path
    runs: list[RunResult]


def strongest_method() -> str:
    for name in PREFERENCE:
        if name in METHODS:
            return name
    return "input-copy"


def demo(
    *,
    method: str | None = None,
    protocol: str = "egobench-v1",
    runs_dir: str | os.PathLike = "runs",
    out: str | os.PathLike | None = None,
    limit: int | None = None,
    steps: int | None = 10,
    progress: bool = True,
) -> DemoResult:
    import dataclasses

    import torch

    from reports.html import render_runs

    from .protocol import load_protocol

    # the tiny zoo's random weights produce denormal floats that make CPU kernels
    # crawl; flushing them changes only values below ~1e-38
    torch.set_flush_denormal(True)
    chosen = method or strongest_method()
    proto = load_protocol(protocol)
    if steps is not None and steps != proto.generation.steps:
        # the demo's tiny random models gain nothing from 100 steps; the name says so
        proto = dataclasses.replace(
            proto, name=f"{proto.name}+demo{steps}steps",
            generation=dataclasses.replace(proto.generation, steps=steps),
        )
    names = [chosen] + [m for m in ("input-copy", "oracle") if m != chosen]
    results = [
        run(m, "demo", protocol=proto, zoo="tiny", runs_dir=runs_dir, limit=limit, progress=progress)
        for m in names
    ]
    out_dir = Path(out) if out else Path(runs_dir) / "demo" / "report"
    page = render_runs(
        [r.run_dir for r in results], out_dir, title=f"egobench demo: {chosen} on the demo split",
        grid_run=results[0].run_dir,
    )
    return DemoResult(page, results)
