"""VLLM feature files in the layout of the LEGO release.

The released LDM reads, per sample, two ``.npy`` files named after the input
frame (``image_0`` with ``.jpg`` -> ``.npy``)::

    <root>/vllm_image_feature/<model_tag>/<part>/<clip>/<action>/<frame>.npy   (256 x 5120)
    <root>/vllm_text_feature/<model_tag>/<part>/<clip>/<action>/<frame>.npy    (#tokens x 5120)

``model_tag`` names the VLLM that produced them (the released finetuned model
is ``llava-llama-2-13b-chat-forecasting-finetune-ckpt450``). The HF datasets
``bolinlai/LEGO-VLLM-Features-Ego4D`` / ``-EpicKitchens`` hold these dumps, so
a user can skip the 13B model. egobench writes features it computes in the
same layout (plus the generated description in a ``.txt`` beside the text
features) but under its own tags, ``egobench-<VLM>`` (:mod:`lego.vllm_choice`),
with ``provenance.json`` saying how they were made (:mod:`lego.vllm_provenance`):
the LDM reads either source alike, and a run records which one it read
(:mod:`lego.feature_source`).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egobench.data import Sample
from egobench.errors import DataError
from egobench.io import atomic_write_bytes, atomic_write_text

RELEASED_TAG = "llava-llama-2-13b-chat-forecasting-finetune-ckpt450"


@dataclass
class VLLMFeatures:
    """One sample's VLLM outputs."""

    image: np.ndarray  # (image tokens, hidden): projector output
    text: np.ndarray  # (generated tokens, hidden): last-layer hidden state per generated token
    description: str | None = None  # the enriched description, when known


def feature_paths(root: str | os.PathLike, sample: Sample, model_tag: str = RELEASED_TAG, part: str = "val") -> tuple[Path, Path]:
    """(image feature path, text feature path) of ``sample`` under ``root``."""
    rel = sample.meta.get("image_0")
    if not rel:
        raise DataError(f"sample {sample.id}: no image_0 path to name its VLLM features after")
    rel = str(Path(rel).with_suffix(".npy"))
    root = Path(root)
    return (
        root / "vllm_image_feature" / model_tag / part / rel,
        root / "vllm_text_feature" / model_tag / part / rel,
    )


def has_features(root: str | os.PathLike, sample: Sample, model_tag: str = RELEASED_TAG) -> bool:
    return all(p.is_file() for p in feature_paths(root, sample, model_tag))


def _load(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: VLLM feature file not found") from None
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read VLLM features ({e})") from None
    if arr.ndim != 2 or not np.isfinite(arr).all():
        raise DataError(f"{path}: expected a finite 2-D array (tokens x hidden), got shape {arr.shape}")
    return arr


def load_features(root: str | os.PathLike, sample: Sample, model_tag: str = RELEASED_TAG) -> VLLMFeatures:
    ip, tp = feature_paths(root, sample, model_tag)
    desc_path = tp.with_suffix(".txt")
    desc = desc_path.read_text(encoding="utf-8") if desc_path.is_file() else None
    return VLLMFeatures(_load(ip), _load(tp), desc)


def save_features(root: str | os.PathLike, sample: Sample, feats: VLLMFeatures, model_tag: str = RELEASED_TAG) -> None:
    """Write atomically (text features and description first, image features last:
    a sample counts as done once its image features exist)."""
    ip, tp = feature_paths(root, sample, model_tag)
    for path, arr in ((tp, feats.text), (ip, feats.image)):
        if path == ip and feats.description is not None:
            atomic_write_text(tp.with_suffix(".txt"), feats.description)
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
