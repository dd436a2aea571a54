"""Provenance of the weights a number was made with: per-file digests, revisions, a lock file.

Every resolved artifact is recorded with the sha256 and size of each of its files (through the
digest memo, so a multi-gigabyte checkpoint is hashed once per machine), the Hugging Face repo and
snapshot commit when it came from the Hugging Face cache (the snapshot folder's name is the commit),
and whether it is ``verified``: every file matched a pin, either a digest in the artifact registry
or the entry of a weights lock. A **weights lock** (``egobench weights lock``) records exactly that
for every artifact a run would resolve; ``run``/``evaluate``/``bench --weights-lock FILE`` refuse
any file whose digest differs, so two labs can show they scored with the same weights. Its short
hash is what report footers print ("weights: locked <hash>"). Written here: no library pins a set
of model files across sources (open_clip checks one download at a time).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DataError, UserError

LOCK_FORMAT = 1
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def file_record(path: Path) -> dict[str, Any]:
    """sha256 (memoised on the file's identity) and size of one file."""
    from .data.split import file_digest

    return {"sha256": file_digest(path), "size": path.stat().st_size}


def snapshot_revision(folder: Path) -> str | None:
    """The commit of a Hugging Face cache snapshot folder (``.../snapshots/<commit>/...``), else None."""
    parts = Path(folder).parts
    for i, part in enumerate(parts[:-1]):
        if part == "snapshots" and _COMMIT.match(parts[i + 1]):
            return parts[i + 1]
    return None


def artifact_record(resolved: Any, artifact: Any, lock: WeightsLock | None = None) -> dict[str, Any]:
    """What a manifest stores about one resolved artifact: path, origin, each file's digest and
    size, source repo and revision when known, and whether every file matched a pin (``verified``,
    with ``pinned_by``: lock | registry) or not (``unverified``)."""
    files = {f: file_record(resolved.path / f) for f in artifact.files if (resolved.path / f).is_file()}
    out: dict[str, Any] = {"path": str(resolved.path), "origin": resolved.origin, "tiny": resolved.tiny,
                           "files": files, "sha256": {f: r["sha256"] for f, r in files.items()}}
    if artifact.hf_repo:
        out["hf_repo"] = artifact.hf_repo
    revision = snapshot_revision(resolved.path) or getattr(artifact, "revision", None)
    if revision:
        out["revision"] = revision
    pins = lock.pins(artifact.name) if lock is not None else None
    source = "lock" if pins is not None else "registry"
    if pins is None:
        pins = dict(getattr(artifact, "sha256", {}) or {})
    complete = bool(files) and len(files) == len(artifact.files) and all(f in pins for f in artifact.files)
    ok = complete and all(pins[f] == files[f]["sha256"] for f in artifact.files)
    out["verified"] = "verified" if ok else "unverified"
    if ok:
        out["pinned_by"] = source
    return out


def verify_download(artifact: Any, folder: Path) -> list[str]:
    """Files of a fresh download whose digest differs from the registry's pin (one line each);
    files without a pin are not checked (the registry says where a digest is not known offline)."""
    bad = []
    for f, want in sorted((getattr(artifact, "sha256", {}) or {}).items()):
        p = folder / f
        if not p.is_file():
            bad.append(f"weights '{artifact.name}': {p} was not fetched")
            continue
        got = file_record(p)["sha256"]
        if got != want:
            bad.append(f"weights '{artifact.name}': {f}: expected sha256 {want}, found {got} ({p})")
    return bad


@dataclass
class WeightsLock:
    """A weights lock: artifact -> files with sha256 and size, and the repo / revision where known."""

    artifacts: dict[str, dict[str, Any]]
    source: str = ""

    @property
    def digest(self) -> str:
        blob = json.dumps(self.artifacts, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def short(self) -> str:
        return self.digest[:12]

    def pins(self, name: str) -> dict[str, str] | None:
        entry = self.artifacts.get(name)
        if entry is None:
            return None
        return {f: r["sha256"] for f, r in entry["files"].items()}

    def check(self, name: str, record: dict[str, Any]) -> None:
        """Refuse (one line) a resolved artifact that the lock names with other digests, or does not name."""
        entry = self.artifacts.get(name)
        where = f"weights lock {self.source}" if self.source else "the weights lock"
        if entry is None:
            raise UserError(f"{where}: artifact '{name}' is not in the lock; make a new lock with "
                            "'egobench weights lock' for this protocol and these methods (--artifact NAME for any other)")
        for f, want in sorted(entry["files"].items()):
            got = record.get("files", {}).get(f)
            if got is None:
                raise UserError(f"{where}: artifact '{name}', file {f}: locked sha256 {want['sha256']}, "
                                f"not found in {record.get('path')}")
            if got["sha256"] != want["sha256"]:
                raise UserError(f"{where}: artifact '{name}', file {f}: expected sha256 {want['sha256']}, "
                                f"found {got['sha256']} ({record.get('path')})")

    def to_json(self) -> dict[str, Any]:
        return {"egobench_weights_lock": LOCK_FORMAT, "digest": self.digest, "artifacts": self.artifacts}


def make_lock(records: dict[str, dict[str, Any]]) -> WeightsLock:
    """A lock from manifest-style artifact records (``artifact_record``)."""
    arts = {}
    for name, rec in sorted(records.items()):
        entry: dict[str, Any] = {"files": {f: {"sha256": r["sha256"], "size": r["size"]}
                                           for f, r in sorted(rec["files"].items())}}
        for k in ("hf_repo", "revision"):
            if rec.get(k):
                entry[k] = rec[k]
        if rec.get("tiny"):
            entry["tiny"] = True
        arts[name] = entry
    return WeightsLock(arts)


def read_lock(path: str | os.PathLike) -> WeightsLock:
    """Read a weights lock; a file that is not one is a one-line error naming it."""
    from .io import read_json

    path = Path(path)
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise UserError(f"--weights-lock {path}: file not found") from None
    ok = (isinstance(data, dict) and data.get("egobench_weights_lock") == LOCK_FORMAT
          and isinstance(data.get("artifacts"), dict))
    if ok:
        for entry in data["artifacts"].values():
            files = entry.get("files") if isinstance(entry, dict) else None
            if not isinstance(files, dict) or not all(
                    isinstance(r, dict) and isinstance(r.get("sha256"), str) and len(r["sha256"]) == 64
                    for r in files.values()):
                ok = False
                break
    if not ok:
        raise DataError(f"{path}: not an egobench weights lock (make one with 'egobench weights lock')")
    lock = WeightsLock(data["artifacts"], str(path))
    if data.get("digest") not in (None, lock.digest):
        raise DataError(f"{path}: its digest does not match its contents (edited by hand?); make it again "
                        "with 'egobench weights lock'")
    return lock


def footer(artifacts: dict[str, dict[str, Any]], lock_short: str | None = None) -> str:
    """The weights line of report and table footers."""
    if lock_short:
        return f"weights: locked {lock_short}"
    n = sum(1 for r in artifacts.values() if r.get("verified") != "verified")
    return "weights: all verified" if artifacts and not n else f"weights: {n} unverified"
