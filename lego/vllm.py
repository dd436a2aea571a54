"""The visual LLM of LEGO (LLaVA, Llama-2-13B-chat) through Hugging Face transformers.

What the released code does (``vllm/llava/eval/run_llava_in_loop.py`` and the
LLaVA fork under ``vllm/llava``, run with transformers 4.31, fp16 on CUDA):

* **Model.** ``LlavaLlamaForCausalLM``: a Llama-2 language model whose
  checkpoint keys are plain Llama keys (``model.embed_tokens``,
  ``model.layers.*``, ``model.norm``, ``lm_head``) plus ``model.mm_projector``
  (a single ``nn.Linear(1024, 5120)``: this LLaVA version has no MLP
  projector), and a CLIP vision tower *not* taken from the checkpoint but
  loaded from ``config.mm_vision_tower`` (``openai/clip-vit-large-patch14``,
  224 px, 14 px patches: 256 patch tokens). Image features are
  ``hidden_states[mm_vision_select_layer]`` (-2, the output of the
  second-to-last encoder layer) with the CLS token dropped
  (``mm_vision_select_feature='patch'``), then the projector.
* **Image.** ``CLIPImageProcessor.preprocess(image)`` of that CLIP repo:
  resize the short side to 224 (PIL bicubic, long side truncated with
  ``int``), center crop 224, scale by 1/255, CLIP mean/std. The inference
  script calls the processor directly, so the ``image_aspect_ratio`` option
  (pad-to-square) of LLaVA's training code plays no part.
* **Prompt.** Conversation template ``llava_llama_2`` (system prompt below,
  ``[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n<image>\\n{query} [/INST]``), with
  ``mm_use_im_start_end`` false; the query is "How does the person properly
  {action} that is displayed in the video frame?" where for Ego4D ``action``
  is the narration with ``#C``/``C`` removed and the verb lemmatized (see
  :mod:`lego.lemmatize`); EPIC labels are used as they are. The prompt is split
  at ``<image>``, each piece tokenized (with BOS), the later pieces' BOS
  dropped, and the 256 projected image tokens spliced in at the split.
* **Generation.** ``do_sample=True, temperature=0.2, max_new_tokens=1024``;
  transformers 4.31 then also applies its default ``top_k=50`` (the model's
  ``generation_config.json`` of the base LLaVA checkpoint, 132 bytes, sets no
  sampling options); stop at ``</s>``. The description is the decoded new
  tokens with ``</s>`` removed, stripped.
* **Seeding.** ``seed_everything(42)`` once per process, before the loop over
  a chunk of the split (5 chunks, one process each). Every sample after the
  first of its chunk therefore draws from an RNG state that depends on how
  many tokens all earlier samples of the chunk generated: its text depends on
  the order and the chunking. (Sampling ran on CUDA in fp16 as well, so the
  released descriptions cannot be reproduced bit for bit anyway.)
* **Features.** Image features = the projector output for the image
  (256 x 5120, fp16, saved with ``np.save`` after ``squeeze``). Text features:
  for each generation step ``w``, ``hidden_states[w][-1][0, -1]`` - the last
  layer (after the final RMSNorm) at the last position fed in that step. Step
  0 feeds the whole prompt, so its last position is the last prompt token;
  step ``w > 0`` feeds generated token ``w-1``. Row ``i`` is therefore the
  hidden state *that produced* generated token ``i`` (the position just before
  it in the full sequence), and there is one row per generated token,
  including the final ``</s>`` when one was generated (#generated x 5120).

What egobench does:

* **Conversion, in memory.** The original-layout checkpoint is read shard by
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
* **The linear projector.** transformers' ``LlavaMultiModalProjector`` is
  ``linear_1 -> act -> linear_2``. A single linear could be encoded with
  ``projector_hidden_act='linear'`` and an identity ``linear_2``, but that adds
  a 5120 x 5120 matmul that is exact only without TF32/reduced-precision
  accumulation. Instead the projector module is replaced by
  :class:`LinearProjector` (one ``linear_1``), so the projection is the
  original ``nn.Linear`` exactly. LLaVA-1.5's ``mlp2x_gelu`` projector
  (``mm_projector.0`` / ``.2``) maps onto the stock module.
* **Image tokens are spliced as embeddings.** Rather than adding an
  ``<image>`` token to the vocabulary (which resizes the embedding and
  ``lm_head`` and adds a samplable token), the prompt embeddings are built as
  LLaVA does (text embeddings, image features, text embeddings) and passed to
  ``generate(inputs_embeds=...)``; the vocabulary stays the checkpoint's.
* **Sampling** uses transformers' own ``generate`` (temperature 0.2, top-k 50
  and top-p 1.0 unless the checkpoint's ``generation_config.json`` says
  otherwise, ``max_new_tokens`` 1024, stop at EOS), one sample at a time (batch
  1, no padding, as released). Logits are processed in fp32 by transformers 5
  (4.31 sampled from fp16 logits). Attention defaults to the eager
  implementation (the 4.31 code path; softmax in fp32).
* **Seeding** is per sample by default (``seeding='per-sample'``): each sample
  starts from ``torch.manual_seed(seed)``, so a sample's description does not
  depend on its position, the batch or the chunking - it equals what the
  release gives the *first* sample of a chunk. ``seeding='once'`` seeds once
  per :meth:`LegoVLLM.describe` call (the release's behaviour within a chunk).
  The global RNG state is restored afterwards either way.
* **Features** are returned as float32 arrays (float16 when the model runs in
  float16, as the released files are), always 2-D.

Artifacts (file layouts; how sure we are is written beside each):

* ``lego-vllm-ego4d`` / ``lego-vllm-epic``: HF ``bolinlai/LEGO-Ego4D`` /
  ``bolinlai/LEGO-EpicKitchens``, folder
  ``llava-llama-2-13b-chat-forecasting-finetune/`` (the folder name is seen on
  the Ego4D repo page; its contents are not, nor the EPIC repo's layout). The
  files declared are what LLaVA's trainer (transformers 4.31) writes for a 13B
  model: ``config.json``, ``generation_config.json``,
  ``pytorch_model.bin.index.json``, three ``pytorch_model-0000N-of-00003.bin``
  shards, ``special_tokens_map.json``, ``tokenizer.model``,
  ``tokenizer_config.json``.
* ``llava-llama-2-13b``: HF ``liuhaotian/llava-llama-2-13b-chat-lightning-preview``
  (the "without finetuning" ablation); the same files at the repo root (seen
  on the repo page: three ``.bin`` shards of 9.95/9.9/6.19 GB, the index,
  ``config.json``, the 132-byte ``generation_config.json``, tokenizer files;
  the repo also has ``mm_projector.bin``, used only if the shards lack the
  projector).
* ``llava-vision-tower``: HF ``openai/clip-vit-large-patch14``: ``config.json``
  (a full ``CLIPConfig``), ``model.safetensors``, ``preprocessor_config.json``.

Known differences from the release (beyond fp16/CUDA numerics, which make
bit-exact reproduction impossible anyway): transformers 5 samples from fp32
logits (4.31: fp16); LLaVA's loader adds an ``<im_patch>`` token and resizes
the embeddings when ``mm_use_im_patch_token`` is absent or true in
``config.json`` (LEGO's finetuning sets it false) - we keep the checkpoint's
vocabulary as it is; ``mm_use_im_start_end=true`` checkpoints are refused.

The real tokenizer is a SentencePiece ``tokenizer.model``; transformers 5
converts it to a fast tokenizer, which needs ``sentencepiece`` (or
``protobuf``) installed. The tiny zoo writes a ``tokenizer.json`` beside a small
``tokenizer.model`` so no extra package is needed offline.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from egobench import _compat
from egobench.errors import ConfigError, DataError, UserError
from egobench.io import atomic_write_json, atomic_write_text
from egobench.weights import Artifact, Resolved, WeightStore, register_artifact

from .features import VLLMFeatures
from .lemmatize import strip_and_lemmatize

__all__ = [
    "LegoVLLM",
    "VLLMOutput",
    "ClipPreprocess",
    "LinearProjector",
    "QUERY",
    "SYSTEM_PROMPT",
    "VARIANT_ARTIFACTS",
    "VISION_ARTIFACT",
    "action_phrase",
    "llava_llama_2_prompt",
    "tokenize_with_image",
    "convert_llava_state_dict",
    "convert_clip_vision_state_dict",
    "llava_config_from_original",
    "build_llava_model",
    "load_original_state_dict",
]

# ---------------------------------------------------------------------------
# constants of the release
# ---------------------------------------------------------------------------

#: the official query (``--query`` of ``vllm/scripts/inference.sh``)
QUERY = "How does the person properly {} that is displayed in the video frame?"

#: ``conv_llava_llama_2.system`` in ``vllm/llava/conversation.py``
SYSTEM_PROMPT = (
    "You are a helpful language and vision assistant. "
    "You are able to understand the visual content that the user provides, "
    "and assist the user with a variety of tasks using natural language."
)
IMAGE_TOKEN = "<image>"
IMAGE_TOKEN_INDEX = -200  # LLaVA's placeholder id in the token list
STOP_STR = "</s>"

TEMPERATURE = 0.2
MAX_NEW_TOKENS = 1024
#: transformers 4.31's GenerationConfig defaults, used when generation_config.json sets none
DEFAULT_TOP_K = 50
DEFAULT_TOP_P = 1.0
OFFICIAL_SEED = 42

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

Variant = Literal["ego4d", "epic", "off-the-shelf"]

VISION_ARTIFACT = "llava-vision-tower"
VARIANT_ARTIFACTS: dict[str, str] = {
    "ego4d": "lego-vllm-ego4d",
    "epic": "lego-vllm-epic",
    "off-the-shelf": "llava-llama-2-13b",
}
#: the folder the LLaVA checkpoint sits in, inside each artifact
ARTIFACT_SUBDIR: dict[str, str] = {
    "lego-vllm-ego4d": "llava-llama-2-13b-chat-forecasting-finetune",
    "lego-vllm-epic": "llava-llama-2-13b-chat-forecasting-finetune",
    "llava-llama-2-13b": "",
}
#: model tags of the released feature dumps (``lego.features`` layout)
RELEASE_TAGS: dict[str, str] = {
    "ego4d": "llava-llama-2-13b-chat-forecasting-finetune-ckpt450",
    "epic": "llava-llama-2-13b-chat-forecasting-finetune",
    "off-the-shelf": "llava-llama-2-13b-chat-lightning-preview",
}

_DATASETS = {
    "ego4d": "ego4d",
    "ego4d.fho": "ego4d",
    "ego4d_fho": "ego4d",
    "epickitchens": "epickitchens",
    "epickitchen": "epickitchens",
    "epic": "epickitchens",
    "epic-kitchens": "epickitchens",
    "epic_kitchens": "epickitchens",
}

LLAVA_FILES = (
    "config.json",
    "generation_config.json",
    "pytorch_model.bin.index.json",
    "pytorch_model-00001-of-00003.bin",
    "pytorch_model-00002-of-00003.bin",
    "pytorch_model-00003-of-00003.bin",
    "special_tokens_map.json",
    "tokenizer.model",
    "tokenizer_config.json",
)
VISION_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")

_LLAMA2_LICENSE = "Llama 2 Community License (Llama-2-13b-chat base)"

register_artifact(
    Artifact(
        name="lego-vllm-ego4d",
        description="LEGO's VLLM finetuned on Ego4D (LLaVA Llama-2-13B-chat, linear projector), original LLaVA "
        "layout; file names inside the folder follow LLaVA's 4.31 trainer output (not listed publicly)",
        files=tuple(f"{ARTIFACT_SUBDIR['lego-vllm-ego4d']}/{f}" for f in LLAVA_FILES),
        license=f"CC-BY-4.0 (LEGO release) + {_LLAMA2_LICENSE}",
        hf_repo="bolinlai/LEGO-Ego4D",
        tiny="lego.vllm:build_tiny_lego_vllm_ego4d",
    )
)
register_artifact(
    Artifact(
        name="lego-vllm-epic",
        description="LEGO's VLLM finetuned on EPIC-KITCHENS (LLaVA Llama-2-13B-chat), original LLaVA layout; "
        "folder and file names assumed to match the Ego4D repo",
        files=tuple(f"{ARTIFACT_SUBDIR['lego-vllm-epic']}/{f}" for f in LLAVA_FILES),
        license=f"CC-BY-4.0 (LEGO release) + {_LLAMA2_LICENSE}",
        hf_repo="bolinlai/LEGO-EpicKitchens",
        tiny="lego.vllm:build_tiny_lego_vllm_epic",
    )
)
register_artifact(
    Artifact(
        name="llava-llama-2-13b",
        description="off-the-shelf LLaVA Llama-2-13B-chat lightning preview (LEGO's VLLM initialisation; the "
        "'without finetuning' ablation), original LLaVA layout",
        files=LLAVA_FILES,
        license=_LLAMA2_LICENSE,
        hf_repo="liuhaotian/llava-llama-2-13b-chat-lightning-preview",
        tiny="lego.vllm:build_tiny_llava_llama_2",
    )
)
register_artifact(
    Artifact(
        name=VISION_ARTIFACT,
        description="CLIP ViT-L/14 at 224 px (openai/clip-vit-large-patch14): LLaVA's vision tower "
        "(layer -2, 256 patch tokens) and its image preprocessing",
        files=VISION_FILES,
        license="MIT (OpenAI CLIP)",
        hf_repo="openai/clip-vit-large-patch14",
        tiny="lego.vllm:build_tiny_vision_tower",
    )
)


# ---------------------------------------------------------------------------
# prompt
# ---------------------------------------------------------------------------


def normalize_dataset(dataset: str) -> str:
    key = str(dataset).strip().lower()
    if key not in _DATASETS:
        raise UserError(f"unknown dataset '{dataset}' for the LEGO VLLM prompt; use ego4d or epickitchens")
    return _DATASETS[key]


def action_phrase(action: str, dataset: str, *, release_slicing: bool = True) -> str:
    """The ``{action}`` of the query: Ego4D narrations stripped and lemmatized, EPIC labels as they are."""
    if normalize_dataset(dataset) == "ego4d":
        return strip_and_lemmatize(action, release_slicing=release_slicing)
    return action


def llava_llama_2_prompt(query: str, system: str = SYSTEM_PROMPT, *, im_start_end: bool = False) -> str:
    """``conv_templates['llava_llama_2']`` with one user turn (image first) and an open assistant turn."""
    image = f"<im_start>{IMAGE_TOKEN}<im_end>" if im_start_end else IMAGE_TOKEN
    return f"[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{image}\n{query} [/INST]"


def tokenize_with_image(prompt: str, tokenizer: Any, image_index: int = IMAGE_TOKEN_INDEX) -> list[int]:
    """LLaVA's ``tokenizer_image_token``: pieces tokenized apart, BOS kept once, ``image_index`` at ``<image>``."""
    chunks = [list(tokenizer(chunk).input_ids) for chunk in prompt.split(IMAGE_TOKEN)]
    ids: list[int] = []
    offset = 0
    if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        ids.append(chunks[0][0])
    for i, chunk in enumerate(chunks):
        if i:
            ids.append(image_index)
        ids.extend(chunk[offset:])
    return ids


# ---------------------------------------------------------------------------
# image preprocessing
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipPreprocess:
    """``CLIPImageProcessor.preprocess`` as transformers 4.31 ran it (PIL resize on uint8)."""

    shortest_edge: int = 224
    crop: tuple[int, int] = (224, 224)  # height, width
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    resample: int = 3  # PIL.Image.BICUBIC
    rescale: float = 1 / 255
    do_resize: bool = True
    do_center_crop: bool = True
    do_normalize: bool = True

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> ClipPreprocess:
        cfg = _read_json(Path(path))
        size = cfg.get("size", 224)
        if isinstance(size, dict):
            size = size.get("shortest_edge", size.get("height", 224))
        crop = cfg.get("crop_size", size)
        crop_hw = (crop.get("height", 224), crop.get("width", 224)) if isinstance(crop, dict) else (crop, crop)
        return cls(
            shortest_edge=int(size),
            crop=(int(crop_hw[0]), int(crop_hw[1])),
            mean=tuple(cfg.get("image_mean", CLIP_MEAN)),
            std=tuple(cfg.get("image_std", CLIP_STD)),
            resample=int(cfg.get("resample", 3)),
            rescale=float(cfg.get("rescale_factor", 1 / 255)),
            do_resize=bool(cfg.get("do_resize", True)),
            do_center_crop=bool(cfg.get("do_center_crop", True)),
            do_normalize=bool(cfg.get("do_normalize", True)),
        )

    def __call__(self, image: Any) -> torch.Tensor:
        """PIL image (any mode) -> (3, H, W) float32 tensor."""
        img = image.convert("RGB")
        if self.do_resize:
            w, h = img.size
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = self.shortest_edge, int(self.shortest_edge * long / short)
            size = (new_short, new_long) if w <= h else (new_long, new_short)
            img = img.resize(size, resample=self.resample, reducing_gap=None)
        arr = np.asarray(img)
        if self.do_center_crop:
            arr = _center_crop(arr, *self.crop)
        x = (arr * self.rescale).astype(np.float32)
        if self.do_normalize:
            x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def _center_crop(arr: np.ndarray, ch: int, cw: int) -> np.ndarray:
    """transformers' ``center_crop`` (zero-pads when the image is smaller than the crop)."""
    h, w = arr.shape[:2]
    top, left = (h - ch) // 2, (w - cw) // 2
    if top >= 0 and left >= 0:
        return arr[top : top + ch, left : left + cw]
    nh, nw = max(ch, h), max(cw, w)
    padded = np.zeros((nh, nw, *arr.shape[2:]), arr.dtype)
    tp, lp = (nh - h) // 2, (nw - w) // 2
    padded[tp : tp + h, lp : lp + w] = arr
    top, left = top + tp, left + lp
    return padded[max(0, top) : min(nh, top + ch), max(0, left) : min(nw, left + cw)]


# ---------------------------------------------------------------------------
# reading the original layouts
# ---------------------------------------------------------------------------


def _read_json(path: Path) -> dict:
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
            weight_map = _read_json(folder / index).get("weight_map")
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
    cfg = _read_json(Path(folder) / "config.json")
    required = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    missing = [k for k in required if k not in cfg]
    if missing:
        raise DataError(f"{Path(folder) / 'config.json'}: not a LLaVA-Llama config (missing {missing[0]})")
    return cfg


def read_clip_vision_config(folder: str | os.PathLike) -> Any:
    """CLIPVisionConfig from a CLIP repo's config.json (full CLIPConfig, old ``*_config_dict`` style too)."""
    _compat.ensure_torchvision()
    from transformers import CLIPVisionConfig

    cfg = _read_json(Path(folder) / "config.json")
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


# ---------------------------------------------------------------------------
# the model wrapper
# ---------------------------------------------------------------------------


@dataclass
class VLLMOutput:
    """One sample's generation with everything needed to check it."""

    features: VLLMFeatures
    action: str  # the {action} of the query
    prompt: str  # the full prompt text (with <image>)
    prompt_ids: list[int]  # LLaVA token list (IMAGE_TOKEN_INDEX at the image)
    generated_ids: list[int]  # new tokens, EOS included when generated


def _load_tokenizer(folder: Path) -> Any:
    """The tokenizer class named in ``tokenizer_config.json`` (``LlamaTokenizer`` for LLaVA).

    Not ``AutoTokenizer``: it would parse the LLaVA ``config.json`` (``model_type``
    "llava", original layout) as transformers' unrelated ``LlavaConfig``.
    """
    _compat.ensure_torchvision()
    import transformers

    name = _read_json(folder / "tokenizer_config.json").get("tokenizer_class") or "LlamaTokenizer"
    cls = getattr(transformers, name, None) or getattr(transformers, name.removesuffix("Fast"), None)
    if cls is None:
        raise UserError(f"{folder}: unknown tokenizer_class '{name}'")
    try:
        return cls.from_pretrained(str(folder), local_files_only=True)
    except (ImportError, ValueError, OSError) as e:
        hint = ""
        if not (folder / "tokenizer.json").is_file():
            hint = "; the SentencePiece tokenizer.model needs 'pip install sentencepiece' to load"
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise UserError(f"{folder}: cannot load the LLaVA tokenizer ({first}){hint}") from None


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    if t.dtype not in (torch.float16, torch.float32):
        t = t.float()
    return t.detach().cpu().numpy()


class LegoVLLM:
    """LEGO's VLLM: prompt, describe, image and text features.

    Build with :meth:`from_artifacts`; tests and advanced users can build the
    pieces with :func:`build_llava_model` and pass them to the constructor.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        preprocess: ClipPreprocess,
        *,
        variant: str = "ego4d",
        temperature: float = TEMPERATURE,
        top_k: int | None = DEFAULT_TOP_K,
        top_p: float = DEFAULT_TOP_P,
        max_new_tokens: int = MAX_NEW_TOKENS,
        release_slicing: bool = True,
        tiny: bool = False,
        report: LoadReport | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.variant = variant
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.release_slicing = release_slicing
        self.tiny = tiny
        self.report = report
        eos = tokenizer.eos_token_id
        self.eos_token_id = eos if eos is not None else model.config.text_config.eos_token_id
        pad = tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else model.config.text_config.pad_token_id

    # -- construction -------------------------------------------------------
    @classmethod
    def from_artifacts(
        cls,
        weights_store: WeightStore,
        variant: Variant = "ego4d",
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        **settings: Any,
    ) -> LegoVLLM:
        """Resolve ``lego-vllm-ego4d`` | ``lego-vllm-epic`` | ``llava-llama-2-13b`` plus ``llava-vision-tower``.

        Defaults: CUDA in float16 when available (as released), else CPU in float32.
        """
        if variant not in VARIANT_ARTIFACTS:
            raise UserError(f"unknown LEGO VLLM variant '{variant}'; use one of {', '.join(VARIANT_ARTIFACTS)}")
        name = VARIANT_ARTIFACTS[variant]
        res: Resolved = weights_store.resolve(name)
        vis: Resolved = weights_store.resolve(VISION_ARTIFACT)
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        if dtype is None:
            dtype = torch.float16 if device.type == "cuda" else torch.float32
        llava_dir = res.file(ARTIFACT_SUBDIR[name]) if ARTIFACT_SUBDIR[name] else res.path
        model, report = build_llava_model(
            llava_dir, vis.path, device=device, dtype=dtype,
            attn_implementation=settings.pop("attn_implementation", "eager"),
        )
        gen = {}
        if (llava_dir / "generation_config.json").is_file():
            gen = _read_json(llava_dir / "generation_config.json")
        settings.setdefault("top_k", gen.get("top_k", DEFAULT_TOP_K))
        settings.setdefault("top_p", gen.get("top_p", DEFAULT_TOP_P))
        return cls(
            model,
            _load_tokenizer(llava_dir),
            ClipPreprocess.from_file(vis.file("preprocessor_config.json")),
            variant=variant,
            tiny=res.tiny or vis.tiny,
            report=report,
            **settings,
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def model_tag(self) -> str:
        """Feature-folder tag: the released dump's tag for the variant ("-tiny" for the tiny zoo)."""
        tag = RELEASE_TAGS.get(self.variant, self.variant)
        return f"{tag}-egobench-tiny" if self.tiny else tag

    # -- prompt ---------------------------------------------------------------
    def action(self, action: str, dataset: str) -> str:
        return action_phrase(action, dataset, release_slicing=self.release_slicing)

    def prompt(self, action: str, dataset: str) -> str:
        """The full llava_llama_2 prompt (with ``<image>``) for a label of ``dataset``."""
        return llava_llama_2_prompt(QUERY.format(self.action(action, dataset)))

    def prompt_ids(self, prompt: str) -> list[int]:
        return tokenize_with_image(prompt, self.tokenizer)

    # -- tensors --------------------------------------------------------------
    def pixel_values(self, image: Any) -> torch.Tensor:
        """(1, 3, H, W) in the model's dtype and device; ``image`` is a PIL image or a path."""
        if isinstance(image, (str, os.PathLike)):
            from egobench.images import open_rgb

            # egobench's one reader (pixel limit, one-line errors); it applies EXIF orientation,
            # which the release's Image.open(...).convert("RGB") did not: video frames carry none
            image = open_rgb(image)
        return self.preprocess(image).unsqueeze(0).to(self.device, self.dtype)

    @torch.no_grad()
    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projector output, (image tokens, hidden): CLIP layer ``vision_feature_layer``, CLS dropped, projected."""
        cfg = self.model.config
        out = self.model.model.get_image_features(
            pixel_values=pixel_values,
            vision_feature_layer=cfg.vision_feature_layer,
            vision_feature_select_strategy=cfg.vision_feature_select_strategy,
            return_dict=True,
        )
        return out.pooler_output[0]  # one image: (tokens, hidden)

    @torch.no_grad()
    def inputs_embeds(self, prompt_ids: Sequence[int], image_features: torch.Tensor) -> torch.Tensor:
        """(1, L, hidden): text embeddings with ``image_features`` spliced in at each image placeholder."""
        embed = self.model.get_input_embeddings()
        pieces: list[torch.Tensor] = []
        run: list[int] = []

        def flush() -> None:
            if run:
                pieces.append(embed(torch.tensor(run, device=self.device)))
                run.clear()

        for tok in prompt_ids:
            if tok == IMAGE_TOKEN_INDEX:
                flush()
                pieces.append(image_features.to(self.dtype))
            else:
                run.append(int(tok))
        flush()
        return torch.cat(pieces, dim=0).unsqueeze(0)

    # -- generation -----------------------------------------------------------
    @torch.no_grad()
    def _generate(self, embeds: torch.Tensor) -> tuple[list[int], torch.Tensor]:
        out = self.model.generate(
            inputs_embeds=embeds,
            attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device),
            do_sample=True,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
            use_cache=True,
            output_hidden_states=True,
            return_dict_in_generate=True,
        )
        ids = [int(t) for t in out.sequences[0]]
        if len(ids) != len(out.hidden_states):
            raise RuntimeError(f"generate returned {len(ids)} tokens but {len(out.hidden_states)} steps")
        # step w: last layer (post-norm) at the last position fed = the state that produced token w
        text = torch.stack([step[-1][0, -1] for step in out.hidden_states])
        return ids, text

    def decode(self, ids: Sequence[int]) -> str:
        """The release's post-processing: decode (special tokens kept), strip, drop ``</s>``, strip."""
        text = self.tokenizer.decode(list(ids), skip_special_tokens=False).strip()
        return text.replace(STOP_STR, "").strip()

    def generate_one(self, image: Any, action: str, dataset: str) -> VLLMOutput:
        """One sample with the current RNG state (seed it yourself, or use :meth:`describe`)."""
        phrase = self.action(action, dataset)
        prompt = llava_llama_2_prompt(QUERY.format(phrase))
        ids = self.prompt_ids(prompt)
        img = self.image_features(self.pixel_values(image))
        gen, text = self._generate(self.inputs_embeds(ids, img))
        feats = VLLMFeatures(image=_to_numpy(img), text=_to_numpy(text), description=self.decode(gen))
        return VLLMOutput(feats, phrase, prompt, ids, gen)

    def run(
        self,
        images: Sequence[Any],
        actions: Sequence[str],
        datasets: str | Sequence[str],
        seed: int = OFFICIAL_SEED,
        seeding: Literal["per-sample", "once"] = "per-sample",
    ) -> list[VLLMOutput]:
        """:meth:`describe` with the token ids and prompts kept."""
        if isinstance(datasets, str):
            datasets = [datasets] * len(images)
        if not len(images) == len(actions) == len(datasets):
            raise UserError(f"describe: {len(images)} images, {len(actions)} actions, {len(datasets)} datasets")
        if seeding not in ("per-sample", "once"):
            raise UserError(f"unknown seeding '{seeding}'; use per-sample or once")
        devices = [self.device] if self.device.type == "cuda" else []
        outs = []
        with torch.random.fork_rng(devices=devices):
            if seeding == "once":
                torch.manual_seed(seed)
            for image, action, dataset in zip(images, actions, datasets):
                if seeding == "per-sample":
                    torch.manual_seed(seed)
                outs.append(self.generate_one(image, action, dataset))
        return outs

    def describe(
        self,
        images: Sequence[Any],
        actions: Sequence[str],
        datasets: str | Sequence[str],
        seed: int = OFFICIAL_SEED,
        seeding: Literal["per-sample", "once"] = "per-sample",
    ) -> list[VLLMFeatures]:
        """Enriched description, image features and text features for each (image, action label)."""
        return [o.features for o in self.run(images, actions, datasets, seed, seeding)]


# ---------------------------------------------------------------------------
# tiny zoo: the same on-disk layouts with small random weights
# ---------------------------------------------------------------------------

TINY_IMAGE = 32
TINY_PATCH = 8
TINY_VISION_HIDDEN = 32
TINY_HIDDEN = 64
TINY_LAYERS = 2
TINY_HEADS = 4

_TINY_WORDS = """
the a an and or of to in on with that is are it its this by for from at as be can into onto then their
person hand hands left right finger fingers holds hold take takes open opens close closes drawer door
cup bowl plate knife spoon fork pan pot lid tap water sink table counter cabinet shelf fridge box bag
bottle jar towel cloth phone paper book pen brush paint wood board cut cutting onion tomato food dough
knead stir pour wash wipe put place pick up down out off move turn press push pull lift drop carefully
gently slowly firmly properly grasp grip handle edge top side bottom front back inside outside over
under toward away position motion lightly steady keep use using make sure first next finally while
video frame displayed does how person's what where when which who will would should could not no
you your i am assist assistant helpful language vision visual content user provides understand able
tasks variety natural task
"""


def _tiny_vocab() -> list[str]:
    specials = ["<unk>", "<s>", "</s>"]
    punct = ["[", "]", "[/", "<<", ">>", "<</", "/", "?", ".", ",", "'", "<", ">", "INST", "SYS", "!", ":", ";", "-"]
    words = [w for w in dict.fromkeys(_TINY_WORDS.split() + QUERY.replace("{}", "").split()) if w]
    words += [w.strip(".,?") for w in SYSTEM_PROMPT.split()]
    out = list(dict.fromkeys(specials + punct + sorted(set(words) - set(specials) - set(punct))))
    return out


def _write_tiny_tokenizer(folder: Path) -> int:
    """A WordLevel fast tokenizer (tokenizer.json) + config files + a SentencePiece-format tokenizer.model."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = _tiny_vocab()
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    atomic_write_text(folder / "tokenizer.json", tok.to_str())
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<unk>"}
    atomic_write_json(folder / "special_tokens_map.json", specials)
    atomic_write_json(
        folder / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            **specials,
            "model_max_length": 2048,
            "padding_side": "right",
            "clean_up_tokenization_spaces": False,
        },
    )
    (folder / "tokenizer.model").write_bytes(_spm_model_proto(vocab))
    return len(vocab)


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb_field(num: int, wire: int, payload: bytes) -> bytes:
    return _varint(num << 3 | wire) + payload


def _pb_bytes(num: int, data: bytes) -> bytes:
    return _pb_field(num, 2, _varint(len(data)) + data)


def _spm_model_proto(vocab: Sequence[str]) -> bytes:
    """A SentencePiece ModelProto (WORD model) for ``vocab``: the layout of Llama's tokenizer.model.

    Pieces: ``<unk>`` UNKNOWN, ``<s>``/``</s>`` CONTROL, words as ``\u2581word``.
    Encoded by hand (no protobuf dependency): ModelProto.pieces=1,
    trainer_spec=2 (model_type=3 WORD, vocab_size=4, unk/bos/eos/pad ids 40-43),
    normalizer_spec=3 (name=1, add_dummy_prefix=3, remove_extra_whitespaces=4,
    escape_whitespaces=5).
    """
    types = {"<unk>": 2, "<s>": 3, "</s>": 3}
    out = bytearray()
    for piece in vocab:
        text = piece if piece in types else "\u2581" + piece
        msg = _pb_bytes(1, text.encode()) + _pb_field(2, 5, struct.pack("<f", 0.0)) + _pb_field(3, 0, _varint(types.get(piece, 1)))
        out += _pb_bytes(1, msg)
    trainer = (
        _pb_field(3, 0, _varint(3))
        + _pb_field(4, 0, _varint(len(vocab)))
        + _pb_field(40, 0, _varint(0))
        + _pb_field(41, 0, _varint(1))
        + _pb_field(42, 0, _varint(2))
        + _pb_field(43, 0, _varint(-1))
    )
    out += _pb_bytes(2, trainer)
    normalizer = (
        _pb_bytes(1, b"identity")
        + _pb_field(3, 0, _varint(1))
        + _pb_field(4, 0, _varint(1))
        + _pb_field(5, 0, _varint(1))
    )
    out += _pb_bytes(3, normalizer)
    return bytes(out)


def _tiny_tensor(gen: torch.Generator, *shape: int, std: float = 0.02) -> torch.Tensor:
    return torch.randn(*shape, generator=gen) * std


def build_tiny_vision_tower(folder: Path) -> None:
    """Tiny CLIP (full CLIPModel weights, ``vision_model.*`` + ``text_model.*``) in openai/clip-vit-large-patch14's layout."""
    _compat.ensure_torchvision()
    from safetensors.torch import save_file
    from transformers import CLIPConfig, CLIPModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vision = {
        "hidden_size": TINY_VISION_HIDDEN, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
        "image_size": TINY_IMAGE, "patch_size": TINY_PATCH, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
        "projection_dim": 16, "num_channels": 3, "model_type": "clip_vision_model",
    }
    text = {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "vocab_size": 64, "max_position_embeddings": 16, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
        "projection_dim": 16, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1, "model_type": "clip_text_model",
    }
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    with torch.random.fork_rng():
        torch.manual_seed(20231206)
        model = CLIPModel(config)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    # the 2022 checkpoint also stores the position_ids buffers
    state["vision_model.embeddings.position_ids"] = torch.arange((TINY_IMAGE // TINY_PATCH) ** 2 + 1).unsqueeze(0)
    state["text_model.embeddings.position_ids"] = torch.arange(16).unsqueeze(0)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    atomic_write_json(
        folder / "config.json",
        {
            "architectures": ["CLIPModel"],
            "model_type": "clip",
            "projection_dim": 16,
            "logit_scale_init_value": 2.6592,
            "text_config": text,
            "vision_config": vision,
            "vision_config_dict": {k: vision[k] for k in ("hidden_size", "num_hidden_layers", "patch_size")},
        },
    )
    atomic_write_json(
        folder / "preprocessor_config.json",
        {
            "crop_size": TINY_IMAGE,
            "do_center_crop": True,
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "CLIPFeatureExtractor",
            "image_mean": list(CLIP_MEAN),
            "image_std": list(CLIP_STD),
            "resample": 3,
            "size": TINY_IMAGE,
        },
    )


def _build_tiny_llava(folder: Path, seed: int) -> None:
    """Tiny LLaVA-Llama-2 checkpoint in the original layout (3 .bin shards + index, config, tokenizer files)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = _write_tiny_tokenizer(folder)
    h, inter, heads = TINY_HIDDEN, 128, TINY_HEADS
    gen = torch.Generator().manual_seed(seed)
    half = torch.float16
    state: dict[str, torch.Tensor] = {"model.embed_tokens.weight": _tiny_tensor(gen, vocab_size, h, std=1.0).to(half)}
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, h // heads, 2, dtype=torch.float32) / (h // heads)))
    for i in range(TINY_LAYERS):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            state[p + f"self_attn.{name}.weight"] = _tiny_tensor(gen, h, h, std=0.1).to(half)
        state[p + "self_attn.rotary_emb.inv_freq"] = inv_freq.clone()  # 4.31 saved it; dropped on conversion
        state[p + "mlp.gate_proj.weight"] = _tiny_tensor(gen, inter, h, std=0.1).to(half)
        state[p + "mlp.up_proj.weight"] = _tiny_tensor(gen, inter, h, std=0.1).to(half)
        state[p + "mlp.down_proj.weight"] = _tiny_tensor(gen, h, inter, std=0.1).to(half)
        state[p + "input_layernorm.weight"] = (1 + _tiny_tensor(gen, h, std=0.1)).to(half)
        state[p + "post_attention_layernorm.weight"] = (1 + _tiny_tensor(gen, h, std=0.1)).to(half)
    state["model.norm.weight"] = (1 + _tiny_tensor(gen, h, std=0.1)).to(half)
    state["model.mm_projector.weight"] = _tiny_tensor(gen, h, TINY_VISION_HIDDEN, std=0.2).to(half)
    state["model.mm_projector.bias"] = _tiny_tensor(gen, h, std=0.2).to(half)
    state["lm_head.weight"] = _tiny_tensor(gen, vocab_size, h, std=0.5).to(half)
    keys = list(state)
    shards = [keys[: len(keys) // 3], keys[len(keys) // 3 : 2 * len(keys) // 3], keys[2 * len(keys) // 3 :]]
    weight_map = {}
    for n, shard in enumerate(shards, 1):
        name = f"pytorch_model-{n:05d}-of-00003.bin"
        torch.save({k: state[k] for k in shard}, folder / name)
        weight_map.update(dict.fromkeys(shard, name))
    total = sum(t.numel() * t.element_size() for t in state.values())
    atomic_write_json(folder / "pytorch_model.bin.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
    atomic_write_json(
        folder / "config.json",
        {
            "_name_or_path": "egobench-tiny-llava-llama-2",
            "architectures": ["LlavaLlamaForCausalLM"],
            "model_type": "llava",
            "bos_token_id": 1,
            "eos_token_id": 2,
            "pad_token_id": 0,
            "hidden_act": "silu",
            "hidden_size": h,
            "initializer_range": 0.02,
            "intermediate_size": inter,
            "max_position_embeddings": 4096,
            "num_attention_heads": heads,
            "num_hidden_layers": TINY_LAYERS,
            "num_key_value_heads": heads,
            "pretraining_tp": 1,
            "rms_norm_eps": 1e-5,
            "rope_scaling": None,
            "tie_word_embeddings": False,
            "torch_dtype": "float16",
            "transformers_version": "4.31.0",
            "use_cache": True,
            "vocab_size": vocab_size,
            "freeze_mm_mlp_adapter": False,
            "mm_hidden_size": TINY_VISION_HIDDEN,
            "mm_use_im_patch_token": False,
            "mm_use_im_start_end": False,
            "mm_vision_select_layer": -2,
            "mm_vision_tower": "openai/clip-vit-large-patch14",
            "tune_mm_mlp_adapter": False,
            "use_mm_proj": True,
        },
    )
    # the 132-byte generation_config.json of the lightning-preview checkpoint (no sampling options)
    atomic_write_json(
        folder / "generation_config.json",
        {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "transformers_version": "4.31.0"},
    )


def build_tiny_lego_vllm_ego4d(folder: Path) -> None:
    _build_tiny_llava(Path(folder) / ARTIFACT_SUBDIR["lego-vllm-ego4d"], seed=4)


def build_tiny_lego_vllm_epic(folder: Path) -> None:
    _build_tiny_llava(Path(folder) / ARTIFACT_SUBDIR["lego-vllm-epic"], seed=5)


def build_tiny_llava_llama_2(folder: Path) -> None:
    _build_tiny_llava(Path(folder), seed=2)

