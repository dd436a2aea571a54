"""Keyword arguments declared once, as the fields of typed records.

A public function that takes many keywords (``egobench.run``, ``egobench.ablate``) takes ``**kwargs``
and turns them into its records with :func:`split_keywords`, so each keyword, its type and its default
are written in one dataclass; :func:`takes_fields` shows those fields as the function's signature
(``help()``, ``inspect.signature``).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def field_names(*records: type) -> list[str]:
    """The records' field names, in order."""
    return [f.name for r in records for f in dataclasses.fields(r)]


def split_keywords(kwargs: Mapping[str, Any], *records: type, what: str,
                   allowed: Iterable[str] | None = None) -> list[Any]:
    """One instance of each record from ``kwargs`` (each keyword a field of one of them; the rest keep
    their defaults; a name two records have goes to the first). A keyword that is not a field (or not in
    ``allowed``) is a TypeError naming ``what``, as a misspelled argument of an ordinary function."""
    known = set(field_names(*records) if allowed is None else allowed)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"{what}() got an unexpected keyword argument {unknown[0]!r}")
    out, taken = [], set()
    for r in records:
        names = [f.name for f in dataclasses.fields(r) if f.name in kwargs and f.name not in taken]
        taken.update(names)
        out.append(r(**{n: kwargs[n] for n in names}))
    return out


def takes_fields(*records: type, only: Iterable[str] | None = None) -> Callable[[F], F]:
    """Show a function's ``**kwargs`` as the records' fields (keyword-only, with their defaults and types;
    only those named in ``only`` when given; a name two records have, once: the first's)."""
    keep = None if only is None else set(only)

    def deco(fn: F) -> F:
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        fields = {f.name: f for r in reversed(records) for f in dataclasses.fields(r)
                  if keep is None or f.name in keep}  # the first record's field last, so it wins
        order = dict.fromkeys(f.name for r in records for f in dataclasses.fields(r) if f.name in fields)
        params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=fields[n].default,
                                     annotation=fields[n].type) for n in order]
        fn.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        return fn

    return deco
