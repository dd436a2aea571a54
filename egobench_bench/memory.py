"""Item 5: peak RSS growth of an evaluation (all the protocol's metrics) at two split sizes.

Each size runs in a fresh subprocess: peak RSS during the evaluation minus RSS just before it (after
a warm-up batch), on Linux from ``VmHWM`` reset through ``/proc/self/clear_refs``. The samples point at a
few files reused many times (the harness must still not keep per-sample images). The goal is stated for
32 -> 1,024 samples; other sizes are a smoke check, labelled so and never projected (the per-batch
transient peak varies by ~10-20 MB between identical runs, which a projection would multiply).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .clock import sync
from .progress import bar
from .report import TITLES, Measurement, jsonable

MARKER = "EGOBENCH_BENCH_MEMORY "
#: the split sizes the memory goal is stated for
GOAL_SIZES = (32, 1024)


def _status_mb(key: str) -> float | None:
    """A ``/proc/self/status`` field in MB (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            return next((float(ln.split()[1]) / 1024.0 for ln in f if ln.startswith(key + ":")), None)
    except OSError:
        return None


def rss_mb() -> float:
    rss = _status_mb("VmRSS")
    if rss is None:
        import psutil

        rss = psutil.Process().memory_info().rss / 2**20
    return rss


class Peak:
    """Peak RSS while inside: the kernel's mark reset through ``/proc/self/clear_refs`` (Linux), else RSS
    sampled every 5 ms by a thread."""

    def __enter__(self) -> Peak:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.kernel = _status_mb("VmHWM") is not None
        except OSError:
            self.kernel = False
        self.method, self.peak = ("VmHWM after clear_refs", 0.0) if self.kernel else ("sampled RSS", rss_mb())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        if not self.kernel:
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self.kernel:
            self.peak = _status_mb("VmHWM") or 0.0
        else:
            self._thread.join()
            self.peak = max(self.peak, rss_mb())


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: evaluate ``spec['n']`` samples and return the peak RSS growth."""
    import torch

    from egobench import _compat
    from egobench.evaluator import build_metrics, evaluate_samples
    from egobench.metrics.cache import FeatureCache
    from egobench.protocol import load_protocol
    from egobench.provenance import read_lock
    from egobench.weights import WeightStore

    from .synthetic import make_samples

    _compat.ensure_torchvision()
    torch.set_flush_denormal(bool(spec.get("flush_denormal")))
    torch.set_num_threads(int(spec.get("threads") or torch.get_num_threads()))
    device, bs, lock = spec["device"], spec["batch_size"], spec.get("weights_lock")
    store = WeightStore(zoo=spec["zoo"], weights_dir=spec.get("weights_dir"), lock=read_lock(lock) if lock else None)
    columns = build_metrics(load_protocol(spec["protocol"]), store, device, cache=FeatureCache(None))
    samples, locate = make_samples([tuple(Path(p) for p in t) for t in spec["triples"]], spec["n"], spec["domain"])
    evaluate_samples(samples[:bs], locate, columns, batch_size=bs)  # untimed: lazy loads, allocator pools
    for c in (c for c in columns if c.metric.kind == "set"):
        c.metric.reset()
    gc.collect()
    sync(device)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        cuda_before = torch.cuda.memory_allocated() / 2**20
    before, t0 = rss_mb(), time.perf_counter()
    with bar(len(samples), f"bench: memory, {spec['n']} samples", spec["progress"]) as tick, Peak() as peak:
        ev = evaluate_samples(samples, locate, columns, batch_size=bs, progress=tick)
    out = {"n": spec["n"], "rss_before_mb": before, "peak_mb": peak.peak, "growth_mb": peak.peak - before,
           "rss_after_mb": rss_mb(), "wall_s": time.perf_counter() - t0, "method": peak.method, "n_scored": ev.n_scored,
           "fid_n": next((v.get("n") for v in ev.metrics.values() if v.get("kind") == "set"), None)}
    if cuda:
        out["cuda_peak_growth_mb"] = torch.cuda.max_memory_allocated() / 2**20 - cuda_before
    return out


def measure(opts: Any, weights: dict[str, Any], device: str, workdir: Path, flush: bool, note: str = "") -> Measurement:
    """The growth from ``opts.mem_sizes[0]`` to ``[1]`` samples, each size in its own process, side by side
    (peaks are per process, so running them together changes no number; each gets half the cores unless told,
    as oversubscribed OpenMP threads slow both down); their stderr (bars, errors) goes to ours."""
    from egobench.protocol import load_protocol

    from .synthetic import write_triples

    sizes, title = opts.mem_sizes, f"{TITLES['memory']}: {opts.mem_sizes[0]} -> {opts.mem_sizes[1]} samples"
    title += f" (goal is for {GOAL_SIZES[0]} -> {GOAL_SIZES[1]})" if tuple(sizes) != GOAL_SIZES else ""
    triples = write_triples(workdir / "memory-frames", min(8, max(sizes)),
                            load_protocol(opts.protocol).generation.output_format, seed=1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1])] + (
        [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    procs = [subprocess.Popen([sys.executable, "-m", "egobench_bench.memory", json.dumps({
        "n": n, "protocol": opts.protocol, "device": device, "batch_size": opts.batch_size, "domain": opts.domain,
        "triples": [[str(p) for p in t] for t in triples], "flush_denormal": flush, "progress": opts.progress and
        n == sizes[-1], "threads": opts.threads or max(1, (os.cpu_count() or 2) // len(sizes)), **weights})],
        stdout=subprocess.PIPE, text=True, env=env) for n in sizes]
    runs = []
    for n, proc, out in zip(sizes, procs, [p.communicate()[0] for p in procs]):
        line = next((ln for ln in reversed(out.splitlines()) if ln.startswith(MARKER)), None)
        if line is None:
            raise RuntimeError(f"memory subprocess for {n} samples failed (exit {proc.returncode}); its stderr is above")
        runs.append(json.loads(line[len(MARKER):]))
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
