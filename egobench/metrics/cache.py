"""Content-addressed, on-disk cache of metric features and scores, packed into append-only files.

A target-side feature (e.g. the EgoVLP embedding of a ground-truth frame, the Inception pool3
vector of a target, the text embedding of a description) is the same for every method scored on a
split; a run's own cache (``<run>/cache``) keeps its scores and generated-side features. Each value
is stored under a key made of

    metric name + metric version + settings + weights sha256 + the bytes of every
    input it was computed from (file content hashes, or the text itself)

so evaluating a second method computes only the generated side, and a killed evaluation resumes.

Layout: ``root/<namespace>/pack-<host>-<pid>-<random>.egbpack``, one append-only file per writing
process and namespace (a few files per metric, whatever the number of samples). Each record is
``magic, key length, value length, key, value (.npy bytes), 8-byte sha256 of key + value``, written
with one ``write`` call in append mode. Why this and not SQLite or LMDB: a sharded run's processes
(and nodes) share the run directory, often on a network file system, where SQLite's and LMDB's
locks are unreliable; a file that only its own process appends to needs no lock at all. Readers
scan every pack of a namespace once (then only what was appended since, on a miss), so a lookup is
a dict access. A record cut short by a kill, or damaged, fails its checksum: it and the rest of
that file are ignored and the values are recomputed (and appended again by the next writer).

Migration: entries of the per-key layout of egobench <= 0.1 (``root/<namespace>/<kk>/<key>.npy``)
are still read. ``EGOBENCH_NO_CACHE=1`` or ``FeatureCache(None)`` turns the cache off. Written
here: no maintained library offers a lock-free, multi-writer, append-only store of this shape.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import socket
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import safe_component

MAGIC = b"EGB1"
_HEAD = struct.Struct("<4sHI")  # magic, key length, value length
_CHECK = 8
PACK_SUFFIX = ".egbpack"


def default_cache_dir() -> Path | None:
    if os.environ.get("EGOBENCH_NO_CACHE"):
        return None
    env = os.environ.get("EGOBENCH_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "egobench" / "features"


def namespace_key(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def encode_record(key: str, value: np.ndarray) -> bytes:
    """One pack record: header, key, the value as ``.npy`` bytes, checksum."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(value), allow_pickle=False)
    k, v = key.encode(), buf.getvalue()
    return _HEAD.pack(MAGIC, len(k), len(v)) + k + v + hashlib.sha256(k + v).digest()[:_CHECK]


class _Namespace:
    """The index of one namespace: key -> (pack file, offset, length) over every pack in it."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.index: dict[str, tuple[Path, int, int]] = {}
        self.scanned: dict[Path, int] = {}  # pack -> bytes read so far
        self.broken: set[Path] = set()  # packs with a damaged record: nothing after it is trusted

    def refresh(self) -> None:
        """Read what was appended to the namespace's packs since the last refresh."""
        try:
            packs = sorted(p for p in self.folder.iterdir() if p.name.endswith(PACK_SUFFIX))
        except FileNotFoundError:
            return
        for pack in packs:
            if pack not in self.broken:
                self._scan(pack)

    def _scan(self, pack: Path) -> None:
        start = self.scanned.get(pack, 0)
        try:
            with open(pack, "rb") as f:
                f.seek(start)
                data = f.read()
        except FileNotFoundError:
            return
        pos = 0
        while pos + _HEAD.size <= len(data):
            magic, klen, vlen = _HEAD.unpack_from(data, pos)
            end = pos + _HEAD.size + klen + vlen + _CHECK
            if magic != MAGIC:
                self.broken.add(pack)
                break
            if end > len(data):
                break  # a record still being written (or cut short): read again next time
            body = data[pos + _HEAD.size: end - _CHECK]
            if hashlib.sha256(body).digest()[:_CHECK] != data[end - _CHECK: end]:
                self.broken.add(pack)
                break
            key = body[:klen].decode(errors="replace")
            self.index.setdefault(key, (pack, start + pos + _HEAD.size + klen, vlen))
            pos = end
        self.scanned[pack] = start + pos

    def read(self, key: str) -> bytes | None:
        where = self.index.get(key)
        if where is None:
            return None
        pack, offset, length = where
        try:
            with open(pack, "rb") as f:
                f.seek(offset)
                data = f.read(length)
        except FileNotFoundError:
            data = b""
        if len(data) != length:
            del self.index[key]
            return None
        return data


class FeatureCache:
    """Values keyed by content under ``root``, in append-only packs (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None):
        self.root = Path(root) if root else None
        self.hits = 0
        self.misses = 0
        self._spaces: dict[str, _Namespace] = {}
        self._writers: dict[str, Any] = {}
        self._writer_pid = os.getpid()

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def _space(self, namespace: str) -> _Namespace:
        assert self.root is not None
        space = self._spaces.get(namespace)
        if space is None:
            space = self._spaces[namespace] = _Namespace(self.root / safe_component(namespace, "cache namespace"))
            space.refresh()
        return space

    def _legacy_path(self, namespace: str, key: str) -> Path:
        assert self.root is not None
        return self.root / namespace / key[:2] / f"{key}.npy"

    @staticmethod
    def _decode(data: bytes) -> np.ndarray | None:
        try:
            return np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return None  # a damaged entry is recomputed

    def _lookup(self, namespace: str, key: str, refresh: bool) -> np.ndarray | None:
        space = self._space(namespace)
        data = space.read(key)
        if data is None and refresh:
            space.refresh()
            data = space.read(key)
        if data is not None:
            return self._decode(data)
        try:  # the per-key layout of egobench <= 0.1
            return self._decode(self._legacy_path(namespace, key).read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            return None

    def get(self, namespace: str, key: str) -> np.ndarray | None:
        if self.root is None:
            return None
        return self._lookup(namespace, key, refresh=True)

    def _writer(self, namespace: str) -> Any:
        if self._writer_pid != os.getpid():  # a forked child: never append to the parent's file
            self._writers, self._writer_pid = {}, os.getpid()
        f = self._writers.get(namespace)
        if f is None:
            space = self._space(namespace)
            space.folder.mkdir(parents=True, exist_ok=True)
            host = safe_component(socket.gethostname() or "host", "host name")[:40]
            name = f"pack-{host}-{os.getpid()}-{secrets.token_hex(4)}{PACK_SUFFIX}"
            f = self._writers[namespace] = open(space.folder / name, "ab", buffering=0)
        return f

    def put(self, namespace: str, key: str, value: np.ndarray) -> None:
        self.put_many(namespace, [(key, value)])

    def put_many(self, namespace: str, items: Sequence[tuple[str, np.ndarray]]) -> None:
        """Append values (one write per record, so a kill leaves whole records and at most one cut
        short, which readers skip)."""
        if self.root is None or not items:
            return
        f = self._writer(namespace)
        space = self._space(namespace)
        for key, value in items:
            record = encode_record(key, value)
            offset = f.seek(0, os.SEEK_END)
            f.write(record)
            klen = len(key.encode())
            pack = Path(f.name)
            space.index[key] = (pack, offset + _HEAD.size + klen, len(record) - _HEAD.size - klen - _CHECK)

    def get_or_compute(
        self,
        namespace: str,
        keys: Sequence[str],
        compute: Callable[[list[int]], Sequence[np.ndarray]],
    ) -> list[np.ndarray]:
        """Values for ``keys``; ``compute(missing_indices)`` fills the misses (one call)."""
        if self.root is None:
            out: list[np.ndarray | None] = [None] * len(keys)
        else:
            out = [self._lookup(namespace, k, refresh=False) for k in keys]
            if any(v is None for v in out):  # another process may have written them meanwhile
                self._space(namespace).refresh()
                out = [v if v is not None else self._lookup(namespace, k, refresh=False) for k, v in zip(keys, out)]
        missing = [i for i, v in enumerate(out) if v is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = compute(missing)
            if len(fresh) != len(missing):
                raise RuntimeError(f"cache fill returned {len(fresh)} values for {len(missing)} keys")
            values = [np.asarray(v) for v in fresh]
            self.put_many(namespace, [(keys[i], v) for i, v in zip(missing, values)])
            for i, v in zip(missing, values):
                out[i] = v
        return out  # type: ignore[return-value]

    def check(self) -> tuple[int, list[Path]]:
        """(whole entries that decode, packs holding a damaged record) over every namespace: a
        record cut short at the end of a pack (a kill) is not damage."""
        if self.root is None or not self.root.is_dir():
            return 0, []
        whole, damaged = 0, []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            space = _Namespace(folder)
            space.refresh()
            damaged += sorted(space.broken)
            whole += sum(self._decode(space.read(k) or b"") is not None for k in list(space.index))
            whole += sum(self._decode(p.read_bytes()) is not None for p in folder.glob("??/*.npy"))
        return whole, damaged

    def close(self) -> None:
        for f in self._writers.values():
            f.close()
        self._writers = {}

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
