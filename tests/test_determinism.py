"""Per-sample determinism under ``egobench-v1``: a diffusion method's images do not depend on
``--batch-size`` (issue 13, item 11), through the real CLI on the demo split (tiny zoo, CPU).

The guarantee tested is the one the protocol's notes and the README state: with per-sample
seeds, each sample's image is bit-identical whatever ``--batch-size`` (the methods run their
models one sample at a time by default), so every metric value is identical too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

import protocols
from egobench.cli import main

LIMIT = 3
#: metrics of egobench-v1 kept for these runs (the cheap ones; the images are compared bit for bit,
#: and a metric of identical images is identical whatever the model)
METRICS = ("psnr", "lpips")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def protocol_file(tmp_path_factory) -> Path:
    """egobench-v1 as shipped (per-sample seeds), 2 sampling steps, the cheap metrics."""
    data = yaml.safe_load((Path(protocols.__file__).parent / "egobench-v1.yaml").read_text(encoding="utf-8"))
    assert data["generation"]["seed_policy"] == "per-sample"
    data["generation"]["steps"] = 2
    data["metrics"] = [m for m in data["metrics"] if m["name"] in METRICS]
    path = tmp_path_factory.mktemp("protocol") / "egobench-v1-2steps.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _run(out: Path, protocol: Path, method: str, batch_size: int, *options: str) -> dict:
    args = ["run", "-m", method, "-d", "demo", "--protocol", str(protocol), "--batch-size", str(batch_size),
            "--limit", str(LIMIT), "--out", str(out), "--zoo", "tiny", "--quiet"]
    for o in options:
        args += ["-o", o]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    return json.loads((out / "metrics.json").read_text())


def _pixels(run_dir: Path) -> dict[str, np.ndarray]:
    files = sorted((run_dir / "images").rglob("*.png"))
    assert len(files) == LIMIT
    return {str(f.relative_to(run_dir / "images")): np.asarray(Image.open(f)) for f in files}


def _values(metrics: dict) -> dict[str, float]:
    return {k: v["value"] for k, v in metrics["metrics"].items()} if "metrics" in metrics else metrics


@pytest.mark.parametrize("method, options", [
    ("lego", ()),
    ("sdedit", ()),
    ("ip2p", ()),
    ("proxedit", ("steps=2",)),
])
def test_images_and_metrics_do_not_depend_on_batch_size(tmp_path, protocol_file, method, options):
    m1 = _run(tmp_path / "b1", protocol_file, method, 1, *options)
    m2 = _run(tmp_path / "b2", protocol_file, method, 2, *options)
    a, b = _pixels(tmp_path / "b1"), _pixels(tmp_path / "b2")
    assert a.keys() == b.keys()
    for name in a:
        diff = np.abs(a[name].astype(int) - b[name].astype(int))
        assert diff.max() == 0, f"{method} {name}: {int((diff > 0).sum())} pixels differ by up to {diff.max()}"
    assert _values(m1) == _values(m2)
