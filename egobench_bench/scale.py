"""Item scale: the harness at N samples, through the real ``egobench run`` (issue 20 item 2).

A synthetic Ego4D-layout split of N distinct tiny frames is run with ``egobench run --method input-copy
--zoo tiny`` (in a child, :mod:`.child`) under a protocol of per-sample metrics that use both caches
(PSNR, LPIPS, CLIP, EgoVLP; FID's real-size Inception costs about a second a sample on a CPU and would
hide the harness). Runs: one process (time, memory, files), the same killed with SIGKILL at 60% of its
evaluation and rerun, and ``torchrun --nproc_per_node 2`` (gloo).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from .child import launch, peak_between
from .report import TITLES, Measurement
from .synthetic import write_split

DEFAULT_SAMPLES = 2000
FRAME = (64, 36)
MEMORY_AT = 1000  # the goal compares peak RSS at N with peak RSS at this many samples
PROTOCOL = ("name: bench-scale\nversion: '1.0'\ngeneration: {seed: 0, seed_policy: per-sample, output_format: png, "
            "value_map: clamp, output_layout: flat, output_size: target}\nmetrics:\n"
            + "".join(f"  - {{name: {m}, metric: {m}}}\n" for m in ("psnr", "lpips", "clip", "egovlp")))


def _files(*folders: Path, skip: Path | None = None) -> int:
    return sum(1 for f in folders for p in f.rglob("*") if p.is_file() and (skip is None or skip not in p.parents))


def _batch_times(ticks: list[list[float]]) -> list[tuple[float, int]]:
    """(seconds per sample, samples done after it) of every batch but the first (which loads the models)."""
    return [((b[0] - a[0]) / (b[1] - a[1]), int(b[1])) for a, b in zip(ticks, ticks[1:]) if b[1] > a[1]]


def _max_diff(one: Path, two: Path) -> float:
    """The largest absolute difference of any per-sample number or metric value (inf: rows or statuses differ)."""
    import numpy as np
    import pandas as pd

    a, b = (pd.read_parquet(r / "samples.parquet") for r in (one, two))
    ma, mb = ({k: v.get("value") for k, v in json.loads((r / "metrics.json").read_text())["metrics"].items()}
              for r in (one, two))
    if any(list(a[c]) != list(b[c]) for c in ("sample_id", "status")) or set(ma) != set(mb):
        return math.inf
    cols = [c for c in a.columns if a[c].dtype.kind == "f"]
    diffs = [float(np.nanmax(np.abs(a[c].to_numpy() - b[c].to_numpy()), initial=0.0)) for c in cols]
    return max(diffs + [abs(float(ma[k]) - float(mb[k])) for k in ma if ma[k] is not None])


def measure(opts: Any, folder: Path) -> list[Measurement]:
    """Time, memory, files, resume and sharding of ``egobench run`` over ``opts.samples`` (default 2,000)."""
    from egobench.runner import pick_device

    from .progress import bar

    n, bs = int(opts.samples or DEFAULT_SAMPLES), int(opts.batch_size or 8)
    device = pick_device(opts.device)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scale.yaml").write_text(PROTOCOL)
    write_split(folder / "release", n, FRAME)
    common = ["run", "--method", "input-copy", "--dataset", "ego4d", "--data-root", str(folder / "release"),
              "--zoo", "tiny", "--protocol", str(folder / "scale.yaml"), "--device", device,
              "--eval-batch-size", str(bs), "--batch-size", str(bs), "--quiet"]
    runs: dict[str, dict[str, Any]] = {}
    flush = "1" if opts.flush_denormal and not device.startswith("cuda") else ""
    plan = (("one", {}), ("killed", {"kill_at": math.ceil(0.6 * n)}), ("resumed", {}), ("two", {"workers": 2}))
    with bar(len(plan) * n, f"bench: scale, {n} samples", opts.progress) as tick:
        for name, kw in plan:
            out = "killed" if name == "resumed" else name  # the rerun resumes the killed run's directory
            env = {"EGOBENCH_CACHE": str(folder / f"cache-{out}"), "OMP_NUM_THREADS": "1",
                   "EGOBENCH_DIST_BACKEND": "gloo", "EGOBENCH_BENCH_FLUSH": flush}
            runs[name] = launch([*common, "--out", str(folder / out)], folder / f"{name}.ticks", env, tick=tick, **kw)
    one = runs["one"]["ticks"]
    evals = [t for t in one if t[1] >= 0]
    batches = _batch_times(evals)  # medians: a burst of load from other processes moves a mean more

    def median(lo: float, hi: float) -> float:
        return statistics.median([t for t, k in batches if lo < k <= hi] or [math.nan])

    t_first, t_last = median(0, evals[0][1] + max(0.1 * n, bs)), median(min(0.9 * n, n - bs), n)
    deciles = [round(median(k * n / 10, (k + 1) * n / 10) * 1e3, 1) for k in range(10)]
    tenths = [d for d in deciles if math.isfinite(d)]
    ref = MEMORY_AT if n >= 2 * MEMORY_AT else n // 2
    at_ref, peak = peak_between(one, 0, ref), peak_between(one, ref, math.inf)
    manifest = json.loads((folder / "one" / "manifest.json").read_text())
    files = _files(folder / "one", folder / "cache-one", skip=folder / "one" / "images")
    images = _files(folder / "one" / "images")
    kept = max((int(t[1]) for t in runs["killed"]["ticks"]), default=0)
    keys_per_sample = manifest["run_cache"].get("misses", 0) / n
    resumed = json.loads((folder / "killed" / "manifest.json").read_text())["run_cache"].get("misses", 0)
    recomputed = resumed / keys_per_sample if keys_per_sample else math.nan
    redone = max(0.0, recomputed - (n - kept))
    shards, after_resume = _max_diff(folder / "one", folder / "two"), _max_diff(folder / "one", folder / "killed")

    def m(key: str, value: float | None, summary: str, **kw: Any) -> Measurement:
        return Measurement(key, kw.pop("title", TITLES[key]), value, summary, **kw)

    ms = [m("scale-time", t_last / t_first, f"median {t_first * 1e3:.1f} ms/sample in the first 10% (first batch "
            f"left out), {t_last * 1e3:.1f} in the last; per tenth {min(tenths):.0f}-{max(tenths):.0f} ms; "
            f"{evals[-1][0] - evals[0][0]:.0f} s for {n} samples", details={"deciles_ms": deciles}),
          m("scale-memory", peak - at_ref, f"per-batch peak RSS: {at_ref:.0f} MB at most up to {ref} samples (model loads "
            f"included), {peak:.0f} MB from there to {n} with the results written",
            title=TITLES["scale-memory"].replace("1,000", f"{ref:,}")),
          m("scale-files", files * 1000 / n, f"{files} files for {n} samples (and {images} output images in "
            "<run>/images, one per sample by design)"),
          m("scale-resume", redone / bs if runs["killed"]["killed"] else None, f"killed after {kept} of {n} samples; "
            f"the rerun scored {recomputed:.0f} ({redone:.0f} already scored before the kill, batch {bs}); results "
            f"differ from the uninterrupted run's by {after_resume:.3g} at most",
            note="" if runs["killed"]["killed"] else "the run finished before the kill",
            details={"kept": kept, "recomputed": recomputed, "redone_samples": redone, "max_diff": after_resume}),
          m("scale-shards", shards, "largest difference of any per-sample number or metric value")]
    for x in ms:
        x.details.update(n=n, batch_size=bs)
    return ms


