"""Typed option dataclasses as click commands: each field is one option (name, default, help in one place).

A field made with :func:`option` becomes ``--field-name`` (underscores as dashes, or ``flag``) with
the field's default; its click type follows the annotation (``int``, ``float``, ``str``, ``X | None``;
``bool`` with ``is_flag``). :func:`click_options` adds them to a command in field order and
:func:`from_click` turns the command's keyword arguments back into the dataclass, so the CLI and
the Python API take the same object.
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
           multiple: bool = False, metavar: str | None = None) -> Any:
    """A dataclass field that is also a click option (no default: a required option)."""
    meta = dict(help=help, flag=flag, short=short, choices=choices, is_flag=is_flag, multiple=multiple,
                metavar=metavar)
    if default is _NO_DEFAULT:
        return dataclasses.field(metadata={"cli": meta})
    return dataclasses.field(default=default, metadata={"cli": meta})


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
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("cli")
        if meta is None or f.name in skip:
            continue
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
