"""``egobench bench``: the command, its options derived from :class:`BenchOptions`' fields."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import click

from .options import BenchOptions

_CLICK_KEYS = ("type", "metavar", "help", "show_default", "flag_value")


def _option(f: dataclasses.Field) -> Callable[[Any], Any]:
    """The click option of one flagged field (``parse``: text -> value, a bad text is a usage error)."""
    md, kw = f.metadata, {k: f.metadata[k] for k in _CLICK_KEYS if k in f.metadata}
    if "choices" in md:
        kw["type"] = click.Choice(list(md["choices"]))
    if "parse" in md:
        def callback(ctx: click.Context, param: click.Parameter, value: str | None, parse=md["parse"]) -> Any:
            try:
                return parse(value) if value else None
            except ValueError:
                raise click.BadParameter(f"expects {param.metavar}, got {value!r}") from None

        kw["callback"] = callback
    return click.option(*md["flags"], f.name, default=f.default, is_flag="flag_value" in md, **kw)


def with_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with one click option per flagged field of :class:`BenchOptions`, in field order."""
    for f in reversed([f for f in dataclasses.fields(BenchOptions) if "flags" in f.metadata]):
        fn = _option(f)(fn)
    return fn


@click.command("bench")
@with_options
def bench_cmd(**options: Any) -> None:
    """Speed and memory of the harness, each as a ratio next to its goal."""
    from .run import bench

    click.echo(bench(BenchOptions(**options)).table())
