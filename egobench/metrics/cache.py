"""Content-addressed, on-disk cache of target-side metric features.

A target-side feature (e.g. the EgoVLP embedding of a ground-truth frame, the
Inception pool3 vector of a target, the text embedding of a description) is
the same for every method scored on a split. It is stored under a key made of

    metric name + metric version + settings + weights sha256 + the bytes of every
    input it was computed from (file content hashes, or the text itself)

so evaluating a second method computes only the generated side. Each entry is
one ``.npy`` file written atomically; concurrent writers of the same key write
the same bytes, so the last rename wins harmlessly. ``EGOBENCH_NO_CACHE=1`` or
``FeatureCache(None)`` turns it off.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write_bytes


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


class FeatureCache:
    """Per-item ``.npy`` entries under ``root/<namespace>/<kk>/<key>.npy``."""

    def __init__(self, root: str | os.PathLike | None):
        self.root = Path(root) if root else None
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def _path(self, namespace: str, key: str) -> Path:
        assert self.root is not None
        return self.root / namespace / key[:2] / f"{key}.npy"

    def get(self, namespace: str, key: str) -> np.ndarray | None:
        if self.root is None:
            return None
        p = self._path(namespace, key)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return None  # a damaged entry is recomputed and overwritten

    def put(self, namespace: str, key: str, value: np.ndarray) -> None:
        if self.root is None:
            return
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(value), allow_pickle=False)
        atomic_write_bytes(self._path(namespace, key), buf.getvalue())

    def get_or_compute(
        self,
        namespace: str,
        keys: Sequence[str],
        compute: Callable[[list[int]], Sequence[np.ndarray]],
    ) -> list[np.ndarray]:
        """Values for ``keys``; ``compute(missing_indices)`` fills the misses (one call)."""
        out: list[np.ndarray | None] = [self.get(namespace, k) for k in keys]
        missing = [i for i, v in enumerate(out) if v is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = compute(missing)
            if len(fresh) != len(missing):
                raise RuntimeError(f"cache fill returned {len(fresh)} values for {len(missing)} keys")
            for i, v in zip(missing, fresh):
                v = np.asarray(v)
                self.put(namespace, keys[i], v)
                out[i] = v
        return out  # type: ignore[return-value]
