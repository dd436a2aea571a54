"""LPIPS through the ``lpips`` package (v0.1 linear heads), per image.

Nets: ``squeeze`` (the paper's column), ``alex``, ``vgg``. The backbone's
ImageNet weights come from the weights registry (``lpips-<net>-backbone``,
torchvision's files) so nothing is downloaded at run time; the v0.1 linear
heads ship inside the lpips package.

Input range is a protocol setting: the released code feeds [0, 1] images
(``input_range: unit``, the quirk reproduced by ``lego-official``); lpips
expects [-1, 1] (``input_range: signed``, used by ``egobench-v1``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from .. import _compat
from ..shared_models import shared_model
from . import Metric, MetricBatch
from .imageops import match_size, to_unit_tensor
from .settings import LPIPSSettings

_TV_BUILDERS = {"squeeze": "squeezenet1_1", "alex": "alexnet", "vgg": "vgg16"}


def backbone_artifact(net: str) -> str:
    return f"lpips-{net}-backbone"


def load_lpips(net: str, backbone_file: str | Path, device: str = "cpu") -> torch.nn.Module:
    """An ``lpips.LPIPS`` model with the backbone loaded from a torchvision file.

    Only the ``features.*`` weights are used (that is all LPIPS reads); they are
    loaded strictly, so a file of the wrong architecture fails loudly.
    """
    _compat.ensure_torchvision()
    import lpips

    with warnings.catch_warnings():  # lpips passes the deprecated pretrained= to torchvision
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    state = torch.load(str(backbone_file), map_location="cpu", weights_only=True)
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    mapped = {}
    for key in model.net.state_dict():
        _slice, idx, rest = key.split(".", 2)
        src = f"{idx}.{rest}"
        if src not in features:
            raise ValueError(f"{backbone_file}: missing backbone weight features.{src}")
        mapped[key] = features[src]
    model.net.load_state_dict(mapped, strict=True)
    return model.eval().to(device)


def lpips_distance(model: torch.nn.Module, generated: torch.Tensor, target: torch.Tensor, signed: bool) -> torch.Tensor:
    """LPIPS of batched (N, 3, H, W) [0, 1] tensors; ``signed`` maps to [-1, 1] first."""
    if signed:
        generated = generated * 2 - 1
        target = target * 2 - 1
    with torch.no_grad():
        return model(target, generated).flatten()




class LPIPS(Metric):
    name = "lpips"
    needs = ("generated", "target")
    higher_is_better = False
    version = "1"
    Settings = LPIPSSettings

    def __init__(self, settings: LPIPSSettings, *, weights=None, device: str = "cpu", cache=None):
        super().__init__(settings, weights=weights, device=device, cache=cache)
        file = weights.resolve(backbone_artifact(settings.net)).file(res_files(settings.net))
        self.model = shared_model((str(file), "lpips", settings.net, str(device)),
                                  lambda: load_lpips(settings.net, file, device))

    @classmethod
    def artifacts(cls, settings: LPIPSSettings) -> list[str]:
        return [backbone_artifact(settings.net)]

    def chunk_size(self) -> int:
        """Pairs per forward pass: the whole batch (per target size) on a GPU; one pair at a time on a
        CPU, where ``egobench bench`` measured batched SqueezeNet LPIPS slower (1.36 s vs 0.95 s for 16
        pairs of 456x256 on 2 cores). Values do not depend on it (tested)."""
        return 1 if str(self.device).startswith("cpu") else 1 << 30

    def compute(self, batch: MetricBatch) -> np.ndarray:
        s: LPIPSSettings = self.settings
        out = np.empty(len(batch), dtype=np.float64)
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, t in enumerate(batch.target):
            by_size.setdefault(tuple(t.shape), []).append(i)
        step = self.chunk_size()
        for idx in by_size.values():
            for start in range(0, len(idx), step):
                part = idx[start : start + step]
                gt = torch.stack([to_unit_tensor(batch.target[i], self.device) for i in part])
                gen = torch.stack([match_size(to_unit_tensor(batch.generated[i], self.device), gt.shape[-2:],
                                              s.resize_filter, s.antialias) for i in part])
                d = lpips_distance(self.model, gen, gt, s.input_range == "signed")
                out[part] = d.double().cpu().numpy()
        return out


def res_files(net: str) -> str:
    from ..weights import ARTIFACTS

    return ARTIFACTS.get(backbone_artifact(net)).files[0]


def _build_tiny(net: str, folder: Path) -> None:
    """Random-init torchvision backbone, features only, in torchvision's file format."""
    _compat.ensure_torchvision()
    import torchvision

    from ..io import atomic_open

    torch.manual_seed({"squeeze": 11, "alex": 12, "vgg": 13}[net])
    model = getattr(torchvision.models, _TV_BUILDERS[net])(weights=None)
    # squeezenet is small: keep the full torchvision state dict so torchvision
    # itself can load the file too. alexnet/vgg: features only (all LPIPS reads).
    state = {
        k: v.contiguous()
        for k, v in model.state_dict().items()
        if net == "squeeze" or k.startswith("features.")
    }
    with atomic_open(Path(folder) / res_files(net), "wb") as f:
        torch.save(state, f)


def build_tiny_backbone_squeeze(folder: Path) -> None:
    _build_tiny("squeeze", folder)


def build_tiny_backbone_alex(folder: Path) -> None:
    _build_tiny("alex", folder)


def build_tiny_backbone_vgg(folder: Path) -> None:
    _build_tiny("vgg", folder)
