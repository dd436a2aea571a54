"""The tiny zoo's BLIP stand-ins: deterministic random-weight caption models in both on-disk formats."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import _compat
from .blip_convert import hf_to_original_state_dict
from .blip_protocol import CLIP_MEAN, CLIP_STD, HEAD_DIM, HF_WEIGHTS, IMAGE_SIZE, ORIGINAL_FILES, VISION_LN_EPS

# --- tiny stand-ins ---------------------------------------------------------------------------
# A hand-written WordPiece vocabulary: BERT's five special tokens, the prompt
# words, common caption words, some suffix pieces and punctuation.
_TINY_WORDS = """
[PAD] [UNK] [CLS] [SEP] [MASK] a picture of the an and with on in at to is are it its his her their
man woman person people hand hands finger arm someone he she they you
holding holds hold using uses cutting cuts cut opening opens open closing closes close
putting puts put taking takes take picking picks pick washing washes wash pouring pours pour
stirring stirs stir turning turns turn moving moves move placing places place lifting lifts lift
reaching grabbing looking walking standing sitting eating drinking cooking cleaning wiping
table kitchen counter sink stove pan pot knife fork spoon plate bowl cup glass bottle jar lid
cabinet drawer door fridge oven tap water food bread cheese tomato onion potato carrot apple
egg meat rice pasta sauce oil salt pepper board cutting towel cloth sponge bag box paper
phone laptop screen book pen tool hammer screw wood wall floor box shelf chair bed window
car bike road tree grass garden plant flower dirt sand rock ground
small large big little white black red green blue yellow brown wooden metal plastic
some two three many one other next front top side inside outside near over under into from up down
video image view close photo first
. , ! ? ' s t - ##s ##ing ##ed ##er ##ly ##es ##y ##n
"""


def tiny_vocab() -> list[str]:
    """The tiny zoo's vocabulary (deterministic, duplicates removed in order)."""
    seen: dict[str, None] = {}
    for w in _TINY_WORDS.split():
        seen.setdefault(w, None)
    return list(seen)


_TINY_DIMS = {
    # vision width/layers/mlp, patch (384 / 64 = 6x6 patches), text width/layers/mlp
    "base": dict(v_width=128, v_layers=2, v_mlp=256, patch=64, t_width=128, t_layers=2, t_mlp=256, seed=21),
    "large": dict(v_width=192, v_layers=3, v_mlp=384, patch=64, t_width=128, t_layers=2, t_mlp=256, seed=22),
}
_TINY_MAX_POS = 40


def tiny_config(model: str, vision_ln_eps: float) -> Any:
    from transformers import BlipConfig

    d = _TINY_DIMS[model]
    n_vocab = len(tiny_vocab())
    sep = tiny_vocab().index("[SEP]")
    return BlipConfig(
        vision_config=dict(
            hidden_size=d["v_width"],
            intermediate_size=d["v_mlp"],
            num_hidden_layers=d["v_layers"],
            num_attention_heads=d["v_width"] // HEAD_DIM,
            image_size=IMAGE_SIZE,
            patch_size=d["patch"],
            layer_norm_eps=vision_ln_eps,
        ),
        text_config=dict(
            vocab_size=n_vocab + 2,
            hidden_size=d["t_width"],
            encoder_hidden_size=d["v_width"],
            intermediate_size=d["t_mlp"],
            num_hidden_layers=d["t_layers"],
            num_attention_heads=d["t_width"] // HEAD_DIM,
            max_position_embeddings=_TINY_MAX_POS,
            bos_token_id=n_vocab,
            eos_token_id=sep,
            sep_token_id=sep,
            pad_token_id=0,
        ),
    )


def tiny_model(model: str, vision_ln_eps: float = VISION_LN_EPS) -> Any:
    """A deterministic random-weight tiny ``BlipForConditionalGeneration``.

    Weights are drawn in sorted-name order from a private generator (the
    global RNG is untouched); the eos logit bias is raised so beams finish at
    varied lengths.
    """
    _compat.ensure_torchvision()
    from transformers import BlipForConditionalGeneration

    cfg = tiny_config(model, vision_ln_eps)
    m = BlipForConditionalGeneration(cfg).eval()
    gen = torch.Generator().manual_seed(_TINY_DIMS[model]["seed"])
    params = dict(m.named_parameters())  # tied parameters appear once
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if "norm" in name.lower() and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith("bias") or "norm" in name.lower():
                p.copy_(0.05 * noise)
            else:
                fan_in = p.shape[-1] if p.dim() > 1 else 1
                p.copy_(noise * (1.5 / fan_in**0.5 if p.dim() > 1 else 0.05))
        m.text_decoder.cls.predictions.bias[cfg.text_config.sep_token_id] += 3.0
    m.tie_weights()
    return m


def _write_tokenizer_files(folder: Path, hf_layout: bool, words: list[str] | None = None) -> None:
    from ..io import atomic_write_json, atomic_write_text

    words = words or tiny_vocab()
    atomic_write_text(folder / "vocab.txt", "\n".join(words) + "\n")
    if not hf_layout:
        return
    _compat.ensure_torchvision()
    import tempfile

    from transformers import BertTokenizer

    tok = BertTokenizer.from_pretrained(str(folder), do_lower_case=True, local_files_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        atomic_write_text(folder / "tokenizer.json", (Path(tmp) / "tokenizer.json").read_text())
    # like the ports: plain BERT special tokens (no [DEC]/[ENC]), uncased
    atomic_write_json(
        folder / "special_tokens_map.json",
        {
            "cls_token": "[CLS]",
            "mask_token": "[MASK]",
            "pad_token": "[PAD]",
            "sep_token": "[SEP]",
            "unk_token": "[UNK]",
        },
    )
    atomic_write_json(
        folder / "tokenizer_config.json",
        {
            "do_lower_case": True,
            "model_max_length": 512,
            "processor_class": "BlipProcessor",
            "tokenizer_class": "BertTokenizer",
            "cls_token": "[CLS]",
            "mask_token": "[MASK]",
            "pad_token": "[PAD]",
            "sep_token": "[SEP]",
            "unk_token": "[UNK]",
        },
    )


def _build_tiny_hf(model: str, folder: Path) -> None:
    # the ports keep transformers' default vision LayerNorm eps
    _write_hf(tiny_model(model, vision_ln_eps=1e-5), model, Path(folder))


def _write_hf(m: Any, model: str, folder: Path, words: list[str] | None = None) -> None:
    """``m`` in the Hugging Face ports' layout: config, weights, image processor and tokenizer."""
    from ..io import atomic_open, atomic_write_json

    m.config.save_pretrained(str(folder))
    weights = HF_WEIGHTS[model]
    state = {k: v.contiguous() for k, v in m.state_dict().items()}
    if weights.endswith(".safetensors"):
        from safetensors.torch import save_file

        # safetensors refuses shared storage: store tied tensors once, as
        # save_pretrained does (the loader re-ties them)
        for alias in ("text_decoder.cls.predictions.decoder.weight", "text_decoder.cls.predictions.decoder.bias"):
            state.pop(alias, None)
        with atomic_open(folder / weights, "wb") as f:
            f.write(_safetensors_bytes(state, save_file))
    else:
        with atomic_open(folder / weights, "wb") as f:
            torch.save(state, f)
    atomic_write_json(
        folder / "preprocessor_config.json",
        {
            "do_normalize": True,
            "do_resize": True,
            "image_mean": list(CLIP_MEAN),
            "image_processor_type": "BlipImageProcessor",
            "image_std": list(CLIP_STD),
            "processor_class": "BlipProcessor",
            "resample": 3,
            "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        },
    )
    _write_tokenizer_files(folder, hf_layout=True, words=words)


def _safetensors_bytes(state: dict[str, torch.Tensor], save_file: Callable) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "w.safetensors"
        save_file({k: v.clone() for k, v in state.items()}, str(p), metadata={"format": "pt"})
        return p.read_bytes()


def _build_tiny_original(model: str, folder: Path) -> None:
    _write_original(tiny_model(model, vision_ln_eps=VISION_LN_EPS), model, Path(folder), _TINY_MAX_POS)


def _write_original(m: Any, model: str, folder: Path, max_positions: int) -> None:
    """``m`` as the original BLIP release's ``.pth`` (``{"model": state dict}``)."""
    from ..io import atomic_open

    state = hf_to_original_state_dict(m.state_dict(), max_positions)
    with atomic_open(folder / ORIGINAL_FILES[model], "wb") as f:
        torch.save({"model": state}, f)


def build_tiny_base_hf(folder: Path) -> None:
    _build_tiny_hf("base", folder)


def build_tiny_large_hf(folder: Path) -> None:
    _build_tiny_hf("large", folder)


def build_tiny_base_original(folder: Path) -> None:
    _build_tiny_original("base", folder)


def build_tiny_large_original(folder: Path) -> None:
    _build_tiny_original("large", folder)


def build_tiny_bert_tokenizer(folder: Path) -> None:
    _write_tokenizer_files(Path(folder), hf_layout=False)


# --- full-arch stand-ins (``egobench bench --profile full-arch``) ------------------------------
#: a bert-base-uncased-sized vocabulary: the tiny words, then fillers up to 30,522 entries
BERT_VOCAB = 30522
_FULL_ARCH_VISION = {"base": (768, 12, 3072), "large": (1024, 24, 4096)}  # width, depth, MLP


def full_arch_vocab() -> list[str]:
    words = tiny_vocab()
    return words + [f"[unused{i}]" for i in range(BERT_VOCAB - len(words))]


def full_arch_model(model: str, seed: int, vision_ln_eps: float = VISION_LN_EPS) -> Any:
    """BLIP's captioner at real size: ViT-B/16 or ViT-L/16 at 384, BERT-base decoder, random weights."""
    _compat.ensure_torchvision()
    from transformers import BlipConfig, BlipForConditionalGeneration

    width, depth, mlp = _FULL_ARCH_VISION[model]
    sep = full_arch_vocab().index("[SEP]")
    config = BlipConfig(
        vision_config=dict(hidden_size=width, num_hidden_layers=depth, intermediate_size=mlp,
                           num_attention_heads=width // HEAD_DIM, image_size=IMAGE_SIZE, patch_size=16,
                           layer_norm_eps=vision_ln_eps),
        text_config=dict(vocab_size=BERT_VOCAB + 2, hidden_size=768, encoder_hidden_size=width,
                         intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                         max_position_embeddings=512, bos_token_id=BERT_VOCAB, eos_token_id=sep, sep_token_id=sep,
                         pad_token_id=0))
    torch.manual_seed(seed)
    m = BlipForConditionalGeneration(config).eval()
    m.tie_weights()
    return m


def build_full_arch_base_hf(folder: Path) -> None:
    _write_hf(full_arch_model("base", 51, vision_ln_eps=1e-5), "base", Path(folder), full_arch_vocab())


def build_full_arch_large_hf(folder: Path) -> None:
    _write_hf(full_arch_model("large", 52, vision_ln_eps=1e-5), "large", Path(folder), full_arch_vocab())


def build_full_arch_base_original(folder: Path) -> None:
    _write_original(full_arch_model("base", 53), "base", Path(folder), 512)


def build_full_arch_large_original(folder: Path) -> None:
    _write_original(full_arch_model("large", 54), "large", Path(folder), 512)


def build_full_arch_bert_tokenizer(folder: Path) -> None:
    _write_tokenizer_files(Path(folder), hf_layout=False, words=full_arch_vocab())
