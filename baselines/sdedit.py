"""``sdedit``: SDEdit on a Stable Diffusion model finetuned on egocentric frames.

The LEGO paper's SDEdit baseline (Sec. 4.2): a text-to-image LDM (SD 1.5)
finetuned on egocentric action frames with their action labels
(``egobench train ldm``; artifacts ``ldm-ego4d`` / ``ldm-epic``), then
diffusers' ``StableDiffusionImg2ImgPipeline``: the input frame's latent (a
sample of the VAE posterior, scaled) is noised to ``strength`` of the schedule
and denoised with the action label as the prompt (classifier-free guidance
against the empty prompt).

``strength`` (default 0.6): SDEdit's realism-faithfulness knob t0 (Meng et al.,
ICLR 2022), the fraction of the noise schedule the input is pushed into. The
SDEdit paper finds the useful range at about t0 in [0.3, 0.6]; we take its upper
end because an action frame differs from the frame before it by more than a
stroke edit does (hands enter, objects move, the camera moves between PRE-15
and PNR), while keeping 40% of the schedule anchored to the input so the scene
(which the target shares and the metrics reward) survives. Neither the LEGO
paper nor its code states the value used; change it with ``-o strength=...``
and report it. diffusers runs ``int(steps * strength)`` denoising steps.

Protocol settings used: ``resolution`` (inputs squashed to a square with
LANCZOS, as LEGO), ``steps`` (the full schedule; ``strength`` of it runs),
``scheduler`` (same sampler table as LEGO), ``text_guidance`` ->
``guidance_scale``, ``precision`` (GPU only), and the seeds (posterior sample
and noise come from each sample's generator, or the global RNG one sample at a
time). ``image_guidance`` does not apply (no image conditioning).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from egobench.errors import ConfigError
from egobench.weights import Artifact, register_artifact

from ._common import DOMAINS, SD_FOLDER_FILES, SD_LICENSE, PipelineMethod, sampler_name

#: SDEdit's t0 (see the module docstring for the reason)
DEFAULT_STRENGTH = 0.6


def ldm_artifact(domain: str) -> str:
    return f"ldm-{DOMAINS[domain]}"


def ldm_make_command(domain: str) -> str:
    """The one command that makes ``ldm-<domain>`` (no released weights)."""
    return f"egobench train ldm -d {domain} --data-root <LEGO release> --out $EGOBENCH_WEIGHTS/{ldm_artifact(domain)}"


def _declare_artifacts() -> None:
    for domain, short in DOMAINS.items():
        register_artifact(Artifact(
            name=ldm_artifact(domain),
            description=f"Stable Diffusion 1.5 text-to-image LDM finetuned on {short} action frames with "
                        "their action labels (the LDM of the LEGO paper's SDEdit and ProxEdit baselines), as a "
                        f"diffusers folder; no released weights: made by '{ldm_make_command(domain)}'",
            files=SD_FOLDER_FILES,
            license=SD_LICENSE,
            tiny="baselines.tiny:build_tiny_ldm",
            make=ldm_make_command(domain),
            made_from=f"sd15 finetuned on the {short} training split",
        ))


_declare_artifacts()


@dataclass(frozen=True)
class SDEditOptions:
    """Options of ``sdedit`` (``-o key=value`` / ``method_options``)."""

    #: a Stable Diffusion diffusers folder for every dataset; default: the artifact per dataset
    ldm: str | None = None
    #: SDEdit's t0: the fraction of the schedule the input is noised to (0 < strength <= 1)
    strength: float = DEFAULT_STRENGTH
    #: samples per pipeline call under per-sample seeds (the global seed runs one by one).
    #: Default 1: each sample runs alone, so its image is bit-identical whatever --batch-size;
    #: N > 1 is faster on a GPU, but images then match across batch sizes only to float rounding
    batch_size: int | None = None
    #: torch.compile the UNet (``nn.Module.compile``, in place). The first call compiles (minutes on a
    #: CPU); images then agree with eager ones to float rounding (a few 1e-6), not bit for bit
    compile: bool = False


class SDEdit(PipelineMethod):
    """SDEdit (diffusers ``StableDiffusionImg2ImgPipeline``) on the finetuned LDM."""

    name = "sdedit"
    summary = "SDEdit: noise the input to `strength`, denoise with the action label (finetuned SD 1.5)"
    artifacts = ("ldm-ego4d", "ldm-epic")
    options_class = SDEditOptions
    pipeline_class = "StableDiffusionImg2ImgPipeline"
    train_command = "egobench train ldm"
    folder_option = "ldm"

    def check_options(self) -> None:
        s = self.options.strength
        if not 0.0 < s <= 1.0:
            raise ConfigError(f"method '{self.name}': strength must be in (0, 1], got {s}")
        steps = self.protocol.generation.steps
        if int(steps * s) < 1:
            raise ConfigError(f"method '{self.name}': strength {s} with {steps} steps runs no denoising step "
                              f"(int(steps * strength) = 0); raise strength to at least {1 / steps:g}")

    def artifact(self, domain: str) -> str:
        return ldm_artifact(domain)

    def denoising_steps(self) -> int:
        steps = self.protocol.generation.steps
        return min(int(steps * self.options.strength), steps)  # diffusers' img2img get_timesteps

    def config(self) -> dict[str, Any]:
        gen = self.protocol.generation
        return {
            **self.base_config(),
            "pipeline": "diffusers StableDiffusionImg2ImgPipeline",
            "sampler": sampler_name(gen.scheduler),
            "steps": gen.steps,
            "denoising_steps": int(gen.steps * self.options.strength),
            "guidance_scale": gen.text_guidance,
        }

    def run_batch(self, pipe: Any, images: list[Any], prompts: list[str], generator: Any,
                  callback: Any = None) -> Any:
        gen = self.protocol.generation
        return pipe(
            prompt=prompts,
            image=images,
            strength=self.options.strength,
            num_inference_steps=gen.steps,
            guidance_scale=gen.text_guidance,
            generator=generator,
            output_type="pt",
            callback_on_step_end=callback,
        ).images
