"""Typed option dataclasses as click commands: each field is one option (name, default, help in one place).

A field made with :func:`option` becomes ``--field-name`` (underscores as dashes, or ``flag``) with
the field's default; its click type follows the annotation (``int``, ``float``, ``str``, ``X | None``;
``bool`` with ``is_flag``). :func:`click_options` adds them to a command in field order (a subclass's
field made with ``after=NAME`` is listed right after option ``NAME``) and :func:`from_click` turns the
command's keyword arguments back into the dataclass, so the CLI and the Python API take the same object.
Where the command line spells a keyword differently (``--quiet`` for ``progress=False``, repeated
``-o KEY=VALUE`` for a dict), the field's ``parse`` turns the option's value into the field's.
A subclass changes an inherited option's default or help with :func:`option_like` (the rest stays
declared once, in the base). click is imported only when options are made (the records are API types).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from .errors import UserError

T = TypeVar("T")
_NO_DEFAULT = dataclasses.MISSING


def option(default: Any = _NO_DEFAULT, *, help: str | None = None, flag: str | None = None,
           short: str | None = None, choices: Sequence[str] | None = None, is_flag: bool = False,
           multiple: bool = False, metavar: str | None = None, after: str | None = None,
           parse: Callable[[Any], Any] | None = None) -> Any:
    """A dataclass field that is also a click option (no default: a required option); ``after``: the
    option it follows in ``--help`` (a subclass's own option placed among its base's); ``parse``: the
    option's value (a flag's bool, a repeated option's tuple) as the field's."""
    meta = dict(help=help, flag=flag, short=short, choices=choices, is_flag=is_flag, multiple=multiple,
                metavar=metavar, after=after, parse=parse)
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


def key_values(items: Iterable[str]) -> dict[str, Any]:
    """Repeated ``-o KEY=VALUE`` items as a dict (a value that parses as JSON is that value)."""
    opts: dict[str, Any] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep:
            raise UserError(f"--option expects KEY=VALUE, got {item!r}")
        try:
            opts[k] = json.loads(v)
        except json.JSONDecodeError:
            opts[k] = v
    return opts


def negate(value: bool) -> bool:
    """A flag that turns a field off (``--quiet`` for ``progress=False``)."""
    return not value


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


def _hints(cls: type) -> dict[str, Any]:
    """The fields' annotations as types; one naming a type imported only for type checkers is None
    (its option is a plain string)."""
    try:
        return typing.get_type_hints(cls)
    except NameError:
        pass
    names = vars(sys.modules[cls.__module__])
    hints: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        try:
            hints[f.name] = eval(f.type, names) if isinstance(f.type, str) else f.type  # noqa: S307 - annotations
        except NameError:
            hints[f.name] = None
    return hints


def _click_type(annotation: Any, choices: Sequence[str] | None) -> Any:
    """click's type for a field annotation (``X | None`` -> ``X``)."""
    import click

    if choices is not None:
        return click.Choice(list(choices))
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else str
    return annotation if annotation in (int, float) else None


def _cli_fields(records: Sequence[type], skip: Sequence[str], only: Sequence[str] | None) -> list[dataclasses.Field]:
    """The option fields of ``records``: in field order (``after`` applied), or in ``only``'s order."""
    fields = [f for r in records for f in dataclasses.fields(r) if "cli" in f.metadata and f.name not in skip]
    if only is None:
        return _ordered(fields)
    by_name = {f.name: f for f in fields}
    missing = [n for n in only if n not in by_name]
    if missing:
        raise TypeError(f"click_options: {missing[0]!r} is no option field of {[r.__name__ for r in records]}")
    return [by_name[n] for n in only]


def click_options(*records: type, skip: Sequence[str] = (), only: Sequence[str] | None = None,
                  change: Mapping[str, Mapping[str, Any]] | None = None,
                  ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator adding one click option per :func:`option` field of ``records`` (in field order; those
    in ``only``, in its order, when given; none in ``skip``). ``change``: per field, option settings of
    this command that differ from the field's (``{"batch_size": {"help": None}}``)."""
    import click

    hints: dict[str, Any] = {}
    for r in records:
        hints.update(_hints(r))
    decorators = []
    for f in _cli_fields(records, skip, only):
        meta = {**f.metadata["cli"], **(change or {}).get(f.name, {})}
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


def option_values(kwargs: Mapping[str, Any], *records: type) -> dict[str, Any]:
    """A command's keyword arguments that are fields of ``records``, each as the field's value (its
    ``parse`` applied; a name two records have: the first's): the keywords of the API call the command
    mirrors."""
    out: dict[str, Any] = {}
    for r in records:
        for f in dataclasses.fields(r):
            if f.name in kwargs and f.name not in out:
                parse = f.metadata.get("cli", {}).get("parse")
                out[f.name] = parse(kwargs[f.name]) if parse is not None else kwargs[f.name]
    return out


def from_click(cls: type[T], kwargs: dict[str, Any]) -> T:
    """``cls`` from a command's keyword arguments (multiple options arrive as tuples)."""
    return cls(**option_values(kwargs, cls))
