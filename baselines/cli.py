"""``egobench train ip2p`` and ``egobench train ldm``: the baselines' finetuning.

Both run the shared loop :func:`diffusion_core.training.train_loop` on the (input
frame, action label) -> action frame pairs of a LEGO-layout split, with the
action label (``sample.action``) as the text, as the LEGO paper finetunes its
baselines ("all are finetuned on the same data"):

- ``train ip2p``: InstructPix2Pix end to end (8-channel UNet: noisy target
  latent + input-frame latent), from ``ip2p-init`` (HF
  ``timbrooks/instruct-pix2pix``) or from ``sd15`` with the input convolution
  widened to 8 channels (zero-initialised); CFG dropout 5/5/5 % (text / both /
  image). Output: the ``ip2p-<dataset>`` folder of the ``ip2p`` method.
  ``--init`` also takes an InstructPix2Pix-family editor preset (``magicbrush``,
  ``sdxl-ip2p``) or a Hugging Face id from the local cache (its snapshot commit
  goes into ``training.json``). SDXL InstructPix2Pix trains with both text
  encoders and its added text / time conditioning; its folder runs as
  ``-m sdxl-ip2p -o pipeline=FOLDER``. A run from a trained folder is marked
  finetuned on the benchmark.
- ``train ldm``: Stable Diffusion 1.5 text-to-image on the action frames with
  their labels (4-channel UNet, text dropout 10 %). Output: the
  ``ldm-<dataset>`` folder of ``sdedit`` and ``proxedit``.

The defaults are the loop's (diffusers' InstructPix2Pix script: AdamW lr 1e-4
constant, gradient clipping 1.0, EMA) with the step budget and batch of
``egobench train lego`` (10000 steps x 32 x accumulation 4), so the baselines
see as much data as LEGO. Registered as ``egobench.train`` entry points
``ip2p`` and ``ldm``; torch and diffusers load only inside the commands. Each
command's options are the fields of its options dataclass (:class:`IP2PTrainOptions`,
:class:`LDMTrainOptions`), which :func:`run_train` takes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import click

from diffusion_core.feedback import library_output
from diffusion_core.options import click_options, from_click, option
from diffusion_core.train_options import TrainOptions, trained_summary
from egobench.errors import UserError
from egobench.weights import parse_weight_overrides

#: --init choices documented for each model
INITS = {"ip2p": ("ip2p-init", "magicbrush", "sdxl-ip2p", "sd15"), "ldm": ("sd15",)}


@dataclass
class BaselineTrainSpec:
    """What :func:`train_baseline` trains (the CLI's options)."""

    model: str  # "ip2p" | "ldm"
    dataset: str  # ego4d | epickitchens
    data_root: str | os.PathLike
    init: str  # diffusers folder, artifact name, IP2P-family preset or Hugging Face id
    part: str = "train"
    zoo: str = "real"
    weights: dict[str, str] = field(default_factory=dict)
    limit: int | None = None


#: IP2P-family pipeline classes (SD 1.5 and SDXL: two text encoders, added text / time conditioning)
SD_IP2P_CLASS = "StableDiffusionInstructPix2PixPipeline"
SDXL_IP2P_CLASS = "StableDiffusionXLInstructPix2PixPipeline"


def ip2p_presets() -> dict[str, Any]:
    """The editor presets of the InstructPix2Pix family, by method name (``--init magicbrush``): their
    :class:`~editors.diffusers_edit.Preset` records (artifact, Hugging Face id, class)."""
    from editors import presets
    from editors.diffusers_edit import DiffusersEdit

    found = {}
    for cls in vars(presets).values():
        if isinstance(cls, type) and issubclass(cls, DiffusersEdit) and cls.preset is not None \
                and cls.preset.class_name in (SD_IP2P_CLASS, SDXL_IP2P_CLASS):
            found[cls.name] = cls.preset
    return found


def is_sdxl_folder(folder: Path) -> bool:
    """An SDXL pipeline folder (its class, or a second text encoder), told before any model is loaded."""
    from egobench.io import read_json

    index = folder / "model_index.json"
    name = read_json(index).get("_class_name") if index.is_file() else None
    return "XL" in str(name or "") or (folder / "text_encoder_2").is_dir()


def resolve_baseline_init(init: str, store: Any, model: str = "ip2p") -> Any:
    """``--init`` as a :class:`~diffusion_core.folders.InitFolder`: a folder, an artifact, an IP2P-family
    preset (``magicbrush``, ``sdxl-ip2p``: its artifact) or a Hugging Face id (``vinesmsuic/magicbrush-jul7``).
    SDXL trains as InstructPix2Pix only: ``train ldm`` refuses it in one line before anything is loaded."""
    from diffusion_core.folders import resolve_init

    presets = ip2p_presets()
    what = f"--init {init}"
    found = resolve_init(init, store, aliases={n: p.artifact for n, p in presets.items()},
                         repos={p.hf_repo: p.artifact for p in presets.values()}, what=what)
    if model != "ip2p" and is_sdxl_folder(found.folder):
        raise UserError(f"{what}: an SDXL folder; 'train {model}' finetunes Stable Diffusion 1.5 (sdedit and "
                        "proxedit sample SD 1.5): use sd15, or 'train ip2p' for SDXL InstructPix2Pix")
    return found


def train_baseline(spec: BaselineTrainSpec, config: Any, *, on_step: Any = None, progress: bool = False,
                   validation: Any = None) -> Any:
    """Finetune an IP2P or text-to-image LDM baseline; returns :class:`~diffusion_core.training.TrainResult`."""
    from egobench._compat import ensure_torchvision

    ensure_torchvision()
    from diffusion_core.bundle import load_sd_bundle
    from diffusion_core.data import PairDataset
    from diffusion_core.training import train_loop
    from egobench.data.lego_release import load_release
    from egobench.weights import WeightStore

    if spec.model not in INITS:
        raise UserError(f"unknown baseline model {spec.model!r}; use ip2p or ldm")
    store = WeightStore(zoo=spec.zoo, overrides=spec.weights or None)
    found = resolve_baseline_init(str(spec.init), store, spec.model)  # a missing init fails before the data is read
    init = found.folder
    split = load_release(Path(spec.data_root).expanduser(), spec.dataset, part=spec.part).head(spec.limit)
    dataset = PairDataset(split, resolution=config.resolution, resize=config.resize, random_crop=config.random_crop,
                          flip_prob=config.random_flip, text="action")
    bundle = load_sd_bundle(init, in_channels=8 if spec.model == "ip2p" else None, tiny=found.tiny,
                            source=str(init))
    want = "ip2p" if spec.model == "ip2p" else "t2i"
    if bundle.mode != want:
        raise UserError(f"--init {spec.init}: a UNet with {bundle.unet.config.in_channels} input channels cannot "
                        f"be finetuned as {spec.model} (use {' or '.join(INITS[spec.model])})")
    record = {
        "model": spec.model, "dataset": spec.dataset, "part": spec.part, "split_fingerprint": split.short_fingerprint,
        "init": str(spec.init), "init_folder": str(init), "init_source": found.record, "text": "action",
    }
    return train_loop(bundle, dataset, config, on_step=on_step, progress=progress, record=record,
                      validation=validation)


def train_config(out: str | os.PathLike, **overrides: Any) -> Any:
    """The loop's :class:`~diffusion_core.training.TrainConfig` with the given overrides (None = default)."""
    from diffusion_core.training import TrainConfig

    return TrainConfig(output_dir=out, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(kw_only=True)
class BaselineTrainOptions(TrainOptions):
    """What ``egobench train ip2p|ldm`` take: the shared training options and the validation ones."""

    #: the model trained and the method option that takes its folder
    model: ClassVar[str]
    folder_option: ClassVar[str]

    val_every: int = option(0, after="weights", help="every N optimizer steps (and after the last), score the current "
                            "weights on the first --val-limit samples of the dataset's test split (validation.jsonl); "
                            "0 = off. For monitoring only: choosing a checkpoint on it leaks the test set")
    val_limit: int = option(8, after="val_every")
    val_metrics: str = option("psnr,lpips,clip", after="val_limit", help="protocol columns to score (comma-separated)")
    val_protocol: str = option("egobench-v1", after="val_metrics")


@dataclass(kw_only=True)
class IP2PTrainOptions(BaselineTrainOptions):
    """``egobench train ip2p``."""

    model: ClassVar[str] = "ip2p"
    folder_option: ClassVar[str] = "model"
    init: str = option("ip2p-init", help="diffusers folder, artifact, IP2P-family preset or Hugging Face id: "
                       "ip2p-init (timbrooks/instruct-pix2pix), magicbrush (vinesmsuic/magicbrush-jul7, or that id), "
                       "sd15 (Stable Diffusion 1.5, UNet input widened to 8 channels, new ones zero); an id must be "
                       "in the local Hugging Face cache ('hf download ID'); sdxl-ip2p "
                       "(diffusers/sdxl-instructpix2pix-768) trains with both text encoders")


@dataclass(kw_only=True)
class LDMTrainOptions(BaselineTrainOptions):
    """``egobench train ldm``."""

    model: ClassVar[str] = "ldm"
    folder_option: ClassVar[str] = "ldm"
    init: str = option("sd15", help="diffusers Stable Diffusion 1.5 folder or artifact (sd15)")


def _validation(dataset: str, data_root: str, zoo: str, every: int, limit: int, metrics: str, protocol: str) -> Any:
    """``--val-every``: a :class:`~diffusion_core.validation.Validation` scoring the test split's first samples."""
    if every <= 0:
        return None
    if limit < 1:
        raise UserError(f"--val-limit must be at least 1, got {limit}")
    from diffusion_core.validation import Validation
    from egobench.scorer import Scorer

    names = [m.strip() for m in metrics.split(",") if m.strip()]
    scorer = Scorer(protocol, dataset, data_root=data_root, zoo=zoo, metrics=names or None, limit=limit)
    return Validation(scorer, every=every, limit=limit)


def run_train(options: BaselineTrainOptions) -> None:
    """What ``egobench train ip2p|ldm`` does with its options: train, then print where the folder goes."""
    o, model = options, options.model
    spec = BaselineTrainSpec(model=model, dataset=o.dataset, data_root=o.data_root, init=o.init, part=o.part,
                             zoo=o.zoo, weights=parse_weight_overrides(o.weights), limit=o.limit)
    config = train_config(o.out, **o.loop_settings())
    validation = _validation(o.dataset, o.data_root, o.zoo, o.val_every, o.val_limit, o.val_metrics, o.val_protocol)
    with library_output(quiet=o.quiet):
        res = train_baseline(spec, config, progress=not o.quiet, validation=validation)
    short = {"ego4d": "ego4d", "epickitchens": "epic"}[o.dataset]
    use = (f"use with -m sdxl-ip2p -o pipeline={res.output_dir}" if is_sdxl_folder(Path(res.output_dir)) else
           f"use with -o {o.folder_option}={res.output_dir}, or place it at $EGOBENCH_WEIGHTS/{model}-{short}")
    click.echo(f"{trained_summary(res)}; {model} folder {res.output_dir} ({use})")


@click.command("ip2p")
@click_options(IP2PTrainOptions)
def train_ip2p(**kwargs):
    """Finetune InstructPix2Pix end to end with action labels (the 'ip2p' baseline's weights)."""
    run_train(from_click(IP2PTrainOptions, kwargs))


@click.command("ldm")
@click_options(LDMTrainOptions)
def train_ldm(**kwargs):
    """Finetune SD 1.5 text-to-image on action frames with action labels (weights of 'sdedit' and 'proxedit')."""
    run_train(from_click(LDMTrainOptions, kwargs))
