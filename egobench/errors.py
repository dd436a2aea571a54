"""Errors that reach the user as one line and exit code 2.

Anything raised as :class:`UserError` (or a subclass) is a mistake in what the
user gave us (a path, a file, a name). The CLI prints ``egobench: error: <msg>``
and exits with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A mistake in user input: printed as one line, exit code 2."""

    exit_code = 2


class DataError(UserError):
    """A split, annotation or frame file is missing or malformed."""


class ConfigError(UserError):
    """A protocol or method configuration is invalid."""


class UnknownNameError(UserError):
    """A name (method, dataset, protocol, metric, artifact) is not registered."""


class MissingArtifactError(UserError):
    """A model weight file is not available locally."""


class DiskFullError(UserError):
    """No space left where egobench writes; the message names the folder and the space needed."""


def disk_full_message(folder, needed_bytes: int | None = None) -> str:
    """One line: which folder is full, how much is free, how much more is needed (when known)."""
    import shutil

    try:
        free = shutil.disk_usage(folder).free
        free_s = f"{free / 1e6:.1f} MB free"
    except OSError:
        free_s = "free space unknown"
    need = f"; this run needs about {needed_bytes / 1e6:.1f} MB more" if needed_bytes else ""
    return (f"{folder}: no space left on the device ({free_s}{need}); free space or choose another "
            "--out / --runs-dir, then rerun the same command to resume (what was written is kept)")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> UnknownNameError:
    choices = sorted(choices)
    hint = did_you_mean(name, choices)
    listed = ", ".join(choices) if choices else "none"
    return UnknownNameError(f"unknown {kind} '{name}'{hint}; available: {listed}")
