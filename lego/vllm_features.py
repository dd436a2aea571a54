"""Computing LEGO's VLLM features for a split, once, in the release layout.

``egobench vllm-features --dataset ego4d --out FEAT`` runs the visual LLM
(:mod:`lego.vllm`) on every sample's input frame and action and writes the
enriched description, the image features and the text features per sample
(:mod:`lego.features`), under the same model tags the released dumps use, so
``lego`` / ``lego-img`` / ``lego-txt`` (and ``egobench ablate``) read them
with ``-o features_root=FEAT``. Samples whose features exist are skipped, so
a killed run resumes; each sample's files are written atomically.

Each computed sample also gets a line in ``FEAT/egobench-vllm-features.jsonl``
(sample id, model tag, label, the action phrase of the prompt, which lemmatizer
made it, seed), written before its features: a sample with features has a line
(a rerun after a kill may add a second one; the last line of a sample is its own).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from diffusion_core.feedback import library_output
from egobench.data import Sample, Split
from egobench.images import open_rgb

from .features import has_features, save_features

#: the per-sample record file under the feature root
RECORDS = "egobench-vllm-features.jsonl"

#: sample domain -> LegoVLLM variant of the finetuned model
FINETUNED_VARIANT = {"ego4d": "ego4d", "epickitchens": "epic"}


def _domain(s: Sample) -> str:
    return str(s.meta.get("domain", s.dataset))


def default_tag(domain: str, finetuned: bool = True) -> str:
    from .method import OFFSHELF_TAG, RELEASED_TAGS

    return RELEASED_TAGS[domain] if finetuned else OFFSHELF_TAG


def compute_features(
    samples: Sequence[Sample],
    root: str | os.PathLike,
    weights: Any,
    *,
    finetuned: bool = True,
    tag_for: Callable[[str], str] | None = None,
    device: str | None = None,
    seed: int = 42,
    progress: bool = True,
) -> int:
    """Describe and embed every sample lacking features under ``root``; return how many were computed."""
    from .vllm import LegoVLLM

    tag_for = tag_for or (lambda d: default_tag(d, finetuned))
    todo = [s for s in samples if not has_features(root, s, tag_for(_domain(s)))]
    by_variant: dict[str, list[Sample]] = {}
    for s in todo:
        variant = FINETUNED_VARIANT[_domain(s)] if finetuned else "off-the-shelf"
        by_variant.setdefault(variant, []).append(s)
    done = 0
    for variant, group in sorted(by_variant.items()):
        vllm = LegoVLLM.from_artifacts(weights, variant=variant, device=device)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(group), desc=f"VLLM features ({variant})", leave=False, disable=None)
        for s in group:
            out = vllm.run([open_rgb(s.input_path)], [s.action], [_domain(s)], seed=seed)[0]
            _record(root, {"sample": s.id, "model_tag": tag_for(_domain(s)), "action": s.action,
                           "action_phrase": out.action, "lemmatizer": out.lemmatizer, "seed": seed})
            save_features(root, s, out.features, tag_for(_domain(s)))
            done += 1
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    return done


def _record(root: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one sample's record (one JSON line) to the feature root's record file."""
    path = Path(root) / RECORDS
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


@click.command("vllm-features")
@click.option("--dataset", "-d", required=True)
@click.option("--data-root", default=None)
@click.option("--out", required=True, help="feature root (release layout)")
@click.option("--off-the-shelf", is_flag=True, help="the LLaVA without finetuning (Table 4 ablation)")
@click.option("--limit", type=int, default=None)
@click.option("--zoo", type=click.Choice(["auto", "real", "tiny"]), default="auto", show_default=True)
@click.option("--weights", "weights", multiple=True, metavar="NAME=PATH")
@click.option("--device", default="auto", show_default=True)
@click.option("--quiet", is_flag=True)
def vllm_features_cmd(dataset, data_root, out, off_the_shelf, limit, zoo, weights, device, quiet):
    """Compute LEGO's VLLM descriptions and features for a split (resumable)."""
    from egobench.data import load_split
    from egobench.runner import pick_device, resolve_zoo
    from egobench.weights import WeightStore, parse_weight_overrides

    split: Split = load_split(dataset, data_root, limit)
    store = WeightStore(zoo=resolve_zoo(zoo, dataset), overrides=parse_weight_overrides(list(weights)))
    with library_output(quiet=quiet):
        n = compute_features(list(split), Path(out), store, finetuned=not off_the_shelf,
                             device=pick_device(device), progress=not quiet)
    click.echo(f"computed features for {n} sample(s); {len(split) - n} already present under {out}")
