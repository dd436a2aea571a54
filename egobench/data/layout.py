"""``egobench layout``: a folder skeleton and a ``samples.csv`` for outside code.

A script that is not an egobench method fills the skeleton and then runs
``egobench evaluate --images DIR``::

    DIR/<clip_id>/<action_id>/      one empty folder per sample (the official layout)
    DIR/samples.csv                 one row per sample, in split order

``samples.csv`` columns (:data:`COLUMNS`): ``sample_id``; ``output_path``, where
the generated image goes, relative to ``DIR`` (``<clip_id>/<action_id>/<target
file stem>.png``; ``.jpg`` is read too, and so is the flat ``<sample_id>.png``);
``input_path`` (absolute path of the input frame); ``action``; ``description``
(the enriched description, may be empty); ``verb`` and ``noun``
(:attr:`Sample.verb` / :attr:`Sample.noun`); ``target_width`` and
``target_height``, the pixel size of the target frame the image is scored
against. Text cells go through :func:`egobench.io.csv_cell` (a cell starting
with ``= + - @``, tab or CR gets a leading apostrophe so no spreadsheet runs it).
The CSV is written atomically, after the folders; rerunning overwrites it and
keeps whatever the folders already hold.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from ..images import image_size
from ..io import atomic_write_text, csv_row, safe_join
from .split import Split

__all__ = ["COLUMNS", "LayoutResult", "write_layout"]

COLUMNS = (
    "sample_id",
    "output_path",
    "input_path",
    "action",
    "description",
    "verb",
    "noun",
    "target_width",
    "target_height",
)


@dataclass(frozen=True)
class LayoutResult:
    out_dir: Path
    samples_csv: Path
    n_samples: int


def write_layout(split: Split, out_dir: str | os.PathLike) -> LayoutResult:
    """Write the folder skeleton and ``samples.csv`` for ``split`` under ``out_dir``."""
    out_dir = Path(out_dir)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for s in split:
        if s.clip_id and s.action_id:
            folder = safe_join(out_dir, s.clip_id, s.action_id)  # refuses a folder outside out_dir
            stem = Path(str(s.meta.get("image_1") or s.target_path.name)).stem
            rel = f"{s.clip_id}/{s.action_id}/{stem}.png"
        else:  # a split without clip/action ids: the flat layout
            folder = out_dir
            rel = f"{s.id}.png"
        folder.mkdir(parents=True, exist_ok=True)
        width, height = image_size(s.target_path)
        writer.writerow(csv_row([
            s.id, rel, str(Path(s.input_path).resolve()), s.action, s.description, s.verb, s.noun, width, height,
        ]))
    csv_path = out_dir / "samples.csv"
    atomic_write_text(csv_path, buf.getvalue())
    return LayoutResult(out_dir, csv_path, len(split))
