"""The vlm-judge's tiny stand-in: a deterministic random Qwen2-VL in the real repo's on-disk layout.

Same transformers class (``Qwen2VLForConditionalGeneration``) with a 1-layer language model and a
1-block vision tower; a byte-level BPE tokenizer trained offline with the ``tokenizers`` library on
a fixed text (Qwen2-VL's chat and vision special tokens added at the ids the model config names);
Qwen2-VL's image processor with a small pixel budget; a chat template of the same shape. Written
with ``save_pretrained`` and then laid out under the file names the real artifact lists (two
safetensors shards and their index), so the metric loads it through the same ``from_pretrained``
calls as the real model. Its answers are noise, so most are parse failures (as they should be).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

#: the chat and vision special tokens of Qwen2-VL's tokenizer, in its order
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)
#: the BPE vocabulary before the special tokens (256 byte symbols + merges)
BPE_VOCAB = 384
#: a Qwen2-VL-style chat template (written for the stand-in): a default system turn, each image as
#: <|vision_start|><|image_pad|><|vision_end|>, text parts verbatim, the assistant turn opened
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
#: the image processor's pixel budget: frames become at most 112 x 112 (16 merged vision tokens)
MIN_PIXELS = 56 * 56
MAX_PIXELS = 112 * 112


def _corpus() -> list[str]:
    """The fixed training text of the tiny BPE: the judge's prompts and answer shapes."""
    from .vlm_judge import PROMPTS

    lines = [p.instruction for p in PROMPTS.values()] + [p.before for p in PROMPTS.values()]
    lines += [p.after for p in PROMPTS.values()]
    lines += ['{"action": 7, "scene": 8, "quality": 6, "reasons": "the hand opens the drawer"}',
              "action: 10\nscene: 0\nquality: 5", "#C C opens the drawer", "#C C cuts the onion with a knife"]
    return lines * 4


def build_tokenizer(folder: Path) -> Any:
    """A byte-level BPE trained on :func:`_corpus` (deterministic), saved as tokenizer.json,
    tokenizer_config.json, vocab.json and merges.txt; returns the transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False, special_tokens=[])
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    tok.model.save(str(folder))  # vocab.json, merges.txt (the files the real repo ships beside tokenizer.json)
    fast = Qwen2TokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                              unk_token=None, bos_token=None, errors="replace")
    fast.padding_side = "left"
    return fast


def tiny_config(tokenizer: Any) -> Any:
    from transformers import Qwen2VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    head_dim = 16
    text = {
        "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 2048,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
        "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"], "tie_word_embeddings": False,
    }
    assert sum(text["rope_parameters"]["mrope_section"]) * 2 == head_dim == text["hidden_size"] // 2
    vision = {"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2,
              "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
    return Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                         video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                         vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False)


def _shard(folder: Path, shards: tuple[str, str], index_name: str) -> None:
    """Split the saved ``model.safetensors`` into the two shards the real artifact lists, with the
    index transformers reads (``weight_map``)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    single = folder / "model.safetensors"
    with safe_open(str(single), framework="pt") as f:
        names = sorted(f.keys())
        tensors = {k: f.get_tensor(k) for k in names}
        meta = f.metadata() or {}
    half = len(names) // 2
    parts = (names[:half], names[half:])
    weight_map: dict[str, str] = {}
    total = 0
    for shard, keys in zip(shards, parts, strict=True):
        save_file({k: tensors[k].contiguous() for k in keys}, str(folder / shard), metadata=meta)
        weight_map.update({k: shard for k in keys})
        total += sum(tensors[k].numel() * tensors[k].element_size() for k in keys)
    (folder / index_name).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map},
                                                indent=2, sort_keys=True) + "\n")
    single.unlink()


def build_tiny_vlm_judge(folder: Path) -> None:
    """The tiny Qwen2-VL judge in ``folder`` (every file of the ``vlm-judge-qwen2-vl-2b`` artifact)."""
    from .. import _compat

    _compat.ensure_torchvision()
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    from .vlm_judge import QWEN2_VL_2B_FILES, QWEN2_VL_2B_SHARDS

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        work = Path(tmp)
        tokenizer = build_tokenizer(work)
        config = tiny_config(tokenizer)
        torch.manual_seed(19)
        model = Qwen2VLForConditionalGeneration(config).eval()
        model.generation_config = GenerationConfig(
            bos_token_id=config.text_config.bos_token_id, eos_token_id=[config.text_config.eos_token_id],
            pad_token_id=config.text_config.pad_token_id, do_sample=False)
        model.save_pretrained(work)
        images = Qwen2VLImageProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS,
                                       size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS})
        processor = Qwen2VLProcessor(image_processor=images, tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(),
                                     chat_template=CHAT_TEMPLATE)
        processor.save_pretrained(work)
        # the real repo's layout (written before processor_config.json existed): the image processor
        # in preprocessor_config.json, the template in chat_template.json; transformers reads both
        (work / "processor_config.json").unlink(missing_ok=True)
        (work / "chat_template.jinja").unlink(missing_ok=True)
        images.save_pretrained(work)
        (work / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}, indent=2) + "\n")
        _shard(work, QWEN2_VL_2B_SHARDS, "model.safetensors.index.json")
        missing = [f for f in QWEN2_VL_2B_FILES if not (work / f).is_file()]
        if missing:
            raise RuntimeError(f"tiny vlm-judge: save_pretrained wrote no {', '.join(missing)}")
        for p in work.iterdir():
            shutil.move(str(p), str(folder / p.name))
