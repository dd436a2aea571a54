"""``egobench data verify``: every referenced frame exists and decodes.

Frames are decoded with the one image reader (:func:`egobench.images.open_rgb`):
a missing, empty, truncated, animated or multi-page file, or one declaring more
pixels than :data:`egobench.images.MAX_PIXELS` (a decompression bomb), is a
*bad frame*, listed with its reason; ``verify`` exits 1 when there is any.

Frames that decode but deserve a look are *notes* (they do not fail verify):
content in another format than its name says (a WebP or PNG saved as
``.jpg``), an embedded ICC colour profile (not applied: every metric scores the
stored values, as the released code does), and frames whose real path (after
symbolic links) lies outside the data root (followed; see
:mod:`egobench.data.lego_release`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..images import BadImageError, open_rgb
from .datasets import load_split

#: how many bad frames / notes the summary lists before "... and N more"
SHOW = 20

_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)
_SUFFIX_FORMAT = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".gif": "GIF", ".tif": "TIFF",
                  ".tiff": "TIFF", ".bmp": "BMP", ".webp": "WEBP"}


def sniff_format(head: bytes) -> str | None:
    """The image format from a file's first bytes, or None when unknown."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


@dataclass
class VerifyReport:
    dataset: str
    n_samples: int
    n_files: int
    fingerprint: str
    by_domain: dict[str, int]
    bad: list[str] = field(default_factory=list)
    input_not_first: int = 0  # pairs where image_0 is not the first file in sorted order
    notes: list[str] = field(default_factory=list)  # frames that decode but deserve a look
    outside_root: int = 0  # frames whose real path (symlinks resolved) is outside the data root

    @property
    def ok(self) -> bool:
        return not self.bad

    def summary(self) -> str:
        domains = ", ".join(f"{k} {v}" for k, v in sorted(self.by_domain.items()))
        lines = [
            f"dataset {self.dataset}: {self.n_samples} samples ({domains}), {self.n_files} frames checked",
            f"fingerprint {self.fingerprint}",
        ]
        if self.input_not_first:
            lines.append(
                f"note: {self.input_not_first} pairs whose image_0 is not the first file by name "
                "(the released metric code takes the first file as the input for EgoVLP+)"
            )
        if self.outside_root:
            lines.append(
                f"note: {self.outside_root} frame(s) are symbolic links to files outside the data root "
                "(followed; the fingerprint hashes their content)"
            )
        if self.notes:
            lines.append(f"{len(self.notes)} frame note(s):")
            lines.extend(f"  {n}" for n in self.notes[:SHOW])
            if len(self.notes) > SHOW:
                lines.append(f"  ... and {len(self.notes) - SHOW} more")
        if self.bad:
            lines.append(f"{len(self.bad)} bad frame(s):")
            lines.extend(f"  {b}" for b in self.bad[:SHOW])
            if len(self.bad) > SHOW:
                lines.append(f"  ... and {len(self.bad) - SHOW} more")
        else:
            lines.append("all frames decode")
        return "\n".join(lines)


def _check_frame(p: Path, notes: list[str]) -> None:
    """Decode ``p`` (raising BadImageError) and append notes about it."""
    img = open_rgb(p)
    try:
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError:  # pragma: no cover - it just decoded
        head = b""
    fmt = sniff_format(head)
    expected = _SUFFIX_FORMAT.get(p.suffix.lower())
    if fmt and expected and fmt != expected:
        notes.append(f"{p}: {fmt} data in a {p.suffix} file (decodes; the released code reads it the same way)")
    if img.info.get("icc_profile"):
        notes.append(f"{p}: embedded ICC colour profile, not applied (metrics score the stored values)")


def verify(dataset: str, data_root: str | os.PathLike | None = None) -> VerifyReport:
    split = load_split(dataset, data_root)
    bad: list[str] = []
    notes: list[str] = []
    n_files = 0
    seen: set[Path] = set()
    by_domain: dict[str, int] = {}
    not_first = 0
    outside = 0
    root = os.path.realpath(split.root) if split.root is not None else None
    for s in split:
        d = str(s.meta.get("domain", s.dataset))
        by_domain[d] = by_domain.get(d, 0) + 1
        for p in (s.input_path, s.target_path):
            if p in seen:
                continue
            seen.add(p)
            n_files += 1
            if root is not None:
                real = os.path.realpath(p)
                if not real.startswith(root.rstrip(os.sep) + os.sep):
                    outside += 1
            try:
                _check_frame(p, notes)
            except BadImageError as e:
                bad.append(str(e))
        folder = s.input_path.parent
        files = sorted(f.name for f in folder.iterdir() if f.is_file()) if folder.is_dir() else []
        if files and files[0] != s.input_path.name:
            not_first += 1
    return VerifyReport(dataset, len(split), n_files, split.fingerprint, by_domain, bad, not_first, notes, outside)
