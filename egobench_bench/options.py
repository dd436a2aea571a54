"""What ``egobench bench`` measures and how: one typed options record; the fields made with ``option`` are
the command line (:mod:`egobench.options`), the others are for the Python API."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from egobench.errors import UserError
from egobench.options import option

from .report import ITEMS, OPTIONAL_ITEMS
from .synthetic import DOMAINS

#: per profile: n, batch_size, repeats (items 1-3, best of interleaved rounds); steps, gen_batch,
#: pipeline_repeats (item 4); mem_sizes (item 5: the tiny profile's are a smoke check, 1,024 samples
#: through the tiny zoo's real-size Inception and SqueezeNet take minutes on 2 cores)
PROFILES: dict[str, dict[str, Any]] = {
    "tiny": {"n": 16, "batch_size": 8, "repeats": 1, "steps": 4, "gen_batch": 2, "pipeline_repeats": 2,
             "mem_sizes": (16, 64)},
    "full-arch": {"n": 32, "batch_size": 8, "repeats": 1, "steps": 8, "gen_batch": 1, "pipeline_repeats": 1,
                  "mem_sizes": (32, 1024)},
}


def _listed(value: Any, convert: type, flag: str) -> tuple | None:
    """A comma-separated option's text as a tuple (a tuple passes as it is)."""
    if value is None or isinstance(value, tuple):
        return value
    try:
        return tuple(convert(x.strip()) for x in str(value).split(",") if x.strip())
    except ValueError:
        raise UserError(f"bench: {flag} expects comma-separated numbers, got {value!r}") from None


@dataclass(frozen=True)
class BenchOptions:
    """Options of one bench run; unset numbers take the profile's defaults (:meth:`resolved`)."""

    profile: str = option("tiny", choices=tuple(PROFILES),
                          help="tiny zoo (CI-safe) or real-size architectures with random weights")
    device: str = option("auto")
    n: int | None = option(None, help="samples for measurements 1-3 (default: per profile)")
    batch_size: int | None = option(None, help="evaluator batch size (default: per profile)")
    #: whose metric settings both pipelines follow; egobench-v1 by default: under lego-official FID's scipy
    #: sqrtm of a 2048 x 2048 matrix costs the same fixed tens of seconds everywhere and drowns the ratios
    protocol: str = option("egobench-v1", short="-p", help="whose metric settings are timed")
    mem_sizes: tuple[int, ...] | str | None = option(None, metavar="N1,N2", help="split sizes of the memory measurement")
    out: str | None = option(None, flag="--json", help="also write the report as JSON")
    #: where the full-arch stand-ins are built and kept for the next run (default: a temporary folder)
    weights_dir: str | None = option(None, help="build full-arch stand-ins here and reuse them next time")
    weights_lock: str | None = option(None, metavar="FILE", help="refuse any weight file whose sha256 differs "
                                      "from this lock (egobench weights lock), before measuring anything")
    items: tuple[str, ...] | str | None = option(
        None, metavar="LIST", help="comma-separated subset of metrics (items 1-3), pipeline, memory, startup (default: "
        "all of these), and, only when named, blip-spread (lego-official BLIP-B/L spread over 3 draws) and scale")
    samples: int | None = option(None, metavar="N", help="split size of the scale item (default: its own)")
    quiet: bool = option(False, is_flag=True, help="no progress bars")
    steps: int | None = None  # diffusion steps of item 4
    repeats: int | None = None  # rounds of items 1-3 and calls of item 4, best taken
    pipeline_repeats: int | None = None  # calls of item 4 (default: repeats, else the profile's)
    domain: str = "ego4d"  # ego4d (4-frame EgoVLP clips), epickitchens (16 frames) or mixed
    threads: int | None = None  # torch intra-op threads while benchmarking (subprocesses too)
    flush_denormal: bool = True  # on a CPU: random weights make denormals that slow some convs several fold
    workdir: str | None = None  # where the temporary folder goes

    @property
    def progress(self) -> bool:
        return not self.quiet

    def resolved(self) -> BenchOptions:
        """These options with the profile's defaults filled in, checked."""
        if self.profile not in PROFILES:
            raise UserError(f"unknown bench profile '{self.profile}'; use {' or '.join(PROFILES)}")
        cfg = PROFILES[self.profile]
        new = dataclasses.replace(
            self, n=int(self.n or cfg["n"]), batch_size=int(self.batch_size or cfg["batch_size"]),
            steps=int(self.steps or cfg["steps"]), repeats=int(self.repeats or cfg["repeats"]),
            pipeline_repeats=int(self.pipeline_repeats or self.repeats or cfg["pipeline_repeats"]),
            mem_sizes=_listed(self.mem_sizes, int, "--mem-sizes") or cfg["mem_sizes"],
            items=ITEMS if self.items is None else _listed(self.items, str, "--items"))
        sizes, unknown = new.mem_sizes, set(new.items) - set(ITEMS) - set(OPTIONAL_ITEMS)  # type: ignore[arg-type]
        for bad, message in (
                (new.n < 2, "--n must be at least 2 (FID needs two images per set)"),  # type: ignore[operator]
                (new.batch_size < 1, "--batch-size must be at least 1"),  # type: ignore[operator]
                (new.repeats < 1 or new.steps < 1, "repeats and steps must be at least 1"),  # type: ignore[operator]
                (new.samples is not None and new.samples < 2, "--samples must be at least 2"),
                (len(sizes) != 2 or not 0 < sizes[0] < sizes[1], f"memory sizes must be two increasing counts, got {sizes}"),
                (new.domain not in DOMAINS, f"unknown domain '{new.domain}'; use one of {', '.join(DOMAINS)}"),
                (not new.items or unknown, f"unknown item(s) {', '.join(sorted(unknown)) or '(none)'}; choose from "
                                          f"{', '.join(ITEMS + OPTIONAL_ITEMS)}")):
            if bad:
                raise UserError(f"bench: {message}")
        return new
