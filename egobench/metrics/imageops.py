"""Small, explicit image conversions shared by metrics (filters pinned)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_unit_tensor(img: np.ndarray, device: str | torch.device | None = None) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1], like ``ToTensor``; on ``device`` when given
    (the uint8 pixels travel, then the conversion and any resize run there)."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected uint8 (H, W, 3), got {img.dtype} {img.shape}")
    x = torch.from_numpy(np.array(img, copy=True))
    if device is not None:
        x = x.to(device, non_blocking=True)
    return x.permute(2, 0, 1).float().div_(255.0)


def match_size(x: torch.Tensor, size: tuple[int, int] | torch.Size, mode: str, antialias: bool) -> torch.Tensor:
    """Resize a (3, H, W) tensor to ``size`` unless it already has it."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    y = F.interpolate(x[None], size=size, mode=mode, align_corners=False, antialias=antialias)
    return y[0]
