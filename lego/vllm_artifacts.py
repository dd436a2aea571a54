"""The LEGO VLLM's weight artifacts (registered on import) and where the checkpoint sits in each.

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
"""

from __future__ import annotations

from typing import Literal

from egobench.weights import Artifact, register_artifact

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
        tiny="lego.vllm_tiny:build_tiny_lego_vllm_ego4d",
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
        tiny="lego.vllm_tiny:build_tiny_lego_vllm_epic",
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
        tiny="lego.vllm_tiny:build_tiny_llava_llama_2",
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
        tiny="lego.vllm_tiny:build_tiny_vision_tower",
    )
)

#: every artifact in LEGO's original LLaVA layout (loaded by lego.vllm, not by transformers' Auto classes)
LLAVA_ARTIFACTS: tuple[str, ...] = tuple(VARIANT_ARTIFACTS.values())

# -- alternative prompt enhancers (any transformers image-text-to-text model; lego.vllm_hf) -------------
#: Qwen/Qwen2-VL-2B-Instruct's files (two bf16 safetensors shards), as the vlm-judge metric lists them
QWEN2_VL_2B_SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
QWEN2_VL_2B_FILES = (
    "config.json", "generation_config.json", *QWEN2_VL_2B_SHARDS, "model.safetensors.index.json",
    "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
    "chat_template.json",
)
#: Hugging Face id -> artifact, for ``-o vllm=<HF id>``
ALT_VLLM_ARTIFACTS: dict[str, str] = {"Qwen/Qwen2-VL-2B-Instruct": "lego-vllm-qwen2-vl-2b"}

register_artifact(
    Artifact(
        name="lego-vllm-qwen2-vl-2b",
        description="Qwen2-VL-2B-Instruct (transformers Qwen2VLForConditionalGeneration) as LEGO's prompt enhancer "
        "(-o vllm=lego-vllm-qwen2-vl-2b; the 'VLLM backend' rows of Table 4). No sha256 and no revision are "
        "pinned: the real repo's digests could not be verified offline when this was written (a digest is "
        "never guessed); manifests and feature provenance record the digests of the files found",
        files=QWEN2_VL_2B_FILES,
        license="Apache-2.0 (Qwen2-VL-2B-Instruct)",
        hf_repo="Qwen/Qwen2-VL-2B-Instruct",
        tiny="lego.vllm_alt_tiny:build_tiny_qwen2_vl",
    )
)
