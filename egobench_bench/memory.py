"""Item 5: peak RSS growth of ``egobench run`` (all the protocol's metrics) from N1 to N2 samples.

One ``egobench run --method input-copy`` over a synthetic split of N2 release-size frames, in a child
(:mod:`.child`): the highest per-batch peak RSS from N1 to N2 samples against the highest up to N1 (model
loads included; the once-only final step of the set metrics and the results' writing are reported apart).
Growth would be what the harness keeps per sample (it must keep no image). Per-batch peaks vary by tens
of MB from batch to batch (a tiny run: 957-1024 MB, RSS after a batch 846-905 MB, with no trend), and
the later window holds more batches, so the figure leans upward; the RSS after each batch is reported
next to it. The goal is stated for 32 -> 1,024 samples; other sizes are a smoke
check, labelled so and never projected.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .child import launch, peak_between
from .progress import bar
from .report import TITLES, Measurement
from .synthetic import FRAME_SIZE, write_split

#: the split sizes the memory goal is stated for
GOAL_SIZES = (32, 1024)


def measure(opts: Any, weights: dict[str, Any], device: str, workdir: Path, flush: bool, note: str = "") -> Measurement:
    """The peak RSS growth from ``opts.mem_sizes[0]`` to ``[1]`` samples of one run."""
    (small, n), bs = opts.mem_sizes, str(opts.batch_size)
    title = f"{TITLES['memory']}: {small} -> {n} samples"
    title += f" (goal is for {GOAL_SIZES[0]} -> {GOAL_SIZES[1]})" if (small, n) != GOAL_SIZES else ""
    write_split(workdir / "memory-split", n, FRAME_SIZE)
    args = ["run", "--method", "input-copy", "--dataset", "ego4d", "--data-root", str(workdir / "memory-split"),
            "--zoo", weights["zoo"], "--protocol", opts.protocol, "--device", device, "--eval-batch-size", bs,
            "--batch-size", bs, "--quiet", "--out", str(workdir / "memory-run")]
    args += ["--weights-lock", weights["weights_lock"]] if weights.get("weights_lock") else []
    env = {"EGOBENCH_CACHE": str(workdir / "memory-cache"), "EGOBENCH_BENCH_FLUSH": "1" if flush else "",
           "EGOBENCH_WEIGHTS": weights.get("weights_dir", ""),
           **({"OMP_NUM_THREADS": str(opts.threads)} if opts.threads else {})}
    with bar(n, f"bench: memory, {n} samples", opts.progress) as tick:
        ticks = launch(args, workdir / "memory.ticks", env, tick=tick)["ticks"]
    # the closing row is left out: the set metrics' last step (FID/KID covariances) and writing the results
    # happen once, at N2 only, and cost the same at any N; their features are kept during the batches
    batches = [t for t in ticks if t[1] >= 0]
    before, after = peak_between(batches, 0, small), peak_between(batches, small, math.inf)
    kept = next(t[3] for t in reversed(ticks) if t[1] >= 0) - next(t[3] for t in ticks if t[1] >= small)
    summary = (f"per-batch peak RSS {before:.0f} MB up to {small} samples, {after:.0f} MB from there to {n}; RSS after "
               f"a batch {kept:+.1f} MB from {small} to {n}; the final set-metric step and results writing peak at "
               f"{ticks[-1][2]:.0f} MB (once, any N)")
    if device.startswith("cuda"):
        summary += (f"; CUDA per-batch peak {peak_between(batches, 0, small, 4):.0f} -> "
                    f"{peak_between(batches, small, math.inf, 4):.0f} MB")
    return Measurement("memory", title, after - before, summary=summary + (f"; {note}" if note else ""),
                       details={"ticks": ticks, "sizes": [small, n], "goal_sizes": list(GOAL_SIZES),
                                "weights": weights, "n_scored": int(max(t[1] for t in ticks)),
                                "retained_mb": kept})
