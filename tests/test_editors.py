"""Today's image editors as methods (editors/): presets and diffusers-edit on tiny stand-ins, CPU."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from egobench.cli import main
from egobench.data import load_split
from tests.conftest import write_protocol

PRESETS = {
    "ip2p-hub": ("IP2PHub", "instruct-pix2pix"),
    "magicbrush": ("MagicBrush", "instruct-pix2pix"),
    "sdxl-ip2p": ("SDXLIP2P", "sdxl-instruct-pix2pix"),
    "ledits-pp": ("LEditsPP", "ledits-pp"),
    "flux-kontext": ("FluxKontext", "flux-kontext"),
    "qwen-image-edit": ("QwenImageEdit", "qwen-image-edit"),
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def protocol(tmp_path: Path) -> Path:
    path = tmp_path / "editors-small.yaml"
    write_protocol(path, name="editors-small", resolution=64, steps=2, scheduler="ddim")
    return path


def _run(method: str, out: Path, protocol: Path, *options: str):
    args = ["run", "-m", method, "-d", "demo", "--zoo", "tiny", "--limit", "2", "-p", str(protocol),
            "--out", str(out), "--quiet"]
    for o in options:
        args += ["-o", o]
    return CliRunner().invoke(main, args)


def _images(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "images").iterdir())}


def _tiny_folder(artifact: str) -> Path:
    import editors.presets  # noqa: F401 - declares the editors' artifacts (until its entry point is installed)
    from egobench.weights import WeightStore

    return WeightStore(zoo="tiny").resolve(artifact).path


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_runs_on_the_demo_split_with_its_tiny_stand_in(tmp_path, protocol, preset):
    cls, family = PRESETS[preset]
    out = tmp_path / preset
    r = _run(f"editors.presets:{cls}", out, protocol, "steps=2", "size=256")
    assert r.exit_code == 0, r.output
    images = _images(out)
    assert len(images) == 2
    config = json.loads((out / "manifest.json").read_text())["method"]["config"]
    assert config["name"] == preset and config["family"] == family and config["steps"] == 2
    assert config["finetuned_on_benchmark"] is False  # zero-shot: these weights never saw the benchmark
    assert config["hf_repo"] and config["license"]


def test_ip2p_baseline_and_diffusers_edit_give_identical_images(tmp_path, protocol):
    """The baseline's off-the-shelf mode and diffusers-edit on the same InstructPix2Pix folder: same weights,
    text (the raw label), input, sampler, guidance and per-sample generators, so the same PNG bytes."""
    folder = _tiny_folder("ip2p-init")
    a = _run("ip2p", tmp_path / "ip2p", protocol, "finetuned=false")
    assert a.exit_code == 0, a.output
    b = _run("editors.diffusers_edit:DiffusersEdit", tmp_path / "edit", protocol, f"pipeline={folder}",
             "prompt={label}", "scheduler=protocol")
    assert b.exit_code == 0, b.output
    assert _images(tmp_path / "ip2p") == _images(tmp_path / "edit")
    config = json.loads((tmp_path / "edit" / "manifest.json").read_text())["method"]["config"]
    assert config["pipeline"] == "diffusers StableDiffusionInstructPix2PixPipeline"
    assert config["finetuned_on_benchmark"] is False
    # batched calls keep one generator per sample: the same images up to float rounding of other batch shapes
    d = _run("editors.diffusers_edit:DiffusersEdit", tmp_path / "batched", protocol, f"pipeline={folder}",
             "prompt={label}", "scheduler=protocol", "batch_size=2")
    assert d.exit_code == 0, d.output
    for name, data in _images(tmp_path / "batched").items():
        batched = np.asarray(Image.open(io.BytesIO(data)), dtype=int)
        alone = np.asarray(Image.open(io.BytesIO(_images(tmp_path / "edit")[name])), dtype=int)
        assert np.abs(batched - alone).max() <= 2, name
    # the default text differs (the '#C C' prefix stripped), so an Ego4D sample's image changes
    c = _run("editors.diffusers_edit:DiffusersEdit", tmp_path / "stripped", protocol, f"pipeline={folder}",
             "scheduler=protocol")
    assert c.exit_code == 0, c.output
    assert _images(tmp_path / "stripped") != _images(tmp_path / "edit")


def test_a_cached_hub_id_and_a_class_override(tmp_path, protocol, monkeypatch):
    """``pipeline=owner/name`` loads the snapshot from the local Hugging Face cache (at a revision, never
    downloading); ``class=`` loads the Qwen-Image-Edit-2509 stand-in with the first QwenImageEditPipeline."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--an-editor" / "snapshots" / ("a" * 40)
    shutil.copytree(_tiny_folder("instruct-pix2pix"), snapshot)
    (cache / "models--someone--an-editor" / "refs").mkdir()
    (cache / "models--someone--an-editor" / "refs" / "v1").write_text("a" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    r = _run("editors.diffusers_edit:DiffusersEdit", tmp_path / "hub-run", protocol, "pipeline=someone/an-editor",
             "revision=v1")
    assert r.exit_code == 0, r.output
    config = json.loads((tmp_path / "hub-run" / "manifest.json").read_text())["method"]["config"]
    assert config["weights"] == "hf://someone/an-editor@v1" and config["family"] == "instruct-pix2pix"
    text = _refused(tmp_path, protocol, "editors.diffusers_edit:DiffusersEdit", "pipeline=someone/an-editor",
                    "revision=v2")
    assert "hf download someone/an-editor --revision v2" in text

    qwen = _tiny_folder("qwen-image-edit-2509")
    r = _run("editors.diffusers_edit:DiffusersEdit", tmp_path / "qwen", protocol, f"pipeline={qwen}",
             "class=QwenImageEditPipeline", "size=128", "guidance=4.0")
    assert r.exit_code == 0, r.output
    config = json.loads((tmp_path / "qwen" / "manifest.json").read_text())["method"]["config"]
    assert config["pipeline"] == "diffusers QwenImageEditPipeline" and config["guidance_means"] == "true_cfg_scale"


def _refused(tmp_path: Path, protocol: Path, method: str, *options: str) -> str:
    out = tmp_path / "never"
    r = _run(method, out, protocol, *options)
    assert r.exit_code != 0
    assert not out.exists()  # refused before any run directory exists
    text = r.output + (str(r.exception) if r.exception and not isinstance(r.exception, SystemExit) else "")
    return text


def test_a_non_editing_pipeline_is_refused_with_the_supported_list(tmp_path, protocol):
    folder = tmp_path / "sd-t2i"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    text = _refused(tmp_path, protocol, "editors.diffusers_edit:DiffusersEdit", f"pipeline={folder}")
    assert "'StableDiffusionPipeline' is not a supported diffusers editing pipeline" in text
    assert "StableDiffusionInstructPix2PixPipeline" in text and "FluxKontextPipeline" in text
    text = _refused(tmp_path, protocol, "editors.diffusers_edit:DiffusersEdit", f"pipeline={folder}",
                    "class=StableDiffusionImg2ImgPipeline")
    assert "'StableDiffusionImg2ImgPipeline' is not a supported" in text
    text = _refused(tmp_path, protocol, "editors.diffusers_edit:DiffusersEdit", "pipeline=nobody/not-cached-editor")
    assert "nor in the local Hugging Face cache" in text and "hf download nobody/not-cached-editor" in text


def test_a_missing_component_is_refused(tmp_path, protocol):
    folder = tmp_path / "no-unet"
    shutil.copytree(_tiny_folder("ip2p-init"), folder)
    shutil.rmtree(folder / "unet")
    text = _refused(tmp_path, protocol, "editors.diffusers_edit:DiffusersEdit", f"pipeline={folder}")
    assert "component 'unet' (UNet2DConditionModel)" in text and "is missing" in text


def test_offload_without_accelerate_is_refused(tmp_path, protocol, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "accelerate" else real(name, *a))
    text = _refused(tmp_path, protocol, "editors.presets:IP2PHub", "offload=model")
    assert "offload=model needs the 'accelerate' package" in text


def test_options_that_do_not_fit_the_family_are_refused(tmp_path, protocol):
    text = _refused(tmp_path, protocol, "editors.diffusers_edit:DiffusersEdit")
    assert "pass -o pipeline=HF_ID_OR_PATH" in text
    text = _refused(tmp_path, protocol, "editors.presets:FluxKontext", "image_guidance=1.5")
    assert "image_guidance applies to InstructPix2Pix pipelines" in text
    text = _refused(tmp_path, protocol, "editors.presets:FluxKontext", "negative_prompt=blurry")
    assert "takes no negative prompt" in text
    text = _refused(tmp_path, protocol, "editors.presets:LEditsPP", "batch_size=2")
    assert "one image per call" in text
    text = _refused(tmp_path, protocol, "editors.presets:IP2PHub", "prompt={verb} the {object}")
    assert "{object} is unknown" in text
    text = _refused(tmp_path, protocol, "editors.presets:MagicBrush", "finetuned=true")
    assert "off-the-shelf" in text


def test_prompt_templates():
    from editors.prompts import render, strip_narrator

    samples = list(load_split("demo", None, None))
    ego = next(s for s in samples if s.action.startswith("#C C"))
    assert strip_narrator("#C C opens the drawer") == "opens the drawer"
    assert render(None, ego) == ego.action[len("#C C "):]
    assert render("{verb}|{noun}|{label}", ego) == f"{ego.verb}|{ego.noun}|{ego.action}"
    assert render("{description}", ego) == ego.description
