"""CLIP image-image similarity (OpenAI CLIP ViT-L/14 through open_clip), per image.

What the released code computes (``metrics/clip_similarity.py``): the [0, 1]
image is squashed to 224 x 224 with ``F.interpolate(..., mode="bicubic",
align_corners=False)`` (no antialias, no crop, no clamp of the bicubic
overshoot), normalised with the CLIP mean/std, embedded with
``encode_image``, L2-normalised; the score is the cosine of the generated and
the ground-truth embeddings. Higher is better; the paper prints it x100.

Weights: the artifact ``clip-vit-l-14`` is the file open_clip 3.3 itself
fetches for ``("ViT-L-14", "openai")`` (``open_clip_model.safetensors`` in the
Hugging Face repo ``timm/vit_large_patch14_clip_224.openai``). The OpenAI
weights were trained with QuickGELU; open_clip only switches it on when the
*tag* ``openai`` is given, not when a file path is, so the loader always
forces it (nn.GELU would silently change every number).

Architecture: when an ``open_clip_config.json`` (open_clip's own
``{"model_cfg": ...}`` layout of its ``local-dir:``/``hf-hub:`` models) lies
beside the weights, it defines the architecture; otherwise the built-in
open_clip config of the model name is used. The tiny zoo writes such a file
for its small random model, so real and tiny weights go through the same
``open_clip.create_model(name, pretrained=<file>, ...)`` call.

:class:`CLIPTextEncoder` embeds text with the same model (open_clip's
``SimpleTokenizer``, whose BPE vocabulary ships inside the package, so it
works offline); BLIP caption-to-description similarity uses it.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
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
from .settings import CLIPSettings

#: CLIP's image normalisation (identical in OpenAI's ``clip`` and open_clip)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

WEIGHTS_FILE = "open_clip_model.safetensors"
CONFIG_FILE = "open_clip_config.json"


@dataclass(frozen=True)
class ClipModelSpec:
    artifact: str
    quick_gelu: bool  # the activation the weights were trained with


#: open_clip model name -> the artifact holding its OpenAI weights
CLIP_MODELS: dict[str, ClipModelSpec] = {
    "ViT-L-14": ClipModelSpec(artifact="clip-vit-l-14", quick_gelu=True),
}

CLIP_VIT_L_14 = register_artifact(
    Artifact(
        name="clip-vit-l-14",
        description="OpenAI CLIP ViT-L/14 (open_clip 'ViT-L-14' / 'openai', QuickGELU), "
        "the CLIP metric's image encoder and the CLIP text encoder",
        files=(WEIGHTS_FILE,),
        license="MIT (OpenAI CLIP)",
        hf_repo="timm/vit_large_patch14_clip_224.openai",
        tiny="egobench.metrics.clip_metric:build_tiny_clip",
        full_arch="egobench.metrics.clip_metric:build_full_arch_clip",
    )
)

#: the tiny stand-in: same family (ViT with patch 14 at 224, CLIP text tower
#: with the full 49408-token BPE vocabulary so the real tokenizer works)
TINY_CLIP_CONFIG: dict[str, Any] = {
    "model_cfg": {
        "embed_dim": 32,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 14},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    },
    "preprocess_cfg": {"mean": list(CLIP_MEAN), "std": list(CLIP_STD), "interpolation": "bicubic"},
}


@contextmanager
def _quiet_open_clip():
    """open_clip logs a root-logger warning for models built without weights (on purpose here)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def clip_model_overrides(model_name: str, config_file: str | Path | None) -> dict[str, Any]:
    """Architecture keys from an ``open_clip_config.json`` beside the weights ({} if none).

    ``quick_gelu`` is not taken from the file: it is a property of the weights
    (``CLIP_MODELS``); a file that contradicts it is an error, never a silent switch.
    """
    if config_file is None or not Path(config_file).is_file():
        return {}
    data = json.loads(Path(config_file).read_text())
    cfg = dict(data.get("model_cfg", data))
    spec = CLIP_MODELS[model_name]
    qg = cfg.pop("quick_gelu", spec.quick_gelu)
    if bool(qg) != spec.quick_gelu:
        raise ValueError(
            f"{config_file}: quick_gelu={qg} but the {model_name} weights need quick_gelu={spec.quick_gelu}"
        )
    return cfg


def build_clip(
    model_name: str,
    weights_file: str | Path | None,
    config_file: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> torch.nn.Module:
    """An open_clip CLIP model in eval mode: ``create_model(name, pretrained=<file>)``
    with QuickGELU as the weights need; ``weights_file=None`` builds it randomly
    initialised (``device="meta"`` builds only the structure)."""
    _compat.ensure_torchvision()
    import open_clip

    if model_name not in CLIP_MODELS:
        raise ValueError(f"unknown CLIP model '{model_name}'; known: {', '.join(CLIP_MODELS)}")
    spec = CLIP_MODELS[model_name]
    overrides = clip_model_overrides(model_name, config_file)
    # on "meta" build there directly: no random init of the full-size weights
    where = torch.device("meta") if str(device) == "meta" else nullcontext()
    quiet = _quiet_open_clip() if weights_file is None else nullcontext()
    with quiet, where:
        model = open_clip.create_model(
            model_name,
            pretrained=str(weights_file) if weights_file is not None else None,
            precision="fp32",
            device=device,
            force_quick_gelu=spec.quick_gelu,
            **overrides,
        )
    return model.eval().requires_grad_(False)


def load_clip(weights: Any, model_name: str, device: str = "cpu") -> torch.nn.Module:
    """The CLIP model of ``model_name`` from the weights store (one copy per process,
    shared by the image metric and the text encoder)."""
    spec = CLIP_MODELS.get(model_name)
    if spec is None:
        raise ValueError(f"unknown CLIP model '{model_name}'; known: {', '.join(CLIP_MODELS)}")
    res = weights.resolve(spec.artifact)
    key = (str(res.file(WEIGHTS_FILE)), "open_clip", model_name, str(device))
    return shared_model(key, lambda: build_clip(model_name, res.file(WEIGHTS_FILE), res.file(CONFIG_FILE), device))


def clip_preprocess(
    img: np.ndarray,
    size: int = 224,
    resize: str = "squash",
    antialias: bool = False,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """uint8 (H, W, 3) -> normalised float32 (3, size, size) on ``device``, bicubic.

    ``squash``: straight to size x size (the released code).
    ``shortside-crop``: short side to ``size`` (long side ``int(size * long / short)``,
    torchvision's rule), then a centre crop (torchvision's offsets).
    """
    x = to_unit_tensor(img, device)[None]
    h, w = x.shape[-2:]
    if resize == "squash":
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=antialias)
    elif resize == "shortside-crop":
        if h <= w:
            nh, nw = size, int(size * w / h)
        else:
            nh, nw = int(size * h / w), size
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=antialias)
        top = int(round((nh - size) / 2.0))
        left = int(round((nw - size) / 2.0))
        x = x[..., top : top + size, left : left + size]
    else:
        raise ValueError(f"unknown resize mode '{resize}'")
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std)[0]


def _image_size(model: torch.nn.Module) -> int:
    size = getattr(model.visual, "image_size", 224)
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            raise ValueError(f"non-square CLIP input {size} is not supported")
        size = size[0]
    return int(size)


def encode_images(
    model: torch.nn.Module,
    images: list[np.ndarray],
    *,
    resize: str = "squash",
    antialias: bool = False,
    device: str = "cpu",
    batch_size: int = 16,
) -> np.ndarray:
    """L2-normalised CLIP image embeddings, float32 (N, D)."""
    size = _image_size(model)
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        x = torch.stack([clip_preprocess(im, size, resize, antialias, device) for im in chunk])
        with torch.no_grad():
            f = model.encode_image(x).float()
        f = f / f.norm(dim=1, keepdim=True)
        out.append(f.cpu().numpy())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return num / np.maximum(den, 1e-12)




class CLIPImage(Metric):
    """Cosine of CLIP image embeddings, generated vs target."""

    name = "clip"
    needs = ("generated", "target")
    higher_is_better = True
    version = "1"
    Settings = CLIPSettings
    #: images per encoder forward (does not change results beyond float rounding)
    batch_size: int = 16

    def __init__(self, settings: CLIPSettings, *, weights=None, device: str = "cpu", cache=None):
        super().__init__(settings, weights=weights, device=device, cache=cache)
        self.model = load_clip(weights, settings.model, device)
        #: images pushed through the image encoder, per side (tests count these)
        self.encoded = {"generated": 0, "target": 0}

    @classmethod
    def artifacts(cls, settings: CLIPSettings) -> list[str]:
        return [CLIP_MODELS[settings.model].artifact]

    def embed(self, images: list[np.ndarray], side: str = "generated") -> np.ndarray:
        s: CLIPSettings = self.settings
        self.encoded[side] = self.encoded.get(side, 0) + len(images)
        return encode_images(
            self.model, images, resize=s.resize, antialias=s.antialias, device=self.device, batch_size=self.batch_size
        )

    def compute(self, batch: MetricBatch) -> np.ndarray:
        if len(batch) == 0:
            return np.empty(0, dtype=np.float64)
        gen = self.embed(batch.generated, "generated")

        def fill(idx: list[int]) -> list[np.ndarray]:
            return list(self.embed([batch.target[i] for i in idx], "target"))

        if len(batch.target_keys) == len(batch):
            tgt = np.stack(self.cached("target-embedding", batch.target_keys, fill))
        else:
            tgt = np.stack(fill(list(range(len(batch)))))
        return cosine_rows(gen, tgt)


class CLIPTextEncoder:
    """Normalised CLIP text embeddings (open_clip ``SimpleTokenizer``, 77 tokens, truncated
    like ``clip.tokenize(..., truncate=True)``)."""

    def __init__(self, weights: Any, device: str = "cpu", model: str = "ViT-L-14", batch_size: int = 64):
        _compat.ensure_torchvision()
        from open_clip.tokenizer import SimpleTokenizer

        self.model = load_clip(weights, model, device)
        self.device = device
        self.batch_size = batch_size
        self.tokenizer = SimpleTokenizer(context_length=int(self.model.context_length))
        self.artifact = CLIP_MODELS[model].artifact

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(list(texts))

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 (N, D), rows of unit length."""
        out = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenize(texts[start : start + self.batch_size]).to(self.device)
            with torch.no_grad():
                f = self.model.encode_text(tokens).float()
            f = f / f.norm(dim=1, keepdim=True)
            out.append(f.cpu().numpy())
        if not out:
            return np.zeros((0, int(self.model.text_projection.shape[1])), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)


def build_tiny_clip(folder: Path) -> None:
    """A small random CLIP of the same family, in the real artifact's file format
    (open_clip state dict as safetensors) plus the ``open_clip_config.json`` that
    defines its architecture."""
    from ..io import atomic_write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / CONFIG_FILE, TINY_CLIP_CONFIG)
    _write_random_clip(folder, folder / CONFIG_FILE)


def build_full_arch_clip(folder: Path) -> None:
    """ViT-L/14 at real size (open_clip's own config, QuickGELU) with random weights, in the real file format."""
    _write_random_clip(Path(folder), None)


def _write_random_clip(folder: Path, config_file: Path | None) -> None:
    from safetensors.torch import save

    from ..io import atomic_write_bytes

    torch.manual_seed(21)
    model = build_clip("ViT-L-14", None, config_file)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write_bytes(folder / WEIGHTS_FILE, save(state))
