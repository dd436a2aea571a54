"""``egobench train ip2p --init`` from an editor preset or a Hugging Face id; the run of the result is marked finetuned."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from egobench.cli import main
from egobench.data.datasets import DEMO_ROOT
from egobench.errors import MissingArtifactError, UserError
from egobench.weights import WeightStore

pytestmark = pytest.mark.usefixtures("one_thread")

PROTOCOL = """
name: init-small
version: "1.0"
generation:
  resolution: 64
  steps: 2
  scheduler: ddim
  seed: 0
  seed_policy: per-sample
  output_format: png
  value_map: clamp
  output_layout: flat
metrics:
  - name: psnr
    metric: psnr
"""

#: training on the demo's EPIC part (a LEGO-layout release), two samples
TRAIN = ["train", "ip2p", "--dataset", "epickitchens", "--data-root", str(DEMO_ROOT), "--part", "val", "--zoo", "tiny",
         "--limit", "2", "--max-steps", "1", "--batch-size", "1", "--grad-accum", "1", "--resolution", "64",
         "--checkpoint-every", "0", "--quiet"]


def _run(method: str, out: Path, protocol: Path, *options: str) -> dict:
    args = ["run", "-m", method, "-d", "demo", "--zoo", "tiny", "--limit", "2", "-p", str(protocol), "--out", str(out),
            "--quiet"]
    for o in options:
        args += ["-o", o]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert len(list((out / "images").iterdir())) == 2
    return json.loads((out / "manifest.json").read_text())["method"]["config"]


def test_train_from_the_magicbrush_preset_then_run_it_marked_finetuned(tmp_path):
    protocol = tmp_path / "p.yaml"
    protocol.write_text(PROTOCOL)
    folder = tmp_path / "mb-epic"
    r = CliRunner().invoke(main, TRAIN + ["--init", "magicbrush", "--out", str(folder)])
    assert r.exit_code == 0, r.output
    record = json.loads((folder / "training.json").read_text())
    assert record["init"] == "magicbrush"
    assert record["init_source"] == {"kind": "preset", "preset": "magicbrush", "artifact": "magicbrush",
                                     "origin": "tiny-zoo", "hf_repo": "vinesmsuic/magicbrush-jul7"}

    config = _run("ip2p", tmp_path / "run-ip2p", protocol, f"model={folder}")
    assert config["finetuned_on_benchmark"] is True
    assert config["trained_on"]["dataset"] == "epickitchens" and config["trained_on"]["init"] == "magicbrush"
    # the preset with the finetuned folder as its pipeline: finetuned; the preset itself: zero-shot
    config = _run("editors.presets:MagicBrush", tmp_path / "run-mb-ft", protocol, f"pipeline={folder}", "size=64")
    assert config["finetuned_on_benchmark"] is True and config["trained_on"]["split_fingerprint"]
    config = _run("editors.presets:MagicBrush", tmp_path / "run-mb", protocol, "size=64")
    assert config["finetuned_on_benchmark"] is False and "trained_on" not in config


def _capture_training(monkeypatch) -> dict:
    """Replace the loop by a recorder of what it would be given (resolution and loading still run)."""
    import diffusion_core.training

    seen: dict = {}

    def fake_loop(bundle, dataset, config, **kw):
        seen.update(kw["record"], mode=bundle.mode)
        raise SystemExit(0)

    monkeypatch.setattr(diffusion_core.training, "train_loop", fake_loop)
    return seen


def _fake_hf_cache(root: Path, repo: str, source: Path, commit: str) -> Path:
    """A Hugging Face cache entry of ``repo`` (refs/main -> snapshots/<commit>) holding ``source``'s files."""
    entry = root / ("models--" + repo.replace("/", "--"))
    snapshot = entry / "snapshots" / commit
    shutil.copytree(source, snapshot)
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(commit)
    return snapshot


def test_init_from_a_cached_hugging_face_id_records_its_snapshot_commit(tmp_path, monkeypatch):
    import editors.presets  # noqa: F401 - declares the editors' artifacts

    tiny = WeightStore(zoo="tiny").resolve("instruct-pix2pix").path
    commit = "0123456789abcdef0123456789abcdef01234567"
    cache = tmp_path / "hf"
    _fake_hf_cache(cache, "someone/ip2p-variant", tiny, commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as C

    monkeypatch.setattr(C, "HF_HUB_CACHE", str(cache))
    seen = _capture_training(monkeypatch)
    args = [a if a != "tiny" else "real" for a in TRAIN]
    r = CliRunner().invoke(main, args + ["--init", "someone/ip2p-variant", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert seen["mode"] == "ip2p"
    assert seen["init_source"] == {"kind": "hf", "hf_repo": "someone/ip2p-variant", "origin": "hf-cache",
                                   "revision": commit}
    assert seen["init_folder"].endswith(commit)


def test_a_registered_hugging_face_id_resolves_as_its_artifact():
    from baselines.cli import resolve_baseline_init

    found = resolve_baseline_init("vinesmsuic/magicbrush-jul7", WeightStore(zoo="tiny"))
    assert found.tiny and found.record["artifact"] == "magicbrush" and found.record["kind"] == "hf"


def test_an_id_missing_from_the_cache_says_how_to_fetch_it(tmp_path, monkeypatch):
    import huggingface_hub.constants as C

    from baselines.cli import resolve_baseline_init

    monkeypatch.setattr(C, "HF_HUB_CACHE", str(tmp_path / "empty-hf"))
    with pytest.raises(MissingArtifactError) as e:
        resolve_baseline_init("someone/not-cached", WeightStore(zoo="real"))
    msg = str(e.value)
    assert "\n" not in msg and "not in the local Hugging Face cache" in msg
    assert "'hf download someone/not-cached'" in msg
    with pytest.raises(UserError, match="no registered artifact, so the tiny zoo has no stand-in"):
        resolve_baseline_init("someone/not-cached", WeightStore(zoo="tiny"))
    with pytest.raises(UserError, match="no such folder, artifact .* or Hugging Face id.*magicbrush"):
        resolve_baseline_init("no-such-thing", WeightStore(zoo="tiny"))


@pytest.mark.parametrize("init", ["sdxl-ip2p", "diffusers/sdxl-instructpix2pix-768", "instructpix2pix-sdxl-768",
                                  "FOLDER"])
def test_sdxl_is_refused_in_one_line_before_any_work(tmp_path, init):
    import editors.presets  # noqa: F401 - declares the editors' artifacts

    if init == "FOLDER":
        init = str(WeightStore(zoo="tiny").resolve("instructpix2pix-sdxl-768").path)
    out = tmp_path / "o"
    r = CliRunner().invoke(main, TRAIN + ["--init", init, "--out", str(out)])
    assert r.exit_code == 2, r.output
    line = r.output.strip().splitlines()[-1]
    assert "SDXL InstructPix2Pix" in line and "cannot be finetuned by this loop" in line
    assert not out.exists()
