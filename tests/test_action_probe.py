"""The counterfactual-action probe of egobench-v2 (action-sensitivity) through `egobench run`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import protocols
from egobench.cli import main
from egobench.methods import Method, load_rgb

LIMIT = 4


class ActionAware(Method):
    """The ground-truth frame for the true action, the input frame for a counterfactual one; with
    EGOBENCH_TEST_PROBE_LOG set, appends one line per image it makes (which, and for whom)."""

    name = "action-aware"

    def generate(self, samples, seeds):
        log = os.environ.get("EGOBENCH_TEST_PROBE_LOG")
        out = []
        for s in samples:
            counterfactual = "counterfactual_of" in s.meta
            if log:
                with open(log, "a") as f:
                    f.write(f"{'cf' if counterfactual else 'true'} {s.id}\n")
                    if counterfactual and os.environ.get("EGOBENCH_TEST_DIE_AT_CF") == s.id:
                        os._exit(9)
            out.append(np.asarray(load_rgb(s.input_path if counterfactual else s.target_path), dtype=np.uint8))
        return out


@pytest.fixture(scope="module")
def protocol_file(tmp_path_factory) -> Path:
    """egobench-v2 with only the probe's metric and PSNR (the probe is what is tested)."""
    data = yaml.safe_load((Path(protocols.__file__).parent / "egobench-v2.yaml").read_text(encoding="utf-8"))
    data["metrics"] = [m for m in data["metrics"] if m["name"] in ("action-sensitivity", "psnr")]
    path = tmp_path_factory.mktemp("protocol") / "egobench-v2-probe.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _run(out: Path, protocol: Path, method: str, batch_size: int = 2) -> dict:
    r = CliRunner().invoke(main, ["run", "-m", method, "-d", "demo", "--protocol", str(protocol), "--limit",
                                  str(LIMIT), "--out", str(out), "--zoo", "tiny", "--quiet", "--batch-size",
                                  str(batch_size)])
    assert r.exit_code == 0, r.output
    return json.loads((out / "metrics.json").read_text())["metrics"]


def test_input_copy_scores_exactly_one_half_and_an_action_aware_method_one(tmp_path, protocol_file):
    m = _run(tmp_path / "copy", protocol_file, "input-copy")
    assert m["action-sensitivity"]["value"] == 0.5 and m["action-sensitivity"]["n"] == LIMIT
    probe = tmp_path / "copy" / "probes" / "counterfactual"
    assert len(list((probe / "images").rglob("*.png"))) == LIMIT
    prompts = json.loads((probe / "prompts.json").read_text())
    assert len(prompts) >= LIMIT and all(p["prompt"] and p["verb"] for p in prompts.values())
    # the probe's images are not scored by the other metrics: PSNR equals a run without the probe
    assert np.isfinite(m["psnr"]["value"])
    m = _run(tmp_path / "aware", protocol_file, "tests.test_action_probe:ActionAware")
    assert m["action-sensitivity"]["value"] == 1.0 and m["action-sensitivity"]["se"] == 0.0


def test_the_probe_resumes_without_regenerating_and_its_prompts_do_not_depend_on_batching(
        tmp_path, protocol_file, monkeypatch):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("EGOBENCH_TEST_PROBE_LOG", str(log))
    first = _run(tmp_path / "a", protocol_file, "tests.test_action_probe:ActionAware", batch_size=1)
    made = log.read_text().split("\n")
    assert sum(line.startswith("cf ") for line in made) == LIMIT
    # a rerun of the complete run makes no image, main or probe
    log.write_text("")
    again = _run(tmp_path / "a", protocol_file, "tests.test_action_probe:ActionAware", batch_size=3)
    assert log.read_text() == "" and again["action-sensitivity"] == first["action-sensitivity"]
    # remove two probe images (as a kill mid-probe leaves it): only those two are made again
    images = sorted((tmp_path / "a" / "probes" / "counterfactual" / "images").rglob("*.png"))
    for p in images[:2]:
        p.unlink()
    _run(tmp_path / "a", protocol_file, "tests.test_action_probe:ActionAware", batch_size=3)
    assert sorted(line for line in log.read_text().split("\n") if line) == sorted(
        f"cf {p.stem}" for p in images[:2])
    # another batch size chooses the same prompts
    _run(tmp_path / "b", protocol_file, "tests.test_action_probe:ActionAware", batch_size=4)
    pa = json.loads((tmp_path / "a" / "probes" / "counterfactual" / "prompts.json").read_text())
    pb = json.loads((tmp_path / "b" / "probes" / "counterfactual" / "prompts.json").read_text())
    assert pa == pb


@pytest.mark.usefixtures("one_thread")
def test_lego_on_the_tiny_zoo_makes_counterfactual_images(tmp_path, protocol_file):
    """LEGO reads VLLM features per prompt: the probe's counterfactual samples get theirs from the run's one
    source (tiny stand-ins here) instead of stopping the run after its own images were made."""
    data = yaml.safe_load(protocol_file.read_text(encoding="utf-8"))
    data["generation"]["steps"] = 2
    fast = tmp_path / "fast.yaml"
    fast.write_text(yaml.safe_dump(data), encoding="utf-8")
    metrics = _run(tmp_path / "lego", fast, "lego")
    probe = json.loads((tmp_path / "lego" / "manifest.json").read_text())["probes"]["counterfactual"]
    assert probe["state"] == "complete", probe
    assert len(list((tmp_path / "lego" / "probes" / "counterfactual" / "images").iterdir())) == LIMIT
    assert metrics["action-sensitivity"]["n"] == LIMIT and 0 <= metrics["action-sensitivity"]["value"] <= 1
