"""BLIP-B / BLIP-L caption similarity: caption the generated frame, compare texts.

What the released LEGO code does (``metrics/all_metrics_in_one.py``,
``metrics/blip/``), reproduced here:

* Models: BLIP caption decoders ``model_base_caption_capfilt_large.pth``
  (ViT-B/16) and ``model_large_caption.pth`` (ViT-L/16), both at 384x384.
* Image: PIL image -> ``transforms.Resize((384, 384), BICUBIC)`` on the PIL
  image (so PIL's bicubic filter, squashing, no crop) -> ``ToTensor`` ->
  CLIP mean/std.
* Prompt ``"a picture of"`` (the LEGO config; BLIP's own default has a
  trailing space). Tokenized ``[CLS] a picture of [SEP]``; ``[CLS]`` is replaced
  by the ``[DEC]`` bos token and ``[SEP]`` dropped, so decoding starts from 4
  tokens. ``max_length=20`` and ``min_length=5`` count those 4 tokens.
* Beam search, 3 beams, ``repetition_penalty=1.0``, ``length_penalty=1.0``,
  ``early_stopping=False``, eos = ``[SEP]``, pad = ``[PAD]``, in the
  transformers version of the LEGO environment (4.19.2).
* Decoding: ``tokenizer.decode(ids, skip_special_tokens=True)`` (slow
  BertTokenizer, ``clean_up_tokenization_spaces=True``), then
  ``caption[len(prompt):]``, which leaves a leading space. ``mode: released``
  stores it as the released code returns it; ``mode: eval`` strips it (the
  text encoders' tokenizers drop it either way, so scores do not move).
* Images go through the model in batches of 30 in split order; the code notes
  that the order changes captions. Per item, beam search is independent of the
  other items of a batch (no text padding: every row starts from the same 4
  prompt tokens; images are all 384x384); what changes with the batch is the
  floating-point arithmetic (matmul kernels and reduction orders are picked per
  shape, especially on GPU), and beam search turns last-bit differences into
  different captions when two beams are nearly tied.
* Similarity (code): caption vs the enriched description, both through the
  dataset's EgoVLP text tower, cosine. Paper text: CLIP text encoder. Both are
  settings here (``text_encoder``), as is the reference text.

**Beam search semantics.** transformers changed beam search after 4.19.2
(finished beams are now normalised by the generated length, not the total
length, and the search was rewritten). In 4.19.2 a finished hypothesis scores
``sum_logprobs / len(hyp)``, with
``len(hyp)`` the whole sequence *including the 4 prompt tokens and excluding
eos*; today it is ``sum_logprobs / n_generated`` *including eos*; the
early-stopping test and the last step at ``max_length`` differ too. So the
same model and pixels can give different captions (on the tiny zoo, 25 of 45
base and 14 of 45 large captions differ). ``beam_search: released``
(default) runs :func:`released_beam_search`, a re-implementation of the 4.19.2
algorithm on top of the transformers model's forward pass;
``beam_search: transformers`` calls ``BlipForConditionalGeneration.generate``.

**Training mode (``mode: released``).** ``compute_blip_caption`` builds the
captioner with ``blip_decoder(...)``, moves it to the GPU and never calls
``.eval()``, so the released captions are made with dropout on: BERT dropout 0.1
(``med_config.json``) at every dropout site of the text decoder, and stochastic
depth 0.1 in BLIP-L's ViT (``create_vit``: ``drop_path_rate`` 0.1 for ``large``,
0 for ``base``; per block ``linspace(0, 0.1, depth)``, timm 0.9.5's ``DropPath``).
The ViT's own dropouts have p = 0 and draw nothing. ``mode: released`` turns on
exactly these: the text decoder's ``nn.Dropout`` modules at the med_config rates
(transformers' port has the same modules at the same places, called in the same
order: embeddings; per layer self-attention probabilities, self-output,
cross-attention probabilities, cross-output, feed-forward output) and drop path
around each ViT block's attention and MLP (:func:`vision_forward_released`).
The draws come from the metric device's default generator, which a captioning
pass seeds with ``seed`` (the script's ``seed_everything(42)``) and carries from
batch to batch: batches of ``batch_size`` (30) consecutive scored samples in
split order (the evaluator forms them whatever its own batch size, see
:attr:`~egobench.metrics.Metric.group_size`), so a caption depends on its batch
and on every batch before it, as in the released script. ``draws: K`` repeats
the pass with seeds ``seed``, ``seed + 1``, ... and scores the mean over draws
(``draw_std`` in ``metrics.json``: the spread of the split means). What cannot
be reproduced (the exact draw of a full released run on its GPU) is listed in
``docs/protocols.md``. ``mode: eval`` (default) is deterministic.

**Weights.** ``weights_format: original`` loads the LEGO-Metrics ``.pth``
files (the ones the released code uses) into a transformers
``BlipForConditionalGeneration`` through :func:`convert_original_state_dict`
(configuration inferred from the tensor shapes; vision LayerNorm eps 1e-6 as
in BLIP's ViT). ``weights_format: hf`` loads the Hugging Face ports
(``Salesforce/blip-image-captioning-base`` / ``-large``) as published; their
configs keep transformers' vision LayerNorm eps default (1e-5).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import pickle
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .. import _compat
from ..errors import ConfigError, UserError
from ..weights import Artifact, register_artifact
from . import Metric, MetricBatch

# --- the released protocol -------------------------------------------------
PROMPT = "a picture of"
IMAGE_SIZE = 384
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
NUM_BEAMS = 3
MAX_LENGTH = 20
MIN_LENGTH = 5
REPETITION_PENALTY = 1.0  # BLIP_Decoder.generate's default for beam search
LENGTH_PENALTY = 1.0  # transformers' default (med_config.json sets none)
BOS_TOKEN = "[DEC]"  # BLIP's init_tokenizer(): bos_token
ENC_TOKEN = "[ENC]"  # ... and one additional special token
VISION_LN_EPS = 1e-6  # BLIP vit.py: partial(nn.LayerNorm, eps=1e-6)
TEXT_LN_EPS = 1e-12  # med_config.json
HEAD_DIM = 64  # ViT-B 768/12, ViT-L 1024/16, BERT-base 768/12 (med_config)
# the released captioner runs in training mode (compute_blip_caption never calls .eval())
RELEASED_HIDDEN_DROPOUT = 0.1  # med_config.json hidden_dropout_prob
RELEASED_ATTENTION_DROPOUT = 0.1  # med_config.json attention_probs_dropout_prob
RELEASED_DROP_PATH = {"base": 0.0, "large": 0.1}  # blip.py create_vit: drop_path_rate of ViT-B / ViT-L
RELEASED_SEED = 42  # all_metrics_in_one.py: seed_everything(42) before any metric

# --- artifacts ----------------------------------------------------------------
HF_TOKENIZER_FILES = ("special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt")
_HF_REPOS = {"base": "Salesforce/blip-image-captioning-base", "large": "Salesforce/blip-image-captioning-large"}
# as on the hubs' main branches: the base repo has only pytorch_model.bin
# (its safetensors variant sits in unmerged PRs); the large repo has model.safetensors
_HF_WEIGHTS = {"base": "pytorch_model.bin", "large": "model.safetensors"}
_ORIGINAL_FILES = {"base": "model_base_caption_capfilt_large.pth", "large": "model_large_caption.pth"}
TOKENIZER_ARTIFACT = "blip-bert-tokenizer"


def hf_artifact(model: str) -> str:
    return f"blip-{model}-caption"


def original_artifact(model: str) -> str:
    return f"blip-{model}-caption-original"


def hf_files(model: str) -> tuple[str, ...]:
    return ("config.json", _HF_WEIGHTS[model], "preprocessor_config.json", *HF_TOKENIZER_FILES)


for _m, _vit in (("base", "ViT-B/16"), ("large", "ViT-L/16")):
    register_artifact(
        Artifact(
            name=hf_artifact(_m),
            description=f"BLIP caption model ({_vit}, 384px), Hugging Face transformers port, with its tokenizer",
            files=hf_files(_m),
            license="BSD-3-Clause",
            hf_repo=_HF_REPOS[_m],
            tiny=f"egobench.metrics.blip:build_tiny_{_m}_hf",
        )
    )
    register_artifact(
        Artifact(
            name=original_artifact(_m),
            description=f"BLIP caption model ({_vit}, 384px), original BLIP checkpoint used by the LEGO "
            "release (needs 'blip-bert-tokenizer')",
            files=(_ORIGINAL_FILES[_m],),
            license="BSD-3-Clause",
            hf_repo="bolinlai/LEGO-Metrics",
            tiny=f"egobench.metrics.blip:build_tiny_{_m}_original",
        )
    )
register_artifact(
    Artifact(
        name=TOKENIZER_ARTIFACT,
        description="bert-base-uncased WordPiece vocabulary: the tokenizer of the original BLIP checkpoints "
        "(BLIP adds [DEC] and [ENC] to it)",
        files=("vocab.txt",),
        license="Apache-2.0",
        hf_repo="google-bert/bert-base-uncased",
        tiny="egobench.metrics.blip:build_tiny_bert_tokenizer",
    )
)


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


# --- tokenizer ------------------------------------------------------------------


def _add_blip_tokens(tokenizer: Any) -> Any:
    """BLIP's ``init_tokenizer``: add ``[DEC]`` as bos and ``[ENC]`` as an extra special token.

    The Hugging Face ports ship the plain bert-base-uncased tokenizer (their
    special_tokens_map has only the five BERT tokens; the bos id 30522 lives in
    the model config), so the same two tokens are added to it here: afterwards
    both tokenizers are bert-base-uncased + [DEC] (id = vocab size) + [ENC].
    """
    vocab = len(tokenizer)
    if tokenizer.convert_tokens_to_ids(BOS_TOKEN) in (None, tokenizer.unk_token_id):
        tokenizer.add_special_tokens({"bos_token": BOS_TOKEN})
        tokenizer.add_special_tokens({"additional_special_tokens": [ENC_TOKEN]})
        if tokenizer.convert_tokens_to_ids(BOS_TOKEN) != vocab:
            raise UserError(f"tokenizer: {BOS_TOKEN} did not get id {vocab}")
    return tokenizer


def load_tokenizer(folder: str | Path) -> Any:
    """BertTokenizer (uncased, as bert-base-uncased) from a folder, plus BLIP's tokens."""
    _compat.ensure_torchvision()
    from transformers import BertTokenizer

    tok = BertTokenizer.from_pretrained(str(folder), do_lower_case=True, local_files_only=True)
    return _add_blip_tokens(tok)


def prompt_input_ids(tokenizer: Any, n: int, prompt: str = PROMPT) -> torch.Tensor:
    """``[DEC] a picture of``: BLIP_Decoder.generate's decoder prompt, (n, 4)."""
    ids = tokenizer([prompt] * n, return_tensors="pt").input_ids.clone()
    ids[:, 0] = tokenizer.convert_tokens_to_ids(BOS_TOKEN)
    return ids[:, :-1]


def decode_released(tokenizer: Any, ids: Sequence[int]) -> str:
    """``tokenizer.decode(ids, skip_special_tokens=True)`` as the slow BertTokenizer of 4.19.2 did.

    Special ids are dropped, WordPiece ``##`` pieces merged, then the default
    ``clean_up_tokenization`` (spaces before punctuation and English
    contractions) applied.
    """
    special = set(tokenizer.all_special_ids)
    tokens = [t for i, t in zip(ids, tokenizer.convert_ids_to_tokens([int(i) for i in ids])) if int(i) not in special]
    text = " ".join(t if t is not None else tokenizer.unk_token for t in tokens).replace(" ##", "").strip()
    for a, b in (
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ):
        text = text.replace(a, b)
    return text


def strip_prompt(text: str, prompt: str = PROMPT) -> str:
    """``caption[len(prompt):]`` as the released code, then surrounding whitespace removed."""
    return text[len(prompt) :].strip()


# --- model loading ------------------------------------------------------------------


def load_blip_captioner(
    res: Any, fmt: Literal["hf", "original"], device: str = "cpu", *, tokenizer_res: Any = None
) -> tuple[Any, Any]:
    """(``BlipForConditionalGeneration`` in eval mode on ``device``, tokenizer).

    ``res`` is a resolved artifact (``WeightStore.resolve``): a Hugging Face
    port folder for ``fmt="hf"``; an original ``.pth`` for ``fmt="original"``,
    which also needs ``tokenizer_res`` (the bert-base-uncased vocabulary).
    """
    _compat.ensure_torchvision()
    from transformers import BlipForConditionalGeneration
    from transformers.utils import logging as hf_logging

    from ..weights import ARTIFACTS

    files = ARTIFACTS.get(res.name).files
    if fmt == "hf":
        tokenizer = load_tokenizer(res.path)
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            model = BlipForConditionalGeneration.from_pretrained(str(res.path), local_files_only=True)
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        bos = model.config.text_config.bos_token_id
        if tokenizer.convert_tokens_to_ids(BOS_TOKEN) != bos:
            raise UserError(f"{res.path}: tokenizer {BOS_TOKEN} id differs from the model's bos id {bos}")
        _check_preprocessor(res.path / "preprocessor_config.json")
    elif fmt == "original":
        if tokenizer_res is None:
            raise ValueError("fmt='original' needs tokenizer_res (the 'blip-bert-tokenizer' artifact)")
        tokenizer = load_tokenizer(tokenizer_res.path)
        path = res.file(files[0])
        state = load_original_checkpoint(path)
        config = infer_original_config(state, tokenizer, where=str(path))
        model = _empty_model(config)
        hf_state = convert_original_state_dict(state, model.state_dict().keys(), where=str(path))
        model.load_state_dict(hf_state, strict=True)
    else:
        raise ValueError(f"unknown BLIP weights format '{fmt}'")
    model = model.float().eval().to(device)
    return model, tokenizer


#: loaded captioners, one per (weights, format, device): columns of one process share them
_LOADED: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}


def shared_captioner(
    res: Any, fmt: Literal["hf", "original"], device: str = "cpu", *, tokenizer_res: Any = None
) -> tuple[Any, Any]:
    """:func:`load_blip_captioner`, loaded once per process for the same files and device."""
    key = (str(res.path), fmt, str(tokenizer_res.path) if tokenizer_res is not None else "", str(device))
    if key not in _LOADED:
        _LOADED[key] = load_blip_captioner(res, fmt, device, tokenizer_res=tokenizer_res)
    return _LOADED[key]


def _empty_model(config: Any) -> Any:
    """``BlipForConditionalGeneration(config)`` without the random init (every weight is loaded next)."""
    from transformers import BlipForConditionalGeneration

    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # pragma: no cover - older transformers
        return BlipForConditionalGeneration(config)
    with no_init_weights():
        model = BlipForConditionalGeneration(config)
    model.tie_weights()
    pred = model.text_decoder.cls.predictions
    if pred.decoder.weight is not model.text_decoder.bert.embeddings.word_embeddings.weight:  # pragma: no cover
        return BlipForConditionalGeneration(config)  # ties not restored: build the plain way
    return model


def _check_preprocessor(path: Path) -> None:
    """The port's preprocessor config must describe the released transform."""
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    size = cfg.get("size", IMAGE_SIZE)
    if isinstance(size, dict):
        size = (size.get("height"), size.get("width")) if "height" in size else (size.get("shortest_edge"),) * 2
    else:
        size = (size, size)
    ok = (
        tuple(size) == (IMAGE_SIZE, IMAGE_SIZE)
        and np.allclose(cfg.get("image_mean", CLIP_MEAN), CLIP_MEAN)
        and np.allclose(cfg.get("image_std", CLIP_STD), CLIP_STD)
        and cfg.get("resample", 3) == 3
    )
    if not ok:
        raise UserError(f"{path}: preprocessing differs from BLIP's (384x384 bicubic, CLIP mean/std)")


# --- preprocessing and decoding -----------------------------------------------------


def preprocess(images: Sequence[np.ndarray]) -> torch.Tensor:
    """(N, 3, 384, 384) float32: the released ``transform_test``.

    ``transforms.Resize((384, 384), InterpolationMode.BICUBIC)`` on a PIL image
    is PIL's ``Image.resize((384, 384), BICUBIC)``; ``ToTensor`` divides by 255
    in float32; ``Normalize`` subtracts the mean and divides by the std.
    (transformers 5's default ``BlipImageProcessor`` resizes with torchvision
    and differs by up to ~0.03 after normalisation; ``BlipImageProcessorPil``
    gives these values exactly.)
    """
    from PIL import Image

    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(CLIP_STD, dtype=torch.float32)[:, None, None]
    out = []
    for arr in images:
        arr = np.asarray(arr)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"expected uint8 (H, W, 3) images, got {arr.dtype} {arr.shape}")
        im = Image.fromarray(arr, "RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
        t = torch.from_numpy(np.array(im, dtype=np.uint8)).permute(2, 0, 1).contiguous()
        out.append(t.to(torch.float32).div(255).sub(mean).div(std))
    return torch.stack(out)


@dataclass
class _Hypotheses:
    """transformers 4.19.2 ``BeamHypotheses``: the n best finished sequences of one item."""

    num_beams: int
    length_penalty: float

    def __post_init__(self) -> None:
        self.beams: list[tuple[float, list[int]]] = []
        self.worst_score = 1e9

    def add(self, hyp: list[int], sum_logprobs: float) -> None:
        score = sum_logprobs / (len(hyp) ** self.length_penalty)
        if len(self.beams) < self.num_beams or score > self.worst_score:
            self.beams.append((score, hyp))
            if len(self.beams) > self.num_beams:
                order = sorted((s, i) for i, (s, _) in enumerate(self.beams))
                del self.beams[order[0][1]]
                self.worst_score = order[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, cur_len: int) -> bool:
        if len(self.beams) < self.num_beams:
            return False
        return self.worst_score >= best_sum_logprobs / cur_len**self.length_penalty

    def best(self) -> list[int]:
        return sorted(self.beams, key=lambda x: x[0])[-1][1]


def released_beam_search(
    step: Callable[[torch.Tensor], torch.Tensor],
    reorder: Callable[[torch.Tensor], None],
    prompt_ids: torch.Tensor,
    *,
    num_beams: int = NUM_BEAMS,
    max_length: int = MAX_LENGTH,
    min_length: int = MIN_LENGTH,
    eos_token_id: int,
    pad_token_id: int,
    length_penalty: float = LENGTH_PENALTY,
) -> list[list[int]]:
    """Beam search with the semantics of transformers 4.19.2 (the LEGO environment).

    ``step(ids)`` returns next-token logits (rows = ``batch * num_beams``) for
    the current sequences ``ids``; ``reorder(beam_idx)`` is told which rows
    survive (for a key/value cache). Returns the best hypothesis per item,
    prompt included, eos excluded. Algorithm (``BeamSearchScorer``):

    * log-softmax of the logits; eos set to -inf while the length (prompt
      included) is below ``min_length``; add the running beam score (beam 0
      starts at 0, the others at -1e9);
    * top ``2 * num_beams`` over ``num_beams * vocab``; walking them in order,
      eos candidates ranked within the first ``num_beams`` become finished
      hypotheses (score = sum of log-probs / len(sequence without eos) **
      length_penalty), the first ``num_beams`` other candidates continue;
    * an item is done when it has ``num_beams`` hypotheses and the worst is at
      least the best candidate score / current length ** length_penalty; done
      items are padded;
    * at ``max_length`` the running beams of unfinished items are added as
      hypotheses; the best hypothesis wins (ties: the later one).
    """
    batch, prompt_len = prompt_ids.shape
    k = num_beams
    ids = prompt_ids.repeat_interleave(k, dim=0)
    beam_scores = torch.zeros((batch, k), dtype=torch.float32, device=ids.device)
    beam_scores[:, 1:] = -1e9
    beam_scores = beam_scores.view(-1)
    hyps = [_Hypotheses(k, length_penalty) for _ in range(batch)]
    done = [False] * batch
    cur_len = prompt_len
    while True:
        logits = step(ids).float()
        scores = torch.nn.functional.log_softmax(logits, dim=-1)
        if cur_len < min_length:
            scores[:, eos_token_id] = -float("inf")
        vocab = scores.shape[-1]
        scores = (scores + beam_scores[:, None]).view(batch, k * vocab)
        top_scores, top_ids = torch.topk(scores, 2 * k, dim=1, largest=True, sorted=True)
        top_beams = torch.div(top_ids, vocab, rounding_mode="floor")
        top_tokens = top_ids % vocab
        ts = top_scores.cpu()
        tt, tb, seqs = top_tokens.cpu().tolist(), top_beams.cpu().tolist(), ids.cpu().tolist()
        next_scores = torch.zeros((batch, k), dtype=ts.dtype)
        next_tokens = torch.zeros((batch, k), dtype=torch.long)
        next_rows = torch.zeros((batch, k), dtype=torch.long)
        for b in range(batch):
            if done[b]:
                next_tokens[b, :] = pad_token_id  # scores 0, rows 0: as 4.19.2 pads finished items
                continue
            j = 0
            for rank in range(2 * k):
                row = b * k + tb[b][rank]
                if tt[b][rank] == eos_token_id:
                    if rank >= k:
                        continue
                    hyps[b].add(seqs[row], ts[b, rank].item())
                else:
                    next_scores[b, j] = ts[b, rank]
                    next_tokens[b, j] = tt[b][rank]
                    next_rows[b, j] = row
                    j += 1
                if j == k:
                    break
            done[b] = done[b] or hyps[b].is_done(ts[b].max().item(), cur_len)
        beam_scores = next_scores.view(-1).to(ids.device)
        rows = next_rows.view(-1).to(ids.device)
        ids = torch.cat([ids[rows], next_tokens.view(-1, 1).to(ids.device)], dim=-1)
        reorder(rows)
        cur_len += 1
        if all(done) or cur_len >= max_length:
            break
    seqs, final = ids.cpu().tolist(), beam_scores.cpu()
    for b in range(batch):
        if done[b]:
            continue
        for j in range(k):
            hyps[b].add(seqs[b * k + j], final[b * k + j].item())
    return [hyps[b].best() for b in range(batch)]


# --- training mode (mode: released) -----------------------------------------------------


def drop_path_rates(rate: float, depth: int) -> list[float]:
    """Stochastic depth per block as BLIP's ViT sets it: ``linspace(0, rate, depth)`` in float32,
    each value as a Python float (block 0 gets 0: no drop path, nothing drawn)."""
    return [float(x) for x in torch.linspace(0, rate, depth)]


def drop_path(x: torch.Tensor, p: float) -> torch.Tensor:
    """Stochastic depth in training mode with timm 0.9.5's semantics (the LEGO environment): one
    Bernoulli(1 - p) draw per row from the default generator of ``x``'s device, the kept rows scaled
    by 1 / (1 - p); p = 0 returns ``x`` and draws nothing."""
    if p == 0.0:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    mask.div_(keep)
    return x * mask


def vision_forward_released(vision_model: Any, pixel_values: torch.Tensor, rates: Sequence[float]) -> torch.Tensor:
    """BLIP's ViT in training mode on a transformers ``BlipVisionModel``: per block
    ``x + drop_path(attn(norm1(x)))`` then ``x + drop_path(mlp(norm2(x)))``, then the final norm
    (``last_hidden_state``). The ViT's dropouts (p = 0 in BLIP) stay off: they draw nothing."""
    layers = vision_model.encoder.layers
    if len(rates) != len(layers):
        raise ValueError(f"{len(rates)} drop path rates for {len(layers)} ViT blocks")
    h = vision_model.embeddings(pixel_values)
    for layer, p in zip(layers, rates):
        h = h + drop_path(layer.self_attn(hidden_states=layer.layer_norm1(h))[0], p)
        h = h + drop_path(layer.mlp(layer.layer_norm2(h)), p)
    return vision_model.post_layernorm(h)


@contextlib.contextmanager
def released_training_mode(model: Any) -> Any:
    """The text decoder's dropouts on, at the released ``med_config.json`` rates, for the duration
    (attention-probability dropouts at ``attention_probs_dropout_prob``, the others at
    ``hidden_dropout_prob``); everything else keeps its mode. Restored afterwards (the model may be
    shared with an eval-mode column)."""
    decoder = model.text_decoder
    sites = [(name, m) for name, m in decoder.named_modules() if isinstance(m, torch.nn.Dropout)]
    n_layers = len(decoder.bert.encoder.layer)
    # embeddings + per layer: self-attention probs, self output, cross-attention probs, cross output, FFN output
    if len(sites) != 1 + 5 * n_layers:
        raise RuntimeError(f"BLIP text decoder has {len(sites)} dropout modules; the released decoder has "
                           f"{1 + 5 * n_layers} (transformers' BLIP port changed?)")
    saved = [(m, m.p, m.training) for _, m in sites]
    try:
        for name, m in sites:
            m.p = RELEASED_ATTENTION_DROPOUT if name.endswith("self.dropout") else RELEASED_HIDDEN_DROPOUT
            m.train()
        yield
    finally:
        for m, p, training in saved:
            m.p = p
            m.train(training)


class DeviceGenerator:
    """The default generator of the metric's device (what dropout and drop path draw from): read,
    set, and the state a fresh generator seeded with ``seed`` has (``seed_everything(seed)``)."""

    def __init__(self, device: str):
        dev = torch.device(device)
        if dev.type not in ("cpu", "cuda"):
            raise UserError(f"metric blip: mode 'released' draws from a CPU or CUDA generator, not '{device}'")
        self.type = dev.type
        self.index = (dev.index if dev.index is not None else torch.cuda.current_device()) if dev.type == "cuda" else None

    def get(self) -> torch.Tensor:
        return torch.get_rng_state() if self.type == "cpu" else torch.cuda.get_rng_state(self.index)

    def set(self, state: torch.Tensor) -> None:
        if self.type == "cpu":
            torch.set_rng_state(state)
        else:
            torch.cuda.set_rng_state(state, self.index)

    def seeded(self, seed: int) -> torch.Tensor:
        where = "cpu" if self.type == "cpu" else f"cuda:{self.index}"
        return torch.Generator(device=where).manual_seed(seed).get_state()


class BlipCaptioner:
    """Captions uint8 RGB frames the way the released LEGO code does.

    ``mode="released"``: the model runs as the released script leaves it, with dropout and drop path
    (``drop_path_rate``: 0.1 for BLIP-L, 0 for BLIP-B) drawing from the device's current default
    generator (the caller sets and keeps its state), and captions keep their leading space.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        device: str = "cpu",
        batch_size: int = 30,
        beam_search: Literal["released", "transformers"] = "released",
        mode: Literal["eval", "released"] = "eval",
        drop_path_rate: float = 0.0,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if mode not in ("eval", "released"):
            raise ValueError(f"unknown BLIP mode '{mode}'")
        if mode == "released" and beam_search != "released":
            raise ValueError("mode 'released' needs beam_search 'released' (the 4.19.2 search the script ran)")
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size
        self.beam_search = beam_search
        self.mode = mode
        self.drop_path_rate = drop_path_rate

    def caption(self, images: Sequence[np.ndarray]) -> list[str]:
        """One caption per image, without the prompt, in chunks of ``batch_size``."""
        out: list[str] = []
        for start in range(0, len(images), self.batch_size):
            pixels = preprocess(images[start : start + self.batch_size])
            for ids in self.generate_ids(pixels):
                text = decode_released(self.tokenizer, ids)
                # released: caption[len(prompt):] exactly, leading space included
                out.append(text[len(PROMPT) :] if self.mode == "released" else strip_prompt(text))
        return out

    @torch.no_grad()
    def generate_ids(self, pixel_values: torch.Tensor) -> list[list[int]]:
        """Token ids (prompt included) for preprocessed pixels, one list per image."""
        if self.mode == "released":
            with released_training_mode(self.model):
                return self._generate_ids(pixel_values)
        return self._generate_ids(pixel_values)

    def _generate_ids(self, pixel_values: torch.Tensor) -> list[list[int]]:
        model, tok = self.model, self.tokenizer
        pixel_values = pixel_values.to(self.device)
        n = pixel_values.shape[0]
        text_cfg = model.config.text_config
        if self.beam_search == "transformers":
            prompt = tok([PROMPT] * n, return_tensors="pt").input_ids.to(self.device)
            seqs = model.generate(
                pixel_values=pixel_values,
                input_ids=prompt,
                num_beams=NUM_BEAMS,
                max_length=MAX_LENGTH,
                min_length=MIN_LENGTH,
                repetition_penalty=REPETITION_PENALTY,
                length_penalty=LENGTH_PENALTY,
                early_stopping=False,
                do_sample=False,
                num_return_sequences=1,
            )
            return [row.tolist() for row in seqs]
        if self.beam_search != "released":
            raise ValueError(f"unknown beam search '{self.beam_search}'")
        if self.mode == "released":  # the ViT first (its drop path draws), then the decoder, as generate() does
            rates = drop_path_rates(self.drop_path_rate, len(model.vision_model.encoder.layers))
            image_embeds = vision_forward_released(model.vision_model, pixel_values, rates)
        else:
            image_embeds = model.vision_model(pixel_values=pixel_values)[0]
        image_embeds = image_embeds.repeat_interleave(NUM_BEAMS, dim=0)
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=self.device)
        state: dict[str, Any] = {"cache": None}

        def step(ids: torch.Tensor) -> torch.Tensor:
            cache = state["cache"]
            out = model.text_decoder(
                input_ids=ids if cache is None else ids[:, -1:],
                attention_mask=torch.ones_like(ids),
                encoder_hidden_states=image_embeds,
                encoder_attention_mask=image_mask,
                past_key_values=cache,
                use_cache=True,
                return_dict=True,
            )
            state["cache"] = out.past_key_values
            return out.logits[:, -1, :]

        def reorder(rows: torch.Tensor) -> None:
            if state["cache"] is not None:
                state["cache"].reorder_cache(rows.to(self.device))

        prompt = prompt_input_ids(tok, n).to(self.device)
        if prompt[0, 0].item() != text_cfg.bos_token_id:
            raise RuntimeError("tokenizer and model disagree on the bos token")
        return released_beam_search(
            step,
            reorder,
            prompt,
            eos_token_id=text_cfg.sep_token_id,
            pad_token_id=text_cfg.pad_token_id,
        )


# --- the metric -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BLIPSettings:
    model: Literal["base", "large"] = "base"
    weights_format: Literal["hf", "original"] = "hf"
    text_encoder: Literal["egovlp", "clip"] = "egovlp"
    reference: Literal["description", "action"] = "description"
    batch_size: int = 30
    beam_search: Literal["released", "transformers"] = "released"
    # eval: the captioner in eval mode (deterministic); released: in training mode as the released
    #   script runs it (dropout, BLIP-L drop path), batches of batch_size in split order drawing from
    #   the device generator seeded with `seed` per captioning pass, leading space kept
    mode: Literal["eval", "released"] = "eval"
    seed: int = RELEASED_SEED
    # released: repeat the captioning pass with seeds seed, seed + 1, ...; score = mean over draws
    draws: int = 1


#: settings added with ``mode``; left out of the record at their defaults (eval mode), so eval-mode
#: columns keep the cache keys and ``metrics.json`` settings they had before
_MODE_DEFAULTS = {"mode": "eval", "seed": RELEASED_SEED, "draws": 1}


def cosine(a: np.ndarray, b: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Row-wise cosine similarity (torch.nn.functional.cosine_similarity's eps)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.maximum(np.linalg.norm(a, axis=1), eps)
    nb = np.maximum(np.linalg.norm(b, axis=1), eps)
    return np.clip(np.sum(a * b, axis=1) / (na * nb), -1.0, 1.0)


class BLIPSimilarity(Metric):
    """Cosine between a BLIP caption of the generated frame and the reference text."""

    name = "blip"
    needs = ("generated", "description", "action")
    extras = ("caption",)
    higher_is_better = True
    version = "1"
    Settings = BLIPSettings

    def __init__(self, settings: BLIPSettings, *, weights=None, device: str = "cpu", cache=None):
        super().__init__(settings, weights=weights, device=device, cache=cache)
        _check_settings(settings, "metric blip")
        released = settings.mode == "released"
        # released: fixed batches of batch_size in split order drawing from one stream (groups the
        # evaluator forms whatever its batch size); the per-draw captions and scores are extra columns
        self.group_size = settings.batch_size if released else None
        self.extras = ("caption", "draw_captions", "draw_scores") if released and settings.draws > 1 else ("caption",)
        self._generator = DeviceGenerator(device) if released else None
        if settings.weights_format == "hf":
            res = weights.resolve(hf_artifact(settings.model))
            model, tok = shared_captioner(res, "hf", device)
        else:
            res = weights.resolve(original_artifact(settings.model))
            model, tok = shared_captioner(res, "original", device, tokenizer_res=weights.resolve(TOKENIZER_ARTIFACT))
        self.captioner = BlipCaptioner(model, tok, device, settings.batch_size, settings.beam_search,
                                       mode=settings.mode, drop_path_rate=RELEASED_DROP_PATH[settings.model])
        self._encoders: dict[str, Any] = {}
        self._fingerprints: dict[int, str] = {}
        self.begin()

    @classmethod
    def parse_settings(cls, data: dict[str, Any] | None, where: str) -> BLIPSettings:
        settings = super().parse_settings(data, where)
        _check_settings(settings, where)
        return settings

    def settings_record(self) -> dict[str, Any]:
        record = super().settings_record()
        if all(record.get(k) == v for k, v in _MODE_DEFAULTS.items()):
            for k in _MODE_DEFAULTS:
                record.pop(k)
        return record

    # --- the released random stream -------------------------------------------------------------
    # A captioning pass (one evaluation) starts each draw's stream at its seed; batch k of the pass
    # continues it from where batch k-1 left it. The stream state after each batch is kept in the
    # run cache under a chain hash of every batch so far (the content of each generated image, in
    # order), so a resumed evaluation picks the stream up where the killed one left it.

    def begin(self) -> None:
        s: BLIPSettings = self.settings
        dev = self._generator.type if self._generator is not None else ""
        start = json.dumps({"mode": s.mode, "seed": s.seed, "draws": s.draws, "batch_size": s.batch_size,
                            "device": dev}, sort_keys=True)
        self._chain = hashlib.sha256(start.encode()).hexdigest()
        self._states: list[torch.Tensor | None] = [None] * s.draws  # None: fresh (seed + draw)
        self._states_at = self._chain

    def _advance(self, batch: MetricBatch) -> tuple[str, str]:
        """(chain before, chain after) this captioning batch, computed once per batch object."""

        def step() -> tuple[str, str]:
            before = self._chain
            h = hashlib.sha256(f"{before}\n{len(batch)}\n".encode())
            for key in batch.generated_keys:
                h.update(f"{key}\n".encode())
            self._chain = h.hexdigest()
            return before, self._chain

        return batch.shared(("blip-chain", id(self)), step)

    def score_keys(self, batch: MetricBatch, keys: list[str]) -> list[str]:
        """Released mode: a caption depends on its batch and every batch before it (the stream), so
        each score key also covers the chain of batches so far and the sample's place in its batch."""
        if self.settings.mode != "released":
            return keys
        _, after = self._advance(batch)
        return [hashlib.sha256(f"{k}\n{after}\n{i}".encode()).hexdigest() for i, k in enumerate(keys)]

    def _stored(self, chain: str, fill: Callable[[list[int]], list[np.ndarray]]) -> tuple[list[list[str]], list]:
        packed = self.cached("released-captions", [chain], fill, cache=self.run_cache)[0]
        return _unpack_draws(packed)

    def _states_before(self, before: str) -> list[torch.Tensor | None]:
        if self._states_at == before:
            return self._states
        if self.run_cache is None or not self.run_cache.enabled:
            raise RuntimeError("metric blip: released-mode batches scored out of order")

        def missing(_: list[int]) -> list[np.ndarray]:
            raise UserError("metric blip: the run cache has this evaluation's scores but not the captioner's "
                            "random-stream state after them (a damaged cache?); remove the run's cache/ "
                            "folder to score it again from the start")

        return self._stored(before, missing)[1]

    def _released_captions(self, batch: MetricBatch) -> list[list[str]]:
        """Captions of one captioning batch, one list per draw, continuing each draw's stream."""
        s: BLIPSettings = self.settings
        gen = self._generator
        assert gen is not None
        before, after = self._advance(batch)

        def caption_all() -> tuple[list[list[str]], list[torch.Tensor]]:
            states = self._states_before(before)
            # two columns with the same captioner at the same stream state share the work
            digest = hashlib.sha256(b"".join(bytes(st.numpy()) if st is not None else b"fresh" for st in states))
            key = ("blip-released", id(self.captioner.model), s.batch_size, s.model, s.seed, s.draws,
                   digest.hexdigest())

            def run() -> tuple[list[list[str]], list[torch.Tensor]]:
                captions, after_states = [], []
                saved = gen.get()
                try:
                    for d in range(s.draws):
                        gen.set(states[d] if states[d] is not None else gen.seeded(s.seed + d))
                        captions.append(self.captioner.caption(batch.generated))
                        after_states.append(gen.get())
                finally:
                    gen.set(saved)  # the rest of the process draws from where it was
                return captions, after_states

            return batch.shared(key, run)

        if self.run_cache is not None and self.run_cache.enabled:
            captions, states = self._stored(after, lambda _: [_pack_draws(*caption_all())])
        else:
            captions, states = caption_all()
        self._states, self._states_at = list(states), after
        return captions

    def compute(self, batch: MetricBatch) -> tuple[np.ndarray, dict[str, list]]:
        s: BLIPSettings = self.settings
        n = len(batch)
        cap = self.captioner
        if s.mode == "released":
            if n > s.batch_size:  # called outside the evaluator's groups: one captioning batch at a time
                parts = [self.compute(_slice(batch, i, i + s.batch_size)) for i in range(0, n, s.batch_size)]
                return (np.concatenate([p[0] for p in parts]),
                        {k: [v for p in parts for v in p[1][k]] for k in parts[0][1]})
            draws = self._released_captions(batch)
        else:
            # two columns with the same captioner and decoding (e.g. one reference text each) share
            # the captions of a batch
            draws = [batch.shared(("blip-captions", id(cap.model), cap.batch_size, cap.beam_search),
                                  lambda: cap.caption(batch.generated))]
        k = len(draws)
        refs = list(batch.description if s.reference == "description" else batch.action)
        if len(refs) != n:
            raise ValueError(f"metric blip: {len(refs)} {s.reference} texts for {n} samples")
        domains = list(batch.domain) if batch.domain else [""] * n
        groups: dict[str, list[int]] = {}
        for i, d in enumerate(domains):
            groups.setdefault(self._encoder_domain(d), []).append(i)
        per_draw = np.empty((k, n), dtype=np.float64)
        for edomain, idx in groups.items():
            encoder = self._text_encoder(domains[idx[0]])
            cap_emb = np.asarray(encoder.embed([draws[d][i] for d in range(k) for i in idx]))
            ref_texts = [refs[i] for i in idx]
            # the reference side is the same for every method: cache it by text, domain and encoder weights
            fp = self._encoder_fingerprint(encoder)
            keys = [hashlib.sha256(f"{s.text_encoder}\n{fp}\n{edomain}\n{t}".encode()).hexdigest() for t in ref_texts]

            def fill(missing: list[int], encoder=encoder, ref_texts=ref_texts) -> list[np.ndarray]:
                emb = np.asarray(encoder.embed([ref_texts[j] for j in missing]))
                return [emb[j] for j in range(len(missing))]

            ref_emb = np.stack(self.cached("reference-text", keys, fill))
            for d in range(k):
                per_draw[d, idx] = cosine(cap_emb[d * len(idx) : (d + 1) * len(idx)], ref_emb)
        extras: dict[str, list] = {"caption": list(draws[0])}
        if k == 1:
            return per_draw[0], extras
        extras["draw_captions"] = [json.dumps([draws[d][i] for d in range(k)]) for i in range(n)]
        extras["draw_scores"] = [json.dumps([float(per_draw[d, i]) for d in range(k)]) for i in range(n)]
        return per_draw.mean(axis=0), extras

    def summary(self, values: np.ndarray, extras: dict[str, list]) -> dict[str, Any]:
        """Released mode: ``draws``; with more than one, each draw's split mean (``draw_values``) and
        their standard deviation (``draw_std``, ddof 1): the captioner's noise floor on this split."""
        s: BLIPSettings = self.settings
        if s.mode != "released":
            return {}
        out: dict[str, Any] = {"draws": s.draws}
        if s.draws > 1 and extras.get("draw_scores"):
            per = np.array([json.loads(x) for x in extras["draw_scores"]], dtype=np.float64)
            means = per.mean(axis=0)
            out["draw_values"] = [float(m) for m in means]
            out["draw_std"] = float(np.std(means, ddof=1))
        return out


    @classmethod
    def artifacts(cls, settings: BLIPSettings) -> list[str]:
        """The captioner's weights. The text encoders' artifacts depend on the
        samples' domains (EgoVLP: one checkpoint per dataset) and are resolved
        when first used; their file digests enter the reference-text cache keys
        (see :meth:`_encoder_fingerprint`)."""
        if settings.weights_format == "hf":
            return [hf_artifact(settings.model)]
        return [original_artifact(settings.model), TOKENIZER_ARTIFACT]

    @classmethod
    def artifacts_for(cls, settings: BLIPSettings, domains: Sequence[str]) -> list[str]:
        """The captioner and the text tower(s) the samples of ``domains`` are compared through."""
        names = list(cls.artifacts(settings))
        if settings.text_encoder == "egovlp":
            from .egovlp import FAMILIES, text_artifacts

            for d in sorted(set(domains)):
                if d in FAMILIES:
                    names += text_artifacts(d)
        else:
            from .clip_metric import CLIP_MODELS

            names.append(CLIP_MODELS["ViT-L-14"].artifact)
        return list(dict.fromkeys(names))

    def _encoder_domain(self, domain: str) -> str:
        return domain if self.settings.text_encoder == "egovlp" else ""

    def _text_encoder(self, domain: str) -> Any:
        """The text tower (``embed(texts) -> (N, D)``) for a domain, loaded once."""
        key = self._encoder_domain(domain)
        if key not in self._encoders:
            if self.settings.text_encoder == "egovlp":
                from .egovlp import EgoVLPTextEncoder  # type: ignore[import-not-found]

                self._encoders[key] = EgoVLPTextEncoder(self.weights, self.device, domain)
            else:
                from .clip_metric import CLIPTextEncoder  # type: ignore[import-not-found]

                self._encoders[key] = CLIPTextEncoder(self.weights, self.device)
        return self._encoders[key]

    def _encoder_fingerprint(self, encoder: Any) -> str:
        """sha256 over the files of the artifacts a text encoder loaded (``artifacts`` or
        ``artifact`` attribute; empty when it declares none)."""
        if id(encoder) not in self._fingerprints:
            from ..data.split import file_digest
            from ..weights import ARTIFACTS

            names = getattr(encoder, "artifacts", None)
            if names is None:
                names = [encoder.artifact] if getattr(encoder, "artifact", None) else []
            h = hashlib.sha256()
            for name in names:
                res = self.weights.resolve(name)
                for f in ARTIFACTS.get(name).files:
                    h.update(f"{name}/{f}:{file_digest(res.file(f))}\n".encode())
            self._fingerprints[id(encoder)] = h.hexdigest()
        return self._fingerprints[id(encoder)]


def _check_settings(s: BLIPSettings, where: str) -> None:
    if s.batch_size < 1:
        raise ConfigError(f"{where}: batch_size must be >= 1, got {s.batch_size}")
    if s.draws < 1:
        raise ConfigError(f"{where}: draws must be >= 1, got {s.draws}")
    if s.mode == "eval" and s.draws != 1:
        raise ConfigError(f"{where}: draws {s.draws} needs mode: released (mode eval is deterministic)")
    if s.mode == "released" and s.beam_search != "released":
        raise ConfigError(f"{where}: mode released needs beam_search: released (the search the released code ran)")


def _slice(batch: MetricBatch, start: int, stop: int) -> MetricBatch:
    n = len(batch)
    fields = {f.name: getattr(batch, f.name) for f in dataclasses.fields(MetricBatch) if f.name != "memo"}
    return MetricBatch(**{k: (list(v[start:stop]) if len(v) == n else list(v)) for k, v in fields.items()})


def _pack_draws(captions: list[list[str]], states: list[torch.Tensor]) -> np.ndarray:
    """One run-cache entry: every draw's captions of a batch and its stream state after it."""
    blob = {"captions": captions, "states": [base64.b64encode(bytes(st.numpy())).decode() for st in states]}
    return np.frombuffer(json.dumps(blob).encode(), dtype=np.uint8).copy()


def _unpack_draws(packed: np.ndarray) -> tuple[list[list[str]], list[torch.Tensor]]:
    blob = json.loads(np.asarray(packed, dtype=np.uint8).tobytes().decode())
    states = [torch.frombuffer(bytearray(base64.b64decode(st)), dtype=torch.uint8) for st in blob["states"]]
    return blob["captions"], states


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


def _write_tokenizer_files(folder: Path, hf_layout: bool) -> None:
    from ..io import atomic_write_json, atomic_write_text

    words = tiny_vocab()
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
    from ..io import atomic_open, atomic_write_json

    folder = Path(folder)
    # the ports keep transformers' default vision LayerNorm eps
    m = tiny_model(model, vision_ln_eps=1e-5)
    m.config.save_pretrained(str(folder))
    weights = _HF_WEIGHTS[model]
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
    _write_tokenizer_files(folder, hf_layout=True)


def _safetensors_bytes(state: dict[str, torch.Tensor], save_file: Callable) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "w.safetensors"
        save_file({k: v.clone() for k, v in state.items()}, str(p), metadata={"format": "pt"})
        return p.read_bytes()


def _build_tiny_original(model: str, folder: Path) -> None:
    from ..io import atomic_open

    m = tiny_model(model, vision_ln_eps=VISION_LN_EPS)
    state = hf_to_original_state_dict(m.state_dict(), _TINY_MAX_POS)
    with atomic_open(Path(folder) / _ORIGINAL_FILES[model], "wb") as f:
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
