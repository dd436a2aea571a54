"""The ``lego`` methods: LEGO's LDM on precomputed VLLM features.

``lego`` (descriptions + VLLM image and text embeddings, the paper's model) and
the paper's ablations ``lego-desc`` (descriptions only), ``lego-img``
(+ image embeddings), ``lego-txt`` (+ text embeddings). Each loads a
diffusers-format LDM folder (made by ``egobench convert lego`` from a released
``.ckpt``, or by ``egobench train lego`` for the ablations) and the VLLM
feature files of the release layout (:mod:`lego.features`).

Features come from one source per run (:mod:`lego.feature_source`): the released
dumps, or features egobench computed (``egobench vllm-features`` or
``compute_features=true``; own tags, ``provenance.json``); a mix is refused and the
manifest records the source and the provenance sha256. ``vllm=`` makes another
transformers VLM the prompt enhancer (:mod:`lego.vllm_choice`, :mod:`lego.vllm_hf`):
its features have their own tag, and the LDM must be one trained on them (the
``lego-*-ldm-*-qwen2-vl-2b`` artifacts; the tiny zoo sizes one from the VLM's config).

Inputs as the released ``EgoGenDatasetEval``: the input frame squashed to
256 x 256 with LANCZOS, the enriched description (``llava_forecast_finetune``)
as the CLIP prompt. Outputs are float (3, 256, 256) arrays, ``(x + 1) / 2`` of
the decoder output, unclamped; the protocol resizes them to the frame's aspect
and maps values (min-max stretch or clamp).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from diffusion_core.feedback import StepProgress, library_output
from egobench.config import from_dict
from egobench.data import Sample, Split
from egobench.errors import ConfigError, DataError, MissingArtifactError
from egobench.methods import Method, load_rgb
from egobench.weights import (
    TINY_MARKER,
    Artifact,
    WeightStore,
    default_tiny_root,
    refuse_remote_code,
    register_artifact,
)

from .features import RELEASED_TAG, feature_paths, has_features, load_features

#: the released VLLM feature folders (``vllm_*_feature/<tag>/val``) per dataset
RELEASED_TAGS = {
    "ego4d": RELEASED_TAG,
    "epickitchens": "llava-llama-2-13b-chat-forecasting-finetune",
}
#: features of the off-the-shelf LLaVA (the paper's "without finetuning" ablation)
OFFSHELF_TAG = "llava-llama-2-13b-chat-lightning-preview"

#: sample domain -> short name used in artifact names
DOMAINS = {"ego4d": "ego4d", "epickitchens": "epic"}
HF_REPOS = {"ego4d": "bolinlai/LEGO-Ego4D", "epickitchens": "bolinlai/LEGO-EpicKitchens"}
FEATURE_REPOS = {"ego4d": "bolinlai/LEGO-VLLM-Features-Ego4D", "epickitchens": "bolinlai/LEGO-VLLM-Features-EpicKitchens"}
RELEASED_CKPTS = {
    ("ego4d", False): "ego4d_diffusion_with_vllm_feature.ckpt",
    ("epickitchens", False): "epickitchen_diffusion_with_vllm_feature.ckpt",
    ("ego4d", True): "scaleup_training_ego4d_eval.ckpt",
    ("epickitchens", True): "scaleup_training_epickitchen_eval.ckpt",
}

VARIANT_SUMMARY = {
    "full": "descriptions + VLLM image and text embeddings",
    "desc": "descriptions only (no VLLM embeddings)",
    "img": "descriptions + VLLM image embeddings",
    "txt": "descriptions + VLLM text embeddings",
}

LDM_FILES = (
    "model_index.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/tokenizer_config.json",
    "scheduler/scheduler_config.json",
)
CONDITIONING_FILES = ("conditioning/config.json", "conditioning/diffusion_pytorch_model.safetensors")
LICENSE = "CreativeML OpenRAIL-M"  # Stable Diffusion 1.5 derivatives


def artifact_name(domain: str, variant: str = "full", scaleup: bool = False) -> str:
    name = f"lego-{DOMAINS[domain]}-ldm"
    if scaleup:
        name += "-scaleup"
    return name if variant == "full" else f"{name}-{variant}"


def make_command(domain: str, variant: str = "full", scaleup: bool = False) -> str:
    """The one command that makes the LDM artifact of ``domain``/``variant`` (a conversion of the
    released checkpoint for ``full``; training for the ablations, which have no released weights)."""
    name = artifact_name(domain, variant, scaleup)
    if variant == "full":
        return f"egobench convert lego --ckpt {RELEASED_CKPTS[(domain, scaleup)]} --out $EGOBENCH_WEIGHTS/{name}"
    features = "" if variant == "desc" else " --features-root <VLLM features>"
    return (f"egobench train lego -d {domain} --variant {variant} --data-root <LEGO release>{features} "
            f"--out $EGOBENCH_WEIGHTS/{name}")


def _declare_artifacts() -> None:
    for domain, short in DOMAINS.items():
        for variant in ("full", "desc", "img", "txt"):
            for scaleup in ((False, True) if variant == "full" else (False,)):
                files = LDM_FILES + (CONDITIONING_FILES if variant != "desc" else ())
                if variant == "full":
                    ckpt = RELEASED_CKPTS[(domain, scaleup)]
                    made_from = f"the released checkpoint hf://{HF_REPOS[domain]}/{ckpt}"
                    what = f"LEGO LDM{' (scaleup: trained on Ego4D + EPIC)' if scaleup else ''} for {short}"
                else:
                    made_from = f"the {short} training split (no released weights for the ablations)"
                    what = f"LEGO ablation LDM for {short}, {VARIANT_SUMMARY[variant]}"
                make = make_command(domain, variant, scaleup)
                register_artifact(Artifact(
                    name=artifact_name(domain, variant, scaleup),
                    description=f"{what}, as a diffusers folder (LEGOPipeline); made by '{make}' from {made_from}",
                    files=files,
                    license=LICENSE,
                    tiny=f"lego.tiny:build_tiny_ldm_{variant}",
                    make=make,
                    made_from=made_from,
                ))


_declare_artifacts()

#: LDMs trained on another prompt enhancer's features (no released weights): VLLM artifact -> name suffix
ALT_VLLM_LDMS = {"lego-vllm-qwen2-vl-2b": "qwen2-vl-2b"}


def alt_artifact_name(domain: str, variant: str, vllm_artifact: str) -> str:
    """The LDM artifact for ``domain``/``variant`` trained on ``vllm_artifact``'s features."""
    return f"{artifact_name(domain, variant)}-{ALT_VLLM_LDMS[vllm_artifact]}"


def _declare_alt_artifacts() -> None:
    for vllm, short in ALT_VLLM_LDMS.items():
        for domain, dshort in DOMAINS.items():
            for variant in ("full", "img", "txt"):
                name = alt_artifact_name(domain, variant, vllm)
                make = (f"egobench train lego -d {domain} --variant {variant} --data-root <LEGO release> "
                        f"--features-root <FEAT> --vllm {vllm} --out $EGOBENCH_WEIGHTS/{name}")
                made_from = (f"the {dshort} training split and {vllm}'s features (egobench vllm-features -d {domain} "
                             f"--vllm {vllm} --out <FEAT>); no released weights")
                register_artifact(Artifact(
                    name=name,
                    description=f"LEGO LDM for {dshort} conditioned on {vllm}'s features ({VARIANT_SUMMARY[variant]}; "
                    f"the 'VLLM backend' rows of Table 4), as a diffusers folder; made by '{make}' from {made_from}",
                    files=LDM_FILES + CONDITIONING_FILES,
                    license=LICENSE,
                    tiny=f"lego.tiny:build_tiny_ldm_{variant}_{short.replace('-', '_')}",
                    make=make,
                    made_from=made_from,
                ))


_declare_alt_artifacts()


@dataclass(frozen=True)
class LEGOOptions:
    """Options of the ``lego`` methods (``-o key=value`` / ``method_options``)."""

    #: a diffusers-format LEGO folder; default: the artifact for the sample's dataset
    ldm: str | None = None
    #: folder with ``vllm_image_feature/<tag>/val/...`` and ``vllm_text_feature/...``
    features_root: str | None = None
    #: the feature folder's model tag; default: the released finetuned tag per dataset
    model_tag: str | None = None
    #: False: the off-the-shelf LLaVA's features (the "without finetuning" ablation)
    vllm_finetuned: bool = True
    #: CLIP prompt: the enriched description (LEGO) or the raw action label
    text: Literal["description", "action"] = "description"
    #: samples per pipeline call under per-sample seeds (the global seed runs one by one).
    #: Default 1: each sample runs alone, so its image is bit-identical whatever --batch-size;
    #: N > 1 is faster on a GPU, but images then match across batch sizes only to float rounding
    batch_size: int | None = None
    #: torch.compile the UNet in place (images agree with eager to float rounding; the first call compiles)
    compile: bool = False
    #: the "scaleup" LDM (trained on both datasets)
    scaleup: bool = False
    #: run the VLLM (lego.vllm) for samples whose features are missing, writing them
    #: under features_root (a 13B model: a GPU is advised)
    compute_features: bool = False
    #: the prompt enhancer: any transformers image-text-to-text model (an artifact such as
    #: lego-vllm-qwen2-vl-2b, a Hugging Face id or a folder; lego.vllm_choice); default LEGO's LLaVA.
    #: Its features have their own tag; the LDM's conditioning must be sized for it (hidden size,
    #: image tokens: read from the VLM's config; the tiny zoo builds a matching tiny LDM)
    vllm: str | None = None


def _domain(sample: Sample) -> str:
    return str(sample.meta.get("domain", sample.dataset))


class LEGO(Method):
    """LEGO (Lai et al., ECCV 2024) on precomputed VLLM features."""

    options_class = LEGOOptions

    name = "lego"
    summary = "LEGO: enriched description + finetuned-LLaVA image/text embeddings -> InstructPix2Pix-style LDM"
    variant: ClassVar[str] = "full"
    artifacts = ("lego-ego4d-ldm", "lego-epic-ldm")
    #: progress bars and library output (the runner sets False for --quiet)
    progress: bool = True

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> None:
        """Every check that needs no weights, before the runner makes a run directory."""
        cls._checked(options)

    @classmethod
    def _checked(cls, options: dict[str, Any]) -> tuple[LEGOOptions, Any]:
        """(parsed options, the vllm choice or None); one-line ConfigError for a bad combination."""
        o = from_dict(LEGOOptions, dict(options), f"method '{cls.name}' options")
        if o.batch_size is not None and o.batch_size < 1:
            raise ConfigError(f"method '{cls.name}': batch_size must be at least 1, got {o.batch_size}")
        if o.scaleup and cls.variant != "full":
            raise ConfigError(f"method '{cls.name}': scaleup weights exist only for 'lego', not the ablations")
        if o.ldm is not None:
            folder = Path(o.ldm).expanduser()
            if not (folder / "model_index.json").is_file():
                raise ConfigError(
                    f"method '{cls.name}': ldm={o.ldm} is not a diffusers folder (no model_index.json); "
                    "make one with 'egobench convert lego --ckpt <released .ckpt>'"
                )
        if o.vllm is not None and o.scaleup:
            raise ConfigError(f"method '{cls.name}': scaleup weights exist only for LEGO's own LLaVA features, "
                              f"not vllm={o.vllm}")
        if o.vllm is not None and not o.vllm_finetuned:
            raise ConfigError(f"method '{cls.name}': vllm={o.vllm} and vllm_finetuned=false exclude each other "
                              "(vllm_finetuned chooses between LEGO's own LLaVAs)")
        choice = None
        if o.vllm is not None:
            from .vllm_choice import parse_vllm

            choice = parse_vllm(o.vllm, f"method '{cls.name}': ")
        return o, choice

    def __init__(self, protocol: Any, weights: Any = None, device: str = "cpu", **options: Any):
        super().__init__(protocol, weights, device)
        self.options, self._choice = self._checked(options)
        o = self.options
        if self.weights is None:
            self.weights = WeightStore()
        #: the run's feature source (filled by prepare(); the manifest holds this same dict)
        self._feature_record: dict[str, Any] = {}
        self._tags: dict[str, str] = {}
        self._sizes: dict[str, int] | None = None
        self._pipes: dict[str, Any] = {}
        self._ldm: dict[str, tuple[Path, bool]] = {}
        self._features_root: Path | None = Path(o.features_root).expanduser() if o.features_root else None

    # -- configuration --------------------------------------------------------
    @property
    def uses_features(self) -> bool:
        return self.variant != "desc"

    def config(self) -> dict[str, Any]:
        """The manifest's method record, asked for after :meth:`prepare`: ``model_tags`` are the tags the run
        reads (self-computed ones under ``-o vllm=``), ``features`` the source prepare() chose (released /
        self-computed / tiny-stand-in), root, tag per dataset and, for self-computed features, each tag's
        provenance sha256 and the provenance file's sha256."""
        gen = self.protocol.generation
        return {
            "name": self.name,
            "variant": self.variant,
            "options": dataclasses.asdict(self.options),
            "ldm": self.options.ldm or {d: artifact_name(d, self.variant, self.options.scaleup) for d in DOMAINS},
            "model_tags": None if not self.uses_features else dict(self._tags) if self._tags else (
                self.options.model_tag or (RELEASED_TAGS if self.options.vllm_finetuned else OFFSHELF_TAG)),
            "vllm": self._choice.id if self._choice else "LEGO LLaVA-Llama-2-13B"
            + (" (finetuned per dataset)" if self.options.vllm_finetuned else " (off the shelf)"),
            # filled in by prepare(): released dumps or self-computed features (and their provenance sha256)
            "features": self._feature_record,
            "sampler": "k-diffusion 0.0.15 euler-ancestral" if gen.scheduler == "euler-ancestral" else gen.scheduler,
            "input": f"LANCZOS {gen.resolution}x{gen.resolution}",
            "dtype": self._dtype_name(),
        }

    def _dtype_name(self) -> str:
        return "fp32" if str(self.device).startswith("cpu") else self.protocol.generation.precision

    def model_tag(self, domain: str) -> str:
        """The tag this run reads ``domain``'s features under (decided by prepare(); before: the default)."""
        if domain in self._tags:
            return self._tags[domain]
        if self.options.model_tag:
            return self.options.model_tag
        if self._choice is not None:
            return self.own_tag(domain)
        return self.released_tag(domain)

    def own_tag(self, domain: str) -> str:
        """The tag of features egobench computes for ``domain`` (never a released dump's tag)."""
        from .vllm_choice import self_tag
        from .vllm_features import enhancer_for

        try:
            return self_tag(enhancer_for(domain, self.options.vllm_finetuned, self.options.vllm))
        except ConfigError:  # no finetuned VLLM for this domain: there is no own tag either
            raise ConfigError(f"method '{self.name}': no VLLM for dataset '{domain}'; pass vllm=... or "
                              "model_tag=...") from None

    def released_tag(self, domain: str) -> str:
        """The released dump's tag for ``domain``."""
        if self.options.model_tag:
            return self.options.model_tag
        if not self.options.vllm_finetuned:
            return OFFSHELF_TAG
        if domain not in RELEASED_TAGS:
            raise ConfigError(f"method '{self.name}': no default VLLM feature tag for dataset '{domain}'; "
                              "pass model_tag=...")
        return RELEASED_TAGS[domain]

    # -- weights ------------------------------------------------------------
    def ldm_folder(self, domain: str) -> tuple[Path, bool]:
        """(folder, is_tiny) of the LDM used for ``domain``'s samples."""
        if domain in self._ldm:
            return self._ldm[domain]
        if self.options.ldm:
            folder = Path(self.options.ldm).expanduser()
            refuse_remote_code(folder, f"method '{self.name}': ldm={self.options.ldm}")
            found = (folder, (folder / TINY_MARKER).is_file())
        else:
            if domain not in DOMAINS:
                raise ConfigError(f"method '{self.name}': no LEGO weights for dataset '{domain}'; pass ldm=PATH")
            name = artifact_name(domain, self.variant, self.options.scaleup)
            if self._choice is not None and self._choice.artifact in ALT_VLLM_LDMS and self.variant != "desc":
                name = alt_artifact_name(domain, self.variant, self._choice.artifact)
            try:
                res = self.weights.resolve(name)
            except MissingArtifactError as e:
                if "not found locally" not in str(e):
                    raise
                raise MissingArtifactError(f"{e}; or pass -o ldm=PATH (or use --zoo tiny for a not-comparable "
                                           "dry run)") from None
            found = (res.path, res.tiny)
        self._ldm[domain] = found
        return found

    def _tiny_features_root(self) -> Path:
        base = getattr(self.weights, "tiny_root", None) or default_tiny_root()
        return Path(base) / "lego-vllm-features"

    def pipeline(self, domain: str) -> Any:
        """The loaded :class:`~lego.pipeline.LEGOPipeline` for ``domain`` (cached)."""
        if domain in self._pipes:
            return self._pipes[domain]
        from egobench._compat import ensure_torchvision

        ensure_torchvision()
        import torch

        from diffusion_core.scheduler import make_scheduler

        from .pipeline import LEGOPipeline

        folder, _ = self.ldm_folder(domain)
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self._dtype_name()]
        for d, loaded in self._pipes.items():  # one folder for several datasets (ldm=PATH): load once
            if self._ldm[d][0] == folder:
                self._pipes[domain] = loaded
                return loaded
        with library_output(quiet=not self.progress):
            pipe = LEGOPipeline.from_pretrained(str(folder), dtype=dtype, local_files_only=True)
            cond = pipe.conditioning
            flags = (bool(cond and cond.config.use_image), bool(cond and cond.config.use_text))
            want = {"full": (True, True), "desc": (False, False), "img": (True, False), "txt": (False, True)}[self.variant]
            if flags != want:
                raise ConfigError(
                    f"method '{self.name}': {folder} holds an LDM with VLLM image={flags[0]}, text={flags[1]}; "
                    f"this method needs image={want[0]}, text={want[1]}"
                )
            if cond is not None and self._sizes is not None:
                got = (cond.config.vllm_hidden, cond.config.image_tokens if cond.config.use_image else None)
                need = (self._sizes["hidden"], self._sizes["image_tokens"] if cond.config.use_image else None)
                if got != need:
                    vlm = self._feature_record.get("vlm") or {}
                    made = ", ".join(sorted(set(vlm.values()))) or "the VLLM"
                    raise ConfigError(
                        f"method '{self.name}': {folder}'s conditioning takes {got[0]}-wide VLLM features"
                        f"{f' with {got[1]} image tokens' if got[1] else ''}, but {made} makes {need[0]}-wide ones"
                        f"{f' with {need[1]} image tokens' if need[1] else ''}; pass -o ldm=<a LEGO folder trained "
                        "on these features ('egobench train lego --features-root ROOT --vllm VLM')>")
            pipe.scheduler = make_scheduler(self.protocol.generation.scheduler, pipe.scheduler.config)
            pipe.set_progress_bar_config(disable=True)
            pipe.to(self.device)
            if self.options.compile:
                pipe.unet.compile()
        self._pipes[domain] = pipe
        return pipe

    # -- features -------------------------------------------------------------
    def prepare(self, split: Split) -> None:
        """Resolve and load the LDM(s); decide the run's one feature source (refusing a mix), compute
        missing features when asked, and check every sample's VLLM features and prompt."""
        from . import feature_source

        domains = sorted({_domain(s) for s in split})
        tiny = all(self.ldm_folder(d)[1] for d in domains)
        if self._tags:  # a later call (e.g. the counterfactual probe's samples): the run's one source
            self._more_features(split, tiny)
            for d in domains:
                self.pipeline(d)
            return
        auto_compute = False
        if self._features_root is None and tiny:
            self._features_root = self._tiny_features_root()
            if self._choice is None:
                # random stand-in features under the released tags (no VLLM is run)
                from .tiny import write_tiny_features

                if self.uses_features or any(not s.description for s in split):
                    tags = {d: self.released_tag(d) for d in domains}
                    write_tiny_features(self._features_root, split, tags)
                    self._tags = tags
                    self._feature_record.update(feature_source.FeatureSource(
                        feature_source.TINY, self._features_root, tags).record())
            else:
                auto_compute = True  # the tiny zoo runs the chosen (tiny) VLM itself
        needs = self.uses_features or self._choice is not None and any(not s.description for s in split)
        if needs and not self._tags:
            if self._features_root is None:
                raise DataError(self._how_to_get_features(split[0], len(split), len(split)))
            compute = self.options.compute_features or auto_compute
            source = feature_source.choose(
                self._features_root, list(split), released_tag=self._released_or_none,
                own_tag=self.own_tag, explicit_tag=self.options.model_tag, will_compute=compute)
            self._tags = dict(source.tags)
            missing = [s for s in split if not has_features(self._features_root, s, self.model_tag(_domain(s)))]
            if missing:
                if not compute or source.kind != feature_source.SELF:
                    raise DataError(self._how_to_get_features(missing[0], len(missing), len(split)))
                self._compute_features(missing)
            source = feature_source.verify(source, list(split))
            self._feature_record.update(source.record())
            self._use_sizes(source)
        if self.options.text == "description":
            for s in split:
                if not s.description and not self._description_file(s).is_file():
                    raise DataError(
                        f"sample {s.id}: no enriched description (llava_forecast_finetune) and no VLLM "
                        f"description at {self._description_file(s)}; pass text=action to use the action label"
                    )
        for d in domains:
            self.pipeline(d)  # load now, before the run seeds the global RNG

    def _more_features(self, split: Split, tiny: bool) -> None:
        """Features for the samples of a later :meth:`prepare` from the source the first call chose: tiny
        stand-ins are written, self-computed ones computed (``compute_features``, or the tiny zoo's chosen VLM);
        released dumps cannot grow, so a sample they lack is refused in one line."""
        from . import feature_source

        needs = self.uses_features or any(not s.description for s in split)
        missing = [s for s in split if needs and not has_features(self._features_root, s, self.model_tag(_domain(s)))]
        if not missing:
            return
        kind = self._feature_record.get("source")
        if kind == feature_source.TINY:
            from .tiny import write_tiny_features

            write_tiny_features(self._features_root, missing, self._tags)
        elif kind == feature_source.SELF and (self.options.compute_features or (tiny and self._choice is not None)):
            self._compute_features(missing)
        else:
            raise DataError(self._how_to_get_features(missing[0], len(missing), len(split)))

    def _released_or_none(self, domain: str) -> str | None:
        """The released tag a sample may be read under (none for another VLM: it has no released dumps)."""
        if self._choice is not None:
            return None
        try:
            return self.released_tag(domain)
        except ConfigError:
            return None

    def _use_sizes(self, source: Any) -> None:
        """Size the tiny LDM from the VLM (hidden size, image tokens) or check the given LDM takes them."""
        sizes = {(v["hidden"], v["image_tokens"]) for v in source.sizes.values()}
        if len(sizes) != 1:
            return  # released dumps (no record), or two VLMs: the pipeline checks shapes per sample
        hidden, tokens = next(iter(sizes))
        self._sizes = {"hidden": hidden, "image_tokens": tokens}
        from egobench.io import read_json

        for d, (folder, is_tiny) in list(self._ldm.items()):
            cfg_path = folder / "conditioning" / "config.json"
            if not is_tiny or self.options.ldm or not cfg_path.is_file():
                continue
            cfg = read_json(cfg_path)
            if (cfg.get("vllm_hidden"), cfg.get("image_tokens")) != (hidden, tokens):
                self._ldm[d] = (self._sized_tiny_ldm(hidden, tokens), True)

    def _sized_tiny_ldm(self, hidden: int, tokens: int) -> Path:
        """A tiny LDM whose conditioning takes ``hidden``-wide features and ``tokens`` image tokens."""
        from egobench.io import atomic_write_json

        from .tiny import build_tiny_ldm

        base = getattr(self.weights, "tiny_root", None) or default_tiny_root()
        folder = Path(base) / "lego-ldm-sized" / f"{self.variant}-h{int(hidden)}-i{int(tokens)}"
        if not (folder / TINY_MARKER).is_file():
            import os
            import shutil
            import tempfile

            folder.parent.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
            build_tiny_ldm(work, self.variant, vllm_hidden=hidden, image_tokens=tokens)
            atomic_write_json(work / TINY_MARKER, {"artifact": f"lego tiny LDM sized for a {hidden}-wide VLLM",
                                                   "note": "random weights built by egobench; results are NOT "
                                                   "comparable"})
            try:
                os.replace(work, folder)  # whole or not at all (another process may have won the race)
            except OSError:
                shutil.rmtree(work, ignore_errors=True)
        return folder

    def _description_file(self, s: Sample) -> Path:
        root = self._features_root or Path("<features_root>")
        return feature_paths(root, s, self.model_tag(_domain(s)))[1].with_suffix(".txt")

    def _how_to_get_features(self, first: Sample, n_missing: int, n_total: int) -> str:
        domain = _domain(first)
        # released dumps live under the released tag, self-computed features under egobench's own tag
        released = self._released_or_none(domain)
        own = self._tags.get(domain) or self.model_tag(domain)
        tag = released if released and not self.options.compute_features else own
        repo = FEATURE_REPOS.get(domain, "bolinlai/LEGO-VLLM-Features-*")
        if self._features_root is None:
            where = "no VLLM feature folder given"
        else:
            where = f"{feature_paths(self._features_root, first, tag)[0]}: VLLM features not found"
        download = (f"download the released ones (HF dataset {repo}, unzipped as vllm_image_feature/{released}/val/... "
                    f"and vllm_text_feature/{released}/val/...) or " if released else "")
        return (
            f"{where} ({n_missing} of {n_total} samples missing); method '{self.name}' needs VLLM features: "
            f"{download}compute them with 'egobench vllm-features --out DIR' (or -o compute_features=true), "
            "and pass -o features_root=DIR"
        )

    def _compute_features(self, samples: Sequence[Sample]) -> None:
        """Compute missing VLLM features with the chosen VLLM under this run's (own) tags."""
        from .vllm_features import compute_features

        compute_features(samples, self._features_root, self.weights, finetuned=self.options.vllm_finetuned,
                         vllm=self.options.vllm, tag_for=self.model_tag, device=self.device,
                         progress=self.progress)

    # -- generation -----------------------------------------------------------
    def generate(self, samples: Sequence[Sample], seeds: Sequence[int | None]) -> list[Any]:
        import torch
        from PIL import Image

        if len(seeds) != len(samples):
            raise ValueError(f"got {len(seeds)} seeds for {len(samples)} samples")
        global_rng = all(s is None for s in seeds)
        if not global_rng and any(s is None for s in seeds):
            raise ValueError("seeds must be all integers (per-sample) or all None (global RNG)")
        if self.uses_features and self._features_root is None:
            self.prepare(Split("generate", list(samples)))  # called without prepare(): do it now
        gen = self.protocol.generation
        res = gen.resolution
        inputs = []
        for s in samples:
            image = load_rgb(s.input_path).resize((res, res), Image.Resampling.LANCZOS)
            feats = None
            if self.uses_features or (self.options.text == "description" and not s.description):
                root = self._features_root
                if root is None:
                    raise DataError(self._how_to_get_features(s, 1, 1))
                feats = load_features(root, s, self.model_tag(_domain(s)))
            if self.options.text == "action":
                prompt = s.action
            else:
                prompt = s.description or (feats.description if feats else None)
                if not prompt:
                    raise DataError(f"sample {s.id}: no enriched description to prompt LEGO with")
            inputs.append((image, prompt, feats))

        # global RNG: one sample at a time in order, as the released loop draws its noise;
        # per-sample seeds: a CPU generator per sample and, by default, one sample per pipeline
        # call (CPU and GPU kernels round differently for different batch shapes, so batching
        # samples together would make a sample's image depend on --batch-size in the last bits)
        if global_rng:
            groups = [[i] for i in range(len(samples))]
        else:
            by_domain: dict[str, list[int]] = {}
            for i, s in enumerate(samples):
                by_domain.setdefault(_domain(s), []).append(i)
            size = self.options.batch_size or 1
            groups = [idx[k : k + size] for idx in by_domain.values() for k in range(0, len(idx), size)]
        out: list[Any] = [None] * len(samples)
        bars = StepProgress(self.name, len(samples), self.progress)
        with library_output(quiet=not self.progress), bars:
            for idx in groups:
                pipe = self.pipeline(_domain(samples[idx[0]]))
                cond = pipe.conditioning
                generator = None if global_rng else [torch.Generator("cpu").manual_seed(int(seeds[i])) for i in idx]
                bars.sample(len(idx), gen.steps)
                result = pipe(
                    image=[inputs[i][0] for i in idx],
                    prompt=[inputs[i][1] for i in idx],
                    vllm_image=[inputs[i][2].image for i in idx] if cond is not None and cond.config.use_image else None,
                    vllm_text=[inputs[i][2].text for i in idx] if cond is not None and cond.config.use_text else None,
                    num_inference_steps=gen.steps,
                    guidance_scale=gen.text_guidance,
                    image_guidance_scale=gen.image_guidance,
                    generator=generator,
                    output_type="pt",
                    callback_on_step_end=bars.callback(),
                ).images
                for j, i in enumerate(idx):
                    out[i] = result[j].float().cpu().numpy()
        return out


class LEGODesc(LEGO):
    """Ablation: the LDM conditioned on the enriched description only."""

    name = "lego-desc"
    summary = "LEGO ablation: enriched description only (no VLLM embeddings)"
    variant = "desc"
    artifacts = ("lego-ego4d-ldm-desc", "lego-epic-ldm-desc")


class LEGOImg(LEGO):
    """Ablation: description + VLLM image embeddings."""

    name = "lego-img"
    summary = "LEGO ablation: enriched description + VLLM image embeddings"
    variant = "img"
    artifacts = ("lego-ego4d-ldm-img", "lego-epic-ldm-img")


class LEGOTxt(LEGO):
    """Ablation: description + VLLM text embeddings."""

    name = "lego-txt"
    summary = "LEGO ablation: enriched description + VLLM text embeddings"
    variant = "txt"
    artifacts = ("lego-ego4d-ldm-txt", "lego-epic-ldm-txt")

