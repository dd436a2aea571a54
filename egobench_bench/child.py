"""The real ``egobench run`` in a child process, watched batch by batch (items memory and scale).

The child (``python -m egobench_bench.child TICKS ARGS...``) calls the CLI in-process and appends
``[seconds, samples evaluated, peak RSS, RSS now, peak CUDA memory]`` (MB; peaks during that batch) to
TICKS after every evaluation batch, read from the runner's own progress log, and a last row with -1
samples once the command has ended (its peak: writing the results).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_DONE = re.compile(r"^evaluate: (\d+)/(\d+) ")


def read_ticks(path: Path) -> list[list[float]]:
    try:
        return [json.loads(ln) for ln in path.read_text().splitlines() if ln.endswith("]")]
    except FileNotFoundError:
        return []


def launch(args: list[str], ticks: Path, env: dict[str, str], *, workers: int = 1, kill_at: int | None = None,
           tick: Callable[[int], None] = lambda n: None) -> dict[str, Any]:
    """``egobench ARGS`` in a child (``workers`` of them under torchrun) with ``env`` added; SIGKILLed once
    ``kill_at`` samples are evaluated. Returns {ticks, killed}; a failure raises with the child's stderr."""
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "egobench_bench.child", str(ticks), *args]
    if workers > 1:
        cmd[1:2] = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(workers), "-m"]
    errors = ticks.with_suffix(".err")
    with open(errors, "w") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    killed, seen = False, 0
    while proc.poll() is None:
        time.sleep(0.1)
        done = max((int(r[1]) for r in read_ticks(ticks)), default=0)
        tick(done - seen)
        seen = done
        if kill_at is not None and done >= kill_at and not killed:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
    if proc.returncode != 0 and not killed:
        raise RuntimeError(f"bench: 'egobench {' '.join(args[:3])} ...' failed (exit {proc.returncode}): "
                           f"{errors.read_text().strip()[-2000:]}")
    return {"ticks": read_ticks(ticks), "killed": killed}


def _peaks() -> list[float]:
    """[peak RSS, RSS now, peak CUDA memory] in MB, the peaks since the last call: on Linux the kernel's mark
    is reset through ``/proc/self/clear_refs`` (elsewhere the process's peak, never reset)."""
    import resource

    status = Path("/proc/self/status")
    fields = {ln.split(":")[0]: float(ln.split()[1]) / 1024 for ln in status.read_text().splitlines()
              if ln.startswith(("VmHWM:", "VmRSS:"))} if status.is_file() else {}
    peak = fields.get("VmHWM", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform ==
                                                                                        "darwin" else 2**10))
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    torch, cuda = sys.modules.get("torch"), 0.0
    if torch is not None and torch.cuda.is_initialized():
        cuda = torch.cuda.max_memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
    return [peak, fields.get("VmRSS", peak), cuda]


def peak_between(ticks: list[list[float]], lo: float, hi: float, col: int = 2) -> float:
    """The highest per-batch peak (RSS; ``col=4``: CUDA) of the batches that end with lo < samples <= hi (the
    closing row, -1 samples, counts as the end)."""
    end = max(t[1] for t in ticks)
    return max(t[col] for t in ticks if lo < (end + 1 if t[1] < 0 else t[1]) <= hi)


def main(ticks: Path, args: list[str]) -> None:
    import logging

    import egobench.progress as progress

    progress.LOG_EVERY_S = 0.0  # a log line (and so a tick) after every batch
    if os.environ.get("EGOBENCH_BENCH_FLUSH"):  # as the bench does: denormals of random weights slow CPU kernels
        import torch

        torch.set_flush_denormal(True)
    out = open(ticks, "a", buffering=1)

    class Ticks(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            m = _DONE.match(record.getMessage())
            if m:
                out.write(json.dumps([time.perf_counter(), int(m[1]), *_peaks()]) + "\n")

    progress.LOG.addHandler(Ticks())
    from egobench.cli import main as cli

    try:
        cli(args, prog_name="egobench", standalone_mode=False)
    finally:
        out.write(json.dumps([time.perf_counter(), -1, *_peaks()]) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
