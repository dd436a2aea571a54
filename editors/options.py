"""The options of the editing methods (``-o key=value``): one closed dataclass, checked before a run starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

#: ``-o class=NAME`` is spelled ``class`` on the command line (a Python keyword, so the field is ``pipeline_class``)
OPTION_ALIASES = {"class": "pipeline_class"}


@dataclass(frozen=True)
class EditOptions:
    """Options of ``diffusers-edit`` and the presets; None = the preset's (model card) or the protocol's value."""

    #: a diffusers folder or a Hugging Face id already in the local cache (presets: their artifact)
    pipeline: str | None = None
    #: Hub revision (branch, tag or commit) of a Hugging Face id
    revision: str | None = None
    #: the diffusers pipeline class (default: ``_class_name`` of the folder's model_index.json)
    pipeline_class: str | None = None
    #: prompt template over {action}, {verb}, {noun}, {description}; default: the action without "#C C"
    prompt: str | None = None
    negative_prompt: str | None = None
    steps: int | None = None
    #: the family's text guidance (IP2P: guidance_scale; FLUX Kontext: distilled guidance; Qwen: true CFG;
    #: LEDITS++: edit guidance)
    guidance: float | None = None
    #: InstructPix2Pix families only: image guidance scale
    image_guidance: float | None = None
    #: square input / output side in pixels (the input frame is squashed to it with LANCZOS)
    size: int | None = None
    #: compute type; default: fp32 on CPU, the protocol's precision on a GPU
    dtype: Literal["fp16", "bf16", "fp32"] | None = None
    #: accelerate offloading (GPU only): whole models (model) or layer by layer (sequential)
    offload: Literal["none", "model", "sequential"] = "none"
    #: the sampler: the folder's own (pipeline) or the protocol's (protocol; SD / SDXL InstructPix2Pix only)
    scheduler: Literal["pipeline", "protocol"] = "pipeline"
    #: samples per pipeline call under per-sample seeds (families that batch); default 1
    batch_size: int | None = None
    #: whether the weights were trained on the benchmark's data (recorded in the manifest); default: True when
    #: the folder carries the training record of 'egobench train', else False (zero-shot)
    finetuned: bool | None = None


def canonical(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with command-line aliases replaced by field names."""
    return {OPTION_ALIASES.get(k, k): v for k, v in options.items()}
