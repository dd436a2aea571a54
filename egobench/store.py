"""Run directories: layout, lock, manifest and environment record.

::

    runs/<dataset>/<protocol>/<method>/<run_id>/
        manifest.json   method config, protocol, versions, git commit, environment, artifacts, seeds
        images/         one file per sample (atomic writes; a killed run resumes)
        failures/       <sample_id>.json for samples whose generation failed
        samples.parquet per-sample rows (status, seed, metric values)
        metrics.json    aggregate numbers with protocol record
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import platform
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import UserError

PACKAGES = (
    "torch", "torchvision", "numpy", "pillow", "pandas", "pyarrow", "lpips", "diffusers",
    "transformers", "accelerate", "open_clip_torch", "torch-fidelity", "scikit-image", "av",
)


def short_hash(obj: Any, n: int = 10) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


@contextlib.contextmanager
def run_lock(run_dir: Path, rank: int = 0) -> Iterator[None]:
    """Hold an exclusive lock on a run directory (two writers would collide).

    Each process of a sharded run holds its own rank's lock.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    lock_path = run_dir / (".lock" if rank == 0 else f".lock-rank{rank}")
    with open(lock_path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{run_dir}: another egobench process is using this run directory") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


#: names egobench itself creates in a run directory; anything else means the
#: folder is not (only) a run directory and is never written into
RUN_DIR_NAMES = frozenset({
    "manifest.json", "metrics.json", "samples.parquet", "images", "failures", "logs", "cache", "study",
})


def _owned(name: str) -> bool:
    return name in RUN_DIR_NAMES or name.startswith((".lock", ".tmp-egobench-"))


def claim_run_dir(run_dir: Path, identity: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """Check what ``run_dir`` holds before a command writes results into it.

    The one gate for every command that writes a run directory (``run``,
    ``evaluate``, ``ablate``'s runs): a folder holding a run with another
    identity (another method, protocol, data, sample selection, weights or
    image folder) is refused, and so is a non-empty folder that is not an
    egobench run directory (an images folder, a home directory). Returns the
    previous manifest when the folder holds this same run (a resume), else
    None. Call it with the run lock held.
    """
    manifest_path = run_dir / "manifest.json"
    if manifest_path.is_file():
        from .io import read_json

        previous = read_json(manifest_path)
        if not isinstance(previous, dict):
            raise UserError(f"{manifest_path}: not an egobench manifest; choose another --out")
        prev_identity = previous.get("identity")
        if prev_identity != identity:
            what = previous.get("method", {}).get("name") if isinstance(previous.get("method"), dict) else None
            held = f"a run of '{what}'" if what else "a run"
            raise UserError(
                f"{run_dir}: holds {held} with a different identity ({_identity_diff(prev_identity, identity)}); "
                f"this {kind} would replace its results: choose another --out or remove that folder"
            )
        return previous
    if run_dir.is_dir():
        foreign = sorted(p.name for p in run_dir.iterdir() if not _owned(p.name))
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise UserError(
                f"{run_dir}: not an egobench run directory (holds {shown}); "
                f"give --out an empty or new folder for this {kind}"
            )
    return None


def _identity_diff(old: Any, new: dict[str, Any]) -> str:
    if not isinstance(old, dict):
        return "no identity recorded"
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return "differs in " + ", ".join(keys) if keys else "differs"


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent.parent
    if not (here / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        commit = out.stdout.strip() or None
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return f"{commit}{'-dirty' if dirty else ''}" if commit else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: str) -> dict[str, Any]:
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    try:
        egobench_version = metadata.version("egobench")
    except metadata.PackageNotFoundError:
        egobench_version = "unknown"
    env: dict[str, Any] = {
        "egobench": egobench_version,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": device,
        "packages": versions,
    }
    if device.startswith("cuda"):
        import torch

        env["gpu"] = torch.cuda.get_device_name(0)
    return env
