"""Where a LEGO run's VLLM features come from, decided once per run and recorded in its manifest.

A feature root can hold the released dumps (under the release's tags) and features egobench
computed (under ``egobench-<VLM>`` tags, with ``provenance.json``). A run reads exactly one
source: every sample from released dumps, or every sample from self-computed features whose tag
has one provenance entry that every sample's record names. Anything else (some samples released,
some self-computed; self-computed samples of one tag made with two provenances; self-computed
files without provenance, e.g. written under a released tag by an older egobench) is refused in
one line that names both sources and what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egobench.data import Sample
from egobench.errors import DataError

from .features import has_features
from .vllm_provenance import PROVENANCE, RECORDS, file_sha256, read_provenance, read_records

RELEASED = "released"
SELF = "self-computed"
TINY = "tiny-stand-in"


def _domain(s: Sample) -> str:
    return str(s.meta.get("domain", s.dataset))


@dataclass
class FeatureSource:
    """The run's one feature source: kind, root, tag per domain and (self-computed) provenance."""

    kind: str
    root: Path
    tags: dict[str, str]
    provenance: dict[str, str] = field(default_factory=dict)  # tag -> provenance entry sha256
    provenance_file_sha256: str | None = None
    vlm: dict[str, str] = field(default_factory=dict)  # tag -> the VLM that made it
    sizes: dict[str, dict[str, int]] = field(default_factory=dict)  # tag -> hidden / image tokens

    def record(self) -> dict[str, Any]:
        """What the run manifest stores (``method.config.features``)."""
        out: dict[str, Any] = {"source": self.kind, "root": str(self.root), "tags": dict(sorted(self.tags.items()))}
        if self.kind == SELF:
            out.update(provenance=dict(sorted(self.provenance.items())), vlm=dict(sorted(self.vlm.items())),
                       provenance_file=str(self.root / PROVENANCE), provenance_sha256=self.provenance_file_sha256)
        return out


def _mix(root: Path, a: tuple[str, list[Sample]], b: tuple[str, list[Sample]], todo: str) -> DataError:
    (what_a, sa), (what_b, sb) = a, b
    return DataError(f"{root}: {len(sa)} sample(s) would read {what_a} (e.g. {sa[0].id}) and {len(sb)} {what_b} "
                     f"(e.g. {sb[0].id}); a run reads one feature source: {todo}")


def choose(root: Path, samples: Sequence[Sample], *, released_tag: Callable[[str], str | None],
           own_tag: Callable[[str], str], explicit_tag: str | None, will_compute: bool) -> FeatureSource:
    """Decide the source before anything is computed (missing self-computed samples may follow)."""
    provenance = read_provenance(root)
    if explicit_tag:
        kind = SELF if explicit_tag in provenance or explicit_tag.startswith("egobench-") else RELEASED
        return FeatureSource(kind, root, {_domain(s): explicit_tag for s in samples})
    rel, own, missing = [], [], []
    for s in samples:
        d = _domain(s)
        rt = released_tag(d)
        if rt is not None and has_features(root, s, rt):
            rel.append(s)
        elif has_features(root, s, own_tag(d)):
            own.append(s)
        else:
            missing.append(s)
    if rel and own:
        t_own = own_tag(_domain(own[0]))
        raise _mix(root, ("released dumps", rel),
                   ("self-computed features", own),
                   f"remove the self-computed ones (vllm_*_feature/{t_own}/) or the released ones from that folder, "
                   "or give features_root a folder holding only one")
    if rel and missing and will_compute:
        raise _mix(root, ("released dumps", rel), ("features this run would compute", missing),
                   "download the released dumps for every sample, or compute all of them into a new folder "
                   "(-o features_root=NEW -o compute_features=true)")
    if rel:
        tags = {_domain(s): released_tag(_domain(s)) or "" for s in samples}
        records = read_records(root)
        legacy = [s for s in rel if (s.id, tags[_domain(s)]) in records]
        if legacy:
            raise _mix(root, ("released-tag files that egobench computed, without provenance "
                              f"(listed in {RECORDS})", legacy), ("released dumps", rel),
                       "recompute them into a new folder with 'egobench vllm-features --out NEW' (they get their "
                       "own tag and provenance.json) and keep released dumps apart")
        return FeatureSource(RELEASED, root, tags)
    return FeatureSource(SELF, root, {_domain(s): own_tag(_domain(s)) for s in samples})


def verify(source: FeatureSource, samples: Sequence[Sample]) -> FeatureSource:
    """After any computing: every self-computed sample's record names its tag's one provenance entry."""
    if source.kind != SELF:
        return source
    root = source.root
    provenance = read_provenance(root)
    records = read_records(root)
    by_sha: dict[str | None, list[Sample]] = {}
    for s in samples:
        tag = source.tags[_domain(s)]
        if tag not in provenance:
            raise DataError(f"{root}: self-computed features under tag '{tag}' (e.g. sample {s.id}) have no entry "
                            f"in {PROVENANCE}; recompute them into a new folder with 'egobench vllm-features --out NEW'")
        rec = records.get((s.id, tag))
        sha = rec.get("provenance") if rec else None
        if sha != provenance[tag]["sha256"]:
            by_sha.setdefault(sha, []).append(s)
        else:
            by_sha.setdefault(provenance[tag]["sha256"], [])
    odd = {k: v for k, v in by_sha.items() if v}
    if odd:
        sha, bad = next(iter(odd.items()))
        tag = source.tags[_domain(bad[0])]
        good = provenance[tag]["sha256"]
        made = f"provenance {sha[:12]}" if sha else f"no provenance record in {RECORDS}"
        raise DataError(f"{root}: tag '{tag}' mixes two provenances: {PROVENANCE} says {good[:12]}, but {len(bad)} "
                        f"sample(s) (e.g. {bad[0].id}) were made with {made}; delete those samples' files so they are "
                        "recomputed, or compute all into a new folder with 'egobench vllm-features --out NEW'")
    used = sorted(set(source.tags.values()))
    source.provenance = {t: provenance[t]["sha256"] for t in used}
    source.vlm = {t: str(provenance[t]["vlm"]["id"]) for t in used}
    source.sizes = {t: dict(provenance[t]["sizes"]) for t in used}
    source.provenance_file_sha256 = file_sha256(root)
    return source
