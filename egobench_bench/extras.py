"""The small items: CLI start-up time (item 6) and, when named, BLIP's spread across released-mode draws."""

from __future__ import annotations

import dataclasses
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .report import TITLES, Measurement

STARTUP_COMMANDS = (("--help",), ("--version",), ("methods",), ("metrics",), ("protocols",), ("datasets",))


def startup(repeats: int = 3) -> Measurement:
    """Wall time of the listing and help commands in a fresh process (median of ``repeats``; the
    slowest command is the value). Each runs the installed ``egobench`` entry point."""
    exe = Path(sys.executable).with_name("egobench")
    base = [str(exe)] if exe.is_file() else [sys.executable, "-m", "egobench"]
    times: dict[str, float] = {}
    for cmd in STARTUP_COMMANDS:
        runs = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            res = subprocess.run(base + list(cmd), capture_output=True, text=True, timeout=300)
            runs.append(time.perf_counter() - t0)
            if res.returncode != 0:
                return Measurement("startup", TITLES["startup"], None,
                                   note=f"'egobench {' '.join(cmd)}' failed: {res.stderr.strip()[:120]}")
        times[" ".join(cmd)] = statistics.median(runs)
    slowest = max(times, key=times.__getitem__)
    summary = ", ".join(f"{k} {v:.2f} s" for k, v in times.items())
    return Measurement("startup", TITLES["startup"], times[slowest],
                       summary=f"median of {repeats}: {summary}; slowest: {slowest}", details={"seconds": times})


def blip_spread(draws: int, workdir: Path, progress: bool, weights_lock: str | None = None) -> Measurement:
    """``lego-official``'s BLIP-B/L in released mode with ``draws`` seeds on the demo split (input-copy,
    tiny zoo): the standard deviation across draws of each column's split mean, x100. With the tiny
    zoo's text towers this is the harness working, not the real noise floor."""
    from egobench.protocol import load_protocol
    from egobench.runner import run

    proto = load_protocol("lego-official")
    specs = tuple(dataclasses.replace(m, settings={**m.settings, "draws": draws})
                  for m in proto.metrics if m.metric == "blip")
    proto = dataclasses.replace(proto, name="lego-official+blip-draws", metrics=specs)
    res = run("input-copy", "demo", protocol=proto, out=workdir / "blip-spread", zoo="tiny", progress=progress,
              weights_lock=weights_lock)
    stds = {n: float(res.metrics[n].get("draw_std", float("nan"))) * float(res.metrics[n].get("display_scale", 1.0))
            for n in ("blip-b", "blip-l")}
    summary = ", ".join(f"{n} +-{v:.4f}" for n, v in stds.items())
    return Measurement("blip-spread", TITLES["blip-spread"], max(stds.values()),
                       summary=f"{draws} draws (seeds 42..{41 + draws}) on the demo split, x100: {summary}; "
                       "tiny-zoo text towers (not the real noise floor)", details={"std_x100": stds, "draws": draws})
