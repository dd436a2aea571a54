"""The LEGO VLLM's prompt: the release's query and ``llava_llama_2`` template, tokenized as LLaVA does."""

from __future__ import annotations

from typing import Any

from egobench.errors import UserError

from .lemmatize import backend, strip_and_lemmatize

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


def action_lemmatizer(dataset: str) -> str:
    """Which lemmatizer :func:`action_phrase` uses for ``dataset`` ("none": EPIC labels are kept verbatim)."""
    return backend() if normalize_dataset(dataset) == "ego4d" else "none"


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
