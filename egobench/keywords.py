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
    their defaults). A keyword that is not a field (or not in ``allowed``) is a TypeError naming ``what``,
    as a misspelled argument of an ordinary function."""
    known = set(field_names(*records) if allowed is None else allowed)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"{what}() got an unexpected keyword argument {unknown[0]!r}")
    return [r(**{f.name: kwargs[f.name] for f in dataclasses.fields(r) if f.name in kwargs}) for r in records]


def takes_fields(*records: type, only: Iterable[str] | None = None) -> Callable[[F], F]:
    """Show a function's ``**kwargs`` as the records' fields (keyword-only, with their defaults and types;
    only those named in ``only`` when given)."""
    keep = None if only is None else set(only)

    def deco(fn: F) -> F:
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
                   for r in records for f in dataclasses.fields(r) if keep is None or f.name in keep]
        fn.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        return fn

    return deco
