"""The ``full-arch`` profile's weights: real-size architectures with random weights, in the real files' formats.

Inception-v3, CLIP ViT-L/14, EgoVLP ViT-B/16, SqueezeNet, BLIP ViT-B/16 and ViT-L/16 are written under
``folder/<artifact>/``, each marked as a stand-in (no checksum applies), and load through the same loaders
as the real files (``WeightStore(zoo="real", weights_dir=folder)``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from egobench.errors import UserError
from egobench.io import atomic_open, atomic_write_json, atomic_write_text

from .progress import bar

MARKER_NOTE = "random weights at real size built by 'egobench bench --profile full-arch'; NOT comparable"
#: a bert-base-uncased-sized vocabulary: the tiny words, then fillers up to 30,522 entries
BERT_VOCAB = 30522


def protocol_artifacts(proto: Any) -> list[str]:
    """Every artifact the protocol's metrics load, text towers included."""
    from egobench.metrics import METRICS

    names: list[str] = []
    for i, spec in enumerate(proto.metrics):
        cls = METRICS.get(spec.metric)
        settings = cls.parse_settings(spec.settings, f"{proto.source}: metrics[{i}].settings")
        names += cls.artifacts(settings)
        if spec.metric == "blip":
            names += ["egovlp-distilbert"] if settings.text_encoder == "egovlp" else ["clip-vit-l-14"]
    return list(dict.fromkeys(names))


def build_full_arch_weights(folder: Path, proto: Any, progress: bool = True) -> list[str]:
    """Stand-ins of every artifact ``proto`` loads under ``folder`` (kept: a second run reuses them)."""
    from egobench.weights import TINY_MARKER

    names = protocol_artifacts(proto)
    with bar(len(names), "bench: full-arch weights", progress, "artifact") as tick:
        for name in names:
            target = folder / name
            if not (target / TINY_MARKER).is_file():
                target.mkdir(parents=True, exist_ok=True)
                _BUILDERS.get(name, _same_as_tiny)(name, target)
                atomic_write_json(target / TINY_MARKER, {"artifact": name, "note": MARKER_NOTE})
            tick(1)
    return names


def _same_as_tiny(name: str, folder: Path) -> None:
    """Artifacts whose tiny stand-in already has the real architecture (Inception, LPIPS backbones)
    or is only a vocabulary (EgoVLP's DistilBERT tokenizer)."""
    from egobench.registry import _import_ref
    from egobench.weights import ARTIFACTS

    art = ARTIFACTS.get(name)
    if not art.tiny:
        raise UserError(f"bench: no stand-in builder for artifact '{name}'")
    _import_ref(art.tiny)(folder)


def _clip(name: str, folder: Path) -> None:
    from safetensors.torch import save

    from egobench.io import atomic_write_bytes
    from egobench.metrics.clip_metric import WEIGHTS_FILE, build_clip

    torch.manual_seed(21)
    model = build_clip("ViT-L-14", None)  # open_clip's own ViT-L-14 config, QuickGELU
    atomic_write_bytes(folder / WEIGHTS_FILE, save({k: v.detach().contiguous().clone()
                                                    for k, v in model.state_dict().items()}))


def _egovlp(name: str, folder: Path) -> None:
    import numpy as np

    from egobench.metrics import egovlp as ev
    from egobench.metrics.egovlp_model import EgoVLP, EgoVLPDims, to_official_checkpoint

    family = "ego4d" if name == ev.ARTIFACT_OF["ego4d"] else "epic"
    dims = EgoVLPDims(num_frames=4 if family == "ego4d" else 16)  # ViT-B/16 + DistilBERT-base
    torch.manual_seed(41 if family == "ego4d" else 42)
    model = EgoVLP(dims)
    with ev._throwaway_parse_config() as cls:
        ckpt = to_official_checkpoint(model, ev._official_config(cls, f"egovlp-{family}-full-arch", dims),
                                      epoch=1, monitor_best=np.float64(0.0))
        with atomic_open(folder / ev.CHECKPOINT_FILE[family], "wb") as f:
            torch.save(ckpt, f)


def _blip_vocab() -> list[str]:
    from egobench.metrics.blip_tiny import tiny_vocab

    words = tiny_vocab()
    return words + [f"[unused{i}]" for i in range(BERT_VOCAB - len(words))]


def _blip_model(model: str, seed: int) -> Any:
    """BLIP's captioner at real size: ViT-B/16 or ViT-L/16 at 384, BERT-base decoder, random weights."""
    from transformers import BlipConfig, BlipForConditionalGeneration

    from egobench.metrics.blip_protocol import HEAD_DIM, IMAGE_SIZE, VISION_LN_EPS

    vocab = _blip_vocab()
    width, depth, mlp = {"base": (768, 12, 3072), "large": (1024, 24, 4096)}[model]
    sep = vocab.index("[SEP]")
    config = BlipConfig(
        vision_config=dict(hidden_size=width, num_hidden_layers=depth, intermediate_size=mlp,
                           num_attention_heads=width // HEAD_DIM, image_size=IMAGE_SIZE, patch_size=16,
                           layer_norm_eps=VISION_LN_EPS),
        text_config=dict(vocab_size=BERT_VOCAB + 2, hidden_size=768, encoder_hidden_size=width,
                         intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                         max_position_embeddings=512, bos_token_id=BERT_VOCAB, eos_token_id=sep, sep_token_id=sep,
                         pad_token_id=0))
    torch.manual_seed(seed)
    m = BlipForConditionalGeneration(config).eval()
    m.tie_weights()
    return m


def _blip_tokenizer(folder: Path, hf_layout: bool) -> None:
    from transformers import BertTokenizer

    atomic_write_text(folder / "vocab.txt", "\n".join(_blip_vocab()) + "\n")
    if not hf_layout:
        return
    tok = BertTokenizer.from_pretrained(str(folder), do_lower_case=True, local_files_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        shutil.copyfile(Path(tmp) / "tokenizer.json", folder / "tokenizer.json")
    special = {"cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]",
               "unk_token": "[UNK]"}
    atomic_write_json(folder / "special_tokens_map.json", special)
    atomic_write_json(folder / "tokenizer_config.json", {
        "do_lower_case": True, "model_max_length": 512, "processor_class": "BlipProcessor",
        "tokenizer_class": "BertTokenizer", **special})


def _blip_hf(name: str, folder: Path) -> None:
    from egobench.metrics import blip_protocol as bp
    from egobench.metrics.blip_convert import _TIED
    from egobench.metrics.blip_tiny import _safetensors_bytes

    model = "base" if name == bp.hf_artifact("base") else "large"
    m = _blip_model(model, 51 if model == "base" else 52)
    m.config.vision_config.layer_norm_eps = 1e-5  # the ports keep transformers' default
    m.config.save_pretrained(str(folder))
    weights = bp.HF_WEIGHTS[model]
    state = {k: v.contiguous() for k, v in m.state_dict().items()}
    with atomic_open(folder / weights, "wb") as f:
        if weights.endswith(".safetensors"):
            from safetensors.torch import save_file

            f.write(_safetensors_bytes({k: v for k, v in state.items() if k not in _TIED}, save_file))
        else:
            torch.save(state, f)
    atomic_write_json(folder / "preprocessor_config.json", {
        "do_normalize": True, "do_resize": True, "image_mean": list(bp.CLIP_MEAN),
        "image_processor_type": "BlipImageProcessor", "image_std": list(bp.CLIP_STD),
        "processor_class": "BlipProcessor", "resample": 3, "size": {"height": bp.IMAGE_SIZE, "width": bp.IMAGE_SIZE}})
    _blip_tokenizer(folder, hf_layout=True)


def _blip_original(name: str, folder: Path) -> None:
    from egobench.metrics.blip_convert import hf_to_original_state_dict
    from egobench.metrics.blip_protocol import ORIGINAL_FILES, original_artifact

    model = "base" if name == original_artifact("base") else "large"
    state = hf_to_original_state_dict(_blip_model(model, 53 if model == "base" else 54).state_dict(), 512)
    with atomic_open(folder / ORIGINAL_FILES[model], "wb") as f:
        torch.save({"model": state}, f)


_BUILDERS: dict[str, Callable[[str, Path], None]] = {
    "clip-vit-l-14": _clip, "egovlp-ego4d": _egovlp, "egovlp-epic": _egovlp,
    "blip-base-caption": _blip_hf, "blip-large-caption": _blip_hf,
    "blip-base-caption-original": _blip_original, "blip-large-caption-original": _blip_original,
    "blip-bert-tokenizer": lambda name, folder: _blip_tokenizer(folder, hf_layout=False),
}
