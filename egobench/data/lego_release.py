"""Reader for the official LEGO release layout (HF ``bolinlai/LEGO-Dataset``).

::

    ROOT/EgoGen/{ego4d.fho,epickitchen}/val/<clip>/<action>/<input>.jpg, <target>.jpg
    ROOT/EgoGen/{ego4d.fho,epickitchen}/val_gt_for_metric/<clip>/<action>/<target>.jpg
    ROOT/{ego4d,epickitchen}_val.json
    ROOT/{ego4d,epickitchen}_metadata.json

The released test sets are hidden, so the val split is the test split (as in
the paper). Entries may carry extra keys; ``verb`` and ``noun`` (written by
``egobench prepare`` from EPIC-KITCHENS' own columns) are used when present and
derived from the action label otherwise (:mod:`egobench.data.actions`); both
end up in ``Sample.meta`` and the ``Sample.verb`` / ``Sample.noun`` properties.

Metadata (``*_metadata.json``) ``height`` and ``width`` of every clip in the
split are checked at load: a positive integer up to ``MAX_SIDE`` (an integral
float such as ``256.0`` is accepted), an aspect ratio within ``MAX_ASPECT``,
or absent/null (output sizing then falls back to the target frame's size).

Frames that are symbolic links are followed, wherever they point: a data root
assembled from links to shared storage is common and is the user's own input
(unlike a generated-images folder, which may come from outside code). The
split JSON itself cannot point outside its folder (absolute paths and ``..``
are refused); ``egobench data verify`` counts frames whose real path lies
outside the data root, and the fingerprint hashes what the links point to. The input frame is ``image_0`` and the target ``image_1``; metrics
read the target from ``val_gt_for_metric`` when that folder exists (it holds
the same frame). ``egobench prepare`` writes this same layout from raw
annotations, so both paths meet here.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..io import read_json, truncate
from .actions import derive_verb_noun
from .split import Sample, Split, safe_id


@dataclass(frozen=True)
class ReleaseLayout:
    """Where one sub-dataset lives inside a LEGO release root."""

    dataset: str  # egobench name: ego4d | epickitchens
    folder: str  # EgoGen sub-folder: ego4d.fho | epickitchen
    prefix: str  # json prefix: ego4d | epickitchen


LAYOUTS = {
    "ego4d": ReleaseLayout("ego4d", "ego4d.fho", "ego4d"),
    "epickitchens": ReleaseLayout("epickitchens", "epickitchen", "epickitchen"),
}

REQUIRED_KEYS = ("image_0", "image_1", "action")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: largest metadata height/width accepted (source videos are at most 4K: 3840x2160)
MAX_SIDE = 65536
#: widest (or tallest) metadata aspect ratio accepted; frames of this task are 16:9 or 4:3
MAX_ASPECT = 8


def split_json_path(root: Path, dataset: str, part: str = "val") -> Path:
    return Path(root) / f"{LAYOUTS[dataset].prefix}_{part}.json"


def _check_entry(path: Path, clip: str, action: str, entry: Any) -> None:
    where = f"{path}: [{clip!r}][{action!r}]"  # an f-string is cheap; only raised ones are used
    if not isinstance(entry, dict):
        raise DataError(f"{where}: expected an object, got {type(entry).__name__}")
    for key in REQUIRED_KEYS:
        if key not in entry:
            raise DataError(f"{where}: missing key '{key}'")
        if not isinstance(entry[key], str) or not entry[key]:
            raise DataError(f"{where}: '{key}' must be a non-empty string")
    desc = entry.get("llava_forecast_finetune", "")
    if desc is not None and not isinstance(desc, str):
        raise DataError(f"{where}: 'llava_forecast_finetune' must be a string")
    for key in ("verb", "noun"):
        if key in entry and not isinstance(entry[key], str):
            raise DataError(f"{where}: '{key}' must be a string, got {truncate(repr(entry[key]))}")
    for key in ("image_0", "image_1"):
        rel = entry[key]
        if _CONTROL.search(rel):
            raise DataError(f"{where}: '{key}' contains control characters: {truncate(repr(rel))}")
        if rel.startswith("/") or ".." in rel.split("/"):
            raise DataError(f"{where}: '{key}' must be a relative path inside the split, got {rel!r}")


def _clip_size(path: Path, clip: str, clip_meta: Any) -> tuple[int | None, int | None]:
    """The clip's checked (height, width) from the metadata file (None where absent)."""
    if clip_meta is None:
        return None, None
    if not isinstance(clip_meta, dict):
        raise DataError(
            f"{path}: clip {clip!r}: expected an object with height and width, got {truncate(repr(clip_meta))}"
        )
    out: dict[str, int | None] = {}
    for key in ("height", "width"):
        v = clip_meta.get(key)
        if v is None:
            out[key] = None
            continue
        ok = (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, float) and math.isfinite(v) and v.is_integer())
        if not ok or not 1 <= v <= MAX_SIDE:
            raise DataError(
                f"{path}: clip {clip!r}: '{key}' must be a whole number of pixels from 1 to {MAX_SIDE} "
                f"(or absent), got {truncate(repr(v))}; fix the metadata file or remove the key"
            )
        out[key] = int(v)
    h, w = out["height"], out["width"]
    if h and w and not 1 / MAX_ASPECT <= w / h <= MAX_ASPECT:
        raise DataError(
            f"{path}: clip {clip!r}: width x height {w}x{h} has an aspect ratio beyond {MAX_ASPECT}:1; "
            "fix the metadata file"
        )
    return h, w


def _check_component(path: Path, what: str, value: str) -> None:
    """Ids become folder names in the official output layout: refuse path tricks."""
    if not value or value in (".", "..") or "/" in value or "\\" in value or _CONTROL.search(value):
        raise DataError(f"{path}: {what} {truncate(repr(value))} is not a plain folder name")


def load_release(
    root: str | Path,
    dataset: str,
    *,
    part: str = "val",
    name: str | None = None,
    extra_meta: dict[str, Any] | None = None,
    check_files: bool = True,
) -> Split:
    """Load ``part`` of ``dataset`` from a LEGO release root as a :class:`Split`."""
    root = Path(root)
    layout = LAYOUTS[dataset]
    json_path = split_json_path(root, dataset, part)
    frames = root / "EgoGen" / layout.folder / part
    gt_dir = root / "EgoGen" / layout.folder / f"{part}_gt_for_metric"
    if not root.is_dir():
        raise DataError(f"{root}: data root does not exist")
    if not json_path.is_file():
        raise DataError(
            f"{json_path}: split file not found (expected the LEGO release layout under {root})"
        )
    data = read_json(json_path)
    if not isinstance(data, dict):
        raise DataError(f"{json_path}: expected a JSON object keyed by clip id")
    meta_path = root / f"{layout.prefix}_metadata.json"
    metadata = read_json(meta_path) if meta_path.is_file() else {}
    if not isinstance(metadata, dict):
        raise DataError(f"{meta_path}: expected a JSON object keyed by clip id")

    samples: list[Sample] = []
    seen: dict[str, tuple[str, str]] = {}
    missing: list[Path] = []
    use_gt = gt_dir.is_dir()
    derived: dict[str, tuple[str, str]] = {}  # action label -> (verb, noun); labels repeat a lot
    for clip in sorted(data):
        actions = data[clip]
        if not isinstance(actions, dict):
            raise DataError(f"{json_path}: [{clip!r}]: expected an object keyed by action id")
        _check_component(json_path, "clip id", clip)
        height, width = _clip_size(meta_path, clip, metadata.get(clip))
        for action in sorted(actions):
            entry = actions[action]
            _check_component(json_path, "action id", action)
            _check_entry(json_path, clip, action, entry)
            sid = safe_id(f"{clip}__{action}")
            if sid in seen:
                raise DataError(
                    f"{json_path}: [{clip!r}][{action!r}] and {list(seen[sid])} map to the same sample id {sid!r}"
                )
            seen[sid] = (clip, action)
            input_path = frames / entry["image_0"]
            target_rel = entry["image_1"]
            if use_gt:
                target_path = gt_dir / f'{clip}/{action}/{target_rel.rstrip("/").rsplit("/", 1)[-1]}'
            else:
                target_path = frames / target_rel
            if check_files:
                for p in (input_path, target_path):
                    if not os.path.isfile(p):
                        missing.append(p)
            if "verb" in entry and "noun" in entry:
                verb, noun = entry["verb"], entry["noun"]
            else:
                label = entry["action"]
                if label not in derived:
                    derived[label] = derive_verb_noun(label, particle=dataset == "epickitchens")
                verb, noun = derived[label]
            meta: dict[str, Any] = {
                "clip_id": clip,
                "action_id": action,
                "image_0": entry["image_0"],
                "image_1": target_rel,
                "height": height,
                "width": width,
                "domain": dataset,
                "verb": verb,
                "noun": noun,
            }
            if extra_meta:
                meta.update(extra_meta)
            samples.append(
                Sample(
                    id=sid,
                    dataset=name or dataset,
                    input_path=input_path,
                    target_path=target_path,
                    action=entry["action"],
                    description=entry.get("llava_forecast_finetune") or "",
                    meta=meta,
                )
            )
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"{missing[0]}: frame referenced by {json_path} is missing{more}")
    if not samples:
        raise DataError(f"{json_path}: the split has no samples")
    sources = [json_path] + ([meta_path] if meta_path.is_file() else [])
    return Split(name or dataset, samples, sources=sources, root=root)
