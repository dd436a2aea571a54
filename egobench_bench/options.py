"""What ``egobench bench`` measures and how: one typed options record; the fields with flags are the CLI."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from egobench.errors import UserError

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


def _cli(*flags: str, default: Any = None, **click: Any) -> Any:
    """A field that is also a command-line option (``click`` holds the option's own settings)."""
    return field(default=default, metadata={"flags": flags, **click})


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


@dataclass(frozen=True)
class BenchOptions:
    """Options of one bench run; unset numbers take the profile's defaults (:meth:`resolved`)."""

    profile: str = _cli("--profile", default="tiny", choices=tuple(PROFILES), show_default=True,
                        help="tiny zoo (CI-safe) or real-size architectures with random weights")
    device: str = _cli("--device", default="auto", show_default=True)
    n: int | None = _cli("--n", type=int, help="samples for measurements 1-3 (default: per profile)")
    batch_size: int | None = _cli("--batch-size", type=int, help="evaluator batch size (default: per profile)")
    #: whose metric settings both pipelines follow; egobench-v1 by default: under lego-official FID's scipy
    #: sqrtm of a 2048 x 2048 matrix costs the same fixed tens of seconds everywhere and drowns the ratios
    protocol: str = _cli("--protocol", "-p", default="egobench-v1", show_default=True,
                         help="whose metric settings are timed")
    mem_sizes: tuple[int, ...] | None = _cli("--mem-sizes", metavar="N1,N2", parse=_ints,
                                             help="split sizes of the memory measurement")
    out: str | None = _cli("--json", help="also write the report as JSON")
    #: where the full-arch stand-ins are built and kept for the next run (default: a temporary folder)
    weights_dir: str | None = _cli("--weights-dir", help="build full-arch stand-ins here and reuse them next time")
    items: tuple[str, ...] | None = _cli(
        "--items", metavar="LIST", parse=_names,
        help="comma-separated subset of metrics (items 1-3), pipeline, memory, startup (default: all of these), "
             "and blip-spread (only when named: lego-official BLIP-B/L spread over 3 draws)")
    progress: bool = _cli("--quiet", default=True, flag_value=False, help="no progress bars")
    steps: int | None = None  # diffusion steps of item 4
    repeats: int | None = None  # rounds of items 1-3 and calls of item 4, best taken
    pipeline_repeats: int | None = None  # calls of item 4 (default: repeats, else the profile's)
    domain: str = "ego4d"  # ego4d (4-frame EgoVLP clips), epickitchens (16 frames) or mixed
    threads: int | None = None  # torch intra-op threads while benchmarking (subprocesses too)
    flush_denormal: bool = True  # on a CPU: random weights make denormals that slow some convs several fold
    workdir: str | None = None  # where the temporary folder goes

    def resolved(self) -> BenchOptions:
        """These options with the profile's defaults filled in, checked."""
        if self.profile not in PROFILES:
            raise UserError(f"unknown bench profile '{self.profile}'; use {' or '.join(PROFILES)}")
        cfg = PROFILES[self.profile]
        new = dataclasses.replace(
            self, n=int(self.n or cfg["n"]), batch_size=int(self.batch_size or cfg["batch_size"]),
            steps=int(self.steps or cfg["steps"]), repeats=int(self.repeats or cfg["repeats"]),
            pipeline_repeats=int(self.pipeline_repeats or self.repeats or cfg["pipeline_repeats"]),
            mem_sizes=tuple(int(x) for x in (self.mem_sizes or cfg["mem_sizes"])),
            items=tuple(ITEMS if self.items is None else self.items))
        sizes, unknown = new.mem_sizes, set(new.items) - set(ITEMS) - set(OPTIONAL_ITEMS)
        if new.n < 2:
            raise UserError("bench: --n must be at least 2 (FID needs two images per set)")
        if new.batch_size < 1:
            raise UserError("bench: --batch-size must be at least 1")
        if new.repeats < 1 or new.steps < 1:
            raise UserError("bench: repeats and steps must be at least 1")
        if len(sizes) != 2 or not 0 < sizes[0] < sizes[1]:
            raise UserError(f"bench: memory sizes must be two increasing counts, got {sizes}")
        if new.domain not in DOMAINS:
            raise UserError(f"bench: unknown domain '{new.domain}'; use one of {', '.join(DOMAINS)}")
        if not new.items or unknown:
            raise UserError(f"bench: unknown item(s) {', '.join(sorted(unknown)) or '(none)'}; "
                            f"choose from {', '.join(ITEMS + OPTIONAL_ITEMS)}")
        return new
