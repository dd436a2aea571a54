"""Training checkpoints that a ``kill -9`` at any point never leaves half-written, and the final folder's publish."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from egobench.io import atomic_write_json

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"

def checkpoint_dirs(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first: ``step-N`` folders holding the state file (written last)."""
    root = output_dir / CHECKPOINTS
    found = []
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and p.name.startswith("step-") and p.name[5:].isdigit() and (p / STATE_FILE).is_file():
                found.append((int(p.name[5:]), p))
    return sorted(found)


#: prefixes of checkpoint folders being written or deleted (never loaded; removed by the next run)
_PARTIAL_PREFIXES = (".tmp-step-", ".trash-step-")


def clean_partial_checkpoints(output_dir: Path) -> None:
    """Remove what killed saves and deletions left behind (``.tmp-step-*``, ``.trash-step-*``)."""
    root = output_dir / CHECKPOINTS
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(_PARTIAL_PREFIXES):
                shutil.rmtree(p, ignore_errors=True)


def fsync(path: Path) -> None:
    """Flush one file, or a folder's entries (the renames inside it), to disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. no directory fds on this platform
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - fsync of a folder is not supported everywhere
        pass
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` (so a machine crash, not only a killed
    process, cannot leave a renamed checkpoint with empty files)."""
    for path in sorted(folder.rglob("*"), key=lambda p: -len(p.parts)) + [folder]:
        fsync(path)


def remove_checkpoint(path: Path) -> None:
    """Take ``path`` out of the checkpoints in one rename, then delete it: a kill during the slow
    delete leaves a ``.trash-step-*`` folder (never loaded, removed by the next run), not a
    half-deleted ``step-N`` that still looks like a checkpoint."""
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def publish(tmp: Path, out: Path) -> None:
    """Move the entries of ``tmp`` into ``out``, ``model_index.json`` last (it marks a complete folder)."""
    index = out / "model_index.json"
    if index.exists():
        index.unlink()
    trash = Path(tempfile.mkdtemp(prefix=".tmp-egobench-old-", dir=out))
    try:
        for entry in sorted(tmp.iterdir(), key=lambda p: p.name == "model_index.json"):
            dest = out / entry.name
            if dest.exists():
                os.replace(dest, trash / entry.name)
            os.replace(entry, dest)
    finally:
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)



def save_checkpoint(accelerator: Any, out: Path, step: int, losses: list[float], config: Any,
                     mode: str) -> None:
    """Write ``checkpoints/step-N`` so that a ``kill -9`` at any point leaves no checkpoint that
    resume would load half-written.

    ``accelerator.save_state`` writes into ``.tmp-step-N``; the state file (what makes a folder a
    checkpoint, :func:`checkpoint_dirs`) is written last, atomically; the files are flushed to disk;
    one rename publishes the folder. A ``step-N`` it replaces and checkpoints beyond
    ``checkpoints_keep`` are first renamed out of the way, then deleted (:func:`remove_checkpoint`).
    A kill leaves at worst ``.tmp-``/``.trash-`` folders, which are never loaded and which the next
    run removes; resume then starts from the newest complete checkpoint.
    """
    root = out / CHECKPOINTS
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_json(tmp / STATE_FILE, {"step": step, "losses": losses, "mode": mode,
                                             "resume_key": config.resume_key(), "config": config.to_dict()})
        fsync_tree(tmp)
        if final.exists():
            remove_checkpoint(final)
        os.replace(tmp, final)
        fsync(root)
        if config.checkpoints_keep is not None:
            for _, old in checkpoint_dirs(out)[: -config.checkpoints_keep]:
                remove_checkpoint(old)
    accelerator.wait_for_everyone()
