"""The BLIP captioner: loading (one copy per process), the released image transform, captioning."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .. import _compat
from ..errors import UserError
from ..shared_models import shared_model
from .blip_beam import released_beam_search
from .blip_convert import convert_original_state_dict, infer_original_config, load_original_checkpoint
from .blip_protocol import (
    BOS_TOKEN,
    CLIP_MEAN,
    CLIP_STD,
    IMAGE_SIZE,
    LENGTH_PENALTY,
    MAX_LENGTH,
    MIN_LENGTH,
    NUM_BEAMS,
    PROMPT,
    REPETITION_PENALTY,
)
from .blip_released import drop_path_rates, released_training_mode, vision_forward_released
from .blip_text import decode_released, load_tokenizer, prompt_input_ids, strip_prompt


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


def shared_captioner(
    res: Any, fmt: Literal["hf", "original"], device: str = "cpu", *, tokenizer_res: Any = None
) -> tuple[Any, Any]:
    """:func:`load_blip_captioner`, loaded once per process for the same files and device (columns share it)."""
    key = (str(res.path), "blip-captioner", fmt, str(tokenizer_res.path) if tokenizer_res is not None else "",
           str(device))
    return shared_model(key, lambda: load_blip_captioner(res, fmt, device, tokenizer_res=tokenizer_res))


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
