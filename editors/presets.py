"""Off-the-shelf editors as methods: ``diffusers-edit`` with a weights artifact and model-card settings.

None of these was trained on the benchmark's data: their manifests say
``finetuned_on_benchmark: false`` (zero-shot rows). Settings are those the
model cards recommend; each preset's ``settings_source`` says what could not be
checked offline. Every artifact has a tiny random-weight stand-in of the same
pipeline class (``--zoo tiny``). Only the InstructPix2Pix release has its file
list pinned (it is the baselines' ``ip2p-init``); the others are fetched whole
with ``hf download`` (their sharded file names and digests are not recorded here).
"""

from __future__ import annotations

from baselines._common import SD_FOLDER_FILES
from egobench.weights import Artifact, register_artifact

from .diffusers_edit import DiffusersEdit, Preset

#: the configs every diffusers pipeline folder has (tiny and real alike); weights files vary (shards)
_SD_CONFIGS = ("model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
               "tokenizer/tokenizer_config.json", "unet/config.json", "vae/config.json")
_SDXL_CONFIGS = _SD_CONFIGS + ("text_encoder_2/config.json", "tokenizer_2/tokenizer_config.json")
_FLUX_CONFIGS = ("model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
                 "text_encoder_2/config.json", "tokenizer/tokenizer_config.json", "tokenizer_2/tokenizer_config.json",
                 "transformer/config.json", "vae/config.json")
_QWEN_CONFIGS = ("model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
                 "tokenizer/tokenizer_config.json", "transformer/config.json", "vae/config.json")


def _hub_artifact(name: str, repo: str, files: tuple[str, ...], license: str, tiny: str, what: str) -> Artifact:
    """An artifact fetched whole from the Hub into ``$EGOBENCH_WEIGHTS/<name>`` (file names of shards unrecorded)."""
    return register_artifact(Artifact(
        name=name,
        description=f"{what}; diffusers folder of HF {repo}, fetched whole (its weight file names and digests are "
                    "not recorded: not verified offline; only its configs are checked)",
        files=files,
        license=license,
        tiny=tiny,
        make=f"hf download {repo} --local-dir $EGOBENCH_WEIGHTS/{name}",
        made_from=f"hf://{repo}",
    ))


register_artifact(Artifact(
    name="instruct-pix2pix",
    description="InstructPix2Pix (Brooks et al. 2023) as released, diffusers folder of HF timbrooks/instruct-pix2pix "
                "(the same files as the baselines' ip2p-init): the ip2p-hub preset",
    files=SD_FOLDER_FILES + ("tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/vocab.json"),
    license="MIT (InstructPix2Pix weights; Stable Diffusion 1.5 derivative, CreativeML OpenRAIL-M)",
    hf_repo="timbrooks/instruct-pix2pix",
    tiny="editors.tiny_sd:build_tiny_ip2p",
))
_hub_artifact("magicbrush", "vinesmsuic/magicbrush-jul7", _SD_CONFIGS,
              "CreativeML OpenRAIL-M (Stable Diffusion 1.5 derivative; the card's license not verified offline)",
              "editors.tiny_sd:build_tiny_ip2p", "MagicBrush (Zhang et al. 2023): InstructPix2Pix finetuned on "
              "MagicBrush's manually annotated edits")
_hub_artifact("instructpix2pix-sdxl-768", "diffusers/sdxl-instructpix2pix-768", _SDXL_CONFIGS, "OpenRAIL++",
              "editors.tiny_sd:build_tiny_sdxl_ip2p", "SDXL finetuned a la InstructPix2Pix at 768 x 768 (diffusers)")
_hub_artifact("ledits-sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", _SD_CONFIGS, "CreativeML OpenRAIL-M",
              "editors.tiny_sd:build_tiny_ledits", "Stable Diffusion 1.5, the base model of the LEDITS++ preset")
_hub_artifact("flux-kontext-dev", "black-forest-labs/FLUX.1-Kontext-dev", _FLUX_CONFIGS,
              "FLUX.1 [dev] Non-Commercial License (gated: accept it on the Hub first)",
              "editors.tiny_flux:build_tiny_flux_kontext", "FLUX.1 Kontext [dev] (Black Forest Labs 2025), "
              "12B flow transformer editing in context")
_hub_artifact("qwen-image-edit-2509", "Qwen/Qwen-Image-Edit-2509", _QWEN_CONFIGS, "Apache-2.0",
              "editors.tiny_qwen:build_tiny_qwen_edit_plus", "Qwen-Image-Edit-2509 (Qwen 2025), 20B MMDiT with a "
              "Qwen2.5-VL text encoder")


class IP2PHub(DiffusersEdit):
    """InstructPix2Pix as released, no finetuning on the benchmark."""

    name = "ip2p-hub"
    summary = "InstructPix2Pix as released (timbrooks/instruct-pix2pix), zero-shot"
    artifacts = ("instruct-pix2pix",)
    preset = Preset(artifact="instruct-pix2pix", hf_repo="timbrooks/instruct-pix2pix",
                    class_name="StableDiffusionInstructPix2PixPipeline", license="MIT", steps=10, guidance=7.5,
                    image_guidance=1.0, size=512,
                    settings_source="model card example: 10 steps, image_guidance_scale 1, guidance_scale the "
                                    "pipeline default 7.5; 512 x 512 (SD 1.5)")


class MagicBrush(DiffusersEdit):
    """MagicBrush: InstructPix2Pix finetuned on human-annotated edits."""

    name = "magicbrush"
    summary = "MagicBrush (vinesmsuic/magicbrush-jul7), InstructPix2Pix finetuned on MagicBrush, zero-shot"
    artifacts = ("magicbrush",)
    preset = Preset(artifact="magicbrush", hf_repo="vinesmsuic/magicbrush-jul7",
                    class_name="StableDiffusionInstructPix2PixPipeline", license="CreativeML OpenRAIL-M",
                    steps=20, guidance=7.5, image_guidance=1.5, size=512,
                    settings_source="InstructPix2Pix's guidance (7.5 / 1.5), 20 steps, 512 x 512; the model card "
                                    "was not verified offline")


class SDXLIP2P(DiffusersEdit):
    """SDXL InstructPix2Pix at 768."""

    name = "sdxl-ip2p"
    summary = "SDXL InstructPix2Pix (diffusers/sdxl-instructpix2pix-768), zero-shot"
    artifacts = ("instructpix2pix-sdxl-768",)
    preset = Preset(artifact="instructpix2pix-sdxl-768", hf_repo="diffusers/sdxl-instructpix2pix-768",
                    class_name="StableDiffusionXLInstructPix2PixPipeline", license="OpenRAIL++", steps=30,
                    guidance=3.0, image_guidance=1.5, size=768,
                    settings_source="model card example: 768 x 768, guidance_scale 3.0, image_guidance_scale 1.5, "
                                    "30 steps (step count not verified offline)")


class LEditsPP(DiffusersEdit):
    """LEDITS++ on Stable Diffusion 1.5: inversion, then semantic guidance towards the action."""

    name = "ledits-pp"
    summary = "LEDITS++ on Stable Diffusion 1.5 (inversion + semantic guidance), zero-shot"
    artifacts = ("ledits-sd15",)
    preset = Preset(artifact="ledits-sd15", hf_repo="stable-diffusion-v1-5/stable-diffusion-v1-5",
                    class_name="LEditsPPPipelineStableDiffusion", license="CreativeML OpenRAIL-M", steps=50,
                    guidance=10.0, size=512,
                    settings_source="diffusers' LEDITS++ example: 50 inversion steps, skip 0.1, edit_guidance_scale "
                                    "10, edit_threshold 0.75, sde-dpmsolver++ order 2 (the pipeline's default)")


class FluxKontext(DiffusersEdit):
    """FLUX.1 Kontext [dev]."""

    name = "flux-kontext"
    summary = "FLUX.1 Kontext [dev] (black-forest-labs/FLUX.1-Kontext-dev), zero-shot"
    artifacts = ("flux-kontext-dev",)
    preset = Preset(artifact="flux-kontext-dev", hf_repo="black-forest-labs/FLUX.1-Kontext-dev",
                    class_name="FluxKontextPipeline", license="FLUX.1 [dev] Non-Commercial License", steps=28,
                    guidance=2.5, size=1024,
                    settings_source="model card example: guidance_scale 2.5, the pipeline's 28 steps, 1024 x 1024")


class QwenImageEdit(DiffusersEdit):
    """Qwen-Image-Edit-2509 through QwenImageEditPlusPipeline."""

    name = "qwen-image-edit"
    summary = "Qwen-Image-Edit-2509 (Qwen/Qwen-Image-Edit-2509), zero-shot"
    artifacts = ("qwen-image-edit-2509",)
    preset = Preset(artifact="qwen-image-edit-2509", hf_repo="Qwen/Qwen-Image-Edit-2509",
                    class_name="QwenImageEditPlusPipeline", license="Apache-2.0", steps=40, guidance=4.0,
                    negative_prompt=" ", size=1024,
                    settings_source="model card example: true_cfg_scale 4.0, negative prompt ' ', 40 steps, "
                                    "guidance_scale 1.0 (unused: no guidance embedding); 1024 x 1024")
