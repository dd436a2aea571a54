"""Where a model folder given on the command line is, and what a trained folder says about itself.

``--init`` takes, in this order: an existing folder; an artifact name (``sd15``,
``ip2p-init``, ``magicbrush``); a name in ``aliases`` (the training command maps
editor presets such as ``sdxl-ip2p`` to their artifact); a Hugging Face id
``owner/name``. An id that is a registered artifact's repository resolves as that
artifact (``--weights`` override, ``$EGOBENCH_WEIGHTS``, the Hugging Face cache,
or its tiny stand-in with ``--zoo tiny``); any other id is looked up in the local
Hugging Face cache only (``snapshot_download(local_files_only=True)``): nothing
is downloaded while training. Where the folder is a Hub snapshot, its commit is
recorded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egobench.errors import MissingArtifactError, UserError
from egobench.methods import TRAINING_RECORD, benchmark_training
from egobench.weights import WeightStore

__all__ = ["TRAINING_RECORD", "InitFolder", "benchmark_training", "resolve_folder", "resolve_init"]


@dataclass(frozen=True)
class InitFolder:
    """A resolved ``--init``: the folder, whether it is a tiny stand-in, and where it came from."""

    folder: Path
    tiny: bool
    #: what training.json records: kind (folder | artifact | hf), artifact, hf_repo, revision (snapshot commit)
    record: dict[str, Any] = field(default_factory=dict)


def _is_hf_id(ref: str) -> bool:
    return ref.count("/") == 1 and not ref.startswith((".", "/", "~")) and all(ref.split("/"))


def _registered_repos() -> dict[str, str]:
    """Hugging Face id -> artifact name, for the registered artifacts that name their repository."""
    from egobench.weights import ARTIFACTS

    found = {}
    for name in ARTIFACTS.names():
        try:
            art = ARTIFACTS.get(name)
        except UserError:  # a provider that cannot be loaded here: not one of its artifacts
            continue
        if art.hf_repo:
            found.setdefault(art.hf_repo, name)
    return found


def _from_artifact(name: str, store: WeightStore, kind: str, **extra: Any) -> InitFolder:
    from egobench.provenance import snapshot_revision
    from egobench.weights import ARTIFACTS

    res = store.resolve(name)
    art = ARTIFACTS.get(name)
    record: dict[str, Any] = {"kind": kind, **extra, "artifact": name, "origin": res.origin}
    if art.hf_repo:
        record["hf_repo"] = art.hf_repo
    revision = snapshot_revision(res.path)
    if revision:
        record["revision"] = revision
    return InitFolder(res.path, res.tiny, record)


def _from_hf_cache(repo: str, store: WeightStore, what: str) -> InitFolder:
    """A Hugging Face id's snapshot in the local cache (never downloaded here)."""
    from egobench.provenance import snapshot_revision
    from egobench.weights import TINY_MARKER, refuse_remote_code

    if store.zoo == "tiny":
        raise UserError(f"{what}: '{repo}' is no registered artifact, so the tiny zoo has no stand-in for it; "
                        "use --zoo real with the id in the local Hugging Face cache, or an artifact name")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo, local_files_only=True))
    except LocalEntryNotFoundError:
        raise MissingArtifactError(f"{what}: '{repo}' is not in the local Hugging Face cache; training downloads "
                                   f"nothing: fetch it first with 'hf download {repo}' (or pass a folder)") from None
    refuse_remote_code(folder, f"{what} (hf://{repo})")
    record = {"kind": "hf", "hf_repo": repo, "origin": "hf-cache", "revision": snapshot_revision(folder)}
    return InitFolder(folder, (folder / TINY_MARKER).is_file(), record)


def _artifact_or_cache(name: str, repo: str | None, store: WeightStore, kind: str, what: str,
                       **extra: Any) -> InitFolder:
    """Artifact ``name`` by the weight store's rules; where the store has no copy and the artifact's Hub id
    ``repo`` is known, that id's snapshot in the local Hugging Face cache."""
    from egobench.weights import ChecksumError

    try:
        found = _from_artifact(name, store, kind, **extra)
    except ChecksumError:
        raise
    except MissingArtifactError as e:
        if repo is None or store.zoo == "tiny":
            raise
        try:
            found = _from_hf_cache(repo, store, what)
        except MissingArtifactError:
            raise e from None  # the store's message names the command that makes the artifact
        found.record.update(kind=kind, **extra, artifact=name)
    if repo:
        found.record.setdefault("hf_repo", repo)
    return found


def resolve_init(ref: str | os.PathLike, store: WeightStore, aliases: Mapping[str, str] | None = None,
                 repos: Mapping[str, str] | None = None, what: str | None = None) -> InitFolder:
    """``ref`` as a folder, an artifact, an alias (name -> artifact) or a Hugging Face id (see the module);
    ``repos`` adds Hugging Face ids of artifacts whose record names no repository (id -> artifact)."""
    from egobench.weights import ARTIFACTS, TINY_MARKER, refuse_remote_code

    what = what or f"--init {ref}"
    aliases = dict(aliases or {})
    p = Path(ref).expanduser()
    if p.exists():
        if not p.is_dir():
            raise UserError(f"{p}: expected a diffusers folder (a CompVis .ckpt needs 'egobench convert lego' first)")
        refuse_remote_code(p, f"folder {p}")
        return InitFolder(p, (p / TINY_MARKER).is_file(), {"kind": "folder", "folder": str(p)})
    ref = str(ref)
    if ref in ARTIFACTS.names() or ref in aliases:
        name = ref if ref in ARTIFACTS.names() else aliases[ref]
        extra = {"preset": ref} if ref in aliases else {}
        repo = {v: k for k, v in (repos or {}).items()}.get(name)
        return _artifact_or_cache(name, repo, store, "preset" if extra else "artifact", what, **extra)
    if _is_hf_id(ref):
        name = {**_registered_repos(), **dict(repos or {})}.get(ref)
        if name is None:
            return _from_hf_cache(ref, store, what)
        return _artifact_or_cache(name, ref, store, "hf", what)
    names = f"; or one of {', '.join(sorted(aliases))}" if aliases else ""
    raise UserError(f"{what}: no such folder, artifact (e.g. sd15) or Hugging Face id 'owner/name'{names}")


def resolve_folder(ref: str | os.PathLike, store: WeightStore) -> tuple[Path, bool]:
    """``(folder, tiny)`` for a path, an artifact name or a Hugging Face id."""
    found = resolve_init(ref, store)
    return found.folder, found.tiny
