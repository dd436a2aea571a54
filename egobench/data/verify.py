"""``egobench data verify``: every referenced frame exists and decodes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..images import BadImageError, open_rgb
from .datasets import load_split


@dataclass
class VerifyReport:
    dataset: str
    n_samples: int
    n_files: int
    fingerprint: str
    by_domain: dict[str, int]
    bad: list[str] = field(default_factory=list)
    input_not_first: int = 0  # pairs where image_0 is not the first file in sorted order

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
        if self.bad:
            lines.append(f"{len(self.bad)} bad frame(s):")
            lines.extend(f"  {b}" for b in self.bad[:20])
            if len(self.bad) > 20:
                lines.append(f"  ... and {len(self.bad) - 20} more")
        else:
            lines.append("all frames decode")
        return "\n".join(lines)


def verify(dataset: str, data_root: str | os.PathLike | None = None) -> VerifyReport:
    split = load_split(dataset, data_root)
    bad: list[str] = []
    n_files = 0
    seen: set[Path] = set()
    by_domain: dict[str, int] = {}
    not_first = 0
    for s in split:
        d = str(s.meta.get("domain", s.dataset))
        by_domain[d] = by_domain.get(d, 0) + 1
        for p in (s.input_path, s.target_path):
            if p in seen:
                continue
            seen.add(p)
            n_files += 1
            try:
                open_rgb(p)
            except BadImageError as e:
                bad.append(str(e))
        folder = s.input_path.parent
        files = sorted(f.name for f in folder.iterdir() if f.is_file()) if folder.is_dir() else []
        if files and files[0] != s.input_path.name:
            not_first += 1
    return VerifyReport(dataset, len(split), n_files, split.fingerprint, by_domain, bad, not_first)
