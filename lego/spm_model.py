"""A SentencePiece ``tokenizer.model`` writer (the ModelProto bytes, encoded by hand: no protobuf needed)."""

from __future__ import annotations

import struct
from collections.abc import Sequence


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


def spm_model_proto(vocab: Sequence[str]) -> bytes:
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
