"""What a diffusion method shows while it runs: per-sample, per-step progress, and silence.

The runner's bar counts samples (rate, ETA over the run); a diffusion method adds
one bar per pipeline call that counts denoising steps ("lego sample 3/4: 40/100
steps, 2.1 steps/s, ETA 0:28"), on stderr through :class:`egobench.progress.Progress`
(tqdm, shown on a terminal only). With ``progress`` off (``--quiet``) nothing is
shown: no step bars, and :func:`library_output` silences diffusers' and
transformers' INFO lines, their loading bars and the deprecation warnings they raise
while a method loads or samples.

The methods read ``progress`` from their ``progress`` attribute (default on), which
the runner sets from ``--quiet``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

#: warning classes libraries use for deprecations (diffusers' ``deprecate`` raises FutureWarning)
DEPRECATION_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


@contextlib.contextmanager
def library_output(quiet: bool) -> Iterator[None]:
    """While inside, with ``quiet``: diffusers / transformers log errors only, show no progress
    bars, and deprecation warnings are not shown. Everything is restored on exit."""
    if not quiet:
        yield
        return
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    saved = (dlog.get_verbosity(), tlog.get_verbosity(), dlog.is_progress_bar_enabled(),
             tlog.is_progress_bar_enabled())
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            for category in DEPRECATION_WARNINGS:
                warnings.simplefilter("ignore", category)
            yield
    finally:
        dlog.set_verbosity(saved[0])
        tlog.set_verbosity(saved[1])
        if saved[2]:
            dlog.enable_progress_bar()
        if saved[3]:
            tlog.enable_progress_bar()


class StepProgress:
    """Step bars for one ``generate`` call: :meth:`sample` opens the bar of the next pipeline
    call (one sample, or a group of them), :meth:`step` ticks it, :meth:`close` ends it."""

    def __init__(self, name: str, total_samples: int, enabled: bool):
        self.name, self.total, self.enabled = name, total_samples, enabled
        self.done = 0
        self._bar: Any = None
        self.steps_seen = 0  # every step of every call, shown or not (for tests and logs)

    def sample(self, n: int, steps: int) -> StepProgress:
        """Open the bar of a pipeline call over ``n`` samples running ``steps`` denoising steps."""
        self.close()
        first, self.done = self.done + 1, self.done + n
        which = f"{first}/{self.total}" if n == 1 else f"{first}-{self.done}/{self.total}"
        if self.enabled and steps > 0:
            from egobench.progress import Progress

            self._bar = Progress(steps, f"{self.name} sample {which}", unit="step", log=None)
        return self

    def step(self, n: int = 1) -> None:
        self.steps_seen += n
        if self._bar is not None:
            self._bar(n)

    def callback(self) -> Callable[..., dict]:
        """A diffusers ``callback_on_step_end`` that ticks this bar."""

        def on_step_end(pipe: Any, i: int, t: Any, kwargs: dict) -> dict:
            self.step()
            return {}

        return on_step_end

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
