"""One registry primitive for methods, metrics, datasets and artifacts.

Entries are registered with a decorator (``@METHODS.register("name")``), or
lazily as a ``"module:attr"`` string so heavy back-ends import only when used,
or discovered from an entry-point group (``egobench.methods``) so outside
packages plug in without egobench importing them by name. A lookup that misses
raises a one-line :class:`~egobench.errors.UnknownNameError` with "did you
mean"; registering a name twice is an error.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any, Generic, TypeVar

from .errors import ConfigError, UserError, unknown_name

T = TypeVar("T")


def _import_ref(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """A named table of objects with validated, lazy lookup."""

    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._items: dict[str, T | str] = {}
        self._origin: dict[str, str] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._discovered = False

    # -- registration -------------------------------------------------------
    def add(self, name: str, obj: T | str, origin: str = "builtin", meta: dict[str, Any] | None = None) -> None:
        """Register ``obj`` (or a lazy ``"module:attr"``) under ``name``.

        ``meta``: attributes a listing shows (``egobench metrics``), so listing
        does not import the object's module (and torch with it); a test checks
        they equal the loaded object's attributes.
        """
        if meta is not None:
            self._meta[name] = dict(meta)
        if not name or any(c.isspace() for c in name):
            raise ConfigError(f"invalid {self.kind} name {name!r}")
        if name in self._items and self._items[name] is not obj:
            raise ConfigError(
                f"{self.kind} '{name}' is registered twice ({self._origin[name]} and {origin})"
            )
        self._items[name] = obj
        self._origin[name] = origin

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REG.register("name")`` on a class or function."""

        def deco(obj: T) -> T:
            self.add(name, obj, origin=getattr(obj, "__module__", "?"))
            return obj

        return deco

    # -- discovery ----------------------------------------------------------
    def discover(self) -> None:
        """Load names from the entry-point group once (objects stay lazy)."""
        if self._discovered or not self.entry_point_group:
            self._discovered = True
            return
        self._discovered = True
        for ep in metadata.entry_points(group=self.entry_point_group):
            if ep.name in self._items:
                if self._items[ep.name] == ep.value:
                    continue
                # Decorator registration of the same object wins silently only
                # when it comes from the very module the entry point names.
                if self._origin.get(ep.name) == ep.module:
                    continue
            self.add(ep.name, ep.value, origin=f"entry point {ep.value}")

    # -- lookup -------------------------------------------------------------
    def names(self) -> list[str]:
        self.discover()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def describe(self, name: str, keys: tuple[str, ...]) -> dict[str, Any]:
        """``keys`` of ``name``'s attributes, from its registration ``meta`` while it is not
        loaded (no import), else from the object itself."""
        self.discover()
        if name not in self._items:
            raise unknown_name(self.kind, name, self._items)
        meta = self._meta.get(name)
        if meta is not None and isinstance(self._items[name], str) and all(k in meta for k in keys):
            return {k: meta[k] for k in keys}
        obj = self.get(name)
        return {k: getattr(obj, k) for k in keys}

    def origin(self, name: str) -> str:
        self.get(name)
        return self._origin[name]

    def get(self, name: str) -> T:
        self.discover()
        if name not in self._items:
            raise unknown_name(self.kind, name, self._items)
        obj = self._items[name]
        if isinstance(obj, str):
            try:
                loaded = _import_ref(obj)
            except UserError:
                raise
            except Exception as e:  # a broken plugin must not look like a typo
                raise ConfigError(
                    f"{self.kind} '{name}' could not be loaded from {obj}: {type(e).__name__}: {e}"
                ) from e
            self._items[name] = loaded
            obj = loaded
        return obj  # type: ignore[return-value]
