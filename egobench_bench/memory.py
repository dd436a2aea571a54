"""Item 5: peak RSS growth of an evaluation (all the protocol's metrics) at two split sizes.

Each size runs in a fresh subprocess: peak RSS during the evaluation minus RSS just before it (after
a warm-up batch), on Linux from ``VmHWM`` reset through ``/proc/self/clear_refs``. The samples point at a
few files reused many times (the harness must still not keep per-sample images). The goal is stated for
32 -> 1,024 samples; other sizes are a smoke check, labelled so and never projected (the per-batch
transient peak varies by ~10-20 MB between identical runs, which a projection would multiply).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .report import TITLES, Measurement, jsonable

MARKER = "EGOBENCH_BENCH_MEMORY "
#: the split sizes the memory goal is stated for
GOAL_SIZES = (32, 1024)


def _status_mb(field_name: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            line = next((ln for ln in f if ln.startswith(field_name + ":")), None)
        return float(line.split()[1]) / 1024.0 if line else None  # kB -> MB
    except OSError:
        return None


def rss_mb() -> float:
    rss = _status_mb("VmRSS")
    if rss is None:
        import psutil

        rss = psutil.Process().memory_info().rss / 2**20
    return rss


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs`` 5); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_mb("VmHWM") is not None
    except OSError:
        return False


class PeakSampler:
    """Where the kernel's mark cannot be reset: RSS sampled every few milliseconds."""

    def __init__(self, interval: float = 0.005):
        self.peak, self._stop = rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: evaluate ``spec['n']`` samples and return the peak RSS growth."""
    import torch

    from egobench import _compat
    from egobench.evaluator import build_metrics, evaluate_samples
    from egobench.metrics.cache import FeatureCache
    from egobench.protocol import load_protocol
    from egobench.weights import WeightStore

    from .progress import bar
    from .synthetic import make_samples

    _compat.ensure_torchvision()
    torch.set_flush_denormal(bool(spec.get("flush_denormal")))
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    device, bs = spec["device"], spec["batch_size"]
    store = WeightStore(zoo=spec["zoo"], weights_dir=spec.get("weights_dir"))
    columns = build_metrics(load_protocol(spec["protocol"]), store, device, cache=FeatureCache(None))
    triples = [tuple(Path(p) for p in t) for t in spec["triples"]]
    samples, locate = make_samples(triples, spec["n"], spec["domain"])
    evaluate_samples(samples[:bs], locate, columns, batch_size=bs)  # untimed: lazy loads, allocator pools
    for c in columns:
        if c.metric.kind == "set":
            c.metric.reset()
    gc.collect()
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        cuda_before = torch.cuda.memory_allocated() / 2**20
    before, kernel_peak = rss_mb(), _reset_peak()
    t0 = time.perf_counter()
    with bar(len(samples), f"bench: memory, {spec['n']} samples", spec.get("progress", False), "sample",
             spec.get("bar_position")) as tick, (contextlib.nullcontext() if kernel_peak else PeakSampler()) as sampler:
        ev = evaluate_samples(samples, locate, columns, batch_size=bs, progress=tick)
    wall = time.perf_counter() - t0
    peak = _status_mb("VmHWM") if kernel_peak else sampler.peak  # type: ignore[union-attr]
    out = {"n": spec["n"], "rss_before_mb": before, "peak_mb": peak, "growth_mb": peak - before,
           "rss_after_mb": rss_mb(), "wall_s": wall, "method": "VmHWM after clear_refs" if kernel_peak else
           "sampled RSS", "n_scored": ev.n_scored,
           "fid_n": next((v.get("n") for v in ev.metrics.values() if v.get("kind") == "set"), None)}
    if cuda:
        out["cuda_peak_growth_mb"] = torch.cuda.max_memory_allocated() / 2**20 - cuda_before
    return out


def run_children(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One fresh ``python -m egobench_bench.memory SPEC`` per spec, side by side (peaks are per process,
    so running them together changes no number); their stderr (bars, errors) goes to ours."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    procs = [subprocess.Popen([sys.executable, "-m", "egobench_bench.memory", json.dumps(spec)],
                              stdout=subprocess.PIPE, stderr=None, text=True, env=env) for spec in specs]
    outs = [p.communicate()[0] for p in procs]
    results = []
    for spec, proc, out in zip(specs, procs, outs):
        line = next((ln for ln in reversed(out.splitlines()) if ln.startswith(MARKER)), None)
        if line is None:
            raise RuntimeError(f"memory subprocess for {spec['n']} samples failed (exit {proc.returncode}); "
                               "its stderr is above")
        results.append(json.loads(line[len(MARKER):]))
    return results


def measure(protocol: str, weights: dict[str, Any], device: str, sizes: tuple[int, int], batch_size: int,
            domain: str, workdir: Path, flush: bool, threads: int | None, progress: bool,
            note: str = "") -> Measurement:
    """The growth from ``sizes[0]`` to ``sizes[1]`` samples, measured at those sizes as given."""
    from egobench.protocol import load_protocol

    from .synthetic import write_triples

    title = f"{TITLES['memory']}: {sizes[0]} -> {sizes[1]} samples"
    if tuple(sizes) != GOAL_SIZES:
        title += f" (goal is for {GOAL_SIZES[0]} -> {GOAL_SIZES[1]})"
    triples = write_triples(workdir / "memory-frames", min(8, max(sizes)),
                            load_protocol(protocol).generation.output_format, seed=1)
    # side by side, each with half the cores unless told (oversubscribed OpenMP threads slow both down)
    threads = threads or max(1, (os.cpu_count() or 2) // len(sizes))
    specs = [{"n": n, "protocol": protocol, "device": device, "batch_size": batch_size, "domain": domain,
              "triples": [[str(p) for p in t] for t in triples], "flush_denormal": flush, "threads": threads,
              "progress": progress, "bar_position": i, **weights} for i, n in enumerate(sizes)]
    runs = run_children(specs)
    retained = [r["rss_after_mb"] - r["rss_before_mb"] for r in runs]
    summary = (f"peak - RSS before: {runs[0]['growth_mb']:.1f} MB at {sizes[0]}, {runs[1]['growth_mb']:.1f} MB at "
               f"{sizes[1]}; retained after: {retained[0]:.1f} / {retained[1]:.1f} MB; {runs[1]['method']}; "
               f"{runs[1]['wall_s']:.0f} s for {sizes[1]}")
    if "cuda_peak_growth_mb" in runs[1]:
        summary += f"; CUDA peak growth {runs[0]['cuda_peak_growth_mb']:.0f} / {runs[1]['cuda_peak_growth_mb']:.0f} MB"
    return Measurement("memory", title, runs[1]["growth_mb"] - runs[0]["growth_mb"],
                       summary=summary + (f"; {note}" if note else ""),
                       details={"runs": runs, "sizes": list(sizes), "goal_sizes": list(GOAL_SIZES),
                                "retained_mb": retained, "weights": weights, "distinct_files": len(triples)})


if __name__ == "__main__":
    sys.stdout.write(MARKER + json.dumps(jsonable(child(json.loads(sys.argv[1])))) + "\n")
    sys.stdout.flush()
