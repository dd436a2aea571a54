"""BLIP's tokenizer: bert-base-uncased plus ``[DEC]``/``[ENC]``, the decoder prompt, released decoding."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .. import _compat
from ..errors import UserError
from .blip_protocol import BOS_TOKEN, ENC_TOKEN, PROMPT


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
