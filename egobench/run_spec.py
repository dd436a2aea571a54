"""What a run is and how it works, as the keywords of :func:`egobench.run` (declared once, here).

:class:`RunSpec` is what makes the run (its protocol, data, weights, seed: the run directory's
identity comes from it) and where it goes; :class:`RunOptions` how it works through its samples.
``egobench.ablate`` passes a subset of both to each of its runs. Nothing heavy is imported here
(``egobench ablate --help`` reads this module).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import EVAL_BATCH_SIZE
from .errors import UserError

if TYPE_CHECKING:
    from .protocol import Protocol


@dataclass(frozen=True)
class RunOptions:
    """How a run works through its samples (``run --batch-size/--eval-batch-size/--keep-going/--quiet``);
    none of it is part of the run's identity: a rerun with other values resumes the same directory."""

    batch_size: int = 4  # samples per generation call
    eval_batch_size: int = EVAL_BATCH_SIZE  # samples per evaluation batch (None: EVAL_BATCH_SIZE)
    keep_going: bool = False  # record samples with corrupt frames and continue
    progress: bool = True  # bars on stderr (the run log gets progress lines either way)

    def __post_init__(self) -> None:
        if self.eval_batch_size is None:
            object.__setattr__(self, "eval_batch_size", EVAL_BATCH_SIZE)
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.eval_batch_size < 1:
            raise UserError(f"--eval-batch-size must be at least 1, got {self.eval_batch_size}")


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """What a run is and where it goes (the keywords of :func:`~egobench.runner.prepare_run`, and of
    :func:`~egobench.runner.run` with :class:`RunOptions`'s); ``prepare_run`` resolves it into a
    :class:`~egobench.runner.RunContext`."""

    protocol: str | Protocol = "lego-official"
    data_root: str | os.PathLike | None = None
    limit: int | None = None
    out: str | os.PathLike | None = None  # run directory (default: under runs_dir, named by the identity)
    runs_dir: str | os.PathLike = "runs"
    zoo: str = "auto"
    weights: dict[str, str] | Sequence[str] | None = None
    device: str = "auto"
    method_options: dict[str, Any] | None = None
    #: replaces the protocol's generation seed (the protocol hash, and so the run directory, change with it)
    seed: int | None = None
    weights_lock: str | os.PathLike | None = None
