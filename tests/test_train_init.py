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
from tests.conftest import fixed_batch_loss, write_protocol

pytestmark = pytest.mark.usefixtures("one_thread")

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
    write_protocol(protocol, name="init-small", resolution=64, steps=2, scheduler="ddim")
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


def test_a_preset_in_the_real_zoo_comes_from_the_hugging_face_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as C

    import editors.presets  # noqa: F401 - declares the editors' artifacts
    from baselines.cli import resolve_baseline_init

    commit = "89abcdef0123456789abcdef0123456789abcdef"
    cache = tmp_path / "hf"
    monkeypatch.setattr(C, "HF_HUB_CACHE", str(cache))
    with pytest.raises(MissingArtifactError, match="'hf download vinesmsuic/magicbrush-jul7"):
        resolve_baseline_init("magicbrush", WeightStore(zoo="real"))
    _fake_hf_cache(cache, "vinesmsuic/magicbrush-jul7", WeightStore(zoo="tiny").resolve("magicbrush").path, commit)
    for init, kind in (("vinesmsuic/magicbrush-jul7", "hf"), ("magicbrush", "preset")):
        found = resolve_baseline_init(init, WeightStore(zoo="real"))
        assert found.folder.name == commit
        assert found.record["kind"] == kind and found.record["artifact"] == "magicbrush"
        assert found.record["revision"] == commit and found.record["origin"] == "hf-cache"
        assert found.record["hf_repo"] == "vinesmsuic/magicbrush-jul7"


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


def test_sdxl_ip2p_trains_with_both_text_encoders_and_runs_as_the_preset(tmp_path):
    from diffusers import UNet2DConditionModel

    protocol = tmp_path / "p.yaml"
    write_protocol(protocol, name="init-small", resolution=64, steps=2, scheduler="ddim")
    folder = tmp_path / "sdxl-epic"
    r = CliRunner().invoke(main, TRAIN + ["--init", "sdxl-ip2p", "--out", str(folder)])
    assert r.exit_code == 0, r.output
    assert f"-m sdxl-ip2p -o pipeline={folder}" in r.output
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLInstructPix2PixPipeline" and "text_encoder_2" in index
    before = UNet2DConditionModel.from_pretrained(WeightStore(zoo="tiny").resolve("instructpix2pix-sdxl-768").path,
                                                  subfolder="unet")
    after = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    assert after.config.addition_embed_type == "text_time"
    changed = [k for k, v in before.state_dict().items() if not (v == after.state_dict()[k]).all()]
    assert any(k.startswith("add_embedding") for k in changed)  # the added text/time embedding was trained
    config = _run("editors.presets:SDXLIP2P", tmp_path / "run-xl", protocol, f"pipeline={folder}", "size=64",
                  "steps=2")
    assert config["finetuned_on_benchmark"] is True and config["trained_on"]["init"] == "sdxl-ip2p"


def test_sdxl_ip2p_finetuning_lowers_the_loss(tmp_path):
    """64 steps on two demo pairs lower SDXL InstructPix2Pix's loss on a fixed batch (same noise draws before
    and after; the loss goes through both text encoders and the added text / time conditioning)."""
    from diffusion_core.bundle import load_sd_bundle
    from diffusion_core.data import PairDataset, collate
    from egobench.data.lego_release import load_release

    ds = PairDataset(list(load_release(DEMO_ROOT, "epickitchens", part="val"))[:2], resolution=64, text="action")
    batch = collate([ds.item(0), ds.item(1)])
    init = WeightStore(zoo="tiny").resolve("instructpix2pix-sdxl-768").path
    assert load_sd_bundle(init).sdxl
    before = fixed_batch_loss(init, batch)
    out = tmp_path / "sdxl"
    args = ["train", "ip2p", "--dataset", "epickitchens", "--data-root", str(DEMO_ROOT), "--part", "val", "--zoo",
            "tiny", "--limit", "2", "--max-steps", "64", "--batch-size", "2", "--grad-accum", "1", "--lr", "1e-3",
            "--resolution", "64", "--checkpoint-every", "0", "--no-ema", "--quiet"]
    r = CliRunner().invoke(main, args + ["--init", "sdxl-ip2p", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "trained 64 steps" in r.output
    after = fixed_batch_loss(out, batch)
    assert after < 0.9 * before, (before, after)  # measured: 1.10 -> 0.89 (16 steps: only 1.04)


def test_sdxl_text_conditioning_is_the_pipelines():
    """encode_text and the added ids against diffusers' own SDXL InstructPix2Pix pipeline methods."""
    import torch

    from diffusion_core.bundle import encode_text, load_sd_bundle
    from editors.tiny_sd import tiny_sdxl_ip2p_pipeline

    pipe = tiny_sdxl_ip2p_pipeline()
    folder = WeightStore(zoo="tiny").resolve("instructpix2pix-sdxl-768").path
    bundle = load_sd_bundle(folder, in_channels=8)
    prompts = ["open the drawer", "pour water into the glass"]
    with torch.no_grad():
        ours = encode_text(bundle, prompts, torch.device("cpu"))
        embeds, _, pooled, _ = pipe.encode_prompt(prompts, device="cpu", num_images_per_prompt=1,
                                                  do_classifier_free_guidance=False)
    torch.testing.assert_close(ours.context, embeds)
    torch.testing.assert_close(ours.pooled, pooled)
    ids = pipe._get_add_time_ids((64, 64), (0, 0), (64, 64), dtype=pooled.dtype,
                                 text_encoder_projection_dim=bundle.text_encoder_2.config.projection_dim)
    added = ours.added_cond_kwargs(64)
    torch.testing.assert_close(added["time_ids"], ids.repeat(2, 1))
    assert added["text_embeds"] is ours.pooled


def test_train_ldm_refuses_an_sdxl_folder_in_one_line(tmp_path):
    import editors.presets  # noqa: F401 - declares the editors' artifacts

    out = tmp_path / "o"
    args = [a if a != "ip2p" else "ldm" for a in TRAIN]
    r = CliRunner().invoke(main, args + ["--init", "diffusers/sdxl-instructpix2pix-768", "--out", str(out)])
    assert r.exit_code == 2, r.output
    line = r.output.strip().splitlines()[-1]
    assert "an SDXL folder; 'train ldm' finetunes Stable Diffusion 1.5" in line
    assert not out.exists()
