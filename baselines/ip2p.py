"""``ip2p``: InstructPix2Pix finetuned end to end with action labels as text.

The LEGO paper's IP2P baseline (Sec. 4.2) and the "action labels" row of its
ablation: an InstructPix2Pix latent diffusion model trained on the benchmark's
(input frame, action label) -> action frame pairs. Inference is diffusers'
``StableDiffusionInstructPix2PixPipeline`` as it ships: input latent = VAE
posterior mode, unscaled, concatenated to the noisy latent on channels;
three-way classifier-free guidance over ``[text+image, image, neither]``
(``e = e_u + s_T (e_c - e_i) + s_I (e_i - e_u)``); decoded images clamped to
[0, 1] by the pipeline's post-processing.

Weights (one diffusers folder per dataset):

- ``ip2p-ego4d`` / ``ip2p-epic``: made by ``egobench train ip2p`` on the
  dataset's training pairs. Training starts from either
  - ``ip2p-init``: the released InstructPix2Pix (HF ``timbrooks/instruct-pix2pix``,
    already 8 input channels), or
  - Stable Diffusion 1.5 with the UNet's input convolution widened from 4 to 8
    channels, the 4 new channels zero-initialised
    (:func:`diffusion_core.unet.widen_conv_in`; the InstructPix2Pix recipe, also
    LEGO's), artifact ``sd15``.
- ``-o model=PATH``: any InstructPix2Pix diffusers folder;
  ``-o finetuned=false``: the off-the-shelf ``ip2p-init`` (no finetuning).

Protocol settings used: ``resolution`` (inputs squashed to a square with
LANCZOS, as LEGO), ``steps``, ``scheduler`` (the same sampler table as LEGO:
``euler-ancestral`` is k-diffusion's sampler of the released code),
``text_guidance`` -> ``guidance_scale``, ``image_guidance`` ->
``image_guidance_scale``, ``precision`` (GPU only), and the seeds: per-sample
seeds give one CPU generator per sample (batch-size independent); the global
policy draws from the global RNG one sample at a time, in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from egobench.weights import Artifact, register_artifact

from ._common import DOMAINS, SD_FOLDER_FILES, SD_LICENSE, PipelineMethod, sampler_name

INIT_ARTIFACT = "ip2p-init"
INIT_REPO = "timbrooks/instruct-pix2pix"

#: the Hub folder's files (slow tokenizer files, safetensors weights); the
#: safety checker and feature extractor are not needed (loaded as None)
INIT_FILES = SD_FOLDER_FILES + ("tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/vocab.json")


def artifact_name(domain: str) -> str:
    return f"ip2p-{DOMAINS[domain]}"


def make_command(domain: str) -> str:
    """The one command that makes ``ip2p-<domain>`` (no released weights)."""
    return f"egobench train ip2p -d {domain} --data-root <LEGO release> --out $EGOBENCH_WEIGHTS/{artifact_name(domain)}"


def _declare_artifacts() -> None:
    register_artifact(Artifact(
        name=INIT_ARTIFACT,
        description=f"InstructPix2Pix (Brooks et al. 2023), diffusers folder from HF {INIT_REPO}: the start "
                    "weights of 'egobench train ip2p' and the 'ip2p' method with finetuned=false",
        files=INIT_FILES,
        license="MIT (InstructPix2Pix weights; Stable Diffusion 1.5 derivative, CreativeML OpenRAIL-M)",
        hf_repo=INIT_REPO,
        tiny="baselines.tiny:build_tiny_ip2p",
    ))
    for domain, short in DOMAINS.items():
        register_artifact(Artifact(
            name=artifact_name(domain),
            description=f"InstructPix2Pix finetuned on {short} with action labels (the LEGO paper's IP2P "
                        f"baseline), as a diffusers folder; no released weights: made by '{make_command(domain)}' "
                        f"(from {INIT_ARTIFACT} or SD 1.5 widened to 8 channels)",
            files=SD_FOLDER_FILES,
            license=SD_LICENSE,
            tiny="baselines.tiny:build_tiny_ip2p",
            make=make_command(domain),
            made_from=f"{INIT_ARTIFACT} finetuned on the {short} training split",
        ))


_declare_artifacts()


@dataclass(frozen=True)
class IP2POptions:
    """Options of ``ip2p`` (``-o key=value`` / ``method_options``)."""

    #: an InstructPix2Pix diffusers folder for every dataset; default: the artifact per dataset
    model: str | None = None
    #: False: the off-the-shelf InstructPix2Pix (``ip2p-init``), no finetuning
    finetuned: bool = True
    #: samples per pipeline call under per-sample seeds (the global seed runs one by one).
    #: Default 1: each sample runs alone, so its image is bit-identical whatever --batch-size;
    #: N > 1 is faster on a GPU, but images then match across batch sizes only to float rounding
    batch_size: int | None = None
    #: torch.compile the UNet (``nn.Module.compile``, in place). The first call compiles (minutes on a
    #: CPU); images then agree with eager ones to float rounding (a few 1e-6), not bit for bit
    compile: bool = False


class IP2P(PipelineMethod):
    """InstructPix2Pix with action labels (diffusers ``StableDiffusionInstructPix2PixPipeline``)."""

    name = "ip2p"
    summary = "InstructPix2Pix finetuned with action labels as instructions (LEGO paper baseline)"
    artifacts = ("ip2p-ego4d", "ip2p-epic")
    options_class = IP2POptions
    pipeline_class = "StableDiffusionInstructPix2PixPipeline"
    train_command = "egobench train ip2p"
    folder_option = "model"

    def artifact(self, domain: str) -> str:
        return artifact_name(domain) if self.options.finetuned else INIT_ARTIFACT

    def config(self) -> dict[str, Any]:
        gen = self.protocol.generation
        return {
            **self.base_config(),
            "pipeline": "diffusers StableDiffusionInstructPix2PixPipeline",
            "sampler": sampler_name(gen.scheduler),
            "steps": gen.steps,
            "guidance_scale": gen.text_guidance,
            "image_guidance_scale": gen.image_guidance,
            # the off-the-shelf weights were never trained on this benchmark: a zero-shot row
            **({"finetuned_on_benchmark": False} if not self.options.finetuned and self.options.model is None else {}),
        }

    def run_batch(self, pipe: Any, images: list[Any], prompts: list[str], generator: Any,
                  callback: Any = None) -> Any:
        gen = self.protocol.generation
        return pipe(
            prompt=prompts,
            image=images,
            num_inference_steps=gen.steps,
            guidance_scale=gen.text_guidance,
            image_guidance_scale=gen.image_guidance,
            generator=generator,
            output_type="pt",
            callback_on_step_end=callback,
        ).images

