"""The LEGO paper's published numbers (``published.yaml``) beside measured rows.

Rows from the paper are marked ``published`` and never take part in the best
value or the significance test. A measured row shows its difference to the
published number of the same method only when it is comparable: made under the
paper's protocol (``lego-official``) with real weights on real data.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import yaml

from .tables import DATASET_NAMES, Cell, Column, Row, Table, _num

PUBLISHED_FILE = Path(__file__).with_name("published.yaml")
METHOD_NAMES = {"proxedit": "ProxEdit", "sdedit": "SDEdit", "ip2p": "IP2P", "lego": "LEGO"}


@functools.lru_cache(maxsize=1)
def published() -> dict[str, Any]:
    with open(PUBLISHED_FILE, encoding="utf-8") as f:
        return yaml.safe_load(f)


def values(table_no: int, dataset: str) -> tuple[list[str], dict[str, list[float]]]:
    """(metric keys, method -> values in display units) of the paper's table ``table_no`` on ``dataset``."""
    t = published()["tables"].get(f"table{table_no}") or {}
    return list(t.get("metrics", [])), dict(t.get(dataset) or {})


def _comparable(run: Any) -> bool:
    return bool(run.comparable) and str((run.protocol or {}).get("name")) == published()["protocol"]


def add_published(t: Table, runs: list[Any]) -> None:
    """Append the paper's rows to Table 1/2 of a dataset it reports, and fill
    measured cells' difference to them where the run is comparable."""
    if t.kind != "paper" or t.number not in (1, 2):
        return
    keys, rows = values(t.number, t.dataset)
    if not rows:
        return
    col_keys = [c.key for c in t.columns]
    by_label = dict(zip((r.label for r in t.rows), runs))
    shown_delta = False
    for row in t.rows:
        run = by_label.get(row.label)
        if run is None or row.method not in rows or not _comparable(run):
            continue
        ref = dict(zip(keys, rows[row.method]))
        for key, cell in zip(col_keys, row.cells):
            if key in ref and cell.display is not None and math.isfinite(cell.display):
                cell.delta = cell.display - float(ref[key])
                shown_delta = True
    for method, vals in rows.items():
        ref = dict(zip(keys, vals))
        cells = [Cell(None, _num(float(ref[k])) if k in ref else "--", display=float(ref[k]) if k in ref else None)
                 for k in col_keys]
        t.rows.append(Row(f"{METHOD_NAMES.get(method, method)} (published)", method, cells, kind="published"))
    src = published()["source"]
    t.notes.append(f"Rows marked (published): {src}, Table {t.number}; not re-measured, not part of bold or \u2020. "
                   + ("Differences (measured - published) are shown for runs under the lego-official protocol "
                      "with real weights." if shown_delta else
                      "No difference to them is shown: no row here was made under the lego-official protocol "
                      "with real weights, so the numbers are not comparable."))


def reference_tables(datasets_shown: list[str]) -> list[Table]:
    """Stand-alone published Tables 1-2 for the datasets the paper reports, for a
    report whose runs cover none of them (e.g. the demo split)."""
    from .tables import LABELS

    out: list[Table] = []
    if any(ds in published()["tables"]["table1"] for ds in datasets_shown):
        return out  # the published rows are inside the measured tables
    for ds in ("ego4d", "epickitchens"):
        for no in (1, 2):
            keys, rows = values(no, ds)
            if not rows:
                continue
            cols = [Column(k, LABELS.get(k, k), k not in ("fid", "lpips")) for k in keys]
            t = Table(f"published-table{no}-{ds}",
                      f"Table {no}: published numbers on {DATASET_NAMES.get(ds, ds)} (LEGO paper)", ds, cols, [],
                      [{"name": published()["protocol"], "version": "paper", "hash": ""}], kind="published")
            for method, vals in rows.items():
                t.rows.append(Row(f"{METHOD_NAMES.get(method, method)} (published)", method,
                                  [Cell(None, _num(float(v)), display=float(v)) for v in vals], kind="published"))
            t.notes.append(f"Published reference: {published()['source']}, Table {no}. "
                           + ("EgoVLP, EgoVLP+, CLIP, LPIPS x100; PSNR in dB; FID as is; \u2193 lower is better. "
                              if no == 1 else "BLIP-B, BLIP-L x100. ")
                           + "Not measured by egobench; shown for reference.")
            out.append(t)
    return out
