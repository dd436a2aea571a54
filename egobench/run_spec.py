"""What a run is and how it works, as the keywords of :func:`egobench.run` (declared once, here).

:class:`RunSpec` is what makes the run (its protocol, data, weights, seed: the run directory's
identity comes from it) and where it goes; :class:`RunOptions` how it works through its samples;
:class:`EvaluateOptions` what only scoring an outside folder (:func:`egobench.evaluate`) adds.
Each field is also its command-line option (:func:`~egobench.options.option`: flag, help, and how
the option's value becomes the keyword's), so ``egobench run`` / ``evaluate`` / ``ablate`` take the
keywords of the API calls they make. ``egobench.ablate`` passes a subset of them to each of its runs.
Nothing heavy is imported here (``egobench run --help`` reads this module).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import EVAL_BATCH_SIZE
from .errors import UserError
from .options import key_values, negate, option

if TYPE_CHECKING:
    from .protocol import Protocol


@dataclass(frozen=True)
class RunOptions:
    """How a run works through its samples (``run --batch-size/--eval-batch-size/--keep-going/--quiet``);
    none of it is part of the run's identity: a rerun with other values resumes the same directory."""

    batch_size: int = option(4, help="samples per generation call")
    #: None: EVAL_BATCH_SIZE
    eval_batch_size: int = option(EVAL_BATCH_SIZE,
                                  help="samples per evaluation batch (decoded once, shared by all metrics)")
    keep_going: bool = option(False, is_flag=True, help="record samples with corrupt frames and continue")
    #: bars on stderr (the run log gets progress lines either way)
    progress: bool = option(True, flag="--quiet", is_flag=True, parse=negate, help="no progress bars")

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

    protocol: str | Protocol = option("lego-official", short="-p",
                                      help="protocol name (egobench protocols) or a YAML file")
    data_root: str | os.PathLike | None = option(None, help="LEGO release folder (default: $EGOBENCH_DATA)")
    limit: int | None = option(None, help="only the first N samples")
    #: run directory (default: under runs_dir, named by the identity)
    out: str | os.PathLike | None = option(
        None, help="run directory (default: runs/<dataset>/<protocol>/<method>/<id>)")
    runs_dir: str | os.PathLike = option("runs", help="root of default run directories")
    zoo: str = option("auto", choices=["auto", "real", "tiny"],
                      help="real weights, or the tiny random stand-ins (results marked not comparable); "
                      "auto = tiny for the synthetic demo split, real otherwise")
    #: ``{name: path}`` or ``NAME=PATH`` items
    weights: dict[str, str] | Sequence[str] | None = option(
        None, multiple=True, metavar="NAME=PATH", parse=list, help="explicit path for a weight artifact (repeatable)")
    weights_lock: str | os.PathLike | None = option(
        None, metavar="FILE", help="refuse any weight file whose sha256 differs from this lock (egobench weights lock)")
    device: str = option("auto")
    method_options: dict[str, Any] | None = option(
        None, flag="--option", short="-o", multiple=True, metavar="KEY=VALUE", parse=key_values,
        help="method option (value parsed as JSON when possible; repeatable)")
    #: replaces the protocol's generation seed (the protocol hash, and so the run directory, change with it)
    seed: int | None = option(
        None, help="replace the protocol's generation seed (its hash and the run directory change with it)")


@dataclass(frozen=True)
class EvaluateOptions:
    """What scoring a folder of outside images adds to a run's keywords (``evaluate --name/--batch-size/
    --allow-missing``); ``batch_size`` is samples per evaluation batch (None: EVAL_BATCH_SIZE)."""

    name: str | None = option(None, help="label for this method in results (default: folder name)")
    batch_size: int = option(EVAL_BATCH_SIZE, help="samples per evaluation batch")
    allow_missing: bool = option(False, is_flag=True, help="score what is there; count missing images")

    def __post_init__(self) -> None:
        if self.batch_size is None:
            object.__setattr__(self, "batch_size", EVAL_BATCH_SIZE)
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}")


#: the fields only a run that generates takes (``egobench run``'s own options, in its ``--help`` order)
GENERATION_FIELDS = ("batch_size", "eval_batch_size", "method_options", "keep_going", "seed")
#: the others: what every command that scores a split takes (``run``, ``evaluate``, ``ablate``)
COMMON_FIELDS = tuple(f.name for r in (RunSpec, RunOptions) for f in dataclasses.fields(r)
                      if f.name not in GENERATION_FIELDS)
#: the keywords of :func:`egobench.evaluate` (after ``images`` and ``dataset``)
EVALUATE_FIELDS = (*(f.name for f in dataclasses.fields(EvaluateOptions)), *COMMON_FIELDS)
