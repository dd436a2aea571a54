"""Typed option dataclasses as click commands: each field is one option (name, default, help in one place).

A field made with :func:`option` becomes ``--field-name`` (underscores as dashes, or ``flag``) with
the field's default; its click type follows the annotation (``int``, ``float``, ``str``, ``X | None``;
``bool`` with ``is_flag``). :func:`click_options` adds them to a command in field order (a subclass's
field made with ``after=NAME`` is listed right after option ``NAME``) and :func:`from_click` turns the
command's keyword arguments back into the dataclass, so the CLI and the Python API take the same object.
A subclass changes an inherited option's default or help with :func:`option_like` (the rest stays
declared once, in the base).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

T = TypeVar("T")
_NO_DEFAULT = dataclasses.MISSING


def option(default: Any = _NO_DEFAULT, *, help: str | None = None, flag: str | None = None,
           short: str | None = None, choices: Sequence[str] | None = None, is_flag: bool = False,
           multiple: bool = False, metavar: str | None = None, after: str | None = None) -> Any:
    """A dataclass field that is also a click option (no default: a required option); ``after``: the
    option it follows in ``--help`` (a subclass's own option placed among its base's)."""
    meta = dict(help=help, flag=flag, short=short, choices=choices, is_flag=is_flag, multiple=multiple,
                metavar=metavar, after=after)
    if default is _NO_DEFAULT:
        return dataclasses.field(metadata={"cli": meta})
    return dataclasses.field(default=default, metadata={"cli": meta})


def option_like(cls: type, name: str, **changes: Any) -> Any:
    """Option ``name`` of ``cls`` with some settings changed (``default``, ``help``, ``choices``...): how
    a subclass states only what differs from its base's option (an overridden field keeps its place)."""
    base = {f.name: f for f in dataclasses.fields(cls)}[name]
    meta = dict(base.metadata["cli"])
    default = changes.pop("default", base.default)
    unknown = set(changes) - set(meta)
    if unknown:
        raise TypeError(f"option_like: unknown option settings {sorted(unknown)}")
    return option(default, **{**meta, **changes})


def _ordered(fields: list[dataclasses.Field]) -> list[dataclasses.Field]:
    """``fields`` in declaration order, each field with ``after`` moved right behind the option it names."""
    order = list(fields)
    for f in fields:
        anchor = f.metadata["cli"]["after"]
        if anchor is None:
            continue
        order.remove(f)
        names = [g.name for g in order]
        if anchor not in names:
            raise TypeError(f"option {f.name}: after={anchor!r} names no option")
        order.insert(names.index(anchor) + 1, f)
    return order


def _click_type(annotation: Any, choices: Sequence[str] | None) -> Any:
    """click's type for a field annotation (``X | None`` -> ``X``)."""
    if choices is not None:
        return click.Choice(list(choices))
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else str
    return annotation if annotation in (int, float) else None


def click_options(cls: type, skip: Sequence[str] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator adding one click option per :func:`option` field of ``cls`` (in field order)."""
    hints = typing.get_type_hints(cls)
    decorators = []
    for f in _ordered([f for f in dataclasses.fields(cls) if "cli" in f.metadata and f.name not in skip]):
        meta = f.metadata["cli"]
        names = [meta["flag"] or "--" + f.name.replace("_", "-")]
        if meta["short"]:
            names.append(meta["short"])
        required = f.default is _NO_DEFAULT
        kwargs: dict[str, Any] = {"help": meta["help"], "metavar": meta["metavar"]}
        if meta["is_flag"]:
            kwargs["is_flag"] = True
        elif meta["multiple"]:
            kwargs.update(multiple=True, metavar=meta["metavar"])
        else:
            kwargs["type"] = _click_type(hints[f.name], meta["choices"])
            if required:
                kwargs["required"] = True
            else:
                kwargs["default"] = f.default
                if f.default is not None:
                    kwargs["show_default"] = True
        kwargs = {k: v for k, v in kwargs.items() if v is not None or k == "default"}
        decorators.append(click.option(*names, f.name, **kwargs))

    def deco(command: Callable[..., Any]) -> Callable[..., Any]:
        for d in reversed(decorators):
            command = d(command)
        return command

    return deco


def from_click(cls: type[T], kwargs: dict[str, Any]) -> T:
    """``cls`` from a command's keyword arguments (multiple options arrive as tuples)."""
    return cls(**{f.name: kwargs[f.name] for f in dataclasses.fields(cls) if f.name in kwargs})
