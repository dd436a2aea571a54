"""``egobench ablate``: the conditioning ablations of the LEGO paper.

Table 3 (what conditions the LDM): action labels (``ip2p``), enriched
descriptions (``lego-desc``), descriptions + VLLM image embeddings
(``lego-img``), descriptions + VLLM text embeddings (``lego-txt``),
descriptions + joint embeddings (``lego``). Table 4: joint embeddings from the
VLLM without finetuning vs with finetuning (``lego`` with
``vllm_finetuned=false`` / ``true``).

VLLM features are computed once per sample (for the finetuned and, for Table
4, the off-the-shelf VLLM) into one feature root and read by every variant.
Each variant is an ordinary resumable run, so a killed ablation resumes where
it stopped. The tables are written as Markdown and JSON next to the runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .evaluator import NOT_COMPARABLE, format_value, metric_heads
from .io import atomic_write_json, atomic_write_text, safe_component, safe_join
from .protocol import Protocol, load_protocol
from .runner import RunResult, run

TABLE3 = (
    ("Action labels", "ip2p", {}),
    ("Descriptions", "lego-desc", {}),
    ("Descriptions + image emb.", "lego-img", {}),
    ("Descriptions + text emb.", "lego-txt", {}),
    ("Descriptions + joint emb.", "lego", {}),
)
TABLE4 = (
    ("w/o finetuning", "lego", {"vllm_finetuned": False}),
    ("w/ finetuning", "lego", {}),
)


@dataclass
class AblationResult:
    out: Path
    table3: list[tuple[str, RunResult]] = field(default_factory=list)
    table4: list[tuple[str, RunResult]] = field(default_factory=list)

    def markdown(self) -> str:
        return _markdown("Table 3: conditioning", self.table3) + "\n" + _markdown(
            "Table 4: VLLM without / with finetuning", self.table4)


def _markdown(title: str, rows: list[tuple[str, RunResult]]) -> str:
    if not rows:
        return ""
    metrics = rows[0][1].metrics
    names = list(metrics)
    head = "| row | method | " + " | ".join(metric_heads(metrics)) + " |"
    lines = [f"### {title}", "", head, "|" + "---|" * (len(names) + 2)]
    for label, res in rows:
        cells = [format_value(res.metrics[n]) for n in names]
        method = res.run_dir.parts[-2]
        lines.append(f"| {label} | {method} | " + " | ".join(cells) + " |")
    proto = rows[0][1].protocol
    lines += ["", f"protocol {proto.name} v{proto.version} ({proto.short_hash}); x100 except PSNR (dB) and FID"]
    if not all(r.comparable for _, r in rows):
        lines.append(NOT_COMPARABLE)
    return "\n".join(lines) + "\n"


def _claim_tables_dir(out_dir: Path, identity: dict[str, Any]) -> None:
    """Refuse to replace the tables of another ablation (other protocol, data selection, tables)."""
    from .io import read_json

    prev = out_dir / "tables.json"
    if not prev.is_file():
        return
    old = read_json(prev)
    old_identity = old.get("identity") if isinstance(old, dict) else None
    if old_identity is not None and old_identity != identity:
        keys = sorted(k for k in set(old_identity) | set(identity) if old_identity.get(k) != identity.get(k))
        raise UserError(f"{out_dir}: holds the tables of another ablation (differs in {', '.join(keys)}); "
                        "choose another --out or remove that folder")


def ablate(
    dataset: str,
    *,
    protocol: str | Protocol = "lego-official",
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    batch_size: int = 4,
    runs_dir: str | os.PathLike = "runs",
    out: str | os.PathLike | None = None,
    zoo: str = "auto",
    weights: Sequence[str] | None = None,
    device: str = "auto",
    features_root: str | os.PathLike | None = None,
    compute_features: bool = False,
    tables: Sequence[int] = (3, 4),
    progress: bool = True,
) -> AblationResult:
    """Run the ablation variants and write Tables 3 and 4."""
    proto = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    identity = {"dataset": dataset, "protocol": proto.hash, "limit": limit, "zoo": zoo,
                "features_root": str(features_root) if features_root is not None else None,
                "tables": sorted(int(t) for t in tables)}
    # a limited ablation never writes over the full one's tables (its runs have their own
    # directories too: the run id includes the --limit selection)
    leaf = "ablation" if limit is None else f"ablation-limit{int(limit)}"
    out_dir = Path(out) if out else safe_join(Path(runs_dir), safe_component(dataset, "dataset name"),
                                              safe_component(proto.name, "protocol name"), leaf)
    _claim_tables_dir(out_dir, identity)
    common: dict[str, Any] = dict(protocol=proto, data_root=data_root, limit=limit, batch_size=batch_size,
                                  runs_dir=runs_dir, zoo=zoo, weights=list(weights or []), device=device,
                                  progress=progress)
    lego_opts: dict[str, Any] = {}
    if features_root is not None:
        lego_opts["features_root"] = str(features_root)
        if compute_features:
            lego_opts["compute_features"] = True
    result = AblationResult(out_dir)
    for table, rows, target in ((3, TABLE3, result.table3), (4, TABLE4, result.table4)):
        if table not in tables:
            continue
        for label, method, opts in rows:
            options = dict(opts)
            if method.startswith("lego"):
                options = {**lego_opts, **options}
            res = run(method, dataset, method_options=options, **common)
            target.append((label, res))
    atomic_write_text(out_dir / "tables.md", result.markdown())
    atomic_write_json(out_dir / "tables.json", {
        "identity": identity,
        **{f"table{n}": [{"row": label, "run": str(r.run_dir),
                          "metrics": {k: v.get("value") for k, v in r.metrics.items()}} for label, r in rows]
           for n, rows in ((3, result.table3), (4, result.table4)) if rows},
    })
    return result
