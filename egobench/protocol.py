"""Evaluation protocols: everything that moves a number, as data.

A protocol is a YAML file (shipped ones live in the top-level ``protocols``
package) parsed into typed, closed dataclasses. Unknown keys are errors. Every
result records the protocol's name, version and hash.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from .config import from_dict, to_dict
from .errors import ConfigError, UserError, unknown_name
from .io import truncate


@dataclass(frozen=True)
class GenerationSettings:
    """How methods generate and how their outputs become image files."""

    resolution: int = 256
    steps: int = 100
    scheduler: Literal["euler-ancestral", "ddim", "dpm-solver", "euler"] = "euler-ancestral"
    text_guidance: float = 7.5
    image_guidance: float = 1.5
    seed: int = 0
    # global: one RNG seeded once per run, consumed in order (the released
    #   code; noise then depends on chunking and order).
    # per-sample: seed = f(protocol seed, sample id); independent of batch
    #   size, shard count and order.
    seed_policy: Literal["global", "per-sample"] = "per-sample"
    precision: Literal["fp32", "fp16", "bf16"] = "fp16"  # on GPU; CPU always runs fp32
    # target-aspect: height = resolution, width = round(W/H * resolution) from
    #   clip metadata (falls back to the target frame's size); target: the target
    #   frame's exact size; native: whatever the method returns.
    output_size: Literal["target-aspect", "target", "native"] = "target-aspect"
    resize_filter: Literal["bicubic", "bilinear", "lanczos", "nearest"] = "bicubic"
    # How float outputs become 8-bit: minmax = per-image (x-min)/(max-min)*255
    # truncated (the released code); clamp = clip to [0,1], round.
    value_map: Literal["minmax", "clamp"] = "clamp"
    output_format: Literal["jpeg", "png"] = "png"
    jpeg_quality: int = 75
    # official: images/<clip>/<action>/<target file name> (the release's layout,
    #   readable by its metric script); flat: images/<sample_id>.<ext>
    output_layout: Literal["official", "flat"] = "flat"


@dataclass(frozen=True)
class EvaluationSettings:
    """How the metric models run.

    ``precision``: the metric models' compute type on a GPU (autocast); a CPU always runs fp32,
    and metrics whose numbers are fragile in half precision (FID's Inception statistics, PSNR)
    stay fp32 everywhere. The released metric script runs everything in fp32; reduced precision
    is faster on a GPU but moves the numbers (a protocol that sets it is not comparable with one
    that does not, and its hash says so).
    """

    precision: Literal["fp32", "fp16", "bf16"] = "fp32"


@dataclass(frozen=True)
class MetricSpec:
    """One metric column: which registered metric, with which settings."""

    name: str
    metric: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Protocol:
    name: str
    version: str
    description: str = ""
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    metrics: tuple[MetricSpec, ...] = ()
    source: str = field(default="", compare=False)

    def resolved(self) -> dict[str, Any]:
        """What the hash covers: name, version and every setting resolved through its typed
        settings, defaults included (never the description, the comments or how the YAML is spelled)."""
        where = self.source or self.name
        return {
            "name": self.name,
            "version": self.version,
            "generation": to_dict(self.generation),
            "evaluation": to_dict(self.evaluation),
            "metrics": [
                {"name": m.name, "metric": m.metric,
                 "settings": to_dict(from_dict(metric_settings_class(m.metric), m.settings,
                                               f"{where}: metrics[{i}].settings"))}
                for i, m in enumerate(self.metrics)
            ],
        }

    @functools.cached_property
    def hash(self) -> str:
        """sha256 of :meth:`resolved`: equal settings are one hash, a changed setting a new one."""
        blob = json.dumps(self.resolved(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def short_hash(self) -> str:
        return self.hash[:12]

    def record(self) -> dict[str, Any]:
        """What every result stores about its protocol."""
        return {"name": self.name, "version": self.version, "hash": self.hash}


def metric_settings_class(metric: str) -> type:
    """The typed settings of a registered metric; built-in ones without importing the metric module (torch)."""
    from .metrics.settings import BUILTIN_SETTINGS

    if metric in BUILTIN_SETTINGS:
        return BUILTIN_SETTINGS[metric]
    from .metrics import METRICS

    return METRICS.get(metric).Settings


def _shipped() -> dict[str, Any]:
    folder = resources.files("protocols")
    return {p.name[: -len(".yaml")]: p for p in folder.iterdir() if p.name.endswith(".yaml")}


def available_protocols() -> list[str]:
    return sorted(_shipped())


#: Limits on a protocol file. The shipped protocols are about 3 KB, 4 levels
#: deep, with no aliases and about 200 YAML nodes; the limits leave wide room
#: and turn a hostile file (an alias "billion laughs" bomb, 20,000-deep
#: nesting, megabytes of YAML) into a one-line error before it is composed.
MAX_PROTOCOL_BYTES = 64 * 1024
MAX_YAML_DEPTH = 32
MAX_YAML_ALIASES = 100
#: nodes after expanding every alias (what the loaded data would hold)
MAX_YAML_NODES = 10_000


def _yaml_error(source: str, event: Any, msg: str) -> ConfigError:
    mark = getattr(event, "start_mark", None)
    line = f":{mark.line + 1}" if mark is not None else ""
    return ConfigError(f"{source}{line}: {msg}")


def check_yaml_shape(text: str, source: str) -> None:
    """Refuse YAML that is too large, too deep, alias-heavy or has duplicate keys.

    One linear pass over the parser's events (PyYAML's parser keeps its own
    stack, so it does not recurse), stopped at the first limit passed; only then
    is the text composed and constructed by ``yaml.safe_load``. Alias sizes are
    counted as expanded, so a small file whose aliases multiply cannot pass. A
    key written twice in one mapping (YAML keeps only the last) is an error, as
    in split JSON. Malformed YAML is left to ``safe_load``'s own error.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_PROTOCOL_BYTES:
        raise ConfigError(
            f"{source}: protocol file is {size:,} bytes, over the limit of {MAX_PROTOCOL_BYTES:,}; "
            "a protocol is a few KB of settings"
        )
    # frame: [anchor, child count, keys seen (mappings) or None, node size so far]
    stack: list[list[Any]] = []
    open_anchors: list[str | None] = []
    sizes: dict[str, int] = {}
    nodes = aliases = 0

    def add(event: Any, n: int, *, opens: bool = False) -> None:
        """Count a child of the innermost collection expanding to ``n`` nodes."""
        nonlocal nodes
        nodes += n
        if nodes > MAX_YAML_NODES:
            raise _yaml_error(
                source, event, f"YAML expands to more than {MAX_YAML_NODES:,} nodes (aliases included); "
                "a protocol needs a few hundred"
            )
        if stack:
            stack[-1][1] += 1
            if not opens:  # a collection adds its size to its parent when it ends
                stack[-1][3] += n

    try:
        for ev in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if len(stack) >= MAX_YAML_DEPTH:
                    raise _yaml_error(source, ev, f"YAML nested deeper than {MAX_YAML_DEPTH} levels")
                if stack:
                    _check_key(source, stack[-1], ev)
                add(ev, 1, opens=True)
                stack.append([ev.anchor, 0, {} if isinstance(ev, yaml.MappingStartEvent) else None, 1])
                open_anchors.append(ev.anchor)
            elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                anchor, _, _, n = stack.pop()
                open_anchors.pop()
                if anchor is not None:
                    sizes[anchor] = n
                if stack:
                    stack[-1][3] += n
            elif isinstance(ev, yaml.ScalarEvent):
                if stack:
                    _check_key(source, stack[-1], ev)
                if ev.anchor is not None:
                    sizes[ev.anchor] = 1
                add(ev, 1)
            elif isinstance(ev, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_YAML_ALIASES:
                    raise _yaml_error(source, ev, f"more than {MAX_YAML_ALIASES} YAML aliases (*name)")
                if ev.anchor in open_anchors:
                    raise _yaml_error(source, ev, f"alias *{truncate(ev.anchor)} refers to a node that contains it")
                if stack:
                    _check_key(source, stack[-1], ev)
                add(ev, sizes.get(ev.anchor, 1))
    except yaml.YAMLError:
        return  # safe_load reports it with its line


def _check_key(source: str, frame: list[Any], ev: Any) -> None:
    """In a mapping, every other child is a key: refuse one written twice."""
    keys = frame[2]
    if keys is None or frame[1] % 2:
        return
    if isinstance(ev, yaml.ScalarEvent) and ev.value != "<<":
        if ev.value in keys:
            raise _yaml_error(
                source, ev, f"key {truncate(ev.value)!r} written twice in one mapping (first on line "
                f"{keys[ev.value]}; YAML keeps only the last): remove one"
            )
        keys[ev.value] = ev.start_mark.line + 1


def parse_protocol(text: str, source: str, *, check_metrics: bool = True) -> Protocol:
    """Parse and validate a protocol. ``check_metrics=False`` skips validating each metric's
    settings against its class (which imports the metric modules and torch): only for
    listings; every run and evaluation loads protocols fully checked."""
    check_yaml_shape(text, source)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}{line}: malformed YAML ({problem})") from None
    proto = from_dict(Protocol, data, source)
    names = [m.name for m in proto.metrics]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{source}: metric name(s) listed twice: {', '.join(dupes)}")
    # Validate each metric's settings against the metric's own typed settings.
    from .metrics import METRICS

    for i, spec in enumerate(proto.metrics):
        if not check_metrics:
            if spec.metric not in METRICS:
                METRICS.get(spec.metric)  # the one-line unknown-name error
            continue
        metric_cls = METRICS.get(spec.metric)
        metric_cls.parse_settings(spec.settings, f"{source}: metrics[{i}].settings")
    return Protocol(
        name=proto.name,
        version=proto.version,
        description=proto.description,
        generation=proto.generation,
        evaluation=proto.evaluation,
        metrics=proto.metrics,
        source=source,
    )


def load_protocol(name_or_path: str | Path, *, check_metrics: bool = True) -> Protocol:
    """A shipped protocol by name (``lego-official``) or a YAML file by path."""
    text_name = str(name_or_path)
    path = Path(text_name)
    if text_name.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise UserError(f"{path}: protocol file not found")
        return parse_protocol(_read_protocol_text(path), str(path), check_metrics=check_metrics)
    shipped = _shipped()
    if text_name not in shipped:
        raise unknown_name("protocol", text_name, shipped)
    return parse_protocol(shipped[text_name].read_text(encoding="utf-8"), f"protocols/{text_name}.yaml",
                          check_metrics=check_metrics)


def as_protocol(protocol: Protocol | str | Path) -> Protocol:
    """``protocol`` as it is when it is one already, else :func:`load_protocol` of its name or path."""
    return protocol if isinstance(protocol, Protocol) else load_protocol(protocol)


def _read_protocol_text(path: Path) -> str:
    """The file's text, refusing oversized and non-UTF-8 files with one line."""
    try:
        size = path.stat().st_size
        if size > MAX_PROTOCOL_BYTES:
            raise ConfigError(
                f"{path}: protocol file is {size:,} bytes, over the limit of {MAX_PROTOCOL_BYTES:,}; "
                "a protocol is a few KB of settings"
            )
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read protocol file ({e.strerror})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
            "save the protocol as UTF-8"
        ) from None
