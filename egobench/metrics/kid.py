"""KID (Kernel Inception Distance, Bińkowski et al. 2018) between the targets and the
generated images of the scored samples, computed by torch-fidelity.

The features are FID's (:class:`~egobench.metrics.fid.InceptionSetMetric`: same
input stages, same weights, same caches; a protocol naming FID and KID with the
same ``resize`` pushes each image through Inception once). The number is
``torch_fidelity.metric_kid.kid_features_to_metric`` on them, with torch-fidelity's
defaults: polynomial kernel ``(x.y / d + 1)^3``, 100 subsets of 1000 drawn
without replacement by ``np.random.RandomState(2020)``, unbiased MMD^2 per subset;
the value is the mean over the subsets and ``std`` their standard deviation.
The generated features play torch-fidelity's ``input1`` and the targets its
``input2`` (the order of the random draws), as ``calculate_metrics(input1=generated,
input2=targets, kid=True)``.

torch-fidelity refuses a subset larger than a set; here the subset size is
``min(subset_size, n_generated, n_target)`` and the result says so
(``subset_size`` and a note). With all images in every subset (N <= subset size)
the subsets hold the same images and ``std`` is float rounding only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .fid import FEATURE_DIM, InceptionSetMetric
from .settings import KIDSettings


def kernel_inception_distance(generated: np.ndarray, target: np.ndarray, s: KIDSettings) -> dict[str, Any]:
    """torch-fidelity's KID of two feature sets (rows = images) with the subset size capped at
    the smaller set. Returns value (mean), std and the subset size used."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    m = min(s.subset_size, len(generated), len(target))
    if m < 2:
        raise ValueError("KID needs at least 2 images per set")
    out = kid_features_to_metric(
        torch.from_numpy(np.ascontiguousarray(generated)), torch.from_numpy(np.ascontiguousarray(target)),
        kid_subsets=s.subsets, kid_subset_size=m, kid_kernel="poly", kid_kernel_poly_degree=s.degree,
        kid_kernel_poly_gamma=s.gamma, kid_kernel_poly_coef0=s.coef0, rng_seed=s.seed, verbose=False,
    )  # fmt: skip
    return {"value": out[KEY_METRIC_KID_MEAN], "std": out[KEY_METRIC_KID_STD], "subset_size": m}


class KID(InceptionSetMetric):
    """Kernel Inception Distance (mean and std over subsets), targets vs generated."""

    name = "kid"
    version = "1"
    display_scale = 1000.0  # printed as KID x 10^3, the usual way
    Settings = KIDSettings

    def result(self) -> dict[str, Any]:
        s: KIDSettings = self.settings
        t, g = self.feature_matrices()
        out: dict[str, Any] = {
            "n": int(len(g)), "n_generated": int(len(g)), "n_target": int(len(t)),
            "feature_dim": FEATURE_DIM, "resize": s.resize, "subsets": s.subsets,
        }  # fmt: skip
        if len(g) < 2 or len(t) < 2:
            out.update(value=None, std=None, note="KID needs at least 2 images")
            return out
        out.update(kernel_inception_distance(g, t, s))
        if out["subset_size"] < s.subset_size:
            out["note"] = (f"subset size {out['subset_size']} (the smaller set) instead of {s.subset_size}: "
                           "KID is comparable only at the same subset size")
        return out
