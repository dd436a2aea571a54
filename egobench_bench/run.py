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
from .options import BenchOptions
from .progress import bar
from .report import ITEMS, KEYS, OPTIONAL_ITEMS, TITLES, BenchReport, Measurement

PHASES = {"metrics": "metrics (items 1-3: naive, target cache, overhead)",
          "pipeline": "pipeline (lego vs diffusers InstructPix2Pix)", "memory": "memory (peak RSS at two split sizes)",
          "startup": "startup (fresh processes)", "scale": "scale (egobench run at N samples)",
          "blip-spread": "blip-spread (lego-official BLIP, 3 released-mode draws, demo split)"}


def _loadavg() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def _machine(flush: bool, threads: int | None) -> Iterator[bool]:
    """Denormals flushed to zero (when asked; True if it took) and torch's thread count, for the run."""
    import torch

    before = torch.get_num_threads()
    flushed = torch.set_flush_denormal(True) if flush else False
    torch.set_num_threads(threads or before)
    try:
        yield flushed
    finally:
        torch.set_num_threads(before)
        if flush:
            torch.set_flush_denormal(False)  # torch's default; there is no getter


def _weights(opts: BenchOptions, proto: Any, folder: Path) -> tuple[Any, dict[str, Any]]:
    """(WeightStore of the profile, its spec for subprocesses) with every artifact the bench loads resolved:
    a missing one, or with ``--weights-lock`` a different one, ends the bench in one line before it measures."""
    from egobench.metrics import METRICS
    from egobench.provenance import read_lock
    from egobench.weights import WeightStore, build_full_arch_zoo

    lock = read_lock(opts.weights_lock) if opts.weights_lock else None
    domains = ["ego4d", "epickitchens"] if opts.domain == "mixed" else [opts.domain]
    names: list[str] = []
    for i, spec in enumerate(proto.metrics):
        cls = METRICS.get(spec.metric)
        names += cls.artifacts_for(cls.parse_settings(spec.settings, f"{proto.source}: metrics[{i}].settings"), domains)
    names = list(dict.fromkeys(names))
    spec: dict[str, Any] = {"zoo": "tiny"} if opts.profile == "tiny" else {"zoo": "real", "weights_dir": str(folder)}
    if opts.profile != "tiny":  # real-size random-weight stand-ins, kept in the folder for the next run
        with bar(len(names), "bench: full-arch weights", opts.progress, "artifact") as tick:
            build_full_arch_zoo(names, folder, tick)
    store = WeightStore(zoo=spec["zoo"], weights_dir=spec.get("weights_dir"), lock=lock)
    for name in names:
        store.resolve(name)
    return store, {**spec, **({"weights_lock": opts.weights_lock} if lock else {})}


def bench(opts: BenchOptions | None = None) -> BenchReport:
    """Take the chosen measurements (see the package docstring) and return the report; ``opts.out``
    also writes it as JSON."""
    opts = (opts or BenchOptions()).resolved()  # a bad option: one line, before anything loads
    import torch

    from egobench import _compat
    from egobench.progress import Progress
    from egobench.protocol import load_protocol
    from egobench.runner import pick_device
    from egobench.shared_models import forget_shared_models

    _compat.ensure_torchvision()
    device, proto, t_start = pick_device(opts.device), load_protocol(opts.protocol), time.perf_counter()
    cuda, chosen = device.startswith("cuda"), [k for k in ITEMS + OPTIONAL_ITEMS if k in (opts.items or ())]
    name = torch.cuda.get_device_name(torch.device(device)) if cuda else None
    env: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
                           "device_name": name or platform.processor() or platform.machine(), "loadavg_start": _loadavg()}
    out: dict[str, Measurement] = {k: Measurement(k, TITLES[k], None, note="skipped (--items)") for k in KEYS}
    extra: list[Measurement] = []
    stages: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="egobench-bench-", dir=opts.workdir)))
        env["flush_denormal"] = stack.enter_context(_machine(opts.flush_denormal and not cuda, opts.threads))
        env["torch_threads"] = torch.get_num_threads()
        weights: dict[str, Any] = {"zoo": "tiny"}
        # the full-arch memory item on a CPU uses the tiny zoo: its weights are not built for it
        if opts.weights_lock or "metrics" in chosen or ("memory" in chosen and (cuda or opts.profile == "tiny")):
            store, weights = _weights(opts, proto, Path(opts.weights_dir) if opts.weights_dir else tmp / "weights")
            env["weights_lock"] = store.lock.short if store.lock else None
        # one line per item on stderr (start, end with its time) and a bar with rate and ETA over items
        done = stack.enter_context(Progress(len(chosen), "bench", bar=opts.progress, unit="item", log=None))
        for item in chosen:
            with done.phase(PHASES[item]):
                if item == "metrics":
                    from .synthetic import make_samples, write_triples

                    triples = write_triples(tmp / "frames", opts.n, proto.generation.output_format)
                    samples, locate = make_samples(triples, opts.n, opts.domain)
                    try:
                        ms, stages = suite.measure(opts, proto, store, device, samples, locate, tmp)
                    finally:
                        forget_shared_models()  # the next item (or caller) loads afresh; the memory goes now
                    out.update((m.key, m) for m in ms)
                elif item == "pipeline":
                    out["pipeline"] = pipeline.measure(opts, device)
                elif item == "memory":
                    # 1,024 samples through real-size models take hours on a CPU; the growth with N is the
                    # harness's state, the models' constant footprint cancels out
                    small = opts.profile == "full-arch" and not cuda
                    out["memory"] = memory.measure(opts, {"zoo": "tiny"} if small else weights, device, tmp,
                                                   env["flush_denormal"], "tiny-zoo models (full-size models on a "
                                                   "CPU would take hours)" if small else "")
                elif item == "startup":
                    out["startup"] = extras.startup()
                elif item == "blip-spread":
                    extra.append(extras.blip_spread(3, tmp, opts.progress, opts.weights_lock))
                elif item == "scale":
                    from .scale import measure as measure_scale

                    extra += measure_scale(opts, tmp / "scale")
            done(1)
    env["loadavg_end"] = _loadavg()
    report = BenchReport(opts.profile, device, proto.name, opts.n, opts.batch_size, [*out.values(), *extra],  # type: ignore[arg-type]
                         stages, env, time.perf_counter() - t_start)
    if opts.out is not None:
        report.save(opts.out)
    return report
