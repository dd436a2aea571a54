"""``egobench bench``: the harness's speed and memory, each measured as a ratio next to its goal.

Items (a missed goal prints its number and "miss"; nothing is tuned to pass): 1-3 the naive pipeline,
the target cache and the harness overhead (:mod:`.suite`), 4 the LEGO pipeline against diffusers'
InstructPix2Pix (:mod:`.pipeline`), 5 the peak RSS of a real run, up to N1 samples and from N1 to N2
(:mod:`.memory`), 6 CLI start-up and, when named, BLIP's spread across draws (:mod:`.extras`) and the
harness at scale (:mod:`.scale`).
Profiles: ``tiny`` uses the tiny zoo; ``full-arch`` real-size architectures with random weights (each
artifact's ``full_arch`` builder, :func:`egobench.weights.build_full_arch_zoo`). Every timed part runs
after an untimed warm-up; on a CPU denormals are flushed to zero while benchmarking (both sides alike).
This package sits outside ``egobench``: the harness imports none of it.
"""

from __future__ import annotations

from .options import BenchOptions
from .report import BenchReport

__all__ = ["BenchOptions", "BenchReport", "bench"]


def bench(opts: BenchOptions | None = None) -> BenchReport:
    """Take the chosen measurements and return the report (imported on call: ``--help`` stays light)."""
    from .run import bench as run_bench

    return run_bench(opts)
