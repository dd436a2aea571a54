"""Probes: extra generations a metric needs besides the run's images (issue 17's action sensitivity).

The counterfactual probe asks the method for a second image of each sample, made for a
counterfactual action (same object, another verb; :func:`egobench.metrics.action.counterfactual_prompts`)
with the sample's own seed, so only the action differs. Its images live under
``<run>/probes/counterfactual/images/`` with the main images' relative paths, are made only
for samples that lack one (a killed probe resumes), never enter the other metrics, and the
prompt chosen for each sample is recorded in ``<run>/probes/counterfactual/prompts.json``.

A counterfactual sample keeps its id (its seed and output path) and gets the counterfactual
action as its action and description; its ``image_0`` reference (what methods with precomputed
per-sample features name their files after) gains a ``counterfactual/<verb>/`` prefix, so such a
method looks for features of the counterfactual prompt, never the true one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COUNTERFACTUAL = "counterfactual"


def needs_counterfactual(protocol: Any) -> bool:
    """Whether any of the protocol's metrics reads the counterfactual probe's images."""
    from .metrics import METRICS

    return any(COUNTERFACTUAL in METRICS.get(m.metric).needs for m in protocol.metrics)


def probe_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "probes" / COUNTERFACTUAL


def counterfactual_samples(split: Sequence[Any], shard: Sequence[Any]) -> tuple[list[Any], dict[str, dict[str, str]]]:
    """(the shard's counterfactual samples, the prompts of the whole split per sample id). The
    prompts are drawn from the whole split, so every shard and every rerun chooses the same."""
    from .metrics.action import counterfactual_prompts

    prompts = counterfactual_prompts(list(split))
    out = []
    for s in shard:
        cf = prompts.get(s.id)
        if cf is None:
            continue
        meta = dict(s.meta)
        meta["counterfactual_of"] = s.action
        if meta.get("image_0"):
            meta["image_0"] = f"{COUNTERFACTUAL}/{cf['verb']}/{meta['image_0']}"
        meta["verb"], meta["noun"] = cf["verb"], s.noun
        out.append(dataclasses.replace(s, action=cf["prompt"], description=cf["prompt"], meta=meta))
    return out, prompts
