"""How self-computed VLLM features were made: ``<feature root>/provenance.json``.

``egobench vllm-features`` (and ``lego -o compute_features=true``) write, before the first sample
of a tag is computed, one entry per feature tag: the VLM (id, class, Hugging Face repo and
revision when known, sha256 of every file it was loaded from and one digest over them, whether it
was a tiny stand-in), the sizes LEGO's conditioning needs (hidden size, image tokens), the
lemmatizer backend the Ego4D narrations went through (EPIC labels are used verbatim), sampling
settings and seed, the query template, dtype and device type, and the transformers and torch
versions. Each entry carries its own sha256 (of its canonical JSON), and each sample's line in
``egobench-vllm-features.jsonl`` names the entry it was made with.

A tag's entry never changes: computing more samples of a tag with other weights or settings
(another transformers version, another seed, nltk installed since) is refused, so all samples
of a tag share one provenance. The file is written atomically under a lock file, so two
processes adding different tags do not lose one another's entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from egobench.errors import DataError, UserError
from egobench.io import atomic_write_json, loads_strict

#: the provenance file in a feature root
PROVENANCE = "provenance.json"
FORMAT = "egobench-vllm-features/1"
#: the per-sample record file in a feature root (one JSON line per computed sample)
RECORDS = "egobench-vllm-features.jsonl"


def entry_sha(entry: dict[str, Any]) -> str:
    """sha256 of an entry's canonical JSON (its own ``sha256`` key left out)."""
    body = {k: v for k, v in entry.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _known_part(tag: str, vlm: Any, *, seed: int, lemmatizer: str) -> dict[str, Any]:
    """What is known before the VLM is loaded: its weights, the seed, the lemmatizer, the versions."""
    import torch
    import transformers

    choice = vlm.choice
    return {
        "tag": tag,
        "vlm": {
            "id": choice.id, "kind": choice.kind, "artifact": choice.artifact, "variant": choice.variant,
            "hf_repo": vlm.hf_repo, "revision": vlm.revision, "tiny": vlm.tiny,
            "weights_sha256": vlm.weights_sha256, "files": dict(sorted(vlm.files.items())),
            "verified": all(r.get("verified") == "verified" for r in vlm.records.values()),
            "note": vlm.note,
        },
        "lemmatizer": {"ego4d": lemmatizer, "epickitchens": "none (labels used verbatim)"},
        "seed": int(seed),
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0]},
    }


def build_entry(tag: str, vlm: Any, settings: dict[str, Any], *, seed: int, lemmatizer: str) -> dict[str, Any]:
    """The provenance entry of ``tag``: ``vlm`` a :class:`~lego.vllm_choice.ResolvedVLM`, ``settings``
    the enhancer's :meth:`settings`, ``lemmatizer`` the backend Ego4D narrations go through."""
    entry = _known_part(tag, vlm, seed=seed, lemmatizer=lemmatizer)
    entry["vlm"]["class"] = settings.get("class")
    entry.update(sizes=settings["sizes"], sampling=settings["sampling"], query=settings["query"],
                 dtype=settings["dtype"], device=settings["device"])
    entry["sha256"] = entry_sha(entry)
    return entry


def precheck(root: str | os.PathLike, tag: str, vlm: Any, *, seed: int, lemmatizer: str) -> None:
    """Refuse, before the VLM is loaded, a tag already made with other weights, seed, lemmatizer or versions."""
    old = read_provenance(root).get(tag)
    if old is None:
        return
    known = _known_part(tag, vlm, seed=seed, lemmatizer=lemmatizer)
    trimmed = {k: ({kk: vv for kk, vv in old[k].items() if kk in known[k]} if isinstance(old.get(k), dict)
                   and isinstance(known[k], dict) else old.get(k)) for k in known}
    diff = _differences(trimmed, known)
    if diff:
        raise _refusal(Path(root), tag, old, "?" * 12, diff)


def _refusal(root: Path, tag: str, old: dict[str, Any], new_sha: str, diff: list[str]) -> UserError:
    shown = ", ".join(diff[:4]) + (f" and {len(diff) - 4} more" if len(diff) > 4 else "")
    made = f"with {new_sha[:12]}" if not new_sha.startswith("?") else "otherwise"
    return UserError(
        f"{root / PROVENANCE}: features under tag '{tag}' were made with provenance {old['sha256'][:12]}; "
        f"this run would make them {made} (differs in {shown}); one tag holds one "
        "provenance: use the same settings and weights, or another --out folder")


def read_provenance(root: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """tag -> entry of ``root``'s provenance file ({} when there is none); a damaged file is one line."""
    path = Path(root) / PROVENANCE
    if not path.is_file():
        return {}
    try:
        data = loads_strict(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e}); recompute the features into a new folder") from None
    tags = data.get("tags") if isinstance(data, dict) and data.get("format") == FORMAT else None
    if not isinstance(tags, dict):
        raise DataError(f"{path}: not an egobench feature provenance file (format {FORMAT})")
    for tag, entry in tags.items():
        if not isinstance(entry, dict) or entry.get("sha256") != entry_sha(entry):
            raise DataError(f"{path}: the entry of tag '{tag}' does not match its sha256 (edited by hand?); "
                            "recompute those features into a new folder with 'egobench vllm-features --out DIR'")
    return tags


def file_sha256(root: str | os.PathLike) -> str | None:
    path = Path(root) / PROVENANCE
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".provenance.lock", "a+b") as f:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: one writer assumed
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        if k == "sha256":
            continue
        x, y = a.get(k), b.get(k)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _differences(x, y, f"{prefix}{k}.")
        elif x != y:
            out.append(f"{prefix}{k}")
    return out


def claim(root: str | os.PathLike, entry: dict[str, Any]) -> str:
    """Record ``entry`` for its tag in ``root`` (atomic); refuse one line when the tag was made otherwise."""
    root = Path(root)
    tag = entry["tag"]
    with _locked(root):
        tags = read_provenance(root)
        old = tags.get(tag)
        if old is not None and old["sha256"] != entry["sha256"]:
            raise _refusal(root, tag, old, entry["sha256"], _differences(old, entry))
        if old is None:
            tags[tag] = entry
            atomic_write_json(root / PROVENANCE, {"format": FORMAT, "tags": dict(sorted(tags.items()))})
    return entry["sha256"]


def append_record(root: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one sample's record (one JSON line, flushed) to the feature root's record file."""
    path = Path(root) / RECORDS
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_records(root: str | os.PathLike) -> dict[tuple[str, str], dict[str, Any]]:
    """(sample id, model tag) -> that sample's last record; a torn last line (a kill mid-write) is skipped."""
    path = Path(root) / RECORDS
    out: dict[tuple[str, str], dict[str, Any]] = {}
    if not path.is_file():
        return out
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            if i == len(lines):
                continue
            raise DataError(f"{path}, line {i}: not a JSON record; recompute into a new folder") from None
        if isinstance(rec, dict) and "sample" in rec and "model_tag" in rec:
            out[(str(rec["sample"]), str(rec["model_tag"]))] = rec
    return out
