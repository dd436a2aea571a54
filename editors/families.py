"""Pipeline families: how the benchmark's inputs become one diffusers editing call.

Each family maps (input images, prompts, negative prompts, steps, guidance,
image guidance, size, generators) onto its pipeline's ``__call__`` and returns
images (B, 3, H, W) in [0, 1]. Only classes whose call was run here on a tiny
stand-in are listed; any other class is refused with this list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EditCall:
    """One pipeline call's inputs."""

    images: list[Any]  # PIL images, size x size
    prompts: list[str]
    negative: str | None
    steps: int
    guidance: float
    image_guidance: float | None
    size: int
    generator: Any  # a list of torch.Generator (one per image) or None (global RNG)
    callback: Any = None  # diffusers callback_on_step_end (progress), where the family takes one


@dataclass(frozen=True)
class Family:
    """A family of diffusers editing pipelines called the same way."""

    name: str
    classes: tuple[str, ...]
    call: Callable[[Any, EditCall], Any]
    #: has an image guidance scale (InstructPix2Pix)
    image_guidance: bool = False
    #: takes several (image, prompt) pairs in one call
    batched: bool = False
    #: its sampler may be replaced by the protocol's (epsilon-prediction UNet families)
    protocol_scheduler: bool = False
    #: what ``guidance`` sets in this family
    guidance_means: str = "guidance_scale"
    #: takes a negative prompt (guidance-distilled models do not)
    negative_prompt: bool = True


def _negatives(x: EditCall) -> list[str] | None:
    return None if x.negative is None else [x.negative] * len(x.prompts)


def _ip2p(pipe: Any, x: EditCall) -> Any:
    return pipe(prompt=x.prompts, image=x.images, negative_prompt=_negatives(x), num_inference_steps=x.steps,
                guidance_scale=x.guidance, image_guidance_scale=x.image_guidance, generator=x.generator,
                output_type="pt", callback_on_step_end=x.callback).images


def _sdxl_ip2p(pipe: Any, x: EditCall) -> Any:
    # no callback_on_step_end in this pipeline (only the deprecated per-step callback)
    return pipe(prompt=x.prompts, image=x.images, height=x.size, width=x.size, negative_prompt=_negatives(x),
                num_inference_steps=x.steps, guidance_scale=x.guidance, image_guidance_scale=x.image_guidance,
                generator=x.generator, output_type="pt").images


def _one(x: EditCall) -> Any:
    if len(x.images) != 1:
        raise ValueError("this pipeline family edits one image per call")
    return x.generator[0] if x.generator else None


def _ledits(pipe: Any, x: EditCall) -> Any:
    # LEDITS++: edit-friendly DDPM inversion of the input, then semantic guidance towards the prompt
    # (the model card's recipe: sde-dpmsolver++ sampler, skip 0.1, edit threshold 0.75); the generator
    # draws the inversion's noise maps
    gen = _one(x)
    pipe.invert(image=x.images[0], num_inversion_steps=x.steps, skip=0.1, generator=gen, height=x.size,
                width=x.size)
    return pipe(editing_prompt=x.prompts, edit_guidance_scale=x.guidance, edit_threshold=0.75,
                negative_prompt=x.negative, generator=gen, output_type="pt",
                callback_on_step_end=x.callback).images


def _flux_kontext(pipe: Any, x: EditCall) -> Any:
    # the input is already size x size: _auto_resize=False keeps the pipeline from resampling it again
    # (for a square 1024 input the model card's auto-resize picks 1024 x 1024 too); guidance-distilled,
    # so no negative prompt (the family refuses one)
    return pipe(image=x.images[0], prompt=x.prompts[0], height=x.size, width=x.size, num_inference_steps=x.steps,
                guidance_scale=x.guidance, generator=_one(x), output_type="pt", max_area=x.size * x.size,
                _auto_resize=False, callback_on_step_end=x.callback).images


def _qwen_edit(pipe: Any, x: EditCall) -> Any:
    # true classifier-free guidance over (prompt, negative prompt); the model card uses negative " "
    return pipe(image=x.images[0], prompt=x.prompts[0], negative_prompt=x.negative if x.negative is not None else " ",
                true_cfg_scale=x.guidance, height=x.size, width=x.size, num_inference_steps=x.steps,
                generator=_one(x), output_type="pt", callback_on_step_end=x.callback).images


FAMILIES = (
    Family("instruct-pix2pix", ("StableDiffusionInstructPix2PixPipeline",), _ip2p, image_guidance=True,
           batched=True, protocol_scheduler=True),
    Family("sdxl-instruct-pix2pix", ("StableDiffusionXLInstructPix2PixPipeline",), _sdxl_ip2p, image_guidance=True,
           batched=True, protocol_scheduler=True),
    Family("ledits-pp", ("LEditsPPPipelineStableDiffusion",), _ledits, guidance_means="edit_guidance_scale"),
    Family("flux-kontext", ("FluxKontextPipeline",), _flux_kontext, guidance_means="guidance_scale (distilled)",
           negative_prompt=False),
    Family("qwen-image-edit", ("QwenImageEditPipeline", "QwenImageEditPlusPipeline"), _qwen_edit,
           guidance_means="true_cfg_scale"),
)

SUPPORTED = tuple(c for f in FAMILIES for c in f.classes)


def family_of(class_name: str) -> Family | None:
    return next((f for f in FAMILIES if class_name in f.classes), None)
