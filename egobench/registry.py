"""One registry primitive for methods, metrics, datasets and artifacts.

Entries are registered with a decorator (``@METHODS.register("name")``), or
lazily as a ``"module:attr"`` string so heavy back-ends import only when used,
or discovered from an entry-point group (``egobench.methods``) so outside
packages plug in without egobench importing them by name. A lookup that misses
raises a one-line :class:`~egobench.errors.UnknownNameError` with "did you
mean"; registering a name twice is an error.

Discovery (:meth:`Registry.discover`) runs once, on the first lookup or
listing: it imports the registry's *core* modules (egobench's own modules that
register on import) and then reads the entry-point group. A subclass changes
what an entry point means by overriding :meth:`Registry._add_entry_point` (the
artifact registry's entry points name modules that declare artifacts); a
plugin that cannot be loaded is recorded in :attr:`Registry.broken` and named
by the "unknown name" error instead of taking the whole table down.
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

    def __init__(self, kind: str, entry_point_group: str | None = None, core: tuple[str, ...] = ()):
        self.kind = kind
        self.entry_point_group = entry_point_group
        #: egobench's own modules that register into this table when imported (no entry point)
        self.core = tuple(core)
        #: entry points that could not be loaded: name -> "module:attr: error" (named by :meth:`unknown`)
        self.broken: dict[str, str] = {}
        self._items: dict[str, T | str] = {}
        self._origin: dict[str, str] = {}
        self._refs: dict[str, str] = {}
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
        if isinstance(obj, str):
            self._refs[name] = obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REG.register("name")`` on a class or function."""

        def deco(obj: T) -> T:
            self.add(name, obj, origin=getattr(obj, "__module__", "?"))
            return obj

        return deco

    # -- discovery ----------------------------------------------------------
    def discover(self) -> None:
        """Import the core modules, then read the entry-point group, once (objects stay lazy)."""
        if self._discovered:
            return
        # set first: a module registering while it is imported may look names up (re-entrant
        # calls see the table as it is so far instead of starting discovery again)
        self._discovered = True
        try:
            for module in self.core:
                importlib.import_module(module)
            if self.entry_point_group:
                for ep in metadata.entry_points(group=self.entry_point_group):
                    self._add_entry_point(ep)
        except BaseException:
            self._discovered = False  # the next lookup fails the same way, never on a partial table
            raise

    def _add_entry_point(self, ep: metadata.EntryPoint) -> None:
        """One entry point of the group: by default a lazy ``"module:attr"`` under the entry point's name."""
        if ep.name in self._items:
            if self._items[ep.name] == ep.value:
                return
            # Decorator registration of the same object wins silently only
            # when it comes from the very module the entry point names.
            if self._origin.get(ep.name) == ep.module:
                return
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
            raise self.unknown(name)
        meta = self._meta.get(name)
        if meta is not None and isinstance(self._items[name], str) and all(k in meta for k in keys):
            return {k: meta[k] for k in keys}
        obj = self.get(name)
        return {k: getattr(obj, k) for k in keys}

    def origin(self, name: str) -> str:
        self.get(name)
        return self._origin[name]

    def registered_from(self, name: str) -> str:
        """Where ``name`` was registered (a module, or ``entry point module:attr``), without loading it."""
        self.discover()
        if name not in self._items:
            raise self.unknown(name)
        return self._origin[name]

    def ref(self, name: str) -> str | None:
        """The ``"module:attr"`` that ``name`` was registered with lazily (also after it was loaded),
        or None for an object registered directly; nothing is imported."""
        self.discover()
        if name not in self._items:
            raise self.unknown(name)
        return self._refs.get(name)

    def unknown(self, name: str) -> UserError:
        """The one-line error for a name that is not registered ("did you mean", and the plugins that
        could not be loaded, if any)."""
        err = unknown_name(self.kind, name, self._items)
        if self.broken:
            failed = "; ".join(f"{k} ({v})" for k, v in sorted(self.broken.items()))
            err = type(err)(f"{err}; plugins that could not be loaded: {failed}")
        return err

    def get(self, name: str) -> T:
        self.discover()
        if name not in self._items:
            raise self.unknown(name)
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
