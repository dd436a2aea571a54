"""Training LEGO's LDM: Stable Diffusion 1.5 -> InstructPix2Pix-style UNet with VLLM context.

What the released training does (``configs/train_ego4d.yaml``,
``ldm/models/diffusion/ddpm_egogen.py``, ``egogen_dataset.py``, ``main.py``)
and what :func:`train_lego` does:

* **Initialization.** SD 1.5 (``v1-5-pruned-emaonly``); the UNet's input conv
  is widened to 8 channels, the 4 new ones zero-initialized (``init_from_ckpt``:
  ``input_weight.zero_(); input_weight[:, :4].copy_(sd[key])``). Here: a
  diffusers SD 1.5 folder (artifact ``sd15``, HF
  ``stable-diffusion-v1-5/stable-diffusion-v1-5``, whose default weights are
  the EMA ones) through :func:`diffusion_core.bundle.load_sd_bundle`.
* **Conditioning.** ``projection_img`` / ``projection_txt`` / ``self_attn_mix``
  (:class:`~lego.conditioning.LEGOConditioning`) on the cached VLLM features
  (:mod:`lego.features`); text features truncated or zero-padded to 77 tokens
  in the dataset, before the projection. Context ``[CLIP 77 | image | text]``.
* **The quirk.** ``configure_optimizers`` hands AdamW ``self.model.parameters()``
  only (the UNet): the projections and the mixer stay at their random init and
  are saved that way, while the mixer still runs in training mode (dropout 0.1).
  By default egobench *trains* them with the UNet (what the paper describes);
  ``released_behaviour=True`` (``--released-behaviour``) reproduces the
  release: they stay frozen at their seeded init, the EMA is updated after
  every micro-batch (Lightning's ``on_train_batch_end`` under
  ``accumulate_grad_batches``), no gradient clipping.
* **Recipe.** AdamW lr 1e-4 constant (``LambdaLinearScheduler`` with no warm-up
  and ``f_max = f_min = 1``), no lr scaling, batch 32 x 8 GPUs x accumulation 4,
  EMA 0.9999 (``LitEma`` over the UNet), CFG dropout 5/5/5 %, seed 23; no
  gradient clipping (Lightning's default). The LEGO defaults here follow that;
  the batch is whatever ``batch_size x grad_accum x processes`` you give.
* **Data.** ``EgoGenDataset``: LANCZOS resize to 256 x 256, random crop 256
  (a no-op at that size), h-flip 0.5 on both frames; the CLIP prompt is the
  enriched description ``llava_forecast_finetune``.

The output folder is a LEGO diffusers folder (``LEGOPipeline.save_pretrained``)
that ``lego.method`` loads with ``-o ldm=DIR``; its ``training.json`` records
the settings.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diffusion_core.folders import resolve_folder
from egobench.data import Sample, Split
from egobench.errors import ConfigError, DataError, UserError
from egobench.weights import Artifact, WeightStore, register_artifact

from .tiny import TINY_CONDITIONING, VARIANT_FLAGS

#: initialization artifacts (diffusers SD 1.5 layout)
SD15 = "sd15"
SD15_CONFIG = "sd15-config"
SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SD15_CONFIG_FILES = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "unet/config.json",
    "vae/config.json",
)
SD15_FILES = SD15_CONFIG_FILES + (
    "text_encoder/model.safetensors",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
)
TEXT_TOKENS = 77  # EgoGenDataset.max_text_length

register_artifact(Artifact(
    name=SD15,
    description="Stable Diffusion 1.5 in diffusers layout (default = EMA weights, as v1-5-pruned-emaonly): the "
    "initialization of LEGO's LDM and of the IP2P / SDEdit baselines (the release used the same weights as a "
    "CompVis .ckpt, HF bolinlai/SD1.5-pretrained)",
    files=SD15_FILES,
    license="CreativeML OpenRAIL-M",
    hf_repo=SD15_REPO,
    tiny="diffusion_core.tiny:build_tiny_sd15",
))
register_artifact(Artifact(
    name=SD15_CONFIG,
    description="Stable Diffusion 1.5 configs and CLIP tokenizer only (no weights): the template "
    "'egobench convert lego' builds diffusers folders with",
    files=SD15_CONFIG_FILES,
    license="CreativeML OpenRAIL-M",
    hf_repo=SD15_REPO,
    tiny="diffusion_core.tiny:build_tiny_sd15",
))


# ---------------------------------------------------------------------------
# features and data
# ---------------------------------------------------------------------------
def load_feature_arrays(root: str | os.PathLike, sample: Sample, model_tag: str, part: str) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """(image, text) feature arrays of ``sample`` from the ``part`` folders of the release layout."""
    from .features import _load, feature_paths

    ip, tp = feature_paths(root, sample, model_tag, part=part)
    return _load(ip), _load(tp)


def pad_text(arr: np.ndarray, tokens: int = TEXT_TOKENS) -> np.ndarray:
    """``EgoGenDataset``: a 3-D dump keeps the last layer; truncate or zero-pad to ``tokens`` rows."""
    if arr.ndim == 3:
        arr = arr[:, -1, :]
    if arr.shape[0] >= tokens:
        return arr[:tokens]
    return np.concatenate([arr, np.zeros((tokens - arr.shape[0], arr.shape[1]), dtype=arr.dtype)])


def _feature_provenance(root: Path, tags: list[str]) -> dict[str, Any]:
    """Where the training features came from: self-computed tags with their provenance sha256 (lego.vllm_provenance)."""
    from .vllm_provenance import file_sha256, read_provenance

    prov = read_provenance(root)
    own = {t: prov[t]["sha256"] for t in tags if t in prov}
    out: dict[str, Any] = {"source": "self-computed" if own and len(own) == len(tags) else
                           "released" if not own else "mixed", "tags": tags}
    if own:
        out.update(provenance=own, provenance_sha256=file_sha256(root))
    return out


def lego_extras(features_root: str | os.PathLike, model_tag: str | Callable[[Sample], str], part: str,
                use_image: bool, use_text: bool) -> Callable[[Sample], dict[str, np.ndarray]]:
    """Per-sample VLLM features for :class:`diffusion_core.data.PairDataset` (float32; text padded to 77)."""

    def extras(s: Sample) -> dict[str, np.ndarray]:
        tag = model_tag(s) if callable(model_tag) else model_tag
        img, txt = load_feature_arrays(features_root, s, tag, part)
        out = {}
        if use_image:
            out["vllm_image"] = img.astype(np.float32)
        if use_text:
            out["vllm_text"] = pad_text(txt).astype(np.float32)
        return out

    return extras


def lego_condition_fn(extra: dict[str, Any], batch: dict[str, Any], clip: Any) -> Any:
    """The VLLM tokens ``[projected image | mixed text]`` for the batch (after the CLIP tokens)."""
    cond = extra["conditioning"]
    device = clip.device
    img = batch.get("vllm_image")
    txt = batch.get("vllm_text")
    ctx = cond(clip, None if img is None else img.to(device), None if txt is None else txt.to(device))
    return ctx[:, clip.shape[1]:]


def lego_pipeline(components: dict[str, Any]) -> Any:
    from .pipeline import LEGOPipeline

    return LEGOPipeline(
        vae=components["vae"], text_encoder=components["text_encoder"], tokenizer=components["tokenizer"],
        unet=components["unet"], scheduler=components["scheduler"], conditioning=components.get("conditioning"),
    )


def build_lego_bundle(
    init: str | os.PathLike,
    variant: str = "full",
    *,
    vllm_hidden: int = 5120,
    image_tokens: int = 256,
    tiny: bool | None = None,
    released_behaviour: bool = False,
    seed: int = 23,
) -> Any:
    """A :class:`~diffusion_core.bundle.ModelBundle` for LEGO from a diffusers SD folder.

    The UNet is widened to 8 input channels (zero-initialized extra channels);
    for variants with VLLM features a :class:`~lego.conditioning.LEGOConditioning`
    is created with a seeded init (the released model's sizes; the tiny zoo's
    head and FFN sizes when the init folder is tiny), frozen when
    ``released_behaviour``.
    """
    import torch

    from diffusion_core.bundle import load_sd_bundle

    from .conditioning import LEGOConditioning

    if variant not in VARIANT_FLAGS:
        raise ConfigError(f"unknown LEGO variant {variant!r}; use one of {', '.join(VARIANT_FLAGS)}")
    bundle = load_sd_bundle(init, in_channels=8, make_pipeline=lego_pipeline, train_extra=not released_behaviour)
    if tiny is not None:
        bundle.tiny = tiny
    use_image, use_text = VARIANT_FLAGS[variant]
    if use_image or use_text:
        sizes: dict[str, Any] = {}
        if bundle.tiny:
            sizes = {k: TINY_CONDITIONING[k] for k in ("heads", "layers", "ffn", "dropout")}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            cond = LEGOConditioning(
                vllm_hidden=vllm_hidden, context_dim=bundle.unet.config.cross_attention_dim,
                image_tokens=image_tokens, text_tokens=TEXT_TOKENS, use_image=use_image, use_text=use_text, **sizes,
            )
        bundle.extra["conditioning"] = cond
    return bundle


@dataclass
class LEGOTrainSpec:
    """What :func:`train_lego` trains on (the CLI's options)."""

    dataset: str  # ego4d | epickitchens
    data_root: str | os.PathLike
    out: str | os.PathLike
    features_root: str | os.PathLike | None = None
    variant: str = "full"
    init: str = SD15  # diffusers folder or artifact name
    part: str = "train"  # split part of the release layout (train; the demo has val only)
    model_tag: str | None = None  # VLLM feature folder tag; default: the released one per dataset
    text: str = "description"  # CLIP prompt: enriched description | action label
    released_behaviour: bool = False
    zoo: str = "real"
    weights: dict[str, str] = field(default_factory=dict)
    limit: int | None = None


def lego_train_config(out: str | os.PathLike, released_behaviour: bool = False, **overrides: Any) -> Any:
    """LEGO's :class:`~diffusion_core.training.TrainConfig` (no gradient clipping, seed 23; EMA per micro-batch
    when ``released_behaviour``)."""
    from diffusion_core.training import TrainConfig

    base: dict[str, Any] = dict(output_dir=out, max_grad_norm=None, seed=23, learning_rate=1e-4)
    if released_behaviour:
        base["ema_update"] = "micro-batch"
    base.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**base)


def _load_split(spec: LEGOTrainSpec) -> Split:
    from egobench.data.lego_release import load_release

    if spec.dataset == "demo":  # the embedded synthetic split (its only part is val): smoke tests
        from egobench.data.datasets import load_demo

        return load_demo().head(spec.limit)
    if not spec.data_root:
        raise UserError(f"--data-root is required for dataset '{spec.dataset}'")
    split = load_release(Path(spec.data_root).expanduser(), spec.dataset, part=spec.part)
    return split.head(spec.limit)


def _feature_shape(root: Path, samples: Sequence[Sample], tag: Callable[[Sample], str], part: str) -> tuple[int, int]:
    img, _ = load_feature_arrays(root, samples[0], tag(samples[0]), part)
    return img.shape[0], img.shape[1]


def train_lego(spec: LEGOTrainSpec, config: Any, *, on_step: Any = None, progress: bool = False) -> Any:
    """Train a LEGO LDM variant; returns :class:`~diffusion_core.training.TrainResult`."""
    from diffusion_core.data import PairDataset
    from diffusion_core.training import train_loop

    from .features import feature_paths
    from .method import RELEASED_TAGS

    if spec.variant not in VARIANT_FLAGS:
        raise ConfigError(f"unknown LEGO variant {spec.variant!r}; use one of {', '.join(VARIANT_FLAGS)}")
    if spec.text not in ("description", "action"):
        raise ConfigError(f"--text must be description or action, got {spec.text!r}")
    use_image, use_text = VARIANT_FLAGS[spec.variant]
    split = _load_split(spec)

    def tag(s: Sample) -> str:
        if spec.model_tag:
            return spec.model_tag
        domain = str(s.meta.get("domain", s.dataset))
        if domain not in RELEASED_TAGS:
            raise ConfigError(f"no default VLLM feature tag for dataset '{domain}'; pass --model-tag")
        return RELEASED_TAGS[domain]

    froot = Path(spec.features_root).expanduser() if spec.features_root else None
    needs_features = use_image or use_text
    if froot is None and needs_features and spec.dataset == "demo":
        # the demo's VLLM features come from the tiny zoo, as for `egobench run --method lego`
        from egobench.weights import default_tiny_root

        from .tiny import write_tiny_features

        froot = default_tiny_root() / "lego-vllm-features"
        write_tiny_features(froot, split, {d: RELEASED_TAGS[d] for d in {str(x.meta.get("domain")) for x in split}})
    if needs_features and froot is None:
        raise UserError(f"LEGO variant '{spec.variant}' needs VLLM features: pass --features-root DIR "
                        f"(vllm_image_feature/<tag>/{spec.part}/..., vllm_text_feature/<tag>/{spec.part}/...)")
    if froot is not None and (needs_features or spec.text == "description"):
        missing = [s for s in split if not all(p.is_file() for p in feature_paths(froot, s, tag(s), spec.part))]
        if missing and needs_features:
            ip, _ = feature_paths(froot, missing[0], tag(missing[0]), spec.part)
            raise DataError(f"{ip}: VLLM features not found ({len(missing)} of {len(split)} samples missing)")

    def text(s: Sample) -> str:
        if spec.text == "action":
            return s.action
        if s.description:
            return s.description
        if froot is not None:
            desc = feature_paths(froot, s, tag(s), spec.part)[1].with_suffix(".txt")
            if desc.is_file():
                return desc.read_text(encoding="utf-8")
        raise DataError(f"sample {s.id}: no enriched description (llava_forecast_finetune) to train on")

    for s in split:  # fail before any model is loaded
        text(s)
    extras = lego_extras(froot, tag, spec.part, use_image, use_text) if needs_features else None
    image_tokens, hidden = _feature_shape(froot, split, tag, spec.part) if needs_features else (256, 5120)

    store = WeightStore(zoo=spec.zoo, overrides=spec.weights or None)
    init, tiny = resolve_folder(spec.init, store)
    bundle = build_lego_bundle(init, spec.variant, vllm_hidden=hidden, image_tokens=image_tokens, tiny=tiny,
                               released_behaviour=spec.released_behaviour, seed=config.seed)
    dataset = PairDataset(split, resolution=config.resolution, resize=config.resize,
                          random_crop=config.random_crop, flip_prob=config.random_flip, text=text, extras=extras)
    record = {
        "model": "lego", "variant": spec.variant, "dataset": spec.dataset, "part": spec.part,
        "split_fingerprint": split.short_fingerprint, "init": str(spec.init), "init_folder": str(init),
        "features_root": str(froot) if froot else None, "model_tags": sorted({tag(s) for s in split}) if froot else None,
        "text": spec.text, "released_behaviour": spec.released_behaviour,
    }
    if froot is not None and needs_features:
        record["features"] = _feature_provenance(froot, sorted({tag(s) for s in split}))
    return train_loop(bundle, dataset, config, lego_condition_fn if needs_features else None,
                      on_step=on_step, progress=progress, record=record)


__all__ = [
    "IGNORE_INDEX",
    "VLLMTrainConfig",
    "VLLMTrainResult",
    "conversation_tokens",
    "llava_original_state_dict",
    "read_conversations",
    "save_llava_original",
    "train_vllm",
    "SD15",
    "SD15_CONFIG",
    "LEGOTrainSpec",
    "build_lego_bundle",
    "lego_condition_fn",
    "lego_extras",
    "lego_pipeline",
    "lego_train_config",
    "pad_text",
    "train_lego",
]


# ===========================================================================
# VLLM: visual instruction tuning of LEGO's LLaVA
# ===========================================================================
#
# What the release does (``vllm/scripts/finetune_ego4d.sh`` -> ``llava/train/train.py``):
# LLaVA Llama-2-13B-chat lightning preview, conversation template ``llava_llama_2``,
# CLIP ViT-L/14 layer -2 (frozen, run under no_grad), linear projector and the whole
# language model trained; 3 epochs, per-device batch 16 x 8 GPUs, lr 2e-5, weight
# decay 0, warmup ratio 0.03, cosine schedule, bf16, max length 2048; images go
# through CLIPImageProcessor directly (image_aspect_ratio 'square'); the ``<image>``
# token of a human turn is moved to its start (``preprocess_multimodal``).
#
# Labels (``preprocess_llama_2``): every instruction span ``[INST] ... [/INST]``
# (system prompt and image included) is IGNORE_INDEX; the assistant answer and the
# ``</s>`` closing it are supervised. The release finds those spans by tokenizing
# each round apart and counting (``instruction_len - 2``), which with Llama's
# SentencePiece also supervises a stray whitespace token before ``</s>``; here the
# sequence is built piece by piece so the spans are exact: round 1 is exactly the
# inference prompt of :mod:`lego.vllm` (``llava_llama_2_prompt``), then the
# answer's tokens and EOS; later rounds start with BOS (the template's ``<s>``).

IGNORE_INDEX = -100


@dataclass
class VLLMTrainConfig:
    """Settings of :func:`train_vllm` (defaults: the released finetuning script / HF Trainer)."""

    output_dir: str | os.PathLike
    epochs: float = 3.0
    batch_size: int = 16  # per process
    grad_accum: int = 1
    learning_rate: float = 2e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    lr_scheduler: str = "cosine"
    max_grad_norm: float | None = 1.0  # HF Trainer's default
    max_length: int = 2048
    max_steps: int | None = None
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    seed: int = 42  # HF TrainingArguments' default

    def __post_init__(self) -> None:
        for name in ("batch_size", "grad_accum", "max_length"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"VLLMTrainConfig.{name} must be a positive integer, got {v!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise ConfigError(f"VLLMTrainConfig.max_steps must be a positive integer, got {self.max_steps!r}")
        if not self.epochs > 0 or not self.learning_rate > 0 or not 0 <= self.warmup_ratio < 1:
            raise ConfigError("VLLMTrainConfig: epochs and learning_rate must be positive, warmup_ratio in [0, 1)")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ConfigError(f"VLLMTrainConfig.mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")


@dataclass
class VLLMTrainResult:
    model_dir: Path  # the LLaVA folder (original layout) that lego.vllm loads
    steps: int
    losses: list[float]  # per optimizer step
    learning_rates: list[float]  # per optimizer step
    examples: int
    seconds: float


def read_conversations(path: str | os.PathLike) -> list[dict[str, Any]]:
    """A LLaVA instruction-tuning JSON: ``[{"id", "image"?, "conversations": [{"from": "human"|"gpt",
    "value"}, ...]}, ...]``, checked (alternating turns, human first, non-empty values)."""
    from egobench.io import read_json

    data = read_json(path)
    if not isinstance(data, list) or not data:
        raise DataError(f"{path}: expected a non-empty JSON list of conversations")
    for i, item in enumerate(data):
        where = f"{path}: [{i}]"
        conv = item.get("conversations") if isinstance(item, dict) else None
        if not isinstance(conv, list) or not conv:
            raise DataError(f"{where}: no 'conversations' list")
        if isinstance(conv[0], dict) and conv[0].get("from") != "human":
            conv = conv[1:]  # LLaVA skips a leading non-human turn
        if len(conv) < 2:
            raise DataError(f"{where}: needs at least one human turn and one gpt answer")
        for j, turn in enumerate(conv):
            want = "human" if j % 2 == 0 else "gpt"
            if not isinstance(turn, dict) or turn.get("from") != want or not isinstance(turn.get("value"), str):
                raise DataError(f"{where}: turn {j} must be {{'from': '{want}', 'value': str}}")
        if "image" in item and (not isinstance(item["image"], str) or not item["image"]):
            raise DataError(f"{where}: 'image' must be a relative path")
    return data


def conversation_tokens(item: dict[str, Any], tokenizer: Any, max_length: int) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of one conversation; ``IMAGE_TOKEN_INDEX`` marks the image, labels are
    ``IGNORE_INDEX`` except on the assistant answers and their closing EOS."""
    from .vllm_prompt import IMAGE_TOKEN, SYSTEM_PROMPT, tokenize_with_image

    conv = item["conversations"]
    if conv[0]["from"] != "human":
        conv = conv[1:]
    has_image = "image" in item
    ids: list[int] = []
    labels: list[int] = []
    for r in range(0, len(conv) - 1, 2):
        question, answer = conv[r]["value"], conv[r + 1]["value"]
        if has_image and IMAGE_TOKEN in question:  # preprocess_multimodal: the image goes first
            question = IMAGE_TOKEN + "\n" + question.replace(IMAGE_TOKEN, "").strip()
        if r == 0:
            question = f"<<SYS>>\n{SYSTEM_PROMPT}\n<</SYS>>\n\n{question}"
        instr = tokenize_with_image(f"[INST] {question} [/INST]", tokenizer)
        if instr and instr[0] != tokenizer.bos_token_id:
            instr = [tokenizer.bos_token_id] + instr
        ans = list(tokenizer(answer.strip(), add_special_tokens=False).input_ids) + [tokenizer.eos_token_id]
        ids += instr + ans
        labels += [IGNORE_INDEX] * len(instr) + ans
    return ids[:max_length], labels[:max_length]


class _ConversationData:
    def __init__(self, items: list[dict[str, Any]], images: Path, tokenizer: Any, preprocess: Any, max_length: int):
        self.items, self.images, self.tokenizer = items, images, tokenizer
        self.preprocess, self.max_length = preprocess, max_length
        missing = [it["image"] for it in items if "image" in it and not (images / it["image"]).is_file()]
        if missing:
            raise DataError(f"{images / missing[0]}: image not found ({len(missing)} missing)")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from egobench.images import open_rgb

        item = self.items[i]
        ids, labels = conversation_tokens(item, self.tokenizer, self.max_length)
        out: dict[str, Any] = {"ids": ids, "labels": labels, "pixels": None}
        if "image" in item:
            out["pixels"] = self.preprocess(open_rgb(self.images / item["image"]))
        return out


def _llava_batch(model: Any, items: Sequence[dict[str, Any]], pad_id: int, device: Any) -> dict[str, Any]:
    """Right-padded ``inputs_embeds`` with image features spliced at the placeholders, attention mask, labels."""
    import torch

    from .vllm_prompt import IMAGE_TOKEN_INDEX

    cfg = model.config
    embed = model.get_input_embeddings()
    rows, label_rows = [], []
    for it in items:
        feats = None
        if it["pixels"] is not None:
            feats = model.model.get_image_features(
                pixel_values=it["pixels"][None].to(device=device, dtype=next(model.parameters()).dtype),
                vision_feature_layer=cfg.vision_feature_layer,
                vision_feature_select_strategy=cfg.vision_feature_select_strategy, return_dict=True,
            ).pooler_output[0]
        pieces, labs, run, run_labels = [], [], [], []
        for tok, lab in zip(it["ids"], it["labels"]):
            if tok == IMAGE_TOKEN_INDEX:
                if run:
                    pieces.append(embed(torch.tensor(run, device=device)))
                    labs += run_labels
                    run, run_labels = [], []
                if feats is None:
                    raise DataError("a conversation has <image> but no image file")
                pieces.append(feats.to(embed.weight.dtype))
                labs += [IGNORE_INDEX] * feats.shape[0]
            else:
                run.append(int(tok))
                run_labels.append(int(lab))
        if run:
            pieces.append(embed(torch.tensor(run, device=device)))
            labs += run_labels
        rows.append(torch.cat(pieces))
        label_rows.append(labs)
    n = max(r.shape[0] for r in rows)
    pad = embed(torch.tensor([pad_id], device=device))[0]
    embeds = torch.stack([torch.cat([r, pad.expand(n - r.shape[0], -1)]) for r in rows])
    mask = torch.tensor([[1] * r.shape[0] + [0] * (n - r.shape[0]) for r in rows], device=device)
    labels = torch.tensor([lab + [IGNORE_INDEX] * (n - len(lab)) for lab in label_rows], device=device)
    return {"inputs_embeds": embeds, "attention_mask": mask, "labels": labels}


def llava_original_state_dict(model: Any, projector: str = "linear") -> dict[str, Any]:
    """The transformers Llava model's weights under the original LLaVA-Llama names (inverse of
    :func:`lego.vllm.convert_llava_state_dict`; the CLIP tower is left out, LLaVA reloads it)."""
    from .vllm_convert import _PROJECTOR_KEYS, TargetNames

    state = model.state_dict()
    names = TargetNames.of(state.keys())
    proj = {v: k for k, v in _PROJECTOR_KEYS[projector].items()}
    out = {}
    for key, v in state.items():
        if key.startswith(names.vision):
            continue
        if key.startswith(names.projector):
            out["model.mm_projector." + proj[key[len(names.projector):]]] = v
        elif key.startswith(names.lm_head):
            out["lm_head." + key[len(names.lm_head):]] = v
        elif key.startswith(names.language):
            out["model." + key[len(names.language):]] = v
        else:
            raise RuntimeError(f"unexpected key '{key}' in the Llava model")
    return out


def save_llava_original(model: Any, init_dir: Path, out_dir: Path, projector: str = "linear") -> None:
    """Write ``out_dir`` in the original LLaVA layout of the release: config and tokenizer files copied
    from ``init_dir``, weights in three ``pytorch_model-0000N-of-00003.bin`` shards plus the index."""
    import shutil

    import torch

    from egobench.io import atomic_write_json

    from .vllm_convert import read_json as _read_json

    out_dir.mkdir(parents=True, exist_ok=True)
    skip = {"pytorch_model.bin.index.json", "model.safetensors.index.json"}
    for f in init_dir.iterdir():
        if f.is_file() and f.name not in skip and not f.name.endswith((".bin", ".safetensors")) and \
                not f.name.startswith("EGOBENCH_"):
            shutil.copy2(f, out_dir / f.name)
    state = {k: v.detach().cpu().contiguous() for k, v in llava_original_state_dict(model, projector).items()}
    keys = list(state)
    sizes = np.cumsum([state[k].numel() * state[k].element_size() for k in keys])
    total = int(sizes[-1])
    shard_of = [min(2, int(3 * (s - 1) // total)) for s in sizes]
    weight_map = {}
    for n in range(3):
        name = f"pytorch_model-{n + 1:05d}-of-00003.bin"
        part = {k: state[k] for k, s in zip(keys, shard_of) if s == n}
        torch.save(part, out_dir / name)
        weight_map.update(dict.fromkeys(part, name))
    atomic_write_json(out_dir / "pytorch_model.bin.index.json", {"metadata": {"total_size": total},
                                                                   "weight_map": weight_map})
    cfg = _read_json(init_dir / "config.json")
    cfg["torch_dtype"] = str(next(iter(state.values())).dtype).removeprefix("torch.")
    atomic_write_json(out_dir / "config.json", cfg)


def train_vllm(
    conversations: str | os.PathLike,
    images: str | os.PathLike,
    config: VLLMTrainConfig,
    *,
    init: str = "llava-llama-2-13b",
    vision: str = "llava-vision-tower",
    zoo: str = "real",
    weights: dict[str, str] | None = None,
    subdir: str = "llava-llama-2-13b-chat-forecasting-finetune",
    progress: bool = False,
) -> VLLMTrainResult:
    """Instruction-tune LEGO's LLaVA; the result is written to ``output_dir/<subdir>`` (original layout),
    so ``--weights lego-vllm-ego4d=output_dir`` (or ``-epic``) uses it."""
    import math
    import time

    import torch

    from egobench._compat import ensure_torchvision

    ensure_torchvision()
    from transformers import get_scheduler

    from diffusion_core.loop import OptimizerSteps, progress_bar, reset_accelerate_state, start_accelerator

    from .vllm import _load_tokenizer
    from .vllm_artifacts import ARTIFACT_SUBDIR
    from .vllm_convert import build_llava_model
    from .vllm_preprocess import ClipPreprocess

    t0 = time.monotonic()
    items = read_conversations(conversations)
    images = Path(images).expanduser()
    store = WeightStore(zoo=zoo, overrides=weights or None)
    llava_dir, tiny = resolve_folder(init, store)
    if not Path(init).expanduser().exists() and ARTIFACT_SUBDIR.get(init):
        llava_dir = llava_dir / ARTIFACT_SUBDIR[init]
    vision_dir, tiny_vision = resolve_folder(vision, store)
    tiny = tiny or tiny_vision
    out = Path(config.output_dir).expanduser() / subdir
    if (out / "pytorch_model.bin.index.json").exists():
        raise UserError(f"{out} already holds a model; choose another --out")

    accelerator = start_accelerator(config.grad_accum, config.mixed_precision, config.seed)
    model, report = build_llava_model(llava_dir, vision_dir, device=accelerator.device, dtype=torch.float32)
    tokenizer = _load_tokenizer(llava_dir)
    pad_id = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.pad_token_id  # LLaVA: unk
    preprocess = ClipPreprocess.from_file(vision_dir / "preprocessor_config.json")
    data = _ConversationData(items, images, tokenizer, preprocess, config.max_length)

    model.config.use_cache = False
    model.model.vision_tower.requires_grad_(False)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    world = accelerator.num_processes
    per_epoch = max(1, math.ceil(len(data) / (config.batch_size * world)) // config.grad_accum)
    total = config.max_steps or math.ceil(config.epochs * per_epoch)
    warmup = math.ceil(total * config.warmup_ratio)
    scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=warmup, num_training_steps=total)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    core = accelerator.unwrap_model(model)

    losses: list[float] = []
    lrs: list[float] = []
    bar = progress_bar(accelerator, progress, total, 0, "train vllm")

    def micro_batches() -> Iterator[dict[str, Any]]:
        """This process's share of one seeded permutation per epoch, endlessly (built on demand)."""
        epoch = 0
        while True:
            order = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed + epoch)).tolist()
            order = order[accelerator.process_index::world]
            for b in range(0, len(order), config.batch_size):
                yield _llava_batch(core, [data[i] for i in order[b : b + config.batch_size]], pad_id,
                                   accelerator.device)
            epoch += 1

    def after_step(step: int, loss: float) -> None:
        losses.append(loss)
        lrs.append(float(scheduler.get_last_lr()[0]))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")

    steps = OptimizerSteps(accelerator, [model], params, optimizer, scheduler, max_grad_norm=config.max_grad_norm)
    step = steps.run(micro_batches(), lambda batch: model(**batch).loss, step=0, max_steps=total, on_step=after_step)
    if bar is not None:
        bar.close()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_llava_original(accelerator.unwrap_model(model), llava_dir, out, report.projector)
        from egobench.io import atomic_write_json
        from egobench.weights import TINY_MARKER

        if tiny:
            atomic_write_json(Path(config.output_dir).expanduser() / TINY_MARKER, {
                "artifact": None, "note": "trained from tiny random weights by egobench; results are NOT comparable"})
        atomic_write_json(Path(config.output_dir).expanduser() / "training.json", {
            "model": "lego-vllm", "steps": step, "examples": len(data), "losses": losses,
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(config).items()},
            "init": str(llava_dir), "vision": str(vision_dir), "conversations": str(conversations),
        })
    accelerator.wait_for_everyone()
    reset_accelerate_state()
    return VLLMTrainResult(model_dir=out, steps=step, losses=losses, learning_rates=lrs, examples=len(data),
                           seconds=time.monotonic() - t0)
