"""LEGO's command-line pieces: ``egobench train lego``, ``egobench train vllm``, ``egobench convert lego``.

Registered as entry points (``egobench.train``: ``lego``, ``vllm``;
``egobench.commands``: ``convert``) and imported only when invoked; the heavy
modules (torch, diffusers, transformers) load inside the commands.
"""

from __future__ import annotations

import click

from egobench.weights import parse_weight_overrides

from .feedback import library_output


def _ensure_heavy_imports() -> None:
    from egobench._compat import ensure_torchvision

    ensure_torchvision()


@click.command("lego")
@click.option("--dataset", "-d", required=True, type=click.Choice(["ego4d", "epickitchens", "demo"]),
              help="which training set of the LEGO release (demo: the embedded synthetic split, for smoke tests)")
@click.option("--data-root", default=None, help="LEGO release folder (EgoGen/<dataset>/<part>, <prefix>_<part>.json)")
@click.option("--features-root", default=None,
              help="VLLM features: vllm_image_feature/<tag>/<part>/..., vllm_text_feature/<tag>/<part>/...")
@click.option("--out", required=True, help="output folder: the LEGO diffusers folder (and checkpoints/)")
@click.option("--variant", type=click.Choice(["full", "desc", "img", "txt"]), default="full", show_default=True,
              help="full = descriptions + VLLM image and text embeddings; desc/img/txt = the paper's ablations")
@click.option("--init", default="sd15", show_default=True,
              help="diffusers SD 1.5 folder, or an artifact name (sd15 = stable-diffusion-v1-5)")
@click.option("--part", default="train", show_default=True, help="split part of the release layout to train on")
@click.option("--model-tag", default=None, help="VLLM feature tag (default: the released finetuned one per dataset)")
@click.option("--text", type=click.Choice(["description", "action"]), default="description", show_default=True,
              help="CLIP prompt: the enriched description (LEGO) or the action label")
@click.option("--max-steps", type=int, default=10000, show_default=True, help="optimizer steps")
@click.option("--batch-size", type=int, default=32, show_default=True, help="micro-batch per process (released: 32)")
@click.option("--grad-accum", type=int, default=4, show_default=True, help="gradient accumulation (released: 4)")
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--seed", type=int, default=23, show_default=True)
@click.option("--resolution", type=int, default=256, show_default=True)
@click.option("--mixed-precision", type=click.Choice(["no", "fp16", "bf16"]), default="no", show_default=True)
@click.option("--checkpoint-every", type=int, default=1000, show_default=True, help="optimizer steps; 0 = none")
@click.option("--no-ema", is_flag=True, help="save the raw weights instead of the EMA")
@click.option("--released-behaviour", is_flag=True,
              help="as the released code: projections and text mixer stay frozen at init, EMA per micro-batch")
@click.option("--resume", is_flag=True, help="continue from the newest checkpoint in --out")
@click.option("--num-workers", type=int, default=0, show_default=True)
@click.option("--limit", type=int, default=None, help="only the first N samples (smoke tests)")
@click.option("--zoo", type=click.Choice(["real", "tiny"]), default="real", show_default=True,
              help="resolve --init artifacts in the real or the tiny zoo")
@click.option("--weights", "weights", multiple=True, metavar="NAME=PATH", help="explicit artifact path (repeatable)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def train_lego(dataset, data_root, features_root, out, variant, init, part, model_tag, text, max_steps, batch_size,
               grad_accum, lr, seed, resolution, mixed_precision, checkpoint_every, no_ema, released_behaviour,
               resume, num_workers, limit, zoo, weights, quiet):
    """Finetune LEGO's LDM (SD 1.5 -> 8-channel UNet + VLLM context) on cached VLLM features."""
    _ensure_heavy_imports()
    from .train import LEGOTrainSpec, lego_train_config
    from .train import train_lego as run

    if dataset == "demo":
        part = "val"  # the demo split's only part
        if zoo == "real" and init == "sd15":
            zoo = "tiny"  # the synthetic split pairs with the tiny zoo, as `egobench run` does
    spec = LEGOTrainSpec(
        dataset=dataset, data_root=data_root, out=out, features_root=features_root, variant=variant, init=init,
        part=part, model_tag=model_tag, text=text, released_behaviour=released_behaviour, zoo=zoo,
        weights=parse_weight_overrides(weights), limit=limit,
    )
    config = lego_train_config(
        out, released_behaviour=released_behaviour, max_steps=max_steps, batch_size=batch_size,
        grad_accum=grad_accum, learning_rate=lr, seed=seed, resolution=resolution, mixed_precision=mixed_precision,
        checkpoint_every=checkpoint_every, use_ema=not no_ema, resume=resume, num_workers=num_workers,
    )
    with library_output(quiet=quiet):
        res = run(spec, config, progress=not quiet)
    every = max(1, config.log_every)
    for i in range(every - 1, len(res.losses), every):
        click.echo(f"step {i + 1}: loss {res.losses[i]:.4f}")
    where = f" (resumed at step {res.resumed_from})" if res.resumed_from is not None else ""
    click.echo(f"trained {res.steps} steps{where}: final loss {res.losses[-1]:.4f}; LEGO folder {res.output_dir} "
               f"(use with -o ldm={res.output_dir})")


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
    from egobench.weights import WeightStore

    from .convert import convert_lego_checkpoint
    from .train import resolve_folder

    tpl, _ = resolve_folder(template, WeightStore(zoo=zoo, overrides=parse_weight_overrides(weights) or None))
    rep = convert_lego_checkpoint(ckpt, out, template=tpl, variant=variant, use_ema=not no_ema, overwrite=overwrite,
                                  heads=heads, image_tokens=image_tokens)
    click.echo(f"converted {ckpt} ({'EMA' if rep.ema else 'raw'} weights, step {rep.global_step}) -> {rep.out}")
