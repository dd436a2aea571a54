"""PSNR per image on [0, 1] (data range 1), averaged over the split.

As in the released code (torchmetrics ``PSNR(data_range=1.0)`` per image): the
generated image is resized to the target's size when they differ.
"""

from __future__ import annotations

import numpy as np
import torch

from . import Metric, MetricBatch
from .imageops import match_size, to_unit_tensor
from .settings import PSNRSettings


def psnr(generated: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """PSNR in dB of two same-shape float tensors; ``inf`` when identical."""
    if generated.shape != target.shape:
        raise ValueError(f"shape mismatch {tuple(generated.shape)} vs {tuple(target.shape)}")
    mse = torch.mean((generated.double() - target.double()) ** 2).item()
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))




class PSNR(Metric):
    name = "psnr"
    needs = ("generated", "target")
    higher_is_better = True
    version = "1"
    display_scale = 1.0  # the paper prints dB as is
    Settings = PSNRSettings
    reduced_precision = False  # pure math on the decoded pixels

    def compute(self, batch: MetricBatch) -> np.ndarray:
        s: PSNRSettings = self.settings
        out = np.empty(len(batch), dtype=np.float64)
        for i, (g, t) in enumerate(zip(batch.generated, batch.target, strict=False)):
            gt = to_unit_tensor(t)
            gen = match_size(to_unit_tensor(g), gt.shape[-2:], s.resize_filter, s.antialias)
            out[i] = psnr(gen, gt, s.data_range)
        return out
