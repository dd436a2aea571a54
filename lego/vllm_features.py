"""Computing LEGO's VLLM features for a split, once, in the release layout, with their provenance.

``egobench vllm-features --dataset ego4d --out FEAT`` runs the visual LLM on every sample's input
frame and action and writes the enriched description, the image features and the text features
per sample (:mod:`lego.features`). The VLM is LEGO's LLaVA (finetuned per dataset, or off the
shelf) or, with ``--vllm``, any transformers image-text-to-text model (:mod:`lego.vllm_hf`).

Self-computed features go under their own tag, ``egobench-<VLM>`` (:func:`lego.vllm_choice.self_tag`),
never under a released dump's tag, and ``FEAT/provenance.json`` records how each tag was made
(:mod:`lego.vllm_provenance`), written before its first sample. ``lego`` / ``lego-img`` /
``lego-txt`` (and ``egobench ablate``) read them with ``-o features_root=FEAT`` and record the
source and the provenance in their manifests.

Samples whose features exist are skipped, so a killed run resumes; each sample's files are
written atomically. Each computed sample also gets a line in ``FEAT/egobench-vllm-features.jsonl``
(sample id, model tag, label, the action phrase of the prompt, which lemmatizer made it, seed,
the provenance entry's sha256), written before its features: a sample with features has a line
(a rerun after a kill may add a second one; the last line of a sample is its own).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from diffusion_core.feedback import library_output
from egobench.data import Sample, Split
from egobench.images import open_rgb

from .features import has_features, save_features
from .vllm_choice import VLMChoice, llava_choice, parse_vllm, resolve_vlm, self_tag
from .vllm_provenance import RECORDS, append_record, build_entry, claim, precheck

__all__ = ["RECORDS", "compute_features", "enhancer_for", "vllm_features_cmd"]

#: sample domain -> LegoVLLM variant of the finetuned model
FINETUNED_VARIANT = {"ego4d": "ego4d", "epickitchens": "epic"}


def _domain(s: Sample) -> str:
    return str(s.meta.get("domain", s.dataset))


def enhancer_for(domain: str, finetuned: bool = True, vllm: str | None = None, option: str = "vllm") -> VLMChoice:
    """The prompt enhancer of a sample of ``domain``: ``vllm`` when given, else LEGO's LLaVA."""
    if vllm:
        return parse_vllm(vllm, option=option)
    if not finetuned:
        return llava_choice("off-the-shelf")
    if domain not in FINETUNED_VARIANT:
        from egobench.errors import ConfigError

        raise ConfigError(f"no finetuned LEGO VLLM for dataset '{domain}'; use the off-the-shelf one or pass a vllm")
    return llava_choice(FINETUNED_VARIANT[domain])


def _load(choice: VLMChoice, resolved: Any, weights: Any, device: str | None) -> Any:
    """The loaded enhancer of ``choice`` (its weights already resolved)."""
    if choice.kind == "llava":
        from .vllm import LegoVLLM

        return LegoVLLM.from_artifacts(weights, variant=choice.variant, device=device)
    from .vllm_hf import HFPromptEnhancer

    return HFPromptEnhancer.from_folder(resolved.folder, name=choice.id, device=device, tiny=resolved.tiny)


def compute_features(
    samples: Sequence[Sample],
    root: str | os.PathLike,
    weights: Any,
    *,
    finetuned: bool = True,
    vllm: str | None = None,
    tag_for: Callable[[str], str] | None = None,
    device: str | None = None,
    seed: int = 42,
    progress: bool = True,
) -> int:
    """Describe and embed every sample lacking features under ``root``; return how many were computed.

    ``tag_for(domain)`` overrides the tag (default: :func:`self_tag` of the sample's enhancer).
    """
    from .lemmatize import backend

    groups: dict[tuple[VLMChoice, str], list[Sample]] = {}
    for s in samples:
        choice = enhancer_for(_domain(s), finetuned, vllm)
        tag = tag_for(_domain(s)) if tag_for else self_tag(choice)
        if not has_features(root, s, tag):
            groups.setdefault((choice, tag), []).append(s)
    done = 0
    for (choice, tag), group in sorted(groups.items(), key=lambda kv: kv[0][1]):
        resolved = resolve_vlm(choice, weights)
        precheck(root, tag, resolved, seed=seed, lemmatizer=backend())  # before a (13B) model is loaded
        enhancer = _load(choice, resolved, weights, device)
        entry = build_entry(tag, resolved, enhancer.settings(), seed=seed, lemmatizer=backend())
        sha = claim(root, entry)  # before the first sample: refuses a tag made otherwise
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(group), desc=f"VLLM features ({choice.key})", leave=False, disable=None)
        for s in group:
            out = enhancer.run([open_rgb(s.input_path)], [s.action], [_domain(s)], seed=seed)[0]
            append_record(root, {"sample": s.id, "model_tag": tag, "action": s.action, "action_phrase": out.action,
                                 "lemmatizer": out.lemmatizer, "seed": seed, "vlm": choice.id, "provenance": sha})
            save_features(root, s, out.features, tag)
            done += 1
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    return done


@click.command("vllm-features")
@click.option("--dataset", "-d", required=True)
@click.option("--data-root", default=None)
@click.option("--out", required=True, help="feature root (release layout; provenance.json records how they were made)")
@click.option("--off-the-shelf", is_flag=True, help="the LLaVA without finetuning (Table 4 ablation)")
@click.option("--vllm", default=None, metavar="ARTIFACT|HF_ID|DIR",
              help="another prompt enhancer: any transformers image-text-to-text model (e.g. lego-vllm-qwen2-vl-2b)")
@click.option("--seed", type=int, default=42, show_default=True, help="per-sample sampling seed (released: 42)")
@click.option("--limit", type=int, default=None)
@click.option("--zoo", type=click.Choice(["auto", "real", "tiny"]), default="auto", show_default=True)
@click.option("--weights", "weights", multiple=True, metavar="NAME=PATH")
@click.option("--device", default="auto", show_default=True)
@click.option("--quiet", is_flag=True)
def vllm_features_cmd(dataset, data_root, out, off_the_shelf, vllm, seed, limit, zoo, weights, device, quiet):
    """Compute LEGO's VLLM descriptions and features for a split (resumable, with provenance)."""
    from egobench.data import load_split
    from egobench.errors import UserError
    from egobench.runner import pick_device, resolve_zoo
    from egobench.weights import WeightStore, parse_weight_overrides

    if vllm and off_the_shelf:
        raise UserError("--vllm and --off-the-shelf exclude each other (--off-the-shelf is LEGO's own LLaVA)")
    if vllm:
        parse_vllm(vllm, option="--vllm")  # a bad value is refused before the split is read
    split: Split = load_split(dataset, data_root, limit)
    store = WeightStore(zoo=resolve_zoo(zoo, dataset), overrides=parse_weight_overrides(list(weights)))
    with library_output(quiet=quiet):
        n = compute_features(list(split), Path(out), store, finetuned=not off_the_shelf, vllm=vllm, seed=seed,
                             device=pick_device(device), progress=not quiet)
    click.echo(f"computed features for {n} sample(s); {len(split) - n} already present under {out}")
    from .vllm_provenance import PROVENANCE, read_provenance

    tags = read_provenance(out)
    if tags:
        shown = ", ".join(f"{t} {e['sha256'][:12]}" for t, e in sorted(tags.items()))
        click.echo(f"provenance: {Path(out) / PROVENANCE} ({shown})")
