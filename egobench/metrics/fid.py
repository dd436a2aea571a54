"""FID between the targets and the generated images of the scored samples.

The released code runs its vendored pytorch-fid (``metrics/pytorch_fid``) on
the ground-truth folder against the generated folder: InceptionV3 pool3
(2048-d) with the TensorFlow FID weights of 2015-12-05, each image turned into
a [0, 1] float tensor, resized with ``F.interpolate(size=(299, 299),
mode="bilinear", align_corners=False)``, mapped to [-1, 1] by ``2x - 1``;
mean and covariance in float64 (``np.cov``), and

    FID = |mu_t - mu_g|^2 + tr(S_t) + tr(S_g) - 2 tr sqrtm(S_t S_g)

with ``scipy.linalg.sqrtm`` (pytorch-fid's ``calculate_frechet_distance``,
eps 1e-6 added to the diagonals if the product is singular). Here the two
sets are the targets and the generated images of the scored samples.

Weights and network: torch-fidelity's ``inception-v3-compat`` extractor,
whose weights file is the same 2015-12-05 conversion (sha256 prefix
``6726825d`` like pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``) and
whose layers are the FID Inception's (TF-style average pools that exclude
padding, max pool in the last block). Two input stages (setting ``resize``):

``pytorch-fid`` (the released code)
    float [0, 1] -> bilinear 299 (``align_corners=False``, no antialias) ->
    ``2x - 1`` -> the extractor's layers from ``Conv2d_1a_3x3`` to pool3.
    torch-fidelity's ``forward`` cannot be used for this: it takes uint8,
    resizes with its own TF1-style bilinear and normalises with
    ``(x - 128) / 128``, so the float input would be quantised and resized
    twice. Only the layer sequence after the input stage is called
    (:func:`pool3_from_normalized`), checked against ``forward`` in the tests.
``torch-fidelity``
    uint8 images straight into the extractor's ``forward`` (its own resize and
    normalisation), as ``torch_fidelity.calculate_metrics`` does.
``clean``
    clean-fid's ``clean`` mode (Parmar et al.): the library's own resizer (PIL
    bicubic on each channel in float32, no quantisation) to 299, then
    ``(x - 128) / 128`` as its ``InceptionV3W.forward`` does, then the layers.
    clean-fid's own network is a TorchScript file (``inception-2015-12-05.pt``)
    that the library downloads from NVIDIA on first use; egobench has no
    network, so the layers are the same 2015-12-05 weights from the
    ``inception-fid`` artifact above (torch-fidelity's port). The tests run
    clean-fid's ``compute_fid`` end to end on a TorchScript trace of those
    layers; that NVIDIA's file and torch-fidelity's port agree layer for layer
    on the real weights cannot be checked offline.

The features are accumulated by :class:`InceptionSetMetric`, which KID
(:mod:`.kid`) shares: a protocol with both runs Inception once per image.

Trace of the matrix square root (setting ``trace_sqrt``): ``sqrtm`` is
pytorch-fid's formula. ``svd`` computes the same number exactly another way:
with S_i = L_i L_i^T (L_i the centred features / sqrt(n_i - 1), or an
eigen-factor when n_i > 2048), the eigenvalues of S_t S_g are the squared
singular values of L_t^T L_g, so tr sqrtm(S_t S_g) is the sum of those
singular values. It is real by construction (no imaginary residue) and much
faster when there are fewer images than feature dimensions.

With fewer images than 2048 the covariances are rank-deficient: FID is then
biased upward and depends on N; the result carries ``n`` and a note.
"""

from __future__ import annotations

import math
import os
import secrets
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import _compat
from ..shared_models import shared_model
from ..weights import Artifact, register_artifact
from . import Metric, MetricBatch
from .imageops import to_unit_tensor
from .settings import FIDSettings

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
INCEPTION_SIZE = 299
FEATURE_DIM = 2048

INCEPTION_FID = register_artifact(
    Artifact(
        name="inception-fid",
        description="InceptionV3 FID weights (TensorFlow 2015-12-05, torch-fidelity "
        "'inception-v3-compat'; same weights as pytorch-fid's pt_inception-2015-12-05)",
        files=(INCEPTION_FILE,),
        license="Apache-2.0 (TensorFlow models)",
        url=INCEPTION_URL,
        sha256_prefix={INCEPTION_FILE: "6726825d"},
        tiny="egobench.metrics.fid:build_tiny_inception",
    )
)

#: the extractor's layers from the normalised 299 x 299 input to pool3
POOL3_LAYERS = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1",
    "Conv2d_3b_1x1", "Conv2d_4a_3x3", "MaxPool_2",
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
    "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool",
)  # fmt: skip


def load_inception(weights_file: str | Path, device: str = "cpu") -> torch.nn.Module:
    """torch-fidelity's ``inception-v3-compat`` extractor (pool3 features) from a file."""
    _compat.ensure_torchvision()
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    model = FeatureExtractorInceptionV3(
        name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=str(weights_file)
    )
    return model.to(device).eval()


def shared_inception(weights_file: str | Path, device: str = "cpu") -> torch.nn.Module:
    """:func:`load_inception`, one copy per (file, device) per process (it is read-only)."""
    key = (str(weights_file), "inception-v3-compat", str(device))
    return shared_model(key, lambda: load_inception(weights_file, device))


def pytorch_fid_input(images: list[np.ndarray], device: str | torch.device = "cpu") -> torch.Tensor:
    """pytorch-fid's input stage: [0, 1] float, bilinear 299 (align_corners=False,
    no antialias), then 2x - 1, on ``device``. Returns float32 (N, 3, 299, 299)."""
    out = []
    for img in images:
        x = to_unit_tensor(img)[None].to(device)
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
        out.append(x[0])
    return torch.stack(out) * 2 - 1


def pool3_from_normalized(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """pool3 features (N, 2048) float32 of an already resized and normalised input."""
    x = x.to(dtype=model.feature_extractor_internal_dtype)
    with torch.no_grad():
        for name in POOL3_LAYERS:
            x = getattr(model, name)(x)
    return torch.flatten(x, 1).to(torch.float32)


def torch_fidelity_pool3(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The extractor's own forward on uint8 (N, 3, H, W)."""
    with torch.no_grad():
        (f,) = model(images)
    return f.to(torch.float32)


# ---------------------------------------------------------------------------
# Fréchet distance
# ---------------------------------------------------------------------------
def fid_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (``np.cov``, ddof 1) in float64, as pytorch-fid."""
    act = np.asarray(features, dtype=np.float64)
    return act.mean(axis=0), np.cov(act, rowvar=False)


def frechet_distance_sqrtm(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> tuple[float, dict[str, Any]]:
    """pytorch-fid's formula: ``scipy.linalg.sqrtm(S1 S2)``; eps on the diagonals if
    the result is not finite; real part of a complex result. Where pytorch-fid
    raises on an imaginary diagonal (> 1e-3), this returns the value and reports
    ``sqrtm_imag_max`` instead; scipy's LinAlgWarning (singular product, the
    usual case with fewer images than dimensions) goes to ``sqrtm_warning``."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    info: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:  # "Matrix is singular" when N < dim
        warnings.simplefilter("always", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
            info["sqrtm_eps"] = eps
    messages = sorted({str(w.message) for w in caught if issubclass(w.category, linalg.LinAlgWarning)})
    for w in caught:
        if not issubclass(w.category, linalg.LinAlgWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if messages:
        info["sqrtm_warning"] = "; ".join(messages)
    if np.iscomplexobj(covmean):
        info["sqrtm_imag_max"] = float(np.max(np.abs(np.diagonal(covmean).imag)))
        covmean = covmean.real
    value = float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))
    return value, info


def _cov_factor(act: np.ndarray) -> tuple[np.ndarray, float]:
    """(L, tr S) with S = L L^T the sample covariance of float64 rows ``act``."""
    n, d = act.shape
    xc = act - act.mean(axis=0)
    trace = float(np.sum(xc * xc) / (n - 1))
    if n <= d:
        return xc.T / math.sqrt(n - 1), trace
    w, v = np.linalg.eigh(xc.T @ xc / (n - 1))
    return v * np.sqrt(np.clip(w, 0.0, None)), trace


def frechet_distance_svd(features1: np.ndarray, features2: np.ndarray) -> float:
    """The same Fréchet distance from the features: tr sqrtm(S1 S2) = sum of the
    singular values of L1^T L2 (S_i = L_i L_i^T); float64 throughout."""
    a1 = np.asarray(features1, dtype=np.float64)
    a2 = np.asarray(features2, dtype=np.float64)
    diff = a1.mean(axis=0) - a2.mean(axis=0)
    l1, tr1 = _cov_factor(a1)
    l2, tr2 = _cov_factor(a2)
    tr_covmean = float(np.linalg.svd(l1.T @ l2, compute_uv=False).sum())
    return float(diff.dot(diff) + tr1 + tr2 - 2 * tr_covmean)


def frechet_distance(
    features1: np.ndarray, features2: np.ndarray, trace_sqrt: str = "sqrtm"
) -> tuple[float, dict[str, Any]]:
    """FID of two feature sets (rows = images); ``features1`` plays pytorch-fid's first path."""
    if len(features1) < 2 or len(features2) < 2:
        raise ValueError("FID needs at least 2 images per set")
    if trace_sqrt == "sqrtm":
        mu1, s1 = fid_statistics(features1)
        mu2, s2 = fid_statistics(features2)
        return frechet_distance_sqrtm(mu1, s1, mu2, s2)
    if trace_sqrt == "svd":
        return frechet_distance_svd(features1, features2), {}
    raise ValueError(f"unknown trace_sqrt '{trace_sqrt}'")


# ---------------------------------------------------------------------------
# The metrics: one Inception feature accumulator, FID (here) and KID (kid.py) on top
# ---------------------------------------------------------------------------
def clean_fid_input(images: list[np.ndarray], device: str | torch.device = "cpu") -> torch.Tensor:
    """clean-fid's ``clean`` input stage: the library's own resizer (PIL bicubic on each channel
    in float32, no quantisation, ``cleanfid.resize.build_resizer("clean")``), then what its
    ``InceptionV3W.forward`` does before the layers: ``(x - 128) / 128``. float32 (N, 3, 299, 299)."""
    from cleanfid.resize import build_resizer

    resize = build_resizer("clean")
    out = []
    for img in images:
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"expected uint8 (H, W, 3), got {img.dtype} {img.shape}")
        out.append(torch.from_numpy(np.ascontiguousarray(resize(img), dtype=np.float32)).permute(2, 0, 1))
    return ((torch.stack(out) - 128) / 128).to(device)




class InceptionSetMetric(Metric):
    """Inception pool3 features of the targets and the generated images of the scored samples,
    accumulated batch by batch (the state FID and KID both compute from).

    Two metrics with the same input stage (``settings.resize``) and weights share the features:
    within a batch through :meth:`MetricBatch.shared` (one Inception pass for FID and KID), and
    across runs through one feature-cache namespace (``inception-pool3``: target side in the
    feature cache, generated side in the run cache), whatever the metric's other settings.
    """

    needs = ("generated", "target")
    higher_is_better = False
    kind = "set"
    reduced_precision = False  # Inception statistics in fp32, as torch-fidelity and pytorch-fid compute them
    #: images per Inception forward (results do not depend on it beyond float rounding)
    batch_size: int = 16
    #: bumped when the features themselves change (not when a metric's formula does)
    FEATURES_VERSION = "1"

    def __init__(self, settings: Any, *, weights=None, device: str = "cpu", cache=None):
        super().__init__(settings, weights=weights, device=device, cache=cache)
        res = weights.resolve(INCEPTION_FID.name)
        self.weights_file = str(res.file(INCEPTION_FILE))
        self.model = shared_inception(self.weights_file, device)
        self.reset()

    @classmethod
    def artifacts(cls, settings: Any) -> list[str]:
        return [INCEPTION_FID.name]

    def reset(self) -> None:
        self._generated: list[np.ndarray] = []
        self._target: list[np.ndarray] = []
        self._ids: list[str] = []
        #: images pushed through Inception, per side (tests count these)
        self.forwarded = {"generated": 0, "target": 0}

    def features(self, images: list[np.ndarray], side: str = "generated") -> np.ndarray:
        """pool3 features float32 (N, 2048) in the configured input mode."""
        self.forwarded[side] = self.forwarded.get(side, 0) + len(images)
        out = np.empty((len(images), FEATURE_DIM), dtype=np.float32)
        if self.settings.resize in ("pytorch-fid", "clean"):
            stage = pytorch_fid_input if self.settings.resize == "pytorch-fid" else clean_fid_input
            for start in range(0, len(images), self.batch_size):
                x = stage(images[start : start + self.batch_size], self.device)
                out[start : start + len(x)] = pool3_from_normalized(self.model, x).cpu().numpy()
            return out
        # torch-fidelity: uint8 batches of equal size into its forward
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, img in enumerate(images):
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f"expected uint8 (H, W, 3), got {img.dtype} {img.shape}")
            groups.setdefault(img.shape, []).append(i)
        for idx in groups.values():
            for start in range(0, len(idx), self.batch_size):
                part = idx[start : start + self.batch_size]
                x = torch.from_numpy(np.stack([images[i] for i in part])).permute(0, 3, 1, 2).contiguous()
                f = torch_fidelity_pool3(self.model, x.to(self.device)).cpu().numpy()
                out[part] = f
        return out

    def cached(self, part, keys, compute, cache=None, artifacts=None):
        """Features through the cache under a namespace made of the input stage, the weights'
        digest and the features' version only: FID and KID read and write the same entries."""
        cache = self.cache if cache is None else cache
        if cache is None or not cache.enabled:
            return list(compute(list(range(len(keys)))))
        from .cache import namespace_key

        if "_features_ns" not in self.__dict__:
            self._features_ns = ("inception-pool3", self.FEATURES_VERSION, {"resize": self.settings.resize},
                                 self.weights_digest())
        return cache.get_or_compute(f"inception-pool3-{namespace_key(*self._features_ns, part)}", keys, compute)

    def _side(self, batch: MetricBatch, side: str) -> np.ndarray:
        """This batch's features of one side, computed once per batch for every metric sharing them."""

        def compute() -> np.ndarray:
            images = batch.generated if side == "generated" else batch.target

            def fill(idx: list[int]) -> list[np.ndarray]:
                return list(self.features([images[i] for i in idx], side))

            if side == "generated":
                # a resumed or repeated evaluation of the same outputs pushes nothing through Inception again
                if self.run_cache is not None and len(batch.generated_keys) == len(batch):
                    return np.stack(self.cached("generated-pool3", batch.generated_keys, fill, cache=self.run_cache))
                return np.stack(fill(list(range(len(batch)))))
            if len(batch.target_keys) == len(batch):
                return np.stack(self.cached("target-pool3", batch.target_keys, fill))
            return np.stack(fill(list(range(len(batch)))))

        key = ("inception-pool3", self.weights_file, str(self.device), self.settings.resize, side)
        return batch.shared(key, compute).astype(np.float32, copy=False)

    def update(self, batch: MetricBatch) -> None:
        if len(batch) == 0:
            return
        self._ids.extend(batch.ids)
        self._generated.append(self._side(batch, "generated"))
        self._target.append(self._side(batch, "target"))

    def feature_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """(target, generated) features accumulated so far."""
        empty = np.zeros((0, FEATURE_DIM), dtype=np.float32)
        t = np.concatenate(self._target) if self._target else empty
        g = np.concatenate(self._generated) if self._generated else empty
        return t, g

    def state(self) -> dict[str, Any]:
        t, g = self.feature_matrices()
        return {"ids": list(self._ids), "target": t, "generated": g}

    def load_states(self, states: list[dict[str, Any]], order: Sequence[str]) -> None:
        rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for st in states:
            for i, sid in enumerate(st["ids"]):
                rows[sid] = (st["target"][i], st["generated"][i])
        ids = [sid for sid in order if sid in rows]
        self.reset()
        if ids:
            self._ids = ids
            self._target = [np.stack([rows[i][0] for i in ids])]
            self._generated = [np.stack([rows[i][1] for i in ids])]


class FID(InceptionSetMetric):
    """Fréchet Inception Distance, targets vs generated of the scored samples."""

    name = "fid"
    version = "1"
    display_scale = 1.0  # the paper prints FID as is
    Settings = FIDSettings

    def result(self) -> dict[str, Any]:
        s: FIDSettings = self.settings
        t, g = self.feature_matrices()
        out: dict[str, Any] = {
            "n": int(len(g)),
            "n_generated": int(len(g)),
            "n_target": int(len(t)),
            "feature_dim": FEATURE_DIM,
            "resize": s.resize,
            "trace_sqrt": s.trace_sqrt,
        }
        if len(g) < 2 or len(t) < 2:
            out["value"] = None
            out["note"] = "FID needs at least 2 images"
            return out
        value, info = frechet_distance(t, g, s.trace_sqrt)
        out["value"] = value
        out.update(info)
        notes = []
        n = min(len(t), len(g))
        if n < FEATURE_DIM:
            out["rank_deficient"] = True
            notes.append(
                f"N={n} < {FEATURE_DIM}: the covariances are rank-deficient; FID is biased upward "
                "and comparable only at the same N"
            )
        if info.get("sqrtm_imag_max", 0.0) > 1e-3:
            notes.append(
                f"sqrtm left an imaginary diagonal of {info['sqrtm_imag_max']:.3g} "
                "(pytorch-fid would raise); consider trace_sqrt: svd"
            )
        if notes:
            out["note"] = "; ".join(notes)
        return out


def build_tiny_inception(folder: Path) -> None:
    """torch-fidelity's InceptionV3 (real architecture, ~95 MB) with deterministic
    random weights, saved as a plain state dict like the real file.

    He-normal convolutions and unit batch-norm statistics keep activations of
    order one through the 20-odd layers, so pool3 features differ between images.
    """
    _compat.ensure_torchvision()
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from ..io import atomic_open

    class _Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # keep the random init
            if state_dict:
                raise RuntimeError("expected the empty placeholder state dict")

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # one placeholder per process: two processes building the tiny zoo at once must not share it
    placeholder = folder / f".empty-state-dict-{os.getpid()}-{secrets.token_hex(4)}.pth"
    torch.save({}, placeholder)
    try:
        model = _Unloaded(
            name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=str(placeholder)
        )
    finally:
        placeholder.unlink()
    g = torch.Generator().manual_seed(31)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.Conv2d):
                fan_in = mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * math.sqrt(2.0 / fan_in))
            elif isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.fill_(1.0)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)
                mod.running_mean.zero_()
                mod.running_var.fill_(1.0)
            elif isinstance(mod, torch.nn.Linear):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) / math.sqrt(mod.in_features))
                mod.bias.zero_()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_open(folder / INCEPTION_FILE, "wb") as f:
        torch.save(state, f)
