"""Original-layout LLaVA-Llama checkpoints -> transformers ``LlavaForConditionalGeneration``, in memory.

**Conversion, in memory.** The original-layout checkpoint is read shard by
shard (``pytorch_model.bin.index.json`` / ``model.safetensors.index.json`` or
a single file; ``torch.load(weights_only=True, mmap=True)``), its keys are
renamed to :class:`transformers.LlavaForConditionalGeneration`'s names
(discovered from the instantiated model, so transformers' renamings such as
4.x ``language_model.model.*`` vs 5.x ``model.language_model.*`` are
followed), cast and assigned into a model built on the meta device. Nothing
is written: a converted copy of the 26 GB checkpoint would double the disk
use to save a key rename. Dropped keys: ``*.rotary_emb.inv_freq`` (buffers
transformers recomputes) and ``model.vision_tower.*`` (a frozen copy of the
CLIP tower some LLaVA checkpoints carry; LLaVA itself ignores it and reloads
CLIP, and so do we). The CLIP tower comes from the separate artifact
``llava-vision-tower`` (HF ``openai/clip-vit-large-patch14``, ``vision_model.*``
keys).

**The linear projector.** transformers' ``LlavaMultiModalProjector`` is
``linear_1 -> act -> linear_2``. A single linear could be encoded with
``projector_hidden_act='linear'`` and an identity ``linear_2``, but that adds
a 5120 x 5120 matmul that is exact only without TF32/reduced-precision
accumulation. Instead the projector module is replaced by
:class:`LinearProjector` (one ``linear_1``), so the projection is the
original ``nn.Linear`` exactly. LLaVA-1.5's ``mlp2x_gelu`` projector
(``mm_projector.0`` / ``.2``) maps onto the stock module.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from egobench import _compat
from egobench.errors import ConfigError, DataError


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: cannot read JSON ({e})") from None


def weight_files(folder: str | os.PathLike) -> list[Path]:
    """The checkpoint's weight files, in index order (sharded or single, .bin or .safetensors)."""
    folder = Path(folder)
    for index in ("pytorch_model.bin.index.json", "model.safetensors.index.json"):
        if (folder / index).is_file():
            weight_map = read_json(folder / index).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise DataError(f"{folder / index}: no weight_map")
            return [folder / f for f in dict.fromkeys(weight_map.values())]
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (folder / single).is_file():
            return [folder / single]
    raise DataError(f"{folder}: no pytorch_model*.bin / model*.safetensors weights found")


def load_weight_file(path: Path) -> dict[str, torch.Tensor]:
    """One weight file as a dict of tensors (pickles loaded with ``weights_only=True``)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        raise DataError(f"{path}: weight file not found") from None
    except Exception as e:  # unpickling/format errors of all kinds
        raise DataError(f"{path}: cannot read weights ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError(f"{path}: expected a state dict of tensors")
    return dict(obj)


def load_original_state_dict(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of an original-layout LLaVA checkpoint, merged (for small models and tests)."""
    out: dict[str, torch.Tensor] = {}
    for f in weight_files(folder):
        out.update(load_weight_file(f))
    return out


def read_original_config(folder: str | os.PathLike) -> dict:
    cfg = read_json(Path(folder) / "config.json")
    required = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    missing = [k for k in required if k not in cfg]
    if missing:
        raise DataError(f"{Path(folder) / 'config.json'}: not a LLaVA-Llama config (missing {missing[0]})")
    return cfg


def read_clip_vision_config(folder: str | os.PathLike) -> Any:
    """CLIPVisionConfig from a CLIP repo's config.json (full CLIPConfig, old ``*_config_dict`` style too)."""
    _compat.ensure_torchvision()
    from transformers import CLIPVisionConfig

    cfg = read_json(Path(folder) / "config.json")
    if cfg.get("model_type") == "clip_vision_model":
        vis = dict(cfg)
    else:
        vis = dict(cfg.get("vision_config") or {})
        vis.update(cfg.get("vision_config_dict") or {})  # old CLIP configs: the *_dict wins
    if "hidden_size" not in vis:
        raise DataError(f"{Path(folder) / 'config.json'}: no CLIP vision config")
    keys = (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "image_size",
        "patch_size",
        "hidden_act",
        "layer_norm_eps",
        "num_channels",
        "projection_dim",
    )
    return CLIPVisionConfig(**{k: vis[k] for k in keys if k in vis})


def _rope_kwargs(theta: float) -> dict[str, Any]:
    """RoPE base in the spelling of the installed transformers (5.x: ``rope_parameters``)."""
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:
        return {"rope_parameters": {"rope_type": "default", "rope_theta": theta}}
    return {"rope_theta": theta}


def llava_config_from_original(orig: Mapping[str, Any], vision_config: Any) -> Any:
    """transformers ``LlavaConfig`` for an original LLaVA-Llama ``config.json`` and a CLIP vision config."""
    _compat.ensure_torchvision()
    from transformers import LlamaConfig, LlavaConfig

    if orig.get("mm_use_im_start_end"):
        raise ConfigError("LLaVA checkpoints with mm_use_im_start_end=true are not supported (LEGO's is false)")
    if orig.get("rope_scaling"):
        raise ConfigError(f"rope_scaling {orig['rope_scaling']!r} is not supported (Llama-2 LLaVA has none)")
    mm_hidden = orig.get("mm_hidden_size", vision_config.hidden_size)
    if mm_hidden != vision_config.hidden_size:
        raise ConfigError(
            f"LLaVA config expects a {mm_hidden}-wide vision tower, the CLIP artifact is {vision_config.hidden_size}"
        )
    select = orig.get("mm_vision_select_feature", "patch")
    strategies = {"patch": "default", "cls_patch": "full"}
    if select not in strategies:
        raise ConfigError(f"unknown mm_vision_select_feature {select!r}")
    heads = orig["num_attention_heads"]
    text = LlamaConfig(
        vocab_size=orig["vocab_size"],
        hidden_size=orig["hidden_size"],
        intermediate_size=orig["intermediate_size"],
        num_hidden_layers=orig["num_hidden_layers"],
        num_attention_heads=heads,
        num_key_value_heads=orig.get("num_key_value_heads") or heads,
        hidden_act=orig.get("hidden_act", "silu"),
        max_position_embeddings=orig.get("max_position_embeddings", 2048),
        rms_norm_eps=orig.get("rms_norm_eps", 1e-6),
        bos_token_id=orig.get("bos_token_id", 1),
        eos_token_id=orig.get("eos_token_id", 2),
        pad_token_id=orig.get("pad_token_id", 0),
        tie_word_embeddings=bool(orig.get("tie_word_embeddings", False)),
        **_rope_kwargs(float(orig.get("rope_theta", 10000.0))),
    )
    projector = orig.get("mm_projector_type", "linear")
    n_patches = (vision_config.image_size // vision_config.patch_size) ** 2
    return LlavaConfig(
        vision_config=vision_config,
        text_config=text,
        image_token_index=orig["vocab_size"],  # never looked up: image features are spliced as embeddings
        image_seq_length=n_patches if select == "patch" else n_patches + 1,
        projector_hidden_act="linear" if projector == "linear" else "gelu",
        vision_feature_layer=int(orig.get("mm_vision_select_layer", -2)),
        vision_feature_select_strategy=strategies[select],
        multimodal_projector_bias=True,
        tie_word_embeddings=bool(orig.get("tie_word_embeddings", False)),
    )


# ---------------------------------------------------------------------------
# conversion
# ---------------------------------------------------------------------------


class LinearProjector(nn.Module):
    """LLaVA's original ``mm_projector = nn.Linear(mm_hidden, hidden)``, under transformers' ``linear_1`` name."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_features, out_features)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        return self.linear_1(image_features)


@dataclass(frozen=True)
class TargetNames:
    """Key prefixes of the instantiated transformers model (they moved between versions)."""

    language: str  # e.g. "model.language_model."
    lm_head: str  # e.g. "lm_head."
    projector: str  # e.g. "model.multi_modal_projector."
    vision: str  # e.g. "model.vision_tower." (5.x) or "model.vision_tower.vision_model." (4.x)

    @classmethod
    def of(cls, keys: Iterable[str]) -> TargetNames:
        keys = list(keys)

        def prefix(suffix: str, contains: str = "") -> str:
            hits = [k[: -len(suffix)] for k in keys if k.endswith(suffix) and contains in k]
            if len(hits) != 1:
                raise RuntimeError(f"cannot locate '{suffix}' in the transformers Llava model ({len(hits)} matches)")
            return hits[0]

        return cls(
            language=prefix("embed_tokens.weight"),
            lm_head=prefix("lm_head.weight") + "lm_head.",
            projector=prefix("linear_1.weight", "multi_modal_projector"),
            vision=prefix("embeddings.class_embedding"),
        )


_PROJECTOR_KEYS = {
    "linear": {"weight": "linear_1.weight", "bias": "linear_1.bias"},
    "mlp2x_gelu": {
        "0.weight": "linear_1.weight",
        "0.bias": "linear_1.bias",
        "2.weight": "linear_2.weight",
        "2.bias": "linear_2.bias",
    },
}


def convert_llava_state_dict(
    state: Mapping[str, torch.Tensor], names: TargetNames, projector: str = "linear"
) -> dict[str, torch.Tensor]:
    """Original LLaVA-Llama keys -> transformers Llava keys (a shard at a time is fine).

    ``model.X`` -> ``<language>X``; ``lm_head.weight`` -> ``<lm_head>weight``;
    ``model.mm_projector.*`` -> ``<projector>linear_1.*`` (``linear_2`` for MLP);
    ``*.rotary_emb.inv_freq`` and ``model.vision_tower.*`` are dropped.
    """
    if projector not in _PROJECTOR_KEYS:
        raise ConfigError(f"unsupported mm_projector_type {projector!r} (known: {', '.join(_PROJECTOR_KEYS)})")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith("rotary_emb.inv_freq") or key.startswith("model.vision_tower."):
            continue
        if key.startswith("model.mm_projector."):
            rest = key[len("model.mm_projector.") :]
            if rest not in _PROJECTOR_KEYS[projector]:
                raise DataError(f"unexpected projector key '{key}' for a {projector} projector")
            out[names.projector + _PROJECTOR_KEYS[projector][rest]] = value
        elif key.startswith("model."):
            out[names.language + key[len("model.") :]] = value
        elif key.startswith("lm_head."):
            out[names.lm_head + key[len("lm_head.") :]] = value
        else:
            raise DataError(f"unexpected key '{key}' in a LLaVA-Llama checkpoint")
    return out


def convert_clip_vision_state_dict(state: Mapping[str, torch.Tensor], names: TargetNames) -> dict[str, torch.Tensor]:
    """``vision_model.X`` of a CLIP checkpoint -> ``<vision>X``; text tower, projections and ``position_ids`` dropped."""
    out = {}
    for key, value in state.items():
        if key.startswith("vision_model.") and not key.endswith("position_ids"):
            out[names.vision + key[len("vision_model.") :]] = value
    if not out:
        raise DataError("no vision_model.* weights in the CLIP checkpoint")
    return out


@dataclass
class LoadReport:
    """What :func:`build_llava_model` read (kept on the model wrapper for provenance)."""

    llava_dir: Path
    vision_dir: Path
    projector: str
    dropped: list[str] = field(default_factory=list)
    weight_files: list[str] = field(default_factory=list)


def build_llava_model(
    llava_dir: str | os.PathLike,
    vision_dir: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "eager",
) -> tuple[Any, LoadReport]:
    """A ``LlavaForConditionalGeneration`` holding an original-layout LLaVA checkpoint, converted in memory."""
    _compat.ensure_torchvision()
    from transformers import LlavaForConditionalGeneration

    llava_dir, vision_dir = Path(llava_dir), Path(vision_dir)
    orig = read_original_config(llava_dir)
    vcfg = read_clip_vision_config(vision_dir)
    config = llava_config_from_original(orig, vcfg)
    config._attn_implementation = attn_implementation
    projector = orig.get("mm_projector_type", "linear")
    try:
        from accelerate import init_empty_weights
    except ImportError:  # pragma: no cover - accelerate ships with the environment
        init_empty_weights = contextlib.nullcontext
    with init_empty_weights():
        model = LlavaForConditionalGeneration(config)
        names = TargetNames.of(model.state_dict().keys())
        if projector == "linear":
            parent_name, _, child = names.projector.rstrip(".").rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, LinearProjector(vcfg.hidden_size, config.text_config.hidden_size))
    expected = set(model.state_dict().keys())
    loaded: set[str] = set()
    report = LoadReport(llava_dir, vision_dir, projector)

    def assign(part: dict[str, torch.Tensor], where: str) -> None:
        unexpected = [k for k in part if k not in expected]
        if unexpected:
            raise DataError(f"{where}: key '{unexpected[0]}' has no place in the transformers Llava model")
        # straight to the target device: the CPU never holds the whole converted model
        part = {k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype) for k, v in part.items()}
        model.load_state_dict(part, strict=False, assign=True)
        loaded.update(part)

    has_projector = False
    for path in weight_files(llava_dir):
        raw = load_weight_file(path)
        has_projector |= any(k.startswith("model.mm_projector.") for k in raw)
        report.dropped += [k for k in raw if k.endswith("rotary_emb.inv_freq") or k.startswith("model.vision_tower.")]
        assign(convert_llava_state_dict(raw, names, projector), str(path))
        report.weight_files.append(path.name)
        del raw
    if not has_projector and (llava_dir / "mm_projector.bin").is_file():
        assign(convert_llava_state_dict(load_weight_file(llava_dir / "mm_projector.bin"), names, projector),
               str(llava_dir / "mm_projector.bin"))
    clip_path = vision_dir / "model.safetensors"
    if not clip_path.is_file() and (vision_dir / "pytorch_model.bin").is_file():
        clip_path = vision_dir / "pytorch_model.bin"
    assign(convert_clip_vision_state_dict(load_weight_file(clip_path), names), str(clip_path))
    missing = sorted(expected - loaded)
    if missing:
        raise DataError(f"{llava_dir}: checkpoint lacks {len(missing)} weights (first: '{missing[0]}')")
    model.to(device)
    model.eval()
    return model, report
