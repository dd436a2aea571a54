"""Original BLIP caption checkpoints <-> transformers ``BlipForConditionalGeneration``.

**Weights.** ``weights_format: original`` loads the LEGO-Metrics ``.pth``
files (the ones the released code uses) into a transformers
``BlipForConditionalGeneration`` through :func:`convert_original_state_dict`
(configuration inferred from the tensor shapes; vision LayerNorm eps 1e-6 as
in BLIP's ViT). ``weights_format: hf`` loads the Hugging Face ports
(``Salesforce/blip-image-captioning-base`` / ``-large``) as published; their
configs keep transformers' vision LayerNorm eps default (1e-5).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from .blip_protocol import BOS_TOKEN, ENC_TOKEN, HEAD_DIM, IMAGE_SIZE, TEXT_LN_EPS, VISION_LN_EPS

# --- checkpoint conversion (original BLIP <-> transformers) ------------------
# Vision: BLIP's timm-style ViT vs transformers' BlipVisionModel. The fused qkv
# projection has the same layout in both, so tensors are copied unchanged.
# Text: BLIP's med.py BertLMHeadModel and transformers' BlipTextLMHeadModel use
# the same module names (bert.*, cls.*), so text keys are identical.
_VISION_RULES = [
    (r"visual_encoder\.cls_token", "vision_model.embeddings.class_embedding"),
    (r"visual_encoder\.pos_embed", "vision_model.embeddings.position_embedding"),
    (r"visual_encoder\.patch_embed\.proj\.(weight|bias)", r"vision_model.embeddings.patch_embedding.\1"),
    (r"visual_encoder\.blocks\.(\d+)\.norm1\.(weight|bias)", r"vision_model.encoder.layers.\1.layer_norm1.\2"),
    (r"visual_encoder\.blocks\.(\d+)\.norm2\.(weight|bias)", r"vision_model.encoder.layers.\1.layer_norm2.\2"),
    (r"visual_encoder\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)", r"vision_model.encoder.layers.\1.self_attn.qkv.\2"),
    (
        r"visual_encoder\.blocks\.(\d+)\.attn\.proj\.(weight|bias)",
        r"vision_model.encoder.layers.\1.self_attn.projection.\2",
    ),
    (r"visual_encoder\.blocks\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", r"vision_model.encoder.layers.\1.mlp.\2.\3"),
    (r"visual_encoder\.norm\.(weight|bias)", r"vision_model.post_layernorm.\1"),
]
_INVERSE_RULES = [
    (r"vision_model\.embeddings\.class_embedding", "visual_encoder.cls_token"),
    (r"vision_model\.embeddings\.position_embedding", "visual_encoder.pos_embed"),
    (r"vision_model\.embeddings\.patch_embedding\.(weight|bias)", r"visual_encoder.patch_embed.proj.\1"),
    (r"vision_model\.encoder\.layers\.(\d+)\.layer_norm1\.(weight|bias)", r"visual_encoder.blocks.\1.norm1.\2"),
    (r"vision_model\.encoder\.layers\.(\d+)\.layer_norm2\.(weight|bias)", r"visual_encoder.blocks.\1.norm2.\2"),
    (r"vision_model\.encoder\.layers\.(\d+)\.self_attn\.qkv\.(weight|bias)", r"visual_encoder.blocks.\1.attn.qkv.\2"),
    (
        r"vision_model\.encoder\.layers\.(\d+)\.self_attn\.projection\.(weight|bias)",
        r"visual_encoder.blocks.\1.attn.proj.\2",
    ),
    (r"vision_model\.encoder\.layers\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", r"visual_encoder.blocks.\1.mlp.\2.\3"),
    (r"vision_model\.post_layernorm\.(weight|bias)", r"visual_encoder.norm.\1"),
]
# buffers the original state dict carries that transformers does not load
_POSITION_IDS = "text_decoder.bert.embeddings.position_ids"
# tied in both models (med.py ties the LM head to the word embeddings and
# links decoder.bias to predictions.bias; transformers declares the same ties)
_TIED = {
    "text_decoder.cls.predictions.decoder.weight": "text_decoder.bert.embeddings.word_embeddings.weight",
    "text_decoder.cls.predictions.decoder.bias": "text_decoder.cls.predictions.bias",
}


def _rename(key: str, rules: list[tuple[str, str]]) -> str | None:
    for pattern, repl in rules:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, repl, key)
    return None


def original_to_hf_key(key: str) -> str | None:
    """transformers name of an original BLIP caption-model key (None: not a model weight)."""
    if key.startswith("visual_encoder."):
        return _rename(key, _VISION_RULES)
    if key.startswith("text_decoder.") and key != _POSITION_IDS:
        return key
    return None


def hf_to_original_key(key: str) -> str | None:
    if key.startswith("vision_model."):
        return _rename(key, _INVERSE_RULES)
    if key.startswith("text_decoder."):
        return key
    return None


def hf_to_original_state_dict(state: dict[str, torch.Tensor], max_position_embeddings: int) -> dict[str, torch.Tensor]:
    """The original BLIP key layout of a transformers caption model (used by the tiny builders)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        name = hf_to_original_key(k)
        if name is None:
            raise ValueError(f"no original BLIP name for '{k}'")
        out[name] = v.detach().clone().contiguous()
    # med.py registers position_ids as a persistent buffer (old transformers)
    out[_POSITION_IDS] = torch.arange(max_position_embeddings).expand((1, -1)).clone()
    return out


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in state for m in [rx.fullmatch(k)] if m})


def _interpolate_pos_embed(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """BLIP vit.py ``interpolate_pos_embed``: bicubic resize of the patch grid, CLS kept."""
    n_old = int(round((pos.shape[1] - 1) ** 0.5))
    if n_old == grid:
        return pos
    extra, tokens = pos[:, :1], pos[:, 1:]
    tokens = tokens.reshape(-1, n_old, n_old, pos.shape[-1]).permute(0, 3, 1, 2)
    tokens = torch.nn.functional.interpolate(tokens, size=(grid, grid), mode="bicubic", align_corners=False)
    return torch.cat((extra, tokens.permute(0, 2, 3, 1).flatten(1, 2)), dim=1)


def infer_original_config(state: dict[str, torch.Tensor], tokenizer: Any, where: str = "checkpoint") -> Any:
    """A transformers ``BlipConfig`` matching the dimensions of an original checkpoint.

    Not stored in the file, inferred from shapes: vision width/depth/MLP/patch,
    text width/depth/MLP/vocab/positions. Head counts are not recoverable from
    shapes; BLIP uses 64-dim heads throughout (ViT-B 12, ViT-L 16, med_config
    BERT 12). Token ids come from the tokenizer (``[DEC]`` bos, ``[SEP]`` eos).
    """
    from transformers import BlipConfig

    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise UserError(f"{where}: not a BLIP caption checkpoint (no '{key}')")
        return state[key]

    width = need("visual_encoder.cls_token").shape[-1]
    patch = need("visual_encoder.patch_embed.proj.weight").shape[-1]
    v_layers = _count(state, r"visual_encoder\.blocks\.(\d+)\.norm1\.weight")
    v_mlp = need("visual_encoder.blocks.0.mlp.fc1.weight").shape[0]
    words = need("text_decoder.bert.embeddings.word_embeddings.weight")
    hidden = words.shape[1]
    t_layers = _count(state, r"text_decoder\.bert\.encoder\.layer\.(\d+)\.attention\.self\.query\.weight")
    t_mlp = need("text_decoder.bert.encoder.layer.0.intermediate.dense.weight").shape[0]
    enc_width = need("text_decoder.bert.encoder.layer.0.crossattention.self.key.weight").shape[1]
    max_pos = need("text_decoder.bert.embeddings.position_embeddings.weight").shape[0]
    if width % HEAD_DIM or hidden % HEAD_DIM:
        raise UserError(f"{where}: widths {width}/{hidden} are not multiples of BLIP's head size {HEAD_DIM}")
    if enc_width != width:
        raise UserError(f"{where}: text cross-attention expects width {enc_width}, vision tower has {width}")
    bos = tokenizer.convert_tokens_to_ids(BOS_TOKEN)
    if words.shape[0] != len(tokenizer):
        raise UserError(
            f"{where}: vocabulary of {words.shape[0]} tokens, tokenizer has {len(tokenizer)} "
            f"(bert-base-uncased + {BOS_TOKEN} + {ENC_TOKEN} expected)"
        )
    return BlipConfig(
        vision_config=dict(
            hidden_size=width,
            intermediate_size=v_mlp,
            num_hidden_layers=v_layers,
            num_attention_heads=width // HEAD_DIM,
            image_size=IMAGE_SIZE,
            patch_size=patch,
            hidden_act="gelu",
            layer_norm_eps=VISION_LN_EPS,
        ),
        text_config=dict(
            vocab_size=words.shape[0],
            hidden_size=hidden,
            encoder_hidden_size=enc_width,
            intermediate_size=t_mlp,
            num_hidden_layers=t_layers,
            num_attention_heads=hidden // HEAD_DIM,
            max_position_embeddings=max_pos,
            hidden_act="gelu",
            layer_norm_eps=TEXT_LN_EPS,
            bos_token_id=bos,
            eos_token_id=tokenizer.sep_token_id,
            sep_token_id=tokenizer.sep_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
    )


def convert_original_state_dict(
    state: dict[str, torch.Tensor], expected: Sequence[str], where: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Rename an original BLIP caption state dict to transformers names.

    ``expected`` is the key set of the target model. Tied aliases are filled
    from each other (and must agree when both are present); the position
    embedding is resized to the 384px grid the way BLIP's loader does; any
    other missing or unexpected key is an error naming ``where``.
    """
    out: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for k, v in state.items():
        name = original_to_hf_key(k)
        if name is None:
            if k == _POSITION_IDS:
                continue
            unexpected.append(k)
            continue
        out[name] = v
    for alias, source in _TIED.items():
        if alias in out and source in out:
            if out[alias].shape != out[source].shape or not torch.equal(out[alias], out[source]):
                raise UserError(f"{where}: '{alias}' differs from '{source}' but the model ties them")
        elif source in out:
            out[alias] = out[source]
        elif alias in out:
            out[source] = out[alias]
    pos_key = "vision_model.embeddings.position_embedding"
    if pos_key in out and "vision_model.embeddings.patch_embedding.weight" in out:
        patch = out["vision_model.embeddings.patch_embedding.weight"].shape[-1]
        out[pos_key] = _interpolate_pos_embed(out[pos_key].float(), IMAGE_SIZE // patch)
    exp = set(expected)
    missing = sorted(exp - set(out))
    unexpected += sorted(set(out) - exp)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(
                f"missing {len(missing)} key(s) ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})"
            )
        if unexpected:
            parts.append(
                f"unexpected {len(unexpected)} key(s) ({', '.join(unexpected[:3])}{', ...' if len(unexpected) > 3 else ''})"
            )
        raise UserError(f"{where}: not a matching BLIP caption checkpoint: {'; '.join(parts)}")
    return out


def load_original_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``model`` state dict of an original BLIP ``.pth`` (no code execution)."""
    path = Path(path)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # The file pickles objects other than tensors and containers (e.g. a
        # training config object): egobench's restricted unpickler reads it
        # without running code from it.
        from ..checkpoint import load_checkpoint

        obj = load_checkpoint(path)
    except (OSError, RuntimeError, EOFError) as e:
        raise UserError(f"{path}: cannot read checkpoint ({e})") from None
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path}: expected a dict with a 'model' state dict of tensors")
    return state
