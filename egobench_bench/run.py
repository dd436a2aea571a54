"""``bench()``: every chosen item in order, on one machine set-up (threads, denormals), into one report."""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import extras, memory, pipeline, suite
from .options import PROFILES, BenchOptions
from .report import BenchReport, Measurement


def _loadavg() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return None


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _environment(device: str) -> dict[str, Any]:
    import torch

    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None
    return {"torch": torch.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "torch_threads": _threads(), "device_name": name or platform.processor() or platform.machine(),
            "loadavg_start": _loadavg()}


@contextlib.contextmanager
def _machine(flush: bool, threads: int | None) -> Iterator[bool]:
    """Denormals flushed to zero (when asked; True if it took) and torch's thread count, for the run."""
    import torch

    before = torch.get_num_threads()
    flushed = torch.set_flush_denormal(True) if flush else False
    if threads:
        torch.set_num_threads(threads)
    try:
        yield flushed
    finally:
        torch.set_num_threads(before)
        if flush:
            torch.set_flush_denormal(False)  # torch's default; there is no getter


def _weights(opts: BenchOptions, proto: Any, folder: Path) -> tuple[Any, dict[str, Any]]:
    """(WeightStore, its spec for subprocesses) of the profile."""
    from egobench.weights import WeightStore

    if opts.profile == "tiny":
        return WeightStore(zoo="tiny"), {"zoo": "tiny"}
    from .stand_ins import build_full_arch_weights

    build_full_arch_weights(folder, proto, opts.progress)
    return WeightStore(zoo="real", weights_dir=folder), {"zoo": "real", "weights_dir": str(folder)}


def bench(opts: BenchOptions | None = None) -> BenchReport:
    """Take the chosen measurements (see the package docstring) and return the report; ``opts.out``
    also writes it as JSON."""
    from egobench import _compat
    from egobench.progress import Progress
    from egobench.protocol import load_protocol
    from egobench.runner import pick_device
    from egobench.shared_models import forget_shared_models

    opts = (opts or BenchOptions()).resolved()
    _compat.ensure_torchvision()
    device, chosen, proto = pick_device(opts.device), set(opts.items or ()), load_protocol(opts.protocol)
    t_start, env = time.perf_counter(), _environment(device)
    skipped = {k: Measurement.skipped(k) for k in ("naive", "cache", "overhead", "pipeline", "memory", "startup")}
    out: dict[str, Measurement] = {}
    stages: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="egobench-bench-", dir=opts.workdir)))
        env["flush_denormal"] = stack.enter_context(_machine(opts.flush_denormal and not device.startswith("cuda"),
                                                            opts.threads))
        env["torch_threads"] = _threads()
        wdir = Path(opts.weights_dir) if opts.weights_dir else tmp / "weights"
        # one line per item on stderr (start, end with its time) and a bar with rate and ETA over items
        done = Progress(len(chosen), "bench", bar=opts.progress, unit="item", log=None)
        weights: dict[str, Any] = {"zoo": "tiny"}
        if "metrics" in chosen or ("memory" in chosen and device.startswith("cuda")):
            store, weights = _weights(opts, proto, wdir)
        if "metrics" in chosen:
            from .synthetic import make_samples, write_triples

            triples = write_triples(tmp / "frames", opts.n, proto.generation.output_format)
            samples, locate = make_samples(triples, opts.n, opts.domain)
            try:
                with done.phase("metrics (items 1-3: naive, target cache, overhead)"):
                    ms, stages = suite.measure(proto, store, device, samples, locate, opts.batch_size, opts.repeats,
                                               tmp, opts.progress)
                out.update((m.key, m) for m in ms)
            finally:
                forget_shared_models()  # the next item (or caller) loads afresh; the memory goes now
            done(1)
        if "pipeline" in chosen:
            with done.phase("pipeline (lego vs diffusers InstructPix2Pix)"):
                out["pipeline"] = pipeline.measure(opts.profile, device, opts.steps, PROFILES[opts.profile]["gen_batch"],
                                                   opts.pipeline_repeats, opts.progress)
            done(1)
        if "memory" in chosen:
            note = ""
            if opts.profile == "full-arch" and not device.startswith("cuda"):
                # 1,024 samples through real-size models take hours on a CPU; the growth with N is the
                # harness's state, the models' constant footprint cancels out
                weights, note = {"zoo": "tiny"}, "tiny-zoo models (full-size models on a CPU would take hours)"
            with done.phase("memory (peak RSS at two split sizes)"):
                out["memory"] = memory.measure(opts.protocol, weights, device, opts.mem_sizes, opts.batch_size,
                                               opts.domain, tmp, env["flush_denormal"], opts.threads, opts.progress,
                                               note)
            done(1)
        if "startup" in chosen:
            with done.phase("startup (fresh processes)"):
                out["startup"] = extras.startup()
            done(1)
        if "blip-spread" in chosen:
            with done.phase("blip-spread (lego-official BLIP, 3 released-mode draws, demo split)"):
                out["blip-spread"] = extras.blip_spread(3, tmp, opts.progress)
            done(1)
        done.close()
    env["loadavg_end"] = _loadavg()
    measurements = [out.get(k, m) for k, m in skipped.items()] + ([out["blip-spread"]] if "blip-spread" in out else [])
    report = BenchReport(opts.profile, device, proto.name, opts.n, opts.batch_size, measurements, stages, env,
                         time.perf_counter() - t_start)
    if opts.out is not None:
        report.save(opts.out)
    return report
