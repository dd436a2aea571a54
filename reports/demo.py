"""``egobench demo``: the strongest available method on the demo split, with an HTML page.

Registered through the ``egobench.commands`` entry-point group
(``demo = "reports.demo:demo_cmd"``): the page is a report, so the command
lives with the reports and egobench itself imports no report code. Runs with
the tiny zoo (no downloads), writes an HTML page with the metrics table and an
input | output | target grid, and returns its path. The "strongest" method is
the best of the paper's order (:data:`reports.tables.PAPER_ORDER`) that is
registered; the bounds (:data:`egobench.bounds.BOUNDS`) run beside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from egobench.protocol import Protocol
    from egobench.runner import RunResult


#: samples of the demo's method that the VLM judge scores when the protocol has no judge (a few keep
#: ``make demo`` fast: the judge generates up to max_new_tokens per answer)
JUDGE_SAMPLES = 4
#: the protocol whose judge the demo uses when its own protocol has none
JUDGE_PROTOCOL = "egobench-v2"


@dataclass
class DemoResult:
    page: Path
    runs: list[RunResult]
    judge: RunResult | None = None


def _bound_names() -> list[str]:
    from egobench.bounds import BOUNDS

    return [b.name for b in BOUNDS]


def preference() -> tuple[str, ...]:
    """The methods the demo prefers, strongest first: the paper's order without the bounds."""
    from .tables import PAPER_ORDER

    bounds = _bound_names()
    return tuple(m for m in reversed(PAPER_ORDER) if m not in bounds)


def strongest_method() -> str:
    """The first registered method of :func:`preference`, else the first bound (input-copy)."""
    from egobench.methods import METHODS

    for name in preference():
        if name in METHODS:
            return name
    return _bound_names()[0]


def demo_protocol(proto: Protocol, steps: int) -> Protocol:
    """``proto`` with ``steps`` sampling steps: the demo's tiny random models gain nothing from 100 steps;
    the name says so (``<name>+demo<steps>steps``; reports.bounds rebuilds it from that name)."""
    import dataclasses

    return dataclasses.replace(proto, name=f"{proto.name}+demo{steps}steps",
                               generation=dataclasses.replace(proto.generation, steps=steps))


def split_judge(proto: Protocol) -> tuple[Protocol, Protocol | None]:
    """``(runs' protocol, judge's protocol)``: the demo's runs score every metric but the VLM judge, which
    scores only a few images (``judge_samples``) under the protocol's own judge settings, or
    :data:`JUDGE_PROTOCOL`'s when it has none (the judge's settings are protocol data)."""
    import dataclasses

    from egobench.protocol import load_protocol

    judge = tuple(m for m in proto.metrics if m.metric == "vlm-judge")
    if judge:
        proto = dataclasses.replace(proto, metrics=tuple(m for m in proto.metrics if m.metric != "vlm-judge"))
    else:
        judge = tuple(m for m in load_protocol(JUDGE_PROTOCOL).metrics if m.metric == "vlm-judge")
    return proto, (dataclasses.replace(proto, name=f"{proto.name}+judge", metrics=judge) if judge else None)


def demo(
    *,
    method: str | None = None,
    protocol: str = "egobench-v2",
    runs_dir: str | os.PathLike = "runs",
    out: str | os.PathLike | None = None,
    limit: int | None = None,
    steps: int | None = 10,
    progress: bool = True,
    judge_samples: int = JUDGE_SAMPLES,
) -> DemoResult:
    """``egobench demo``: ``method`` (default: the strongest available) and the bounds on the demo
    split with the tiny zoo, an HTML page of them and the full report of their tables under ``<out>/tables``
    (egobench-v2: the paper's metrics, the action-faithfulness table with its ceiling, floor and input-copy
    rows). The VLM judge (the protocol's, else :data:`JUDGE_PROTOCOL`'s) scores the method's first
    ``judge_samples`` images (an evaluation of the run's images folder: nothing is generated again; 0: none)."""
    import torch

    from egobench.protocol import load_protocol
    from egobench.runner import evaluate, run

    from .cli import write_report
    from .html import render_runs

    # the tiny zoo's random weights produce denormal floats that make CPU kernels
    # crawl; flushing them changes only values below ~1e-38
    torch.set_flush_denormal(True)
    chosen = method or strongest_method()
    proto = load_protocol(protocol)
    if steps is not None and steps != proto.generation.steps:
        proto = demo_protocol(proto, steps)
    proto, jp = split_judge(proto)
    names = [chosen] + [m for m in _bound_names() if m != chosen]
    results = [
        run(m, "demo", protocol=proto, zoo="tiny", runs_dir=runs_dir, limit=limit, progress=progress)
        for m in names
    ]
    judged = None
    if jp is not None and judge_samples > 0:
        n = judge_samples if limit is None else min(judge_samples, limit)
        judged = evaluate(results[0].run_dir / "images", "demo", protocol=jp, limit=n, zoo="tiny",
                          runs_dir=runs_dir, name=chosen, progress=progress)
    out_dir = Path(out) if out else Path(runs_dir) / "demo" / "report"
    tables = write_report([r.run_dir for r in results], out=out_dir / "tables", formats=("html",),
                          title=f"egobench demo report: {chosen} on the demo split",
                          bounds_cache=Path(runs_dir) / "bounds")
    page = render_runs(
        [r.run_dir for r in results], out_dir, title=f"egobench demo: {chosen} on the demo split",
        grid_run=results[0].run_dir,
        judge_runs=[(f"{chosen} (first {len(judged.split)} samples)", judged.run_dir)] if judged else None,
        links=[("All tables (action faithfulness, intervals, input-copy marks)", "tables/index.html")]
        if (tables.out / "index.html").is_file() else None,
    )
    return DemoResult(page, results, judged)


@click.command("demo")
@click.option("--method", default=None, help="method to show (default: the strongest available)")
@click.option("--protocol", "-p", default="egobench-v2", show_default=True)
@click.option("--runs-dir", default="runs", show_default=True)
@click.option("--out", default=None, help="report folder (default: runs/demo/report)")
@click.option("--steps", type=int, default=10, show_default=True,
              help="sampling steps for the demo (the tiny random models gain nothing from the protocol's 100)")
@click.option("--judge-samples", type=int, default=JUDGE_SAMPLES, show_default=True,
              help=f"images of the method the VLM judge (the protocol's, else {JUDGE_PROTOCOL}'s) scores; 0: none")
@click.option("--quiet", is_flag=True)
def demo_cmd(method, protocol, runs_dir, out, steps, judge_samples, quiet):
    """Run the strongest available method on the demo split (tiny zoo) and write an HTML page."""
    if judge_samples < 0:
        from egobench.errors import UserError

        raise UserError(f"--judge-samples {judge_samples}: give 0 or more")
    res = demo(method=method, protocol=protocol, runs_dir=runs_dir, out=out, steps=steps, progress=not quiet,
               judge_samples=judge_samples)
    for r in res.runs + ([res.judge] if res.judge else []):
        click.echo(r.table())
        click.echo("")
    click.echo(f"report: {res.page.resolve()}")
