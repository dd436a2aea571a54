"""``diffusers-edit``: any supported diffusers editing pipeline as a method.

``-o pipeline=HF_ID_OR_PATH`` names a diffusers folder or a Hugging Face id in
the local cache (``-o revision=``); the class is the folder's ``_class_name`` or
``-o class=NAME``, one of :data:`editors.families.SUPPORTED`. The input frame is
squashed to ``size`` x ``size`` with LANCZOS (as the baselines and LEGO), the
prompt is ``-o prompt=TEMPLATE`` over the sample's fields (default: the action
label without Ego4D's ``#C C``), and per-sample seeds give one CPU
``torch.Generator`` per sample (the baselines' helper), so an image does not
depend on batching. Unset settings come from the preset (its model card) or,
for this generic method, from the protocol (steps, text / image guidance,
resolution). Outputs are float (3, H, W) in [0, 1]; the protocol resizes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from baselines._common import (
    batches,
    check_seeds,
    dtype_name,
    generators,
    load_input,
    make_scheduler,
    resolve_folder,
    sampler_name,
    torch_dtype,
)
from egobench.config import from_dict
from egobench.data import Sample, Split
from egobench.errors import ConfigError
from egobench.methods import Method, benchmark_training
from egobench.weights import WeightStore

from .families import EditCall, Family
from .loading import Source, check_class, check_offload, load_pipeline, locate
from .options import EditOptions, canonical
from .prompts import check_template, render


@dataclass(frozen=True)
class Preset:
    """An off-the-shelf editor: its weights artifact, class and the settings its model card recommends."""

    artifact: str
    hf_repo: str
    class_name: str
    license: str
    steps: int
    guidance: float
    size: int
    image_guidance: float | None = None
    negative_prompt: str | None = None
    #: where the settings come from (and what could not be checked offline)
    settings_source: str = ""


@dataclass(frozen=True)
class Settings:
    """The values one run uses, after options, preset and protocol."""

    steps: int
    guidance: float
    image_guidance: float | None
    size: int
    negative_prompt: str | None
    dtype: str


class DiffusersEdit(Method):
    """A diffusers editing pipeline (InstructPix2Pix, SDXL-IP2P, LEDITS++, FLUX Kontext, Qwen-Image-Edit)."""

    name = "diffusers-edit"
    summary = "any supported diffusers editing pipeline (-o pipeline=HF_ID_OR_PATH), off the shelf"
    options_class = EditOptions
    #: None: the generic method (weights from -o pipeline=); a preset names its artifact and settings
    preset: ClassVar[Preset | None] = None

    # -- options -----------------------------------------------------------------------------------
    @classmethod
    def parse(cls, options: dict[str, Any]) -> EditOptions:
        """The options, checked against each other and the pipeline folder, before any run directory exists."""
        where = f"method '{cls.name}'"
        o = from_dict(EditOptions, canonical(dict(options)), f"{where} options")
        if cls.preset is None and o.pipeline is None:
            raise ConfigError(f"{where}: pass -o pipeline=HF_ID_OR_PATH (a diffusers editing pipeline folder or a "
                              "cached Hugging Face id)")
        if cls.preset is not None and o.finetuned and o.pipeline is None:
            raise ConfigError(f"{where}: a preset is the off-the-shelf model; for finetuned weights pass "
                              "-o pipeline=PATH (a folder made by 'egobench train' is marked finetuned by itself)")
        for key in ("steps", "size", "batch_size"):
            value = getattr(o, key)
            if value is not None and value < 1:
                raise ConfigError(f"{where}: {key} must be at least 1, got {value}")
        if o.size is not None and o.size % 16:
            raise ConfigError(f"{where}: size must be a multiple of 16, got {o.size}")
        check_template(o.prompt, where)
        check_offload(o.offload, where)
        if o.pipeline is not None:
            family = locate(o.pipeline, o.revision, o.pipeline_class, where).family
        else:
            family = check_class(o.pipeline_class or cls.preset.class_name, where)
        if cls.preset is not None and cls.preset.class_name not in family.classes:
            raise ConfigError(f"{where}: the preset runs {cls.preset.class_name}, not the {family.name} family; "
                              "use diffusers-edit for other pipelines")
        if o.image_guidance is not None and not family.image_guidance:
            raise ConfigError(f"{where}: image_guidance applies to InstructPix2Pix pipelines, not {family.name}")
        if o.negative_prompt is not None and not family.negative_prompt:
            raise ConfigError(f"{where}: {family.name} is guidance-distilled and takes no negative prompt")
        if o.scheduler == "protocol" and not family.protocol_scheduler:
            raise ConfigError(f"{where}: scheduler=protocol applies to InstructPix2Pix pipelines; {family.name} "
                              "keeps its own sampler")
        if (o.batch_size or 1) > 1 and not family.batched:
            raise ConfigError(f"{where}: {family.name} pipelines edit one image per call; batch_size must be 1")
        return o

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> None:
        cls.parse(options)

    def __init__(self, protocol: Any, weights: Any = None, device: str = "cpu", **options: Any):
        super().__init__(protocol, weights, device)
        self.options = self.parse(options)
        if self.weights is None:
            self.weights = WeightStore()
        self._source: Source | None = None
        self._pipe: Any = None

    # -- weights -----------------------------------------------------------------------------------
    def source(self) -> Source:
        """The checked pipeline folder (an explicit ``pipeline=`` or the preset's artifact)."""
        if self._source is None:
            o, where = self.options, f"method '{self.name}'"
            if o.pipeline is not None:
                self._source = locate(o.pipeline, o.revision, o.pipeline_class, where)
            else:
                folder, _ = resolve_folder(self.weights, self.preset.artifact, "pipeline")
                self._source = locate(str(folder), None, o.pipeline_class or self.preset.class_name, where)
        return self._source

    @property
    def family(self) -> Family:
        return self.source().family

    def pipeline(self) -> Any:
        """The loaded pipeline (once), with the protocol's sampler if ``scheduler=protocol``."""
        if self._pipe is None:
            pipe = load_pipeline(self.source(), torch_dtype(self.settings().dtype), self.device,
                                 self.options.offload, quiet=not self.progress)
            if self.options.scheduler == "protocol":
                pipe.scheduler = make_scheduler(self.protocol.generation.scheduler, pipe.scheduler.config)
            self._pipe = pipe
        return self._pipe

    def prepare(self, split: Split) -> None:
        """Load the weights now, before the run seeds the global RNG."""
        self.pipeline()

    # -- settings ----------------------------------------------------------------------------------
    def settings(self) -> Settings:
        o, p, gen = self.options, self.preset, self.protocol.generation

        def pick(option: Any, preset_value: Any, protocol_value: Any) -> Any:
            if option is not None:
                return option
            return preset_value if p is not None else protocol_value

        with_image = self.family.image_guidance
        return Settings(
            steps=pick(o.steps, p and p.steps, gen.steps),
            guidance=pick(o.guidance, p and p.guidance, gen.text_guidance),
            image_guidance=pick(o.image_guidance, p and p.image_guidance, gen.image_guidance) if with_image else None,
            size=pick(o.size, p and p.size, gen.resolution),
            negative_prompt=pick(o.negative_prompt, p and p.negative_prompt, None),
            dtype=o.dtype or dtype_name(self),
        )

    def config(self) -> dict[str, Any]:
        src, s, o = self.source(), self.settings(), self.options
        trained = benchmark_training(src.folder)  # a folder made by 'egobench train' (e.g. --init magicbrush)
        record: dict[str, Any] = {
            "name": self.name,
            "options": asdict(o),
            "weights": src.origin if o.pipeline else self.preset.artifact,
            "pipeline": f"diffusers {src.class_name}",
            "family": src.family.name,
            "text": f"template {o.prompt!r}" if o.prompt else "action label without Ego4D's '#C C' prefix",
            "input": f"LANCZOS {s.size}x{s.size}",
            "sampler": sampler_name(self.protocol.generation.scheduler) if o.scheduler == "protocol"
            else "the pipeline's own (its scheduler_config.json)",
            **asdict(s),
            "guidance_means": src.family.guidance_means,
            "finetuned_on_benchmark": bool(o.finetuned) if o.finetuned is not None else trained is not None,
        }
        if trained is not None:
            record["trained_on"] = trained
        if self.preset is not None:
            record.update(hf_repo=self.preset.hf_repo, license=self.preset.license,
                          settings_source=self.preset.settings_source)
        return record

    # -- generation --------------------------------------------------------------------------------
    def generate(self, samples: Sequence[Sample], seeds: Sequence[int | None]) -> list[Any]:
        from diffusion_core.feedback import StepProgress, library_output

        global_rng = check_seeds(samples, seeds)
        s, family, pipe = self.settings(), self.family, self.pipeline()
        images = [load_input(x, s.size) for x in samples]
        prompts = [render(self.options.prompt, x) for x in samples]
        out: list[Any] = [None] * len(samples)
        bars = StepProgress(self.name, len(samples), self.progress)
        size = self.options.batch_size if family.batched else 1
        with library_output(quiet=not self.progress), bars:
            for idx in batches(samples, global_rng, size):
                bars.sample(len(idx), s.steps)
                call = EditCall(images=[images[i] for i in idx], prompts=[prompts[i] for i in idx],
                                negative=s.negative_prompt, steps=s.steps, guidance=s.guidance,
                                image_guidance=s.image_guidance, size=s.size, generator=generators(seeds, idx),
                                callback=bars.callback())
                result = family.call(pipe, call)
                for j, i in enumerate(idx):
                    out[i] = result[j].float().cpu().numpy()
        return out

