"""A finished run folder, read once: what ``egobench run`` / ``evaluate`` wrote there.

``metrics.json`` (aggregates and the protocol record), ``manifest.json`` (provenance) and
``samples.parquet`` (per-sample rows). The one reader of results bundles, the leaderboard
and the paper's tables (``reports``); a damaged file is a one-line error naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DataError, UserError
from .io import read_json, truncate


def vllm_finetuned(manifest: dict[str, Any]) -> bool | None:
    """The run's ``vllm_finetuned`` method option (or its method config's); None when it has none."""
    m = manifest.get("method") if isinstance(manifest.get("method"), dict) else {}
    for src in (m.get("options") or {}, (m.get("config") or {}).get("options") or {}):
        if isinstance(src, dict) and "vllm_finetuned" in src:
            return bool(src["vllm_finetuned"])
    return None


@dataclass
class RunFolder:
    """What a run folder holds."""

    path: Path
    metrics: dict[str, Any]  # metrics.json
    samples: Any  # samples.parquet as a pandas DataFrame (empty when the run has none)
    manifest: dict[str, Any]  # manifest.json ({} when there is none)

    @property
    def method(self) -> str:
        return str(self.metrics["method"])

    @property
    def dataset(self) -> str:
        return str(self.metrics["dataset"])

    @property
    def protocol(self) -> dict[str, Any]:
        return self.metrics.get("protocol", {})

    @property
    def comparable(self) -> bool:
        return bool(self.metrics.get("comparable", False))

    @property
    def vllm_finetuned(self) -> bool | None:
        return vllm_finetuned(self.manifest)


def read_run_folder(path: str | os.PathLike, *, complete: bool = False) -> RunFolder:
    """The run folder at ``path``. ``complete``: its provenance is required too (a readable
    manifest.json of a finished run), as a results bundle records it."""
    import pandas as pd

    path = Path(path)
    if not (path / "metrics.json").is_file():
        raise UserError(f"{path}: not a run folder (no metrics.json); give run folders made by "
                        "'egobench run' or 'egobench evaluate'")
    metrics = read_json(path / "metrics.json")
    if (not isinstance(metrics, dict) or not isinstance(metrics.get("metrics"), dict)
            or "method" not in metrics or "dataset" not in metrics):
        raise DataError(f"{path / 'metrics.json'}: not an egobench metrics file (no method/dataset/metrics); "
                        "re-run 'egobench evaluate' on the run")
    manifest = read_json(path / "manifest.json") if (path / "manifest.json").is_file() else None
    if complete:
        if not isinstance(manifest, dict):
            raise DataError(f"{path}: no readable manifest.json; a bundle needs the run's provenance "
                            "(re-run the same 'egobench run' command to rewrite it)")
        if manifest.get("state") not in (None, "complete"):
            raise UserError(f"{path}: run is not complete (state {truncate(manifest.get('state'))}); "
                            "rerun the same command to finish it")
    samples = pd.DataFrame()
    if (path / "samples.parquet").is_file():
        try:
            samples = pd.read_parquet(path / "samples.parquet")
        except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a damaged file
            raise DataError(f"{path / 'samples.parquet'}: cannot read ({truncate(e, 120)}); "
                            "re-run 'egobench evaluate' on the run") from None
    return RunFolder(path, metrics, samples, manifest if isinstance(manifest, dict) else {})
