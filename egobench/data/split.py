"""The two data nouns: :class:`Sample` and :class:`Split`."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..io import loads_strict, sha256_file

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_id(text: str) -> str:
    """Make a stable, filename-safe identifier from arbitrary text."""
    out = _SAFE.sub("-", text).strip("-.")
    return out or "x"


@dataclass(frozen=True)
class Sample:
    """One (input frame, action) -> target frame example."""

    id: str
    dataset: str
    input_path: Path
    target_path: Path
    action: str
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def clip_id(self) -> str:
        return str(self.meta.get("clip_id", ""))

    @property
    def action_id(self) -> str:
        return str(self.meta.get("action_id", ""))

    @property
    def verb(self) -> str:
        """The action's verb: ``meta["verb"]`` (set by the loaders) or derived from ``action``."""
        return self._verb_noun()[0]

    @property
    def noun(self) -> str:
        """The action's head noun: ``meta["noun"]`` or derived from ``action`` ("" if none)."""
        return self._verb_noun()[1]

    def _verb_noun(self) -> tuple[str, str]:
        if isinstance(self.meta.get("verb"), str) and isinstance(self.meta.get("noun"), str):
            return self.meta["verb"], self.meta["noun"]
        from .actions import derive_verb_noun

        return derive_verb_noun(self.action, particle=self.meta.get("domain", self.dataset) == "epickitchens")


#: (device, inode, size, mtime_ns) -> sha256: the file itself, whatever path or link names it,
#: without resolving the path (resolving costs one lstat per path component)
_HASH_CACHE: dict[tuple[int, int, int, int], str] = {}


#: files at least this large (weights) also remember their digest on disk
PERSIST_BYTES = 16 << 20


def _persist_path() -> Path | None:
    if os.environ.get("EGOBENCH_NO_CACHE"):
        return None
    base = os.environ.get("EGOBENCH_CACHE")
    root = Path(base).expanduser() if base else Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "egobench" / "features"
    return root.parent / "digests.json" if not base else root / "digests.json"


def file_digest(path: Path) -> str:
    """sha256 of a file, memoised on (device, inode, size, mtime); large files on disk too."""
    st = os.stat(path)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _HASH_CACHE:
        return _HASH_CACHE[key]
    store = _persist_path() if st.st_size >= PERSIST_BYTES else None
    table: dict = {}
    skey = f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}" if store is not None else ""
    if store is not None and store.is_file():
        try:
            table = loads_strict(store.read_text(), str(store))
        except (UserError, ValueError, OSError):
            table = {}  # a damaged cache is rebuilt, never trusted
        if not isinstance(table, dict):
            table = {}
        if isinstance(table.get(skey), str):
            _HASH_CACHE[key] = table[skey]
            return table[skey]
    digest = sha256_file(path)
    _HASH_CACHE[key] = digest
    if store is not None:
        from ..io import atomic_write_json

        table[skey] = digest
        atomic_write_json(store, table)
    return digest


@dataclass
class Split:
    """A named list of samples with a content fingerprint.

    The fingerprint hashes the split's source files (JSON, metadata) and the
    bytes of every frame it references, so two splits with the same fingerprint
    score the same images against the same targets.
    """

    name: str
    samples: Sequence[Sample]
    sources: Sequence[Path] = ()
    root: Path | None = None
    _fingerprint: str | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    def by_id(self) -> dict[str, Sample]:
        return {s.id: s for s in self.samples}

    def head(self, n: int | None) -> Split:
        """The first ``n`` samples (the whole split when ``n`` is None)."""
        if n is None or n >= len(self.samples):
            return self
        return Split(self.name, list(self.samples[:n]), self.sources, self.root)

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(f"split:{self.name}\n".encode())
            for src in self.sources:
                h.update(f"source:{Path(src).name}:{file_digest(Path(src))}\n".encode())
            for s in self.samples:
                h.update(
                    f"{s.id}\t{s.action}\t{s.description}\t"
                    f"{file_digest(s.input_path)}\t{file_digest(s.target_path)}\n".encode()
                )
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    @property
    def short_fingerprint(self) -> str:
        return self.fingerprint[:12]
