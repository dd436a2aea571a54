"""Progress bars and run logs.

Every long step shows a tqdm bar on stderr (rate and ETA; ``--quiet`` turns it
off) and, when a run directory is logging, writes the same progress to the log
at most every :data:`LOG_EVERY_S` seconds plus once when the step ends, so a
run's log says how fast it went even when nobody watched the terminal.

:func:`run_log` attaches a file handler for the ``egobench`` logger to
``<run dir>/logs/<name>.log`` for the duration of a run (appending: a resumed
run continues the same file; one file per rank under torchrun / accelerate).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

LOG = logging.getLogger("egobench")
#: the least time between two progress lines in a log
LOG_EVERY_S = 30.0
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


class Progress:
    """``progress(n)`` after each batch of ``n`` items: a tqdm bar (when ``bar``) and log lines."""

    def __init__(self, total: int, desc: str, *, bar: bool = True, unit: str = "sample",
                 log: logging.Logger | None = LOG, clock=time.monotonic):
        self.total, self.desc, self.unit = int(total), desc, unit
        self.done = 0
        self.log = log
        self._clock = clock
        self._start = clock()
        self._last_log = self._start
        self._bar = None
        if bar and total > 0:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, disable=None,
                             dynamic_ncols=True)
        if self.log is not None and total > 0:
            self.log.info("%s: %d %ss to do", desc, total, unit)

    def line(self) -> str:
        elapsed = self._clock() - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = _duration(left) if left == left else "?"
        return (f"{self.desc}: {self.done}/{self.total} {self.unit}s, {rate:.2f} {self.unit}s/s, "
                f"elapsed {_duration(elapsed)}, ETA {eta}")

    def __call__(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        now = self._clock()
        if self.log is not None and (now - self._last_log >= LOG_EVERY_S or self.done >= self.total):
            self._last_log = now
            self.log.info(self.line())

    update = __call__

    @contextlib.contextmanager
    def phase(self, what: str) -> Iterator[None]:
        """Announce a step that has no per-item progress (e.g. FID over the whole set): a line on
        stderr when the bar is on, and in the log, when it starts and when it ends with its time."""
        start = self._clock()
        if self._bar is not None:
            self._bar.write(f"{self.desc}: {what} ...", file=sys.stderr)
        if self.log is not None:
            self.log.info("%s: %s", self.desc, what)
        yield
        took = _duration(self._clock() - start)
        if self._bar is not None:
            self._bar.write(f"{self.desc}: {what} done in {took}", file=sys.stderr)
        if self.log is not None:
            self.log.info("%s: %s done in %s", self.desc, what, took)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def run_log(run_dir: Path, name: str = "run") -> Iterator[Path]:
    """Log the ``egobench`` logger (INFO and up) to ``run_dir/logs/<name>.log`` while inside."""
    path = Path(run_dir) / "logs" / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT, "%Y-%m-%dT%H:%M:%S"))
    handler.setLevel(logging.INFO)
    before = LOG.level
    LOG.addHandler(handler)
    if LOG.level == logging.NOTSET or LOG.level > logging.INFO:
        LOG.setLevel(logging.INFO)
    try:
        yield path
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            LOG.error("stopped by the user (Ctrl-C / SIGINT)%s", f": {e}" if str(e) else "")
        elif isinstance(e, SystemExit) and not e.code:
            pass
        else:
            LOG.error("stopped by %s: %s", type(e).__name__,
                      str(e).splitlines()[0] if str(e) else "(no message; see the traceback with --debug)")
        raise
    finally:
        LOG.removeHandler(handler)
        handler.close()
        LOG.setLevel(before)
