"""LEGO's command-line pieces: ``egobench train lego``, ``egobench train vllm``, ``egobench convert lego``.

Registered as entry points (``egobench.train``: ``lego``, ``vllm``;
``egobench.commands``: ``convert``) and imported only when invoked; the heavy
modules (torch, diffusers, transformers) load inside the commands.
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from diffusion_core.feedback import library_output
from diffusion_core.options import click_options, from_click, option, option_like
from diffusion_core.train_options import TrainOptions, trained_summary
from egobench.weights import parse_weight_overrides


def _ensure_heavy_imports() -> None:
    from egobench._compat import ensure_torchvision

    ensure_torchvision()


@dataclass(kw_only=True)
class LEGOTrainOptions(TrainOptions):
    """``egobench train lego``: the shared training options, LEGO's data and its variants."""

    dataset: str = option_like(TrainOptions, "dataset", choices=["ego4d", "epickitchens", "demo"],
                               help="which training set of the LEGO release (demo: the embedded synthetic split, "
                               "for smoke tests)")
    data_root: str | None = option_like(TrainOptions, "data_root", default=None)
    features_root: str | None = option(
        None, after="data_root",
        help="VLLM features: vllm_image_feature/<tag>/<part>/..., vllm_text_feature/<tag>/<part>/...")
    out: str = option_like(TrainOptions, "out", help="output folder: the LEGO diffusers folder (and checkpoints/)")
    variant: str = option("full", after="out", choices=["full", "desc", "img", "txt"],
                          help="full = descriptions + VLLM image and text embeddings; desc/img/txt = the paper's "
                          "ablations")
    init: str = option_like(TrainOptions, "init", default="sd15",
                            help="diffusers SD 1.5 folder, or an artifact name (sd15 = stable-diffusion-v1-5)")
    part: str = option_like(TrainOptions, "part", help="split part of the release layout to train on")
    model_tag: str | None = option(None, after="part",
                                   help="VLLM feature tag (default: the released finetuned one per dataset)")
    vllm: str | None = option(None, after="model_tag", help="train on the features egobench computed with this "
                              "prompt enhancer (egobench vllm-features --vllm ...; sets the tag egobench-<VLM>)")
    text: str = option("description", after="vllm", choices=["description", "action"],
                       help="CLIP prompt: the enriched description (LEGO) or the action label")
    batch_size: int = option_like(TrainOptions, "batch_size", help="micro-batch per process (released: 32)")
    grad_accum: int = option_like(TrainOptions, "grad_accum", help="gradient accumulation (released: 4)")
    released_behaviour: bool = option(
        False, after="no_ema", is_flag=True,
        help="as the released code: projections and text mixer stay frozen at init, EMA per micro-batch")


def run_train_lego(options: LEGOTrainOptions) -> None:
    """What ``egobench train lego`` does with its options: train, then print the losses and the folder."""
    _ensure_heavy_imports()
    from .train import LEGOTrainSpec, lego_train_config
    from .train import train_lego as run

    o = options
    model_tag = o.model_tag
    if o.vllm:
        from egobench.errors import UserError

        from .vllm_choice import parse_vllm, self_tag

        if o.model_tag:
            raise UserError("--vllm and --model-tag exclude each other (--vllm sets the tag egobench-<VLM>)")
        model_tag = self_tag(parse_vllm(o.vllm, option="--vllm"))
    part, zoo = o.part, o.zoo
    if o.dataset == "demo":
        part = "val"  # the demo split's only part
        if zoo == "real" and o.init == "sd15":
            zoo = "tiny"  # the synthetic split pairs with the tiny zoo, as `egobench run` does
    spec = LEGOTrainSpec(
        dataset=o.dataset, data_root=o.data_root, out=o.out, features_root=o.features_root, variant=o.variant,
        init=o.init, part=part, model_tag=model_tag, text=o.text, released_behaviour=o.released_behaviour, zoo=zoo,
        weights=parse_weight_overrides(o.weights), limit=o.limit,
    )
    config = lego_train_config(o.out, released_behaviour=o.released_behaviour, **o.loop_settings())
    with library_output(quiet=o.quiet):
        res = run(spec, config, progress=not o.quiet)
    every = max(1, config.log_every)
    for i in range(every - 1, len(res.losses), every):
        click.echo(f"step {i + 1}: loss {res.losses[i]:.4f}")
    click.echo(f"{trained_summary(res)}; LEGO folder {res.output_dir} (use with -o ldm={res.output_dir})")


@click.command("lego")
@click_options(LEGOTrainOptions)
def train_lego(**kwargs):
    """Finetune LEGO's LDM (SD 1.5 -> 8-channel UNet + VLLM context) on cached VLLM features."""
    run_train_lego(from_click(LEGOTrainOptions, kwargs))


@click.command("vllm")
@click.option("--conversations", required=True,
              help="LLaVA-format JSON (curation_from_gpt/ego4d_for_tuning_forecasting.json)")
@click.option("--images", required=True, help="folder the conversations' image paths are relative to")
@click.option("--out", required=True, help="output folder (LLaVA original layout, under the release's folder name)")
@click.option("--init", default="llava-llama-2-13b", show_default=True,
              help="original-layout LLaVA folder or artifact (the off-the-shelf llava-llama-2-13b-chat)")
@click.option("--vision", default="llava-vision-tower", show_default=True, help="CLIP vision tower folder or artifact")
@click.option("--epochs", type=float, default=3.0, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--grad-accum", type=int, default=1, show_default=True)
@click.option("--lr", type=float, default=2e-5, show_default=True)
@click.option("--warmup-ratio", type=float, default=0.03, show_default=True)
@click.option("--max-length", type=int, default=2048, show_default=True)
@click.option("--max-steps", type=int, default=None, help="stop after N optimizer steps (overrides --epochs)")
@click.option("--mixed-precision", type=click.Choice(["no", "fp16", "bf16"]), default="no", show_default=True)
@click.option("--gradient-checkpointing", is_flag=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--zoo", type=click.Choice(["real", "tiny"]), default="real", show_default=True)
@click.option("--weights", "weights", multiple=True, metavar="NAME=PATH", help="explicit artifact path (repeatable)")
@click.option("--quiet", is_flag=True)
def train_vllm(conversations, images, out, init, vision, epochs, batch_size, grad_accum, lr, warmup_ratio,
               max_length, max_steps, mixed_precision, gradient_checkpointing, seed, zoo, weights, quiet):
    """Visual instruction tuning of LEGO's VLLM (LLaVA) on GPT-curated action descriptions."""
    _ensure_heavy_imports()
    from .train import VLLMTrainConfig
    from .train import train_vllm as run

    config = VLLMTrainConfig(
        output_dir=out, epochs=epochs, batch_size=batch_size, grad_accum=grad_accum, learning_rate=lr,
        warmup_ratio=warmup_ratio, max_length=max_length, max_steps=max_steps, mixed_precision=mixed_precision,
        gradient_checkpointing=gradient_checkpointing, seed=seed,
    )
    with library_output(quiet=quiet):
        res = run(conversations, images, config, init=init, vision=vision, zoo=zoo,
                  weights=parse_weight_overrides(weights), progress=not quiet)
    click.echo(f"trained {res.steps} steps ({res.examples} conversations): final loss {res.losses[-1]:.4f}; "
               f"LLaVA folder {res.model_dir}")


@click.group("convert")
def convert() -> None:
    """Convert released checkpoints into egobench's formats."""


@convert.command("lego")
@click.option("--ckpt", required=True, help="released CompVis/Lightning .ckpt (LDM or scaleup)")
@click.option("--out", required=True, help="output LEGO diffusers folder (must not exist unless --overwrite)")
@click.option("--variant", type=click.Choice(["full", "desc", "img", "txt"]), default="full", show_default=True,
              help="which VLLM blocks the model uses (the released checkpoints are 'full')")
@click.option("--no-ema", is_flag=True, help="convert the raw weights (default: EMA, as the released inference)")
@click.option("--template", default="sd15-config", show_default=True,
              help="diffusers folder or artifact giving the configs and the CLIP tokenizer")
@click.option("--heads", type=int, default=None,
              help="attention heads of the text mixer (not visible in the weights; default: template or 8)")
@click.option("--image-tokens", type=int, default=None, help="VLLM image tokens (default: template or 256)")
@click.option("--overwrite", is_flag=True)
@click.option("--zoo", type=click.Choice(["real", "tiny"]), default="real", show_default=True)
@click.option("--weights", "weights", multiple=True, metavar="NAME=PATH", help="explicit artifact path (repeatable)")
def convert_lego(ckpt, out, variant, no_ema, template, heads, image_tokens, overwrite, zoo, weights):
    """Released LEGO .ckpt -> LEGO diffusers folder (lego methods: -o ldm=DIR)."""
    _ensure_heavy_imports()
    from diffusion_core.folders import resolve_folder
    from egobench.weights import WeightStore

    from .convert import convert_lego_checkpoint

    tpl, _ = resolve_folder(template, WeightStore(zoo=zoo, overrides=parse_weight_overrides(weights) or None))
    rep = convert_lego_checkpoint(ckpt, out, template=tpl, variant=variant, use_ema=not no_ema, overwrite=overwrite,
                                  heads=heads, image_tokens=image_tokens)
    click.echo(f"converted {ckpt} ({'EMA' if rep.ema else 'raw'} weights, step {rep.global_step}) -> {rep.out}")
