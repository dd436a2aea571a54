"""What the diffusion baselines share: weights per dataset, inputs, seeds, dtypes.

Inputs are handled as LEGO's method handles them (the released
``EgoGenDatasetEval``): the input frame squashed to ``resolution`` x
``resolution`` with LANCZOS; outputs are float (3, H, W) arrays in [0, 1] that
the protocol resizes to the frame's aspect and maps to pixels. The text is the
action label exactly as the split file holds it (``sample.action``), the same
string ``egobench train ip2p|ldm`` trains on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from diffusion_core.feedback import StepProgress, library_output
from egobench.config import from_dict
from egobench.data import Sample, Split
from egobench.errors import ConfigError, MissingArtifactError
from egobench.methods import Method, load_rgb
from egobench.weights import TINY_MARKER, WeightStore, refuse_remote_code

#: sample domain -> short name used in artifact names (as LEGO's artifacts)
DOMAINS = {"ego4d": "ego4d", "epickitchens": "epic"}

#: files of a diffusers Stable Diffusion folder as ``save_pretrained`` writes it
#: (transformers 5 saves the tokenizer as ``tokenizer.json``; Hub folders have
#: ``vocab.json`` + ``merges.txt``; both have ``tokenizer_config.json``)
SD_FOLDER_FILES = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/tokenizer_config.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
)
SD_LICENSE = "CreativeML OpenRAIL-M"  # Stable Diffusion 1.5 derivatives


def domain_of(sample: Sample) -> str:
    return str(sample.meta.get("domain", sample.dataset))


def action_prompt(sample: Sample) -> str:
    """The text the baselines are conditioned on: the raw action label."""
    return sample.action


def check_seeds(samples: Sequence[Sample], seeds: Sequence[int | None]) -> bool:
    """True for the global-RNG policy (all seeds None), False for per-sample seeds."""
    if len(seeds) != len(samples):
        raise ValueError(f"got {len(seeds)} seeds for {len(samples)} samples")
    global_rng = all(s is None for s in seeds)
    if not global_rng and any(s is None for s in seeds):
        raise ValueError("seeds must be all integers (per-sample) or all None (global RNG)")
    return global_rng


def batches(samples: Sequence[Sample], global_rng: bool, batch_size: int | None) -> list[list[int]]:
    """Index groups to run together: one sample at a time in order under the global RNG
    (so a sample's noise depends only on what came before it, as the released loop),
    else groups of one domain of ``batch_size`` (default 1: each sample alone, so its image
    does not depend on --batch-size even in the last bits; CPU and GPU kernels round
    differently for different batch shapes)."""
    if global_rng:
        return [[i] for i in range(len(samples))]
    by_domain: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_domain.setdefault(domain_of(s), []).append(i)
    size = batch_size or 1
    return [idx[k : k + size] for idx in by_domain.values() for k in range(0, len(idx), size)]


def generators(seeds: Sequence[int | None], idx: Sequence[int]) -> Any:
    import torch

    if seeds[idx[0]] is None:
        return None
    return [torch.Generator("cpu").manual_seed(int(seeds[i])) for i in idx]


def load_input(sample: Sample, resolution: int) -> Any:
    from PIL import Image

    return load_rgb(sample.input_path).resize((resolution, resolution), Image.Resampling.LANCZOS)


def dtype_name(method: Method) -> str:
    return "fp32" if str(method.device).startswith("cpu") else method.protocol.generation.precision


def torch_dtype(name: str) -> Any:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def check_folder(method_name: str, option: str, path: str | None, how: str) -> None:
    """An explicit ``-o option=PATH`` must be a diffusers folder."""
    if path is None:
        return
    if not (Path(path).expanduser() / "model_index.json").is_file():
        raise ConfigError(f"method '{method_name}': {option}={path} is not a diffusers folder "
                          f"(no model_index.json); {how}")


def resolve_folder(store: WeightStore, artifact: str, option: str) -> tuple[Path, bool]:
    """(folder, is_tiny) of ``artifact``; a missing one names the command that makes it (the
    artifact record's) and the method option that takes a folder instead."""
    try:
        res = store.resolve(artifact)
    except MissingArtifactError as e:
        if "not found locally" not in str(e):
            raise
        raise MissingArtifactError(f"{e}; or pass -o {option}=PATH (or use --zoo tiny for a not-comparable "
                                   "dry run)") from None
    return res.path, res.tiny


def explicit_folder(path: str, what: str) -> tuple[Path, bool]:
    """(folder, is_tiny) of a folder given as a method option (refused if it asks for remote code)."""
    folder = Path(path).expanduser()
    refuse_remote_code(folder, what)
    return folder, (folder / TINY_MARKER).is_file()


def make_scheduler(kind: str, config: Any) -> Any:
    """The protocol's sampler (the table LEGO uses: ``euler-ancestral`` is
    k-diffusion's sampler as the released code, so baselines and LEGO differ in
    their models, not in how they are sampled)."""
    from diffusion_core.scheduler import make_scheduler as core_make_scheduler

    if kind == "euler-ancestral":  # k-diffusion's schedule is linspace by definition; SD folders say "leading"
        config = {**dict(config), "timestep_spacing": "linspace"}
    return core_make_scheduler(kind, config)


def sampler_name(kind: str) -> str:
    return "k-diffusion 0.0.15 euler-ancestral" if kind == "euler-ancestral" else f"diffusers {kind}"


class PipelineMethod(Method):
    """A method that runs one diffusers pipeline folder per dataset.

    Subclasses set ``options_class`` (a closed dataclass holding the folder
    option named ``folder_option`` and, for batched methods, ``batch_size`` and ``compile``),
    ``pipeline_class`` (a diffusers class name) and ``train_command``, and
    implement ``artifact`` and ``run_batch`` (or ``generate``).
    """

    options_class: ClassVar[type]
    pipeline_class: ClassVar[str]
    folder_option: ClassVar[str]
    #: the command that makes this method's weights (named in error messages)
    train_command: ClassVar[str]
    #: progress bars and library output (the runner sets False for --quiet)
    progress: bool = True

    def __init__(self, protocol: Any, weights: Any = None, device: str = "cpu", **options: Any):
        super().__init__(protocol, weights, device)
        self.options = from_dict(self.options_class, options, f"method '{self.name}' options")
        size = getattr(self.options, "batch_size", None)
        if size is not None and size < 1:
            raise ConfigError(f"method '{self.name}': batch_size must be at least 1, got {size}")
        check_folder(self.name, self.folder_option, self.explicit_path, f"make one with '{self.train_command}'")
        self.check_options()
        if self.weights is None:
            self.weights = WeightStore()
        self._pipes: dict[str, Any] = {}
        self._folders: dict[str, tuple[Path, bool]] = {}

    # -- hooks ----------------------------------------------------------------
    def check_options(self) -> None:
        """Validate option values (ranges); raise ConfigError."""

    def artifact(self, domain: str) -> str:
        raise NotImplementedError

    def configure(self, pipe: Any) -> None:
        """Set the sampler on a freshly loaded pipeline."""
        pipe.scheduler = make_scheduler(self.protocol.generation.scheduler, pipe.scheduler.config)

    def run_batch(self, pipe: Any, images: list[Any], prompts: list[str], generator: Any,
                  callback: Any = None) -> Any:
        """Images (B, 3, H, W) float in [0, 1] for one batch; ``callback``: a diffusers
        ``callback_on_step_end`` (progress)."""
        raise NotImplementedError

    def denoising_steps(self) -> int:
        """Denoising steps of one pipeline call (the length of its progress bar)."""
        return self.protocol.generation.steps

    # -- weights ----------------------------------------------------------------
    @property
    def explicit_path(self) -> str | None:
        return getattr(self.options, self.folder_option)

    def folder(self, domain: str) -> tuple[Path, bool]:
        """(folder, is_tiny) of the weights used for ``domain``'s samples."""
        if domain in self._folders:
            return self._folders[domain]
        if self.explicit_path:
            found = explicit_folder(self.explicit_path, f"method '{self.name}': {self.folder_option}={self.explicit_path}")
        else:
            if domain not in DOMAINS:
                raise ConfigError(f"method '{self.name}': no weights for dataset '{domain}'; "
                                  f"pass {self.folder_option}=PATH")
            name = self.artifact(domain)
            found = resolve_folder(self.weights, name, self.folder_option)
        self._folders[domain] = found
        return found

    def pipeline(self, domain: str) -> Any:
        """The loaded pipeline for ``domain`` (cached; one folder is loaded once)."""
        if domain in self._pipes:
            return self._pipes[domain]
        from egobench._compat import ensure_torchvision

        ensure_torchvision()
        import diffusers

        folder, _ = self.folder(domain)
        for d, loaded in self._pipes.items():
            if self._folders[d][0] == folder:
                self._pipes[domain] = loaded
                return loaded
        cls = getattr(diffusers, self.pipeline_class)
        with library_output(quiet=not self.progress):
            pipe = cls.from_pretrained(
                str(folder), dtype=torch_dtype(dtype_name(self)), safety_checker=None, feature_extractor=None,
                requires_safety_checker=False, local_files_only=True,
            )
            self.configure(pipe)
            pipe.set_progress_bar_config(disable=True)
            pipe.to(self.device)
            if getattr(self.options, "compile", False):
                pipe.unet.compile()  # -o compile=true: in place, so config, dtype and hooks stay the UNet's
        self._pipes[domain] = pipe
        return pipe

    def prepare(self, split: Split) -> None:
        """Resolve and load the weights now, before the run seeds the global RNG."""
        for d in sorted({domain_of(s) for s in split}):
            self.pipeline(d)

    def base_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "options": dataclasses.asdict(self.options),
            "weights": self.explicit_path or {d: self.artifact(d) for d in DOMAINS},
            "text": "action label (sample.action, as in the split file)",
            "input": f"LANCZOS {self.protocol.generation.resolution}x{self.protocol.generation.resolution}",
            "dtype": dtype_name(self),
        }

    # -- generation -------------------------------------------------------------
    def generate(self, samples: Sequence[Sample], seeds: Sequence[int | None]) -> list[Any]:
        global_rng = check_seeds(samples, seeds)
        res = self.protocol.generation.resolution
        images = [load_input(s, res) for s in samples]
        prompts = [action_prompt(s) for s in samples]
        out: list[Any] = [None] * len(samples)
        bars = StepProgress(self.name, len(samples), self.progress)
        with library_output(quiet=not self.progress), bars:
            for idx in batches(samples, global_rng, self.options.batch_size):
                pipe = self.pipeline(domain_of(samples[idx[0]]))
                bars.sample(len(idx), self.denoising_steps())
                result = self.run_batch(pipe, [images[i] for i in idx], [prompts[i] for i in idx],
                                        generators(seeds, idx), callback=bars.callback())
                for j, i in enumerate(idx):
                    out[i] = result[j].float().cpu().numpy()
        return out
