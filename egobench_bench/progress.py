"""Progress bars like the runner's (stderr, rate and ETA, gone when done); nothing when quiet."""

from __future__ import annotations

from typing import Any


def bar(total: int, desc: str, enabled: bool, unit: str = "sample") -> Any:
    """A context manager giving ``tick(n)``: :class:`egobench.progress.Progress` without a log."""
    from egobench.progress import Progress

    return Progress(total, desc, bar=enabled, unit=unit, log=None)
