"""The ``input-copy`` row of every table: taken from the given runs, else made once and cached.

The paper's metrics compare a generated frame with the ground truth, which shares the scene with the input,
so copying the input scores well; every table therefore shows what copying the input scores under the same
split and protocol. When the user gave no ``input-copy`` run for a (dataset, split fingerprint, protocol
hash, zoo) of the report's rows, the report runs :class:`egobench.bounds.InputCopy` through the ordinary
harness (:func:`egobench.runner.run`) into a cache folder::

    <bounds cache>/input-copy/<dataset>/<split fingerprint[:16]>-<protocol hash[:16]>-<zoo>/

The bounds cache is ``--bounds-cache`` when given, else ``$EGOBENCH_CACHE/bounds`` when that is set, else
``$XDG_CACHE_HOME/egobench/bounds`` (``~/.cache/egobench/bounds``). A later report finds the finished run
there and reads it without calling the harness; an interrupted one resumes like any run.

The protocol is rebuilt from what the row's run recorded (its protocol file or shipped name, the metrics'
recorded settings, the run's seed, the demo's step count) and used only when its hash equals the recorded
one: a row whose protocol cannot be rebuilt exactly gets a note instead of an input-copy row that was
scored differently.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egobench.errors import ConfigError, DataError, UserError
from egobench.io import safe_component, safe_join, truncate

from .tables import COPY, RunData, load_run

#: the demo's protocol name suffix (reports.demo.demo_protocol)
_DEMO_STEPS = re.compile(r"\+demo(\d+)steps$")


def default_bounds_cache() -> Path:
    """Where made bound runs live when no ``--bounds-cache`` is given (see the module docstring)."""
    env = os.environ.get("EGOBENCH_CACHE")
    if env:
        return Path(env).expanduser() / "bounds"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "egobench" / "bounds"


@dataclass(frozen=True)
class CopyKey:
    """What an input-copy row must share with a method row: dataset, samples, protocol and metric weights."""

    dataset: str
    fingerprint: str
    protocol_hash: str
    zoo: str

    def folder(self, cache: Path) -> Path:
        return safe_join(cache, COPY, safe_component(self.dataset, "dataset name"),
                         safe_component(f"{self.fingerprint[:16]}-{self.protocol_hash[:16]}-{self.zoo}", "run key"))


def copy_key(run: Any) -> CopyKey | None:
    """The key of a run (or the first run of a seed group); None without the records it needs."""
    split = run.manifest.get("split") if isinstance(run.manifest.get("split"), dict) else {}
    fp = str(split.get("fingerprint") or run.metrics.get("split_fingerprint") or "")
    h = str(run.protocol.get("hash") or "")
    zoo = str(run.manifest.get("zoo") or "")
    if not (fp and h and zoo):
        return None
    return CopyKey(run.dataset, fp, h, zoo)


# ---------------------------------------------------------------------------
# the protocol of a run, rebuilt from its records
# ---------------------------------------------------------------------------
def _bases(rec: dict[str, Any]) -> Iterator[Any]:
    from egobench.protocol import available_protocols, load_protocol

    source, name = str(rec.get("source") or ""), str(rec.get("name") or "")
    tried: set[str] = set()
    shipped = set(available_protocols())
    cands = []
    m = re.fullmatch(r"protocols/([A-Za-z0-9._-]+)\.ya?ml", source)
    if m and m.group(1) in shipped:
        cands.append(m.group(1))
    elif source and Path(source).is_file():
        cands.append(source)
    base_name = _DEMO_STEPS.sub("", name)
    if base_name in shipped:
        cands.append(base_name)
    for c in cands:
        if c in tried:
            continue
        tried.add(c)
        try:
            yield load_protocol(c)
        except (UserError, ConfigError, DataError):
            continue


def _recorded_metrics(metrics: dict[str, Any]) -> tuple | None:
    """The run's metric columns as protocol entries, from the settings metrics.json records."""
    from egobench.protocol import MetricSpec

    out = []
    for name in metrics.get("metric_order") or list(metrics.get("metrics") or {}):
        info = (metrics.get("metrics") or {}).get(name)
        if not isinstance(info, dict) or not isinstance(info.get("metric"), str) \
                or not isinstance(info.get("settings"), dict):
            return None
        out.append(MetricSpec(name=str(name), metric=info["metric"], settings=dict(info["settings"])))
    return tuple(out)


def rebuild_protocol(run: Any) -> Any | None:
    """The protocol a run was scored under, when it can be rebuilt with the recorded hash; else None."""
    from egobench.runner import with_seed

    rec = run.protocol
    want = str(rec.get("hash") or "")
    seeds = run.manifest.get("seeds") if isinstance(run.manifest.get("seeds"), dict) else {}
    seed = seeds.get("seed") if isinstance(seeds.get("seed"), int) else None
    metrics = _recorded_metrics(run.metrics)
    steps = _DEMO_STEPS.search(str(rec.get("name") or ""))
    for base in _bases(rec):
        variants = [base] + ([dataclasses.replace(base, metrics=metrics)] if metrics else [])
        for v in variants:
            if steps:
                from .demo import demo_protocol

                v = demo_protocol(v, int(steps.group(1)))
            for cand in (v, with_seed(v, seed) if seed is not None and seed != v.generation.seed else None):
                try:
                    if cand is not None and cand.hash == want:
                        return cand
                except (UserError, ConfigError, DataError):
                    continue
    return None


# ---------------------------------------------------------------------------
# finding or making the input-copy runs of a report
# ---------------------------------------------------------------------------
def _complete(folder: Path, key: CopyKey) -> RunData | None:
    """The finished input-copy run cached in ``folder`` for ``key``, or None."""
    if not (folder / "metrics.json").is_file() or not (folder / "samples.parquet").is_file():
        return None
    try:
        r = load_run(folder)
    except (UserError, DataError):
        return None
    if r.manifest.get("state") != "complete" or copy_key(r) != key or r.method != COPY:
        return None
    return r


def _split_args(run: Any) -> tuple[str | None, int | None]:
    split = run.manifest.get("split") if isinstance(run.manifest.get("split"), dict) else {}
    sel = split.get("selection") if isinstance(split.get("selection"), dict) else {}
    limit = sel.get("limit") if isinstance(sel.get("limit"), int) else None
    root = split.get("root") if isinstance(split.get("root"), str) else None
    return root, limit


def make_input_copy(run: Any, key: CopyKey, cache: Path, *, progress: bool = False) -> RunData:
    """Run input-copy through the harness for ``run``'s split and protocol into the cache (resumes)."""
    from egobench.bounds import InputCopy
    from egobench.data import load_split
    from egobench.runner import run as run_method

    if (run.manifest.get("identity") or {}).get("overrides"):
        raise UserError("its run used --weights overrides, which a run does not record fully")
    proto = rebuild_protocol(run)
    if proto is None:
        raise UserError(f"its protocol {run.protocol.get('name')} ({str(run.protocol.get('hash'))[:12]}) cannot be "
                        "rebuilt from what the run recorded")
    root, limit = _split_args(run)
    data_root = None
    for cand in ([root] if root and Path(root).is_dir() else []) + [None]:
        try:
            if load_split(key.dataset, cand, limit).fingerprint == key.fingerprint:
                data_root = cand
                break
        except (UserError, DataError, ConfigError):
            continue
    else:
        raise UserError(f"its split (fingerprint {key.fingerprint[:12]}) cannot be loaded again "
                        f"(data root {root or 'default'} moved or changed)")
    lock = (run.manifest.get("weights_lock") or {}).get("file")
    lock = lock if isinstance(lock, str) and Path(lock).is_file() else None
    folder = key.folder(cache)
    folder.parent.mkdir(parents=True, exist_ok=True)
    res = run_method(InputCopy.name, key.dataset, protocol=proto, data_root=data_root, limit=limit, out=folder,
                     zoo=key.zoo, weights_lock=lock, progress=progress)
    return load_run(res.run_dir)


@dataclass
class CopyRows:
    """The input-copy runs a report adds, and per dataset what it says about them."""

    runs: list[RunData]
    notes: dict[str, list[str]]
    made: list[Path]  # folders where the harness ran (nothing when every one was reused)


def ensure_input_copy(groups: list[Any], cache: str | os.PathLike | None = None, *,
                      make: Callable[..., RunData] = make_input_copy, progress: bool = False) -> CopyRows:
    """An input-copy run for every (dataset, split, protocol, zoo) of ``groups`` that has none among them:
    read from the cache, else made there. Failures become notes (the report still renders)."""
    cache = Path(cache) if cache is not None else default_bounds_cache()
    have = {copy_key(g) for g in groups if g.method == COPY}
    wanted: dict[CopyKey, Any] = {}
    notes: dict[str, list[str]] = {}
    for g in groups:
        if g.method == COPY:
            continue
        k = copy_key(g)
        if k is None:
            notes.setdefault(g.dataset, []).append(
                f"No input-copy row for {g.method}: its run ({g.path}) records no split fingerprint, protocol "
                "hash or zoo; give an input-copy run of the same split and protocol.")
            continue
        if k not in have:
            wanted.setdefault(k, g)
    out = CopyRows([], notes, [])
    for k, g in wanted.items():
        folder = k.folder(cache)
        found = _complete(folder, k)
        try:
            if found is None:
                print(f"egobench report: no input-copy run for split {k.fingerprint[:12]} and protocol "
                      f"{k.protocol_hash[:12]}; running it once into {folder} (later reports reuse it)",
                      file=sys.stderr)
                found = make(g, k, cache, progress=progress)
                out.made.append(found.path)
        except (UserError, DataError, ConfigError, OSError) as e:
            notes.setdefault(k.dataset, []).append(
                f"No input-copy row for protocol {g.protocol.get('name')} ({k.protocol_hash[:12]}) on split "
                f"{k.fingerprint[:12]}: {truncate(str(e), 200)}; give an input-copy run (egobench run -m {COPY}) "
                "of the same split and protocol.")
            continue
        out.runs.append(found)
        notes.setdefault(k.dataset, []).append(
            f"input-copy ({k.protocol_hash[:12]}, split {k.fingerprint[:12]}): no input-copy run was given; the "
            f"report ran it once and caches it in {found.path} (set the folder with --bounds-cache).")
    return out
