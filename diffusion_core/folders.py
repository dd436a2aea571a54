"""Where a model folder given on the command line is: an existing path, or an artifact of the weight store."""

from __future__ import annotations

import os
from pathlib import Path

from egobench.errors import UserError
from egobench.weights import WeightStore


def resolve_folder(ref: str | os.PathLike, store: WeightStore) -> tuple[Path, bool]:
    """``(folder, tiny)`` for a path or an artifact name."""
    from egobench.weights import ARTIFACTS, TINY_MARKER, refuse_remote_code

    p = Path(ref).expanduser()
    if p.exists():
        if not p.is_dir():
            raise UserError(f"{p}: expected a diffusers folder (a CompVis .ckpt needs 'egobench convert lego' first)")
        refuse_remote_code(p, f"folder {p}")
        return p, (p / TINY_MARKER).is_file()
    if str(ref) not in ARTIFACTS.names():
        raise UserError(f"--init {ref}: no such folder and no artifact of that name (e.g. sd15)")
    res = store.resolve(str(ref))
    return res.path, res.tiny
