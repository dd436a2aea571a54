"""Any transformers image-text-to-text model as LEGO's prompt enhancer (``-o vllm=...``).

LEGO asks its VLLM "How does the person properly {action} that is displayed in the video frame?"
about the input frame and keeps three things (:mod:`lego.vllm`): the generated description, the
image tokens as the language model receives them, and the last-layer hidden state that produced
each generated token. This module does the same for any model that loads with
``AutoModelForImageTextToText`` + ``AutoProcessor`` (Qwen2-VL, LLaVA-OneVision, LLaVA-1.5, ...):

* **Prompt**: one user turn, the image then the release's query with the same action phrase
  (:func:`lego.vllm_prompt.action_phrase`), rendered by the model's own chat template with the
  assistant turn opened.
* **Image**: the frame resized (bicubic) to a fixed square before the processor, so every frame
  gives the same number of image tokens (the LDM's conditioning has a fixed image-token count):
  the processor's fixed size when it has one; for dynamic-resolution processors (Qwen2-VL) the
  largest multiple of patch x merge within its pixel budget, at most 448 (256 tokens, as LEGO's 256).
* **Image features**: the embedding-layer output at the image-token positions (the projected vision
  features the language model reads), taken from the first ``generate`` step's hidden states.
* **Text features**: for each generated token the last layer's hidden state at the position that
  produced it (one row per generated token, EOS included), as :mod:`lego.vllm` does for LLaVA.
* **Sampling**: as the release (``do_sample``, temperature 0.2, top-k 50, top-p 1.0, at most 1024
  new tokens, per-sample ``torch.manual_seed(seed)``, the global RNG restored afterwards).

:func:`vlm_sizes` reads the projection sizes from the model's config (the language model's hidden
size) and its processor (image tokens per frame) without loading the weights; LEGO's conditioning
(``vllm_hidden``, ``image_tokens``) is sized from them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from egobench.errors import ConfigError

from .features import VLLMFeatures
from .vllm import DEFAULT_TOP_K, DEFAULT_TOP_P, MAX_NEW_TOKENS, OFFICIAL_SEED, TEMPERATURE, VLLMOutput
from .vllm_prompt import QUERY, action_lemmatizer, action_phrase

#: the largest square side for dynamic-resolution processors (448: 32 x 32 patches of 14 px, merged
#: 2 x 2 = 256 tokens, LEGO's image-token count)
MAX_SIDE = 448


@dataclass(frozen=True)
class VLMSizes:
    """What sizes LEGO's conditioning for this VLM: feature width and image tokens per frame."""

    hidden: int
    image_tokens: int
    image_side: int

    def to_json(self) -> dict[str, int]:
        return {"hidden": self.hidden, "image_tokens": self.image_tokens, "image_side": self.image_side}


def _load_processor(folder: Path) -> Any:
    from egobench import _compat

    _compat.ensure_torchvision()
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError, ImportError) as e:
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise ConfigError(f"vllm: {folder}: cannot load its processor ({first})") from None


def _image_token_id(config: Any, processor: Any) -> int:
    tid = getattr(config, "image_token_id", None)
    if tid is None:
        tid = getattr(config, "image_token_index", None)
    if tid is None:
        tid = getattr(processor, "image_token_id", None)
    if tid is None:
        raise ConfigError(f"vllm: {type(config).__name__} names no image token id; not an image-text-to-text VLM")
    return int(tid)


def image_side(processor: Any) -> int:
    """The square side frames are resized to (see the module docstring)."""
    ip = getattr(processor, "image_processor", None)
    size = getattr(ip, "size", None)
    patch, merge = getattr(ip, "patch_size", None), getattr(ip, "merge_size", None)
    longest = size.get("longest_edge") if isinstance(size, dict) else getattr(size, "longest_edge", None)
    budget = getattr(ip, "max_pixels", None) or (longest if patch and merge else None)
    if patch and merge and budget:
        unit = int(patch) * int(merge)
        return max(unit, min(MAX_SIDE, int(math.isqrt(int(budget)) // unit) * unit))
    crop = getattr(ip, "crop_size", None)
    for source in (crop, size):
        if source is None:
            continue
        for k in ("height", "shortest_edge"):
            v = source.get(k) if isinstance(source, dict) else getattr(source, k, None)
            if v:
                return int(v)
    return MAX_SIDE


def vlm_sizes(folder: str | Path, processor: Any = None) -> VLMSizes:
    """Hidden size of the language model (config) and image tokens per frame (processor), no weights loaded."""
    from transformers import AutoConfig

    folder = Path(folder)
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = getattr(text, "hidden_size", None)
    if not isinstance(hidden, int) or hidden < 1:
        raise ConfigError(f"vllm: {folder / 'config.json'}: no hidden_size for the language model")
    processor = processor or _load_processor(folder)
    side = image_side(processor)
    tokens = _count_image_tokens(processor, _image_token_id(config, processor), side)
    return VLMSizes(hidden, tokens, side)


def _messages(query: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": query}]}]


def _count_image_tokens(processor: Any, token_id: int, side: int) -> int:
    from PIL import Image

    text = processor.apply_chat_template(_messages("?"), add_generation_prompt=True, tokenize=False)
    ids = processor(text=[text], images=[Image.new("RGB", (side, side))], return_tensors="pt")["input_ids"]
    n = int((ids == token_id).sum())
    if n < 1:
        raise ConfigError("vllm: its processor put no image tokens in the prompt; not an image-text-to-text VLM")
    return n


class HFPromptEnhancer:
    """A transformers VLM that describes the action and returns LEGO's image and text features."""

    def __init__(self, model: Any, processor: Any, sizes: VLMSizes, *, name: str, tiny: bool = False,
                 temperature: float = TEMPERATURE, top_k: int | None = DEFAULT_TOP_K, top_p: float = DEFAULT_TOP_P,
                 max_new_tokens: int = MAX_NEW_TOKENS):
        self.model, self.processor, self.sizes, self.name, self.tiny = model, processor, sizes, name, tiny
        self.temperature, self.top_k, self.top_p, self.max_new_tokens = temperature, top_k, top_p, max_new_tokens
        self.image_token_id = _image_token_id(model.config, processor)
        tok = processor.tokenizer
        self.eos_token_id = tok.eos_token_id
        self.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    @classmethod
    def from_folder(cls, folder: str | Path, *, name: str, device: Any = None, dtype: Any = None, tiny: bool = False,
                    **settings: Any) -> HFPromptEnhancer:
        """Load model and processor from a local folder (never the network, never remote code)."""
        import torch
        from transformers import AutoModelForImageTextToText

        from egobench.weights import refuse_remote_code

        folder = Path(folder)
        refuse_remote_code(folder, f"vllm={name}")
        processor = _load_processor(folder)
        sizes = vlm_sizes(folder, processor)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
        try:
            model = AutoModelForImageTextToText.from_pretrained(str(folder), local_files_only=True, dtype=dtype)
        except (OSError, ValueError, KeyError) as e:
            first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            raise ConfigError(f"vllm={name}: {folder}: cannot load an image-text-to-text model ({first})") from None
        return cls(model.to(device).eval(), processor, sizes, name=name, tiny=tiny, **settings)

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> Any:
        return next(self.model.parameters()).dtype

    def prompt(self, phrase: str) -> str:
        return self.processor.apply_chat_template(_messages(QUERY.format(phrase)), add_generation_prompt=True,
                                                  tokenize=False)

    def settings(self) -> dict[str, Any]:
        """Everything that changes the features besides weights and inputs (for provenance)."""
        template = getattr(self.processor, "chat_template", None) or ""
        return {
            "sampling": {"do_sample": True, "temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
                         "max_new_tokens": self.max_new_tokens, "seeding": "per-sample"},
            "query": {"template": QUERY, "format": "the model's chat template: user turn = image, query",
                      "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest(),
                      "example": self.prompt("open the drawer")},
            "sizes": self.sizes.to_json(),
            "class": type(self.model).__name__,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": self.device.type,
        }

    def _image(self, image: Any) -> Any:
        from PIL import Image

        from egobench.images import open_rgb

        if not isinstance(image, Image.Image):
            image = open_rgb(image)
        side = self.sizes.image_side
        return image.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)

    def generate_one(self, image: Any, action: str, dataset: str) -> VLLMOutput:
        import torch

        phrase = action_phrase(action, dataset)
        prompt = self.prompt(phrase)
        inputs = self.processor(text=[prompt], images=[self._image(image)], return_tensors="pt").to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with torch.no_grad():
            out = self.model.generate(
                **inputs, do_sample=True, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                max_new_tokens=self.max_new_tokens, eos_token_id=self.eos_token_id, pad_token_id=self.pad_token_id,
                use_cache=True, output_hidden_states=True, return_dict_in_generate=True)
        ids = inputs["input_ids"][0]
        new = [int(t) for t in out.sequences[0, ids.shape[0]:]]
        if len(new) != len(out.hidden_states):
            raise RuntimeError(f"generate returned {len(new)} tokens but {len(out.hidden_states)} steps")
        mask = ids == self.image_token_id
        image = out.hidden_states[0][0][0][mask]  # embedding-layer output at the image tokens
        if image.shape[0] != self.sizes.image_tokens:
            raise RuntimeError(f"vllm={self.name}: {image.shape[0]} image tokens, expected {self.sizes.image_tokens}")
        text = torch.stack([step[-1][0, -1] for step in out.hidden_states])
        description = self.processor.decode(new, skip_special_tokens=True).strip()
        feats = VLLMFeatures(_to_numpy(image), _to_numpy(text), description)
        return VLLMOutput(feats, phrase, prompt, [int(t) for t in ids], new, action_lemmatizer(dataset))

    def run(self, images: Sequence[Any], actions: Sequence[str], datasets: str | Sequence[str],
            seed: int = OFFICIAL_SEED) -> list[VLLMOutput]:
        """Per-sample seeded generation (the global RNG is restored afterwards)."""
        import torch

        if isinstance(datasets, str):
            datasets = [datasets] * len(images)
        devices = [self.device] if self.device.type == "cuda" else []
        outs = []
        with torch.random.fork_rng(devices=devices):
            for image, action, dataset in zip(images, actions, datasets, strict=True):
                torch.manual_seed(seed)
                outs.append(self.generate_one(image, action, dataset))
        return outs


def _to_numpy(t: Any) -> np.ndarray:
    import torch

    if t.dtype not in (torch.float16, torch.float32):
        t = t.float()
    return t.detach().cpu().numpy()
