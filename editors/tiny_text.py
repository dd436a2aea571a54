"""Tiny tokenizers and text encoders for the editors' tiny zoo, built offline.

T5 and Qwen ship SentencePiece / large BPE vocabularies; here a ``tokenizers``
Unigram (T5) or byte-level BPE (Qwen) tokenizer is built from a handful of
pieces and wrapped in the fast tokenizer class the real folders load, so no
download and no ``sentencepiece`` are needed. Random weights, deterministic;
results made with them are not comparable with anything.
"""

from __future__ import annotations

from typing import Any

#: a few word pieces so tokenization does something on action labels
_WORDS = ("take", "put", "open", "close", "cut", "wash", "pick", "the", "a", "knife", "cup", "door", "hand", "up")


def tiny_t5_tokenizer() -> Any:
    """A T5 fast tokenizer (Unigram over characters and a few words; ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import T5TokenizerFast

    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,#'-")
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(f"▁{w}", -3.0) for w in _WORDS] + [(c, -5.0) for c in chars] + [(f"▁{c}", -5.5) for c in chars]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    from tokenizers.processors import TemplateProcessing

    tok.post_processor = TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                           extra_ids=0, model_max_length=512)


def tiny_t5_encoder(vocab_size: int) -> Any:
    """A two-layer T5 encoder, width 32 (draws from the global RNG: callers fork and seed it)."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )).eval()


def tiny_clip_encoder(tokenizer: Any, with_projection: bool = False) -> Any:
    """A two-layer CLIP text encoder, width 32 (the pooled output feeds Flux / SDXL)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, projection_dim=32, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, hidden_act="gelu",
    )
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config).eval()
