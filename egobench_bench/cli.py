"""``egobench bench``: the command, one option per :class:`BenchOptions` field made with ``option``."""

from __future__ import annotations

from typing import Any

import click

from egobench.options import click_options, from_click

from .options import BenchOptions


@click.command("bench")
@click_options(BenchOptions)
def bench_cmd(**options: Any) -> None:
    """Speed and memory of the harness, each as a ratio next to its goal."""
    from .run import bench

    click.echo(bench(from_click(BenchOptions, options)).table())
