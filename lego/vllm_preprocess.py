"""LLaVA's image transform: ``CLIPImageProcessor.preprocess`` as transformers 4.31 ran it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .vllm_convert import read_json

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ClipPreprocess:
    """``CLIPImageProcessor.preprocess`` as transformers 4.31 ran it (PIL resize on uint8)."""

    shortest_edge: int = 224
    crop: tuple[int, int] = (224, 224)  # height, width
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    resample: int = 3  # PIL.Image.BICUBIC
    rescale: float = 1 / 255
    do_resize: bool = True
    do_center_crop: bool = True
    do_normalize: bool = True

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> ClipPreprocess:
        cfg = read_json(Path(path))
        size = cfg.get("size", 224)
        if isinstance(size, dict):
            size = size.get("shortest_edge", size.get("height", 224))
        crop = cfg.get("crop_size", size)
        crop_hw = (crop.get("height", 224), crop.get("width", 224)) if isinstance(crop, dict) else (crop, crop)
        return cls(
            shortest_edge=int(size),
            crop=(int(crop_hw[0]), int(crop_hw[1])),
            mean=tuple(cfg.get("image_mean", CLIP_MEAN)),
            std=tuple(cfg.get("image_std", CLIP_STD)),
            resample=int(cfg.get("resample", 3)),
            rescale=float(cfg.get("rescale_factor", 1 / 255)),
            do_resize=bool(cfg.get("do_resize", True)),
            do_center_crop=bool(cfg.get("do_center_crop", True)),
            do_normalize=bool(cfg.get("do_normalize", True)),
        )

    def __call__(self, image: Any) -> torch.Tensor:
        """PIL image (any mode) -> (3, H, W) float32 tensor."""
        img = image.convert("RGB")
        if self.do_resize:
            w, h = img.size
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = self.shortest_edge, int(self.shortest_edge * long / short)
            size = (new_short, new_long) if w <= h else (new_long, new_short)
            img = img.resize(size, resample=self.resample, reducing_gap=None)
        arr = np.asarray(img)
        if self.do_center_crop:
            arr = _center_crop(arr, *self.crop)
        x = (arr * self.rescale).astype(np.float32)
        if self.do_normalize:
            x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def _center_crop(arr: np.ndarray, ch: int, cw: int) -> np.ndarray:
    """transformers' ``center_crop`` (zero-pads when the image is smaller than the crop)."""
    h, w = arr.shape[:2]
    top, left = (h - ch) // 2, (w - cw) // 2
    if top >= 0 and left >= 0:
        return arr[top : top + ch, left : left + cw]
    nh, nw = max(ch, h), max(cw, w)
    padded = np.zeros((nh, nw, *arr.shape[2:]), arr.dtype)
    tp, lp = (nh - h) // 2, (nw - w) // 2
    padded[tp : tp + h, lp : lp + w] = arr
    top, left = top + tp, left + lp
    return padded[max(0, top) : min(nh, top + ch), max(0, left) : min(nw, left + cw)]
