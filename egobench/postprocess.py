"""From a method's raw output to the image file a protocol asks for.

Order, as in the released inference code: resize (bicubic on floats) to the
output size, then map values to 8 bits (per-image min-max stretch, truncated,
under ``lego-official``; clamp and round under ``egobench-v1``), then encode
(JPEG at PIL's default quality under the target's file name, or PNG).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .data.split import Sample
from .images import image_size
from .protocol import GenerationSettings

_PIL_FILTERS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
}


class BadOutputError(Exception):
    """A method returned something that cannot become an image (recorded per sample)."""


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def output_size(sample: Sample, gen: GenerationSettings, native: tuple[int, int]) -> tuple[int, int]:
    """(height, width) the saved image must have."""
    if gen.output_size == "native":
        return native
    tw, th = image_size(sample.target_path)
    if gen.output_size == "target":
        return th, tw
    h, w = sample.meta.get("height"), sample.meta.get("width")
    if not h or not w:
        h, w = th, tw
    res = gen.resolution
    # Python's round() like the released code (banker's rounding on .5)
    return res, round(w / h * res)


def output_relpath(sample: Sample, gen: GenerationSettings) -> str:
    """Path of the sample's image inside ``images/``."""
    ext = "jpg" if gen.output_format == "jpeg" else "png"
    if gen.output_layout == "official":
        clip, action = sample.meta.get("clip_id"), sample.meta.get("action_id")
        name = Path(sample.meta.get("image_1") or sample.target_path.name).name
        stem = Path(name).stem
        return f"{clip}/{action}/{stem}.{ext}"
    return f"{sample.id}.{ext}"


def _to_chw_float(x: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    t = t.detach().to("cpu", torch.float32)
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3:
        raise BadOutputError(f"expected an image of 3 dims, got shape {tuple(t.shape)}")
    if t.shape[0] != 3 and t.shape[-1] == 3:
        t = t.permute(2, 0, 1)
    if t.shape[0] != 3:
        raise BadOutputError(f"expected 3 channels, got shape {tuple(t.shape)}")
    return t


def finalize(output: Any, sample: Sample, gen: GenerationSettings) -> Image.Image:
    """Turn one method output into the final 8-bit RGB image."""
    if isinstance(output, Image.Image):
        img = output.convert("RGB")
        h, w = output_size(sample, gen, (img.height, img.width))
        if (img.height, img.width) != (h, w):
            img = img.resize((w, h), _PIL_FILTERS[gen.resize_filter])
        return img
    if isinstance(output, np.ndarray) and output.dtype == np.uint8:
        return finalize(Image.fromarray(output if output.shape[-1] == 3 else output.transpose(1, 2, 0)), sample, gen)
    x = _to_chw_float(output)
    if not torch.isfinite(x).all():
        raise BadOutputError("output has NaN or infinite values")
    h, w = output_size(sample, gen, (int(x.shape[1]), int(x.shape[2])))
    if (x.shape[1], x.shape[2]) != (h, w):
        mode = gen.resize_filter if gen.resize_filter in ("bicubic", "bilinear", "nearest") else "bicubic"
        kwargs = {} if mode == "nearest" else {"align_corners": False}
        x = F.interpolate(x[None], size=(h, w), mode=mode, **kwargs)[0]
    if gen.value_map == "minmax":
        lo, hi = x.min(), x.max()
        if float(hi - lo) <= 0:
            raise BadOutputError("constant output: min-max stretch is undefined")
        arr = ((x - lo) / (hi - lo) * 255).numpy()
        arr = arr.astype(np.uint8)  # truncation, as the released code does
    else:
        arr = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return Image.fromarray(np.ascontiguousarray(arr.transpose(1, 2, 0)), "RGB")
