"""Progress bars like the runner's (stderr, rate and ETA, gone when done); nothing when quiet."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def bar(total: int, desc: str, enabled: bool, unit: str = "sample",
        position: int | None = None) -> Iterator[Callable[[int], None]]:
    """A tick function ``tick(n)`` advancing a tqdm bar of ``total`` (a no-op when not ``enabled``)."""
    if not enabled or total <= 0:
        yield lambda n=1: None
        return
    from tqdm import tqdm

    t = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, disable=None, dynamic_ncols=True,
             position=position)
    try:
        yield t.update
    finally:
        t.close()
