"""``egobench prepare``: derive test pairs from raw annotations, write the LEGO layout.

LEGO (arXiv 2312.03849, Sec. 4.1) released its frame pairs but no code that
chose them. This module rebuilds val/test pairs from the raw Ego4D FHO and
EPIC-KITCHENS-100 annotations with the rules the paper states, and writes them
in the layout of the official release (``bolinlai/LEGO-Dataset``), so the same
evaluation code reads either.

Pair rules
----------
Ego4D (``fho_main.json``, v2):
    input frame = ``critical_frames.pre_15``, target = ``critical_frames.pnr_frame``;
    both are frame indices in the full-scale video ``<videos_root>/<video_uid>.mp4``,
    decoded frame-exactly with PyAV (:mod:`egobench.data.video`) using
    ``video_metadata.fps`` for the index -> timestamp map.
    clip_id = the interval's ``clip_uid`` (or ``video_uid`` when it is null),
    action_id = the narrated action's ``uid``, label = the raw narration
    (``"#C C opens drawer"``).

EPIC-KITCHENS-100 (``EPIC_100_*.csv``):
    fps = 60 for EPIC-55 videos ``PXX_YY`` (two-digit YY) and 50 for extension
    videos ``PXX_1YY`` (three digits), the rates of the released ``rgb_frames``;
    input frame = ``start_frame - round_half_up(0.25 * fps)`` (15 or 13 frames,
    i.e. 0.25 s before the action start), target =
    ``start_frame + round_half_up(0.6 * (stop_frame - start_frame))``.
    Frames are read from ``<frames_root>/<participant_id>/rgb_frames/<video_id>/frame_%010d.jpg``
    or ``<frames_root>/<video_id>/frame_%010d.jpg`` (the layout is detected per
    video), numbered from 1. clip_id = ``video_id``, action_id = ``narration_id``,
    label = ``narration``.

Filters
-------
Each annotation row is counted under exactly one reason, the first that applies
in the order listed (:attr:`PrepareReport.filtered` maps reason -> count).

Ego4D:
    ``duplicate_action_id``      the (clip_id, action uid) pair was already seen (the first is kept)
    ``rejected``                 ``is_rejected`` is true
    ``invalid_action``           ``is_valid_action`` is false
    ``narration_not_CC``         the narration does not start with ``"#C C"``
                                 (an action not by the camera wearer)
    ``missing_critical_frame``   ``critical_frames`` is null, or ``pre_15`` or
                                 ``pnr_frame`` is null
    ``too_close_to_video_start`` ``pre_15 < 0``
    ``input_not_before_target``  ``pre_15 >= pnr_frame``
    ``video_missing``            ``<videos_root>/<video_uid>.mp4`` does not exist
                                 (if no video at all is found, prepare raises instead)
    ``frame_past_video_end``     the video ends before ``pre_15`` or ``pnr_frame``
                                 (found while decoding)

EPIC-KITCHENS-100:
    ``duplicate_action_id``      the narration_id was already seen (the first is kept)
    ``too_close_to_video_start`` the input frame is < 1 (e.g. ``P01_11_0``, start_frame 1)
    ``input_not_before_target``  target <= input
    ``frame_missing``            the input or target frame file (or the video's frame
                                 folder) does not exist (if no frame folder exists for
                                 any video, prepare raises instead)

Not reproduced: the paper also filters frames by an aesthetic score and drops
pairs that are too similar or too different; the details are only in its
supplementary material, so no such filtering is done here and the pair count
differs from the official release.

Output (under ``out``)
----------------------
``EgoGen/{ego4d.fho|epickitchen}/val/<clip_id>/<action_id>/<video_id>_<frame:010d>.jpg``
    the input and the target frame (the input has the smaller frame number, so
    it sorts first, as the official metric code expects);
``EgoGen/{...}/val_gt_for_metric/<clip_id>/<action_id>/<target>.jpg``
    the target only;
``{ego4d|epickitchen}_val.json``
    ``{clip_id: {action_id: {"image_0", "image_1", "action", "llava_forecast_finetune"}}}``
    with paths relative to ``EgoGen/<sub>/val/``; ``llava_forecast_finetune`` is
    ``""`` (raw annotations carry no enriched description). EPIC entries also
    carry the annotation's own ``verb`` and ``noun`` columns (extra keys, which
    the release reader tolerates and uses for ``Sample.verb`` / ``Sample.noun``);
    Ego4D's are derived from the narration at load (:mod:`egobench.data.actions`);
``{ego4d|epickitchen}_metadata.json``
    ``{clip_id: {"height", "width", "fps", "video_id", ...}}`` with the *source*
    resolution (Ego4D: ``video_metadata.height/width``, else the decoded size;
    EPIC: the size of the first source frame read for that video).

Source frames are read through :mod:`egobench.images` (pixel limit, one still
image per file, truncated files refused): an unreadable source frame stops the
run with one line naming it.

Frames are resized to ``height`` (256 by default) keeping the aspect ratio,
width = ``round_half_up(W * height / H)``, no crop, with PIL ``Image.resize``
and ``Resampling.BICUBIC`` (PIL antialiases when downscaling), and saved as
JPEG quality 95. A source JPEG that already has the output size (EPIC
``rgb_frames`` are 456x256) is copied byte for byte instead of being
re-encoded (the copy is made when the source is a 3-component JPEG of exactly
the output size; anything else is decoded and re-encoded).

Every file is written atomically (temp file + rename). The split and metadata
JSONs are written last, after all frames, so an interrupted run never leaves a
split file that references missing frames. A re-run skips frames already
present at the requested height (resumable). ``limit`` caps the number of
pairs in the output (the first eligible pairs in annotation order, Ego4D
grouped by video).
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import DataError
from ..images import BadImageError, image_size, open_rgb
from ..io import atomic_open, atomic_write_json, clean_stale_temps, read_json
from .video import FrameNotFoundError, VideoReader, round_half_up

__all__ = [
    "EGO4D_REASONS",
    "EPIC_REASONS",
    "EPIC_REQUIRED_COLUMNS",
    "PrepareReport",
    "epic_fps",
    "epic_pair_frames",
    "prepare_ego4d",
    "prepare_epickitchens",
    "read_epic_csv",
]

# -- names -------------------------------------------------------------------

SUBDIRS = {"ego4d": "ego4d.fho", "epickitchen": "epickitchen"}

DUPLICATE = "duplicate_action_id"
REJECTED = "rejected"
INVALID = "invalid_action"
NOT_CC = "narration_not_CC"
MISSING_CRITICAL = "missing_critical_frame"
TOO_CLOSE = "too_close_to_video_start"
NOT_BEFORE = "input_not_before_target"
VIDEO_MISSING = "video_missing"
PAST_END = "frame_past_video_end"
FRAME_MISSING = "frame_missing"

EGO4D_REASONS = (
    DUPLICATE,
    REJECTED,
    INVALID,
    NOT_CC,
    MISSING_CRITICAL,
    TOO_CLOSE,
    NOT_BEFORE,
    VIDEO_MISSING,
    PAST_END,
)
EPIC_REASONS = (DUPLICATE, TOO_CLOSE, NOT_BEFORE, FRAME_MISSING)

EPIC_REQUIRED_COLUMNS = (
    "narration_id",
    "participant_id",
    "video_id",
    "start_timestamp",
    "stop_timestamp",
    "start_frame",
    "stop_frame",
    "narration",
    "verb",
    "noun",
)

JPEG_QUALITY = 95
RESAMPLE = Image.Resampling.BICUBIC

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_EPIC_VIDEO = re.compile(r"^(P\d{2})_(\d{2}|1\d{2})$")
_UINT = re.compile(r"^\d+$")


# -- report ------------------------------------------------------------------


@dataclass
class PrepareReport:
    """What one prepare run did.

    Every annotation row ends up in exactly one of: written (``n_written``),
    a filter reason (``filtered``), or beyond ``limit`` (``n_over_limit``).
    """

    dataset: str  # egobench dataset name: "ego4d" | "epickitchens"
    n_rows: int
    n_written: int
    filtered: dict[str, int]
    out: Path
    n_reused: int = 0  # written pairs whose frames were already on disk
    n_over_limit: int = 0  # eligible pairs left out because of ``limit``
    split_json: Path | None = None
    metadata_json: Path | None = None

    @property
    def n_filtered(self) -> int:
        return sum(self.filtered.values())

    def summary(self) -> str:
        lines = [
            f"{self.dataset}: {self.n_rows} annotation rows read, {self.n_written} pairs "
            f"written to {self.out}" + (f" ({self.n_reused} already present)" if self.n_reused else "")
        ]
        if self.n_over_limit:
            lines.append(f"  {self.n_over_limit} eligible pairs left out by limit")
        nonzero = {k: v for k, v in self.filtered.items() if v}
        if nonzero:
            lines.append(f"  filtered {self.n_filtered}:")
            width = max(len(k) for k in nonzero)
            for k, v in nonzero.items():
                lines.append(f"    {k:<{width}}  {v}")
        else:
            lines.append("  filtered 0")
        return "\n".join(lines)


# -- shared writing ------------------------------------------------------------


@dataclass
class _Pair:
    clip_id: str
    action_id: str
    video_id: str
    input_frame: int
    target_frame: int
    label: str
    extra: dict[str, str] = field(default_factory=dict)  # extra keys of the split entry (EPIC verb, noun)

    def rel(self, frame: int) -> str:
        return f"{self.clip_id}/{self.action_id}/{self.video_id}_{frame:010d}.jpg"


def _out_size(w: int, h: int, height: int) -> tuple[int, int]:
    return max(1, round_half_up(Fraction(w * height, h))), height


def _encode(img: Image.Image, height: int) -> bytes:
    img = img.convert("RGB")
    size = _out_size(*img.size, height)
    if img.size != size:
        img = img.resize(size, RESAMPLE)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _present(path: Path, height: int) -> bool:
    """``path`` exists and is a readable image of the requested height (header only)."""
    try:
        return image_size(path)[1] == height
    except BadImageError:
        return False


def _write(path: Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


class _Layout:
    def __init__(self, out: Path, dataset: str, height: int) -> None:
        self.out = out
        self.dataset = dataset
        self.height = height
        self.base = out / "EgoGen" / SUBDIRS[dataset]
        self.val = self.base / "val"
        self.gt = self.base / "val_gt_for_metric"
        self.split_json = out / f"{dataset}_val.json"
        self.metadata_json = out / f"{dataset}_metadata.json"

    def destinations(self, pair: _Pair, frame: int) -> list[Path]:
        rel = pair.rel(frame)
        dests = [self.val / rel]
        if frame == pair.target_frame:
            dests.append(self.gt / rel)
        return dests

    def missing(self, pair: _Pair, frame: int) -> list[Path]:
        return [p for p in self.destinations(pair, frame) if not _present(p, self.height)]

    def write_json(self, pairs: list[_Pair], metadata: dict[str, dict[str, Any]]) -> None:
        split: dict[str, dict[str, dict[str, str]]] = {}
        for p in pairs:
            split.setdefault(p.clip_id, {})[p.action_id] = {
                "image_0": p.rel(p.input_frame),
                "image_1": p.rel(p.target_frame),
                "action": p.label,
                "llava_forecast_finetune": "",
                **p.extra,
            }
        meta = {c: metadata[c] for c in split}
        atomic_write_json(self.split_json, split)
        atomic_write_json(self.metadata_json, meta)


def _check_id(value: str, what: str, where: str) -> None:
    if not _SAFE_ID.match(value):
        raise DataError(f"{where}: {what} {value!r} cannot be used as a folder name")


# -- EPIC-KITCHENS-100 ---------------------------------------------------------


def epic_fps(video_id: str) -> int:
    """Frame rate of the released ``rgb_frames``: 60 for ``PXX_YY``, 50 for ``PXX_1YY``."""
    m = _EPIC_VIDEO.match(video_id)
    if not m:
        raise ValueError(f"not an EPIC-KITCHENS video id (PXX_YY or PXX_1YY): {video_id!r}")
    return 60 if len(m.group(2)) == 2 else 50


def epic_pair_frames(video_id: str, start_frame: int, stop_frame: int) -> tuple[int, int]:
    """(input frame, target frame) of an EPIC action, before any filtering."""
    fps = epic_fps(video_id)
    inp = start_frame - round_half_up(Fraction(fps, 4))
    tgt = start_frame + round_half_up(Fraction(3, 5) * (stop_frame - start_frame))
    return inp, tgt


@dataclass
class EpicRow:
    line_no: int
    narration_id: str
    participant_id: str
    video_id: str
    start_frame: int
    stop_frame: int
    narration: str
    fields: dict[str, str] = field(repr=False, default_factory=dict)


def read_epic_csv(path: str | os.PathLike) -> list[EpicRow]:
    """Parse an EPIC-KITCHENS-100 narration CSV strictly (file:line errors)."""
    path = Path(path)
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    rows: list[EpicRow] = []
    with f:
        reader = csv.reader(f)
        line_no = 1
        try:
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: empty file (no header)")
            missing = [c for c in EPIC_REQUIRED_COLUMNS if c not in header]
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
            dup = sorted({c for c in header if header.count(c) > 1})
            if dup:
                raise DataError(f"{path}: duplicate column(s) {', '.join(dup)}")
            line_no = reader.line_num + 1
            for rec in reader:
                start_line, line_no = line_no, reader.line_num + 1
                if not rec or (len(rec) == 1 and not rec[0].strip()):
                    continue  # blank line
                rows.append(_epic_row(path, start_line, header, rec))
        except csv.Error as e:
            raise DataError(f"{path}:{line_no}: malformed CSV ({e})") from None
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return rows


def _epic_row(path: Path, line_no: int, header: list[str], rec: list[str]) -> EpicRow:
    where = f"{path}:{line_no}"
    if len(rec) != len(header):
        raise DataError(f"{where}: expected {len(header)} fields, got {len(rec)}")
    d = dict(zip(header, rec, strict=True))
    frames = {}
    for col in ("start_frame", "stop_frame"):
        v = d[col].strip()
        if not _UINT.match(v):
            raise DataError(f"{where}: {col} is not a non-negative integer: {d[col]!r}")
        frames[col] = int(v)
    if frames["stop_frame"] < frames["start_frame"]:
        raise DataError(f"{where}: stop_frame {frames['stop_frame']} is before start_frame {frames['start_frame']}")
    nid, pid, vid = d["narration_id"].strip(), d["participant_id"].strip(), d["video_id"].strip()
    if not nid:
        raise DataError(f"{where}: empty narration_id")
    _check_id(nid, "narration_id", where)
    if not d["narration"].strip():
        raise DataError(f"{where}: empty narration")
    m = _EPIC_VIDEO.match(vid)
    if not m:
        raise DataError(f"{where}: video_id {vid!r} is not PXX_YY or PXX_1YY")
    if m.group(1) != pid:
        raise DataError(f"{where}: video_id {vid!r} does not belong to participant_id {pid!r}")
    return EpicRow(line_no, nid, pid, vid, frames["start_frame"], frames["stop_frame"], d["narration"], d)


def _epic_frame_dir(frames_root: Path, participant_id: str, video_id: str) -> Path | None:
    for cand in (frames_root / participant_id / "rgb_frames" / video_id, frames_root / video_id):
        if cand.is_dir():
            return cand
    return None


def _epic_frame(folder: Path, frame: int) -> Path:
    return folder / f"frame_{frame:010d}.jpg"


def prepare_epickitchens(
    annotations: Path,
    frames_root: Path,
    out: Path,
    *,
    limit: int | None = None,
    height: int = 256,
    progress: bool = False,
) -> PrepareReport:
    """Build the EPIC-KITCHENS-100 pairs from ``annotations`` (a narration CSV)."""
    annotations, frames_root, out = Path(annotations), Path(frames_root), Path(out)
    _check_args(limit, height)
    rows = read_epic_csv(annotations)
    layout = _Layout(out, "epickitchen", height)
    filtered: Counter[str] = Counter({r: 0 for r in EPIC_REASONS})

    seen: set[str] = set()
    dirs: dict[str, Path | None] = {}
    eligible: list[tuple[_Pair, Path]] = []
    n_checked = 0
    for row in rows:
        if row.narration_id in seen:
            filtered[DUPLICATE] += 1
            continue
        seen.add(row.narration_id)
        inp, tgt = epic_pair_frames(row.video_id, row.start_frame, row.stop_frame)
        if inp < 1:
            filtered[TOO_CLOSE] += 1
            continue
        if tgt <= inp:
            filtered[NOT_BEFORE] += 1
            continue
        n_checked += 1
        if row.video_id not in dirs:
            dirs[row.video_id] = _epic_frame_dir(frames_root, row.participant_id, row.video_id)
        folder = dirs[row.video_id]
        if folder is None or not (_epic_frame(folder, inp).is_file() and _epic_frame(folder, tgt).is_file()):
            filtered[FRAME_MISSING] += 1
            continue
        pair = _Pair(row.video_id, row.narration_id, row.video_id, inp, tgt, row.narration,
                     {"verb": row.fields["verb"].strip(), "noun": row.fields["noun"].strip()})
        eligible.append((pair, folder))
    if n_checked and not any(d is not None for d in dirs.values()):
        raise DataError(
            f"{frames_root}: no EPIC-KITCHENS frame folder found for any of {len(dirs)} "
            f"video(s) (looked for <participant_id>/rgb_frames/<video_id>/ and <video_id>/)"
        )

    n_over = 0
    if limit is not None and len(eligible) > limit:
        n_over = len(eligible) - limit
        eligible = eligible[:limit]

    clean_stale_temps(layout.base)
    metadata: dict[str, dict[str, Any]] = {}
    written: list[_Pair] = []
    n_reused = 0
    from ..progress import Progress

    tick = Progress(len(eligible), "prepare epickitchens", bar=progress, unit="pair")
    for pair, folder in eligible:
        tick(1)
        if pair.clip_id not in metadata:
            w, h = _image_size(_epic_frame(folder, pair.input_frame))
            metadata[pair.clip_id] = {
                "height": h,
                "width": w,
                "fps": epic_fps(pair.video_id),
                "video_id": pair.video_id,
                "participant_id": pair.video_id.split("_")[0],
            }
        fresh = False
        for frame in (pair.input_frame, pair.target_frame):
            dests = layout.missing(pair, frame)
            if dests:
                fresh = True
                data = _epic_frame_bytes(_epic_frame(folder, frame), height)
                for d in dests:
                    _write(d, data)
        n_reused += not fresh
        written.append(pair)

    tick.close()
    layout.write_json(written, metadata)
    return PrepareReport(
        dataset="epickitchens",
        n_rows=len(rows),
        n_written=len(written),
        filtered=dict(filtered),
        out=out,
        n_reused=n_reused,
        n_over_limit=n_over,
        split_json=layout.split_json,
        metadata_json=layout.metadata_json,
    )


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of a source frame from its header (a bad frame is a one-line DataError)."""
    return image_size(path)


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT, JPG, DAC)


def _jpeg_components(data: bytes) -> int | None:
    """Colour components of a baseline/progressive JPEG (3 for RGB, 1 gray, 4 CMYK), or None."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in _SOF:
            return data[i + 9] if i + 9 < len(data) else None
        if marker == 0xDA:  # start of scan before any frame header
            return None
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _epic_frame_bytes(path: Path, height: int) -> bytes:
    """The output JPEG for a source frame: its own bytes when it already fits, else re-encoded."""
    img = open_rgb(path)  # decodes fully: a truncated, animated or oversized frame is a one-line error
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read image ({e.strerror})") from None
    if _jpeg_components(data) == 3 and img.size == _out_size(*img.size, height):
        return data
    return _encode(img, height)


# -- Ego4D ---------------------------------------------------------------------


class _Json:
    """Typed access to the parsed FHO JSON with file + JSON-path errors."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, jpath: str, msg: str) -> DataError:
        return DataError(f"{self.path}: {jpath}: {msg}" if jpath else f"{self.path}: {msg}")

    def obj(self, value: Any, jpath: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(jpath, f"expected an object, got {_jtype(value)}")
        return value

    def get(
        self, obj: dict[str, Any], key: str, jpath: str, kind: str, *, nullable: bool = False, required: bool = True
    ) -> Any:
        where = f"{jpath}.{key}" if jpath else key
        if key not in obj:
            if required:
                raise self.error(jpath, f"missing key '{key}'")
            return None
        v = obj[key]
        if v is None:
            if nullable or not required:
                return None
            raise self.error(where, f"expected {kind}, got null")
        ok = {
            "list": isinstance(v, list),
            "object": isinstance(v, dict),
            "string": isinstance(v, str),
            "bool": isinstance(v, bool),
            "number": isinstance(v, (int, float)) and not isinstance(v, bool),
            "integer": (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
        }[kind]
        if not ok:
            raise self.error(where, f"expected {kind}, got {_jtype(v)}")
        if kind == "number" and not math.isfinite(v):  # JSON text may hold NaN / Infinity
            raise self.error(where, f"expected a finite number, got {v}")
        return int(v) if kind == "integer" else v


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "bool", int: "integer", float: "number", str: "string", list: "list", dict: "object"}.get(
        type(v), type(v).__name__
    )


@dataclass
class _EgoVideo:
    video_uid: str
    fps: float
    height: int | None
    width: int | None
    num_frames: int | None
    jpath: str


def prepare_ego4d(
    annotations: Path,
    videos_root: Path,
    out: Path,
    *,
    limit: int | None = None,
    height: int = 256,
    progress: bool = False,
) -> PrepareReport:
    """Build the Ego4D FHO pairs from ``annotations`` (``fho_main.json``)."""
    annotations, videos_root, out = Path(annotations), Path(videos_root), Path(out)
    _check_args(limit, height)
    data = read_json(annotations)
    js = _Json(annotations)
    layout = _Layout(out, "ego4d", height)
    filtered: Counter[str] = Counter({r: 0 for r in EGO4D_REASONS})

    top = js.obj(data, "")
    videos = js.get(top, "videos", "", "list")
    n_rows = 0
    seen: set[tuple[str, str]] = set()
    by_video: dict[str, list[_Pair]] = {}
    video_info: dict[str, _EgoVideo] = {}
    clip_video: dict[str, str] = {}
    exists: dict[str, bool] = {}
    n_checked = 0
    for vi, video in enumerate(videos):
        vpath = f"videos[{vi}]"
        video = js.obj(video, vpath)
        uid = js.get(video, "video_uid", vpath, "string")
        _check_id(uid, "video_uid", f"{annotations}: {vpath}")
        meta = js.obj(js.get(video, "video_metadata", vpath, "object"), f"{vpath}.video_metadata")
        mpath = f"{vpath}.video_metadata"
        fps = js.get(meta, "fps", mpath, "number")
        if fps <= 0:
            raise js.error(f"{mpath}.fps", f"must be positive, got {fps}")
        sizes = {}
        for key in ("height", "width", "num_frames"):
            v = js.get(meta, key, mpath, "integer", required=False)
            if v is not None and v < 0:
                raise js.error(f"{mpath}.{key}", f"must not be negative, got {v}")
            sizes[key] = v
        info = _EgoVideo(uid, fps, sizes["height"], sizes["width"], sizes["num_frames"], vpath)
        video_info.setdefault(uid, info)
        intervals = js.get(video, "annotated_intervals", vpath, "list")
        for ii, interval in enumerate(intervals):
            ipath = f"{vpath}.annotated_intervals[{ii}]"
            interval = js.obj(interval, ipath)
            clip_uid = js.get(interval, "clip_uid", ipath, "string", nullable=True)
            clip_id = clip_uid if clip_uid is not None else uid
            _check_id(clip_id, "clip_uid", f"{annotations}: {ipath}")
            if clip_video.setdefault(clip_id, uid) != uid:
                raise js.error(ipath, f"clip_uid {clip_id!r} also appears under video {clip_video[clip_id]!r}")
            actions = js.get(interval, "narrated_actions", ipath, "list")
            for ai, action in enumerate(actions):
                apath = f"{ipath}.narrated_actions[{ai}]"
                action = js.obj(action, apath)
                n_rows += 1
                reason, pair = _ego4d_action(js, action, apath, uid, clip_id, annotations)
                key = (pair.clip_id, pair.action_id)
                if key in seen:
                    reason = DUPLICATE
                seen.add(key)
                if reason is None:
                    n_checked += 1
                    if uid not in exists:
                        exists[uid] = (videos_root / f"{uid}.mp4").is_file()
                    if not exists[uid]:
                        reason = VIDEO_MISSING
                if reason is not None:
                    filtered[reason] += 1
                    continue
                by_video.setdefault(uid, []).append(pair)
    if n_checked and not any(exists.values()):
        raise DataError(
            f"{videos_root}: none of the {len(exists)} annotated video(s) found "
            f"(expected <video_uid>.mp4 files, e.g. {next(iter(exists))}.mp4)"
        )

    clean_stale_temps(layout.base)
    remaining = limit
    n_over = 0
    n_reused = 0
    written: list[_Pair] = []
    metadata: dict[str, dict[str, Any]] = {}
    from ..progress import Progress

    tick = Progress(len(by_video), "prepare ego4d", bar=progress, unit="video")
    for uid, pairs in by_video.items():
        tick(1)
        if remaining is not None and remaining <= 0:
            n_over += len(pairs)
            continue
        info = video_info[uid]
        vpath = videos_root / f"{uid}.mp4"
        reader: VideoReader | None = None
        done: list[_Pair] = []
        try:
            queue = list(pairs)
            while queue and (remaining is None or remaining > 0):
                batch = queue if remaining is None else queue[:remaining]
                queue = queue[len(batch) :]
                ok, reused, reader = _ego4d_batch(layout, batch, vpath, info, reader, filtered)
                done.extend(ok)
                n_reused += reused
                if remaining is not None:
                    remaining -= len(ok)
            n_over += len(queue)
            new_clips = {p.clip_id for p in done} - metadata.keys()
            if new_clips:
                h, w = info.height, info.width
                if not (h and w):
                    if reader is None:
                        reader = VideoReader(vpath, fps=info.fps)
                    h, w = reader.height, reader.width
                for clip_id in sorted(new_clips):
                    metadata[clip_id] = {
                        "height": h,
                        "width": w,
                        "fps": info.fps,
                        "video_id": uid,
                        "clip_uid": clip_id if clip_id != uid else None,
                        "num_frames": info.num_frames,
                    }
        finally:
            if reader is not None:
                reader.close()
        written.extend(done)
    tick.close()

    layout.write_json(written, metadata)
    return PrepareReport(
        dataset="ego4d",
        n_rows=n_rows,
        n_written=len(written),
        filtered=dict(filtered),
        out=out,
        n_reused=n_reused,
        n_over_limit=n_over,
        split_json=layout.split_json,
        metadata_json=layout.metadata_json,
    )


def _ego4d_action(
    js: _Json,
    action: dict[str, Any],
    apath: str,
    video_uid: str,
    clip_id: str,
    annotations: Path,
) -> tuple[str | None, _Pair]:
    uid = js.get(action, "uid", apath, "string")
    _check_id(uid, "uid", f"{annotations}: {apath}")
    text = js.get(action, "narration_text", apath, "string")
    rejected = js.get(action, "is_rejected", apath, "bool")
    valid = js.get(action, "is_valid_action", apath, "bool")
    cf = js.get(action, "critical_frames", apath, "object", nullable=True)
    pre = pnr = None
    if cf is not None:
        cpath = f"{apath}.critical_frames"
        pre = js.get(cf, "pre_15", cpath, "integer", required=False)
        pnr = js.get(cf, "pnr_frame", cpath, "integer", required=False)
    pair = _Pair(clip_id, uid, video_uid, pre if pre is not None else -1, pnr if pnr is not None else -1, text)
    if rejected:
        return REJECTED, pair
    if not valid:
        return INVALID, pair
    if not text.startswith("#C C"):
        return NOT_CC, pair
    if pre is None or pnr is None:
        return MISSING_CRITICAL, pair
    if pre < 0:
        return TOO_CLOSE, pair
    if pre >= pnr:
        return NOT_BEFORE, pair
    return None, pair


def _ego4d_batch(
    layout: _Layout,
    pairs: list[_Pair],
    vpath: Path,
    info: _EgoVideo,
    reader: VideoReader | None,
    filtered: Counter[str],
) -> tuple[list[_Pair], int, VideoReader | None]:
    """Write the frames of ``pairs``; return (written pairs, reused count, reader)."""
    # frame -> destinations still to write
    todo: dict[int, list[Path]] = {}
    fresh: set[int] = set()
    for i, p in enumerate(pairs):
        for frame in (p.input_frame, p.target_frame):
            dests = layout.missing(p, frame)
            if dests:
                todo.setdefault(frame, []).extend(dests)
                fresh.add(i)
    failed: set[int] = set()
    if todo:
        if reader is None:
            reader = VideoReader(vpath, fps=info.fps)
        for frame in sorted(todo):
            try:
                img = reader.read(frame)
            except FrameNotFoundError:
                failed.update(f for f in todo if f >= frame)
                break
            data = _encode(img, layout.height)
            for d in todo[frame]:
                _write(d, data)
    ok: list[_Pair] = []
    reused = 0
    for i, p in enumerate(pairs):
        if p.input_frame in failed or p.target_frame in failed:
            filtered[PAST_END] += 1
            continue
        ok.append(p)
        reused += i not in fresh
    return ok, reused, reader


# -- misc ----------------------------------------------------------------------


def _check_args(limit: int | None, height: int) -> None:
    if limit is not None and limit < 0:
        raise DataError(f"limit must be >= 0, got {limit}")
    if height < 1:
        raise DataError(f"height must be >= 1, got {height}")
