"""Tiny stand-in of the alternative prompt enhancer (Qwen2-VL-2B-Instruct) in its real on-disk layout.

The vlm-judge metric already builds a deterministic random Qwen2-VL in exactly the files of
``Qwen/Qwen2-VL-2B-Instruct`` (config, two safetensors shards and their index, processor and
tokenizer files, chat template), through ``Qwen2VLForConditionalGeneration(config).save_pretrained``.
The same model is the alternative VLLM here, so its stand-in is the same builder: one tiny Qwen2-VL
in the tree, loaded by :mod:`lego.vllm_hf` through the same ``AutoModelForImageTextToText`` /
``AutoProcessor`` calls as the real one (hidden size 32, 16 image tokens at 112 x 112).
"""

from __future__ import annotations

from pathlib import Path


def build_tiny_qwen2_vl(folder: Path) -> None:
    from egobench.metrics.vlm_judge_tiny import build_tiny_vlm_judge

    build_tiny_vlm_judge(Path(folder))
