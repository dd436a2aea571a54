"""`egobench train lego --dataset demo`: a 20-step run logs a falling loss and loads into the pipeline."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

import egobench
from egobench.cli import main
from egobench.protocol import load_protocol

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: more threads only spin on a busy machine


def test_train_lego_on_demo_then_generate(tmp_path):
    out = tmp_path / "lego-demo"
    r = CliRunner().invoke(main, ["train", "lego", "--dataset", "demo", "--out", str(out), "--max-steps", "20",
                                  "--batch-size", "4", "--grad-accum", "1", "--lr", "1e-3", "--checkpoint-every",
                                  "10", "--limit", "8", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "trained 20 steps" in r.output and "step 10: loss" in r.output and "step 20: loss" in r.output
    log = json.loads((out / "training.json").read_text())
    losses = log["losses"]
    assert len(losses) == 20
    k = 5
    assert sum(losses[-k:]) / k < sum(losses[:k]) / k  # the loss falls
    p = load_protocol("egobench-v1")
    p = dataclasses.replace(p, generation=dataclasses.replace(p.generation, steps=2),
                            metrics=tuple(m for m in p.metrics if m.name in ("psnr", "lpips")))
    res = egobench.run("lego", "demo", protocol=p, limit=2, out=tmp_path / "run", progress=False,
                       method_options={"ldm": str(out)})
    assert res.generated == 2 and res.metrics["psnr"]["value"] is not None
    config = json.loads((res.run_dir / "manifest.json").read_text())["method"]["config"]
    assert config["finetuned_on_benchmark"] is True  # its weights carry the training record: not a zero-shot row
    assert config["trained_on"]["dataset"] == "demo" and config["trained_on"]["steps"] == 20
