"""Finetuning (diffusion_core, lego.train, lego.cli): tiny models on the demo split, CPU."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from diffusion_core.bundle import load_sd_bundle
from diffusion_core.data import PairDataset
from diffusion_core.ema import EMA
from diffusion_core.loss import CFGDropout, diffusion_loss
from diffusion_core.noise import NoiseSchedule
from diffusion_core.training import TrainConfig, train_loop
from egobench.data.datasets import DEMO_ROOT
from egobench.data.lego_release import load_release
from egobench.errors import DataError, UserError
from egobench.weights import TINY_MARKER, WeightStore
from lego.conditioning import LEGOConditioning
from lego.train import (
    LEGOTrainSpec,
    build_lego_bundle,
    lego_condition_fn,
    lego_extras,
    lego_train_config,
    train_lego,
)

TAG = "tiny-train-tag"
RES = 64  # training crops (tiny VAE: 8 x 8 latents)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def split():
    """The demo's EPIC val part as stand-in training data."""
    return load_release(DEMO_ROOT, "epickitchens", part="val")


@pytest.fixture(scope="module")
def features(split, tmp_path_factory):
    from lego.tiny import write_tiny_features

    root = tmp_path_factory.mktemp("vllm-features")
    write_tiny_features(root, split, TAG)
    return root


@pytest.fixture(scope="module")
def sd15(tiny_zoo):
    return WeightStore(zoo="tiny").resolve("sd15").path


def _spec(out, features, **kw):
    base = dict(dataset="epickitchens", data_root=DEMO_ROOT, out=out, features_root=features, part="val",
                model_tag=TAG, zoo="tiny", limit=4)
    base.update(kw)
    return LEGOTrainSpec(**base)


def _config(out, **kw):
    base = dict(max_steps=4, batch_size=2, resolution=RES, checkpoint_every=0)
    base.update(kw)
    return lego_train_config(out, **base)


# ---------------------------------------------------------------------------
# pieces
# ---------------------------------------------------------------------------
def test_cfg_dropout_bands_proportions_and_edges():
    d = CFGDropout()
    r = torch.rand(400_000, generator=torch.Generator().manual_seed(0))
    text, image = d.masks(r)
    n = len(r)
    props = {
        "text only": (text & ~image).sum().item() / n,
        "both": (text & image).sum().item() / n,
        "image only": (~text & image).sum().item() / n,
        "none": (~text & ~image).sum().item() / n,
    }
    for band, want in (("text only", 0.05), ("both", 0.05), ("image only", 0.05), ("none", 0.85)):
        assert abs(props[band] - want) < 0.003, (band, props)
    # the released get_input (uncond = 0.05), written out
    u = 0.05
    prompt_mask = r < 2 * u
    input_mask = 1 - ((r >= u).float() * (r < 3 * u).float())
    assert torch.equal(text, prompt_mask) and torch.equal(image, input_mask == 0)
    edges = torch.tensor([0.0, 0.0499, 0.05, 0.0999, 0.1, 0.1499, 0.15, 0.99])
    text, image = d.masks(edges)
    assert text.tolist() == [True, True, True, True, False, False, False, False]
    assert image.tolist() == [False, False, True, True, True, True, False, False]
    with pytest.raises(UserError):
        CFGDropout(0.5, 0.4, 0.2)


def test_noise_schedule_is_the_ldm_one():
    ns = NoiseSchedule()  # linear 0.00085..0.012 (diffusers "scaled_linear"), 1000 steps
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    ac = np.cumprod(1 - betas)
    assert torch.equal(ns.sqrt_alphas_cumprod, torch.tensor(np.sqrt(ac), dtype=torch.float32))
    x0, eps = torch.ones(3, 4, 2, 2), torch.full((3, 4, 2, 2), 2.0)
    t = torch.tensor([0, 500, 999])
    got = ns.add_noise(x0, eps, t)
    want = torch.tensor(np.sqrt(ac[[0, 500, 999]]) + 2 * np.sqrt(1 - ac[[0, 500, 999]]), dtype=torch.float32)
    assert torch.allclose(got[:, 0, 0, 0], want, atol=1e-6)
    with pytest.raises(UserError, match="epsilon"):
        NoiseSchedule(prediction_type="v_prediction")


def test_ema_decay_warmup_matches_litema():
    p = torch.nn.Parameter(torch.zeros(3))
    ema = EMA([("p", p)], decay=0.9999)
    shadow = torch.zeros(3)
    for n in range(1, 6):
        with torch.no_grad():
            p.add_(1.0)
        ema.update()
        d = min(0.9999, (1 + n) / (10 + n))  # LitEma.forward
        shadow -= (1 - d) * (shadow - p.detach())
        assert torch.allclose(ema.shadow["p"], shadow)
    state = ema.state_dict()
    other = EMA([("p", p)])
    other.load_state_dict(state)
    assert other.num_updates == 5 and torch.equal(other.shadow["p"], ema.shadow["p"])


def test_widened_unet_has_zero_initialized_extra_channels(sd15):
    plain = load_sd_bundle(sd15)
    wide = load_sd_bundle(sd15, in_channels=8)
    assert plain.unet.config.in_channels == 4 and wide.unet.config.in_channels == 8
    assert plain.mode == "t2i" and wide.mode == "ip2p"
    w = wide.unet.conv_in.weight
    assert torch.count_nonzero(w[:, 4:]) == 0
    assert torch.equal(w[:, :4], plain.unet.conv_in.weight)
    assert torch.equal(wide.unet.conv_in.bias, plain.unet.conv_in.bias)
    # so the widened UNet starts out as the text-to-image model, whatever the image latent
    g = torch.Generator().manual_seed(0)
    x, img = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    ctx = torch.randn(1, 77, 32, generator=g)
    with torch.no_grad():
        a = plain.unet(x, 10, encoder_hidden_states=ctx).sample
        b = wide.unet(torch.cat([x, img], 1), 10, encoder_hidden_states=ctx).sample
    assert torch.allclose(a, b, atol=1e-6)


def test_pair_dataset_released_transform(split):
    from PIL import Image

    ds = PairDataset(split, resolution=RES, resize=80, flip_prob=1.0)
    s = split[0]
    item = ds.item(0, np.random.default_rng(0))
    assert item["input"].shape == item["target"].shape == (3, RES, RES)
    assert item["text"] == s.description
    # LANCZOS to 80 x 80, 2x/255 - 1, one crop and one flip for both frames
    rng = np.random.default_rng(0)
    top, left = int(rng.integers(0, 17)), int(rng.integers(0, 17))
    for key, path in (("input", s.input_path), ("target", s.target_path)):
        ref = np.array(Image.open(path).convert("RGB").resize((80, 80), Image.Resampling.LANCZOS))
        ref = 2 * torch.from_numpy(ref).float().permute(2, 0, 1) / 255 - 1
        assert torch.equal(item[key], ref[:, top : top + RES, left : left + RES].flip(-1))
    center = ds.item(0)  # no rng: center crop, no flip
    assert torch.equal(center["input"], PairDataset(split, resolution=RES, resize=80).item(0)["input"])
    assert PairDataset(split, text="action").item(1)["text"] == split[1].action


def test_lego_extras_pad_text_to_77(split, features):
    extras = lego_extras(features, TAG, "val", use_image=True, use_text=True)
    from lego.tiny import tiny_features

    for s in list(split)[:4]:
        got = extras(s)
        ref = tiny_features(s)
        assert got["vllm_image"].shape == (16, 64)
        assert got["vllm_text"].shape == (77, 64)
        n = min(77, len(ref.text))
        assert np.array_equal(got["vllm_text"][:n], ref.text[:n])
        assert not got["vllm_text"][n:].any()


def test_loss_applies_dropout_to_text_image_and_vllm_tokens(split, features, sd15):
    """Dropped text: CLIP("") and zero VLLM tokens; dropped image: zero image latent."""
    bundle = build_lego_bundle(sd15, "full", vllm_hidden=64, image_tokens=16)
    ds = PairDataset(split, resolution=RES, extras=lego_extras(features, TAG, "val", True, True))
    from diffusion_core.bundle import encode_prompts
    from diffusion_core.data import collate

    batch = collate([ds.item(i) for i in range(4)])

    class Fixed(CFGDropout):
        def masks(self, r):
            return torch.tensor([True, True, False, False]), torch.tensor([False, True, True, False])

    seen = {}

    def hook(module, args, kwargs):
        seen["x"], seen["ctx"] = args[0].clone(), kwargs["encoder_hidden_states"].clone()

    h = bundle.unet.register_forward_pre_hook(hook, with_kwargs=True)
    bundle.extra["conditioning"].eval()
    try:
        loss = diffusion_loss(bundle, batch, extra_condition_fn=lego_condition_fn, dropout=Fixed(),
                              generator=torch.Generator().manual_seed(0))
    finally:
        h.remove()
    assert torch.isfinite(loss)
    x, ctx = seen["x"], seen["ctx"]
    assert x.shape == (4, 8, 8, 8) and ctx.shape == (4, 77 + 16 + 77, 32)
    with torch.no_grad():
        null = encode_prompts(bundle.tokenizer, bundle.text_encoder, [""], "cpu")[0]
        clip = encode_prompts(bundle.tokenizer, bundle.text_encoder, batch["text"], "cpu")
        img = bundle.vae.encode(batch["input"]).latent_dist.mode()
    for i, (drop_text, drop_image) in enumerate([(True, False), (True, True), (False, True), (False, False)]):
        assert torch.allclose(ctx[i, :77], null if drop_text else clip[i])
        assert (torch.count_nonzero(ctx[i, 77:]) == 0) == drop_text
        assert torch.equal(x[i, 4:], torch.zeros_like(img[i]) if drop_image else img[i])  # mode, unscaled


# ---------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------
def _fixed_batch_loss(folder, batch, n=4):
    """Mean loss of a saved LEGO folder on one batch with fixed noise and timesteps (no dropout)."""
    bundle = load_sd_bundle(folder)
    bundle.extra["conditioning"] = LEGOConditioning.from_pretrained(folder / "conditioning").eval()
    with torch.no_grad():
        return float(np.mean([
            diffusion_loss(bundle, batch, extra_condition_fn=lego_condition_fn, dropout=None,
                           generator=torch.Generator().manual_seed(k)).item() for k in range(n)
        ]))


def test_finetuning_lowers_the_loss_on_a_fixed_batch(split, features, sd15, tmp_path):
    from diffusion_core.data import collate

    spec = _spec(tmp_path / "out", features, limit=2)
    ds = PairDataset(list(split)[:2], resolution=RES, extras=lego_extras(features, TAG, "val", True, True))
    batch = collate([ds.item(0), ds.item(1)])
    from diffusion_core.scheduler import inference_scheduler
    from lego.train import lego_pipeline

    init = tmp_path / "init"
    b = build_lego_bundle(sd15, "full", vllm_hidden=64, image_tokens=16)  # the seeded init training starts from

    lego_pipeline({"vae": b.vae, "text_encoder": b.text_encoder, "tokenizer": b.tokenizer, "unet": b.unet,
                   "scheduler": inference_scheduler(b.noise), "conditioning": b.extra["conditioning"]}
                  ).save_pretrained(init)
    before = _fixed_batch_loss(init, batch)
    res = train_lego(spec, _config(tmp_path / "out", max_steps=20, learning_rate=1e-3, use_ema=False))
    after = _fixed_batch_loss(res.output_dir, batch)
    assert res.steps == 20 and len(res.losses) == 20
    assert after < 0.8 * before, (before, after)
    assert np.mean(res.losses[-5:]) < np.mean(res.losses[:5])
    record = json.loads((res.output_dir / "training.json").read_text())
    assert record["variant"] == "full" and record["steps"] == 20 and record["config"]["max_grad_norm"] is None
    assert (res.output_dir / TINY_MARKER).is_file()


def test_resume_continues_with_identical_losses(split, features, tmp_path):
    """Interrupted after step 5 (checkpoint at 3), resumed: same losses and weights as one run."""
    cfg = dict(max_steps=7, batch_size=1, grad_accum=2, checkpoint_every=3, checkpoints_keep=None)
    full = train_lego(_spec(tmp_path / "a", features), _config(tmp_path / "a", **cfg))

    class Stop(Exception):
        pass

    def stop(step, loss):
        if step == 5:
            raise Stop

    with pytest.raises(Stop):
        train_lego(_spec(tmp_path / "b", features), _config(tmp_path / "b", **cfg), on_step=stop)
    assert [p.name for p in sorted((tmp_path / "b" / "checkpoints").iterdir())] == ["step-3"]
    assert not (tmp_path / "b" / "model_index.json").exists()
    with pytest.raises(UserError, match="already holds training checkpoints"):
        train_lego(_spec(tmp_path / "b", features), _config(tmp_path / "b", **cfg))
    with pytest.raises(UserError, match="different settings"):
        train_lego(_spec(tmp_path / "b", features), _config(tmp_path / "b", **{**cfg, "batch_size": 2}, resume=True))
    resumed = train_lego(_spec(tmp_path / "b", features), _config(tmp_path / "b", **cfg, resume=True))
    assert resumed.resumed_from == 3 and resumed.steps == 7
    assert resumed.losses == full.losses  # bit-identical
    for sub in ("unet/diffusion_pytorch_model.safetensors", "conditioning/diffusion_pytorch_model.safetensors"):
        a, b = load_file(tmp_path / "a" / sub), load_file(tmp_path / "b" / sub)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_released_behaviour_keeps_projections_and_mixer_at_init(features, sd15, tmp_path):
    init = build_lego_bundle(sd15, "full", vllm_hidden=64, image_tokens=16, seed=23).extra["conditioning"]
    init_state = {k: v.clone() for k, v in init.state_dict().items()}
    unet0 = load_sd_bundle(sd15, in_channels=8).unet.state_dict()
    changed = {}
    for name, released in (("default", False), ("released", True)):
        out = tmp_path / name
        res = train_lego(_spec(out, features, released_behaviour=released),
                         _config(out, released_behaviour=released, max_steps=2, grad_accum=2, learning_rate=1e-3))
        cond = load_file(out / "conditioning" / "diffusion_pytorch_model.safetensors")
        changed[name] = [k for k in init_state if not torch.equal(cond[k], init_state[k])]
        unet = load_file(out / "unet" / "diffusion_pytorch_model.safetensors")
        assert any(not torch.equal(unet[k], unet0[k]) for k in unet0)  # the UNet trains either way
        record = json.loads((out / "training.json").read_text())
        assert record["released_behaviour"] is released and record["train_extra"] is (not released)
        assert record["ema"]["updates"] == (4 if released else 2)  # per micro-batch vs per step
        assert res.trainable_parameters > 0
    assert changed["released"] == []
    assert set(changed["default"]) == set(init_state)  # projections and mixer all moved


def test_text_to_image_mode_and_plain_ip2p(split, sd15, tmp_path):
    """Mode (c): a 4-channel UNet trains on target frames with text only; (b): IP2P without extra tokens."""
    from diffusers import StableDiffusionInstructPix2PixPipeline, StableDiffusionPipeline

    ds = PairDataset(list(split)[:2], resolution=RES, text="action")
    t2i = train_loop(load_sd_bundle(sd15), ds, TrainConfig(tmp_path / "t2i", max_steps=2, batch_size=2,
                                                          resolution=RES, checkpoint_every=0))
    assert t2i.mode == "t2i"
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / "t2i", local_files_only=True)
    assert pipe.unet.config.in_channels == 4
    ip2p = train_loop(load_sd_bundle(sd15, in_channels=8), ds, TrainConfig(tmp_path / "ip2p", max_steps=2,
                                                                          batch_size=2, resolution=RES))
    assert ip2p.mode == "ip2p"
    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(tmp_path / "ip2p", local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    img = pipe("open the cupboard", image=torch.rand(1, 3, RES, RES), num_inference_steps=2,
               generator=torch.Generator().manual_seed(0), output_type="np").images
    assert img.shape == (1, RES, RES, 3) and np.isfinite(img).all()


def test_cli_trains_a_folder_lego_method_loads(features, tmp_path):
    from egobench.protocol import load_protocol
    from lego.cli import train_lego as cmd
    from lego.method import LEGO

    out = tmp_path / "lego"
    args = ["--dataset", "epickitchens", "--data-root", str(DEMO_ROOT), "--features-root", str(features),
            "--out", str(out), "--part", "val", "--model-tag", TAG, "--zoo", "tiny", "--max-steps", "2",
            "--batch-size", "2", "--grad-accum", "1", "--resolution", str(RES), "--limit", "3", "--quiet"]
    r = CliRunner().invoke(cmd, args)
    assert r.exit_code == 0, r.output
    assert "trained 2 steps" in r.output and f"-o ldm={out}" in r.output
    p = load_protocol("egobench-v1")
    proto = dataclasses.replace(p, generation=dataclasses.replace(p.generation, steps=2))
    method = LEGO(proto, weights=WeightStore(zoo="tiny"), ldm=str(out), features_root=str(features), model_tag=TAG)
    samples = list(load_release(DEMO_ROOT, "epickitchens", part="val"))[:2]
    images = method.generate(samples, [1, 2])
    assert [im.shape for im in images] == [(3, 256, 256)] * 2 and all(np.isfinite(im).all() for im in images)

    r = CliRunner().invoke(cmd, args[:-1])  # same --out, no --resume
    assert r.exit_code != 0
    r = CliRunner().invoke(cmd, [a if a != str(features) else str(tmp_path / "none") for a in args])
    assert isinstance(r.exception, DataError) and "VLLM features not found" in str(r.exception)


# ---------------------------------------------------------------------------
# VLLM instruction tuning
# ---------------------------------------------------------------------------
def _conversations(tmp_path, split):
    items = []
    answers = ["the person holds the cupboard door handle and pulls the door open",
               "the person picks up the knife with the right hand and cuts the onion",
               "the person turns the tap on and washes the bowl in the sink",
               "the person puts the lid on the pot and moves it onto the counter"]
    for i, (s, a) in enumerate(zip(list(split)[:4], answers)):
        q = f"How does the person properly {s.action} that is displayed in the video frame?"
        value = f"{q}\n<image>" if i == 0 else f"<image>\n{q}"  # LLaVA moves <image> to the front
        items.append({"id": s.id, "image": s.meta["image_0"],
                      "conversations": [{"from": "human", "value": value}, {"from": "gpt", "value": a}]})
    path = tmp_path / "ego4d_for_tuning_forecasting.json"
    path.write_text(json.dumps(items))
    return path, items


def test_vllm_labels_supervise_answers_and_eos_only(tiny_zoo):
    from lego.train import IGNORE_INDEX, conversation_tokens
    from lego.vllm import _load_tokenizer
    from lego.vllm_artifacts import VARIANT_ARTIFACTS
    from lego.vllm_prompt import IMAGE_TOKEN_INDEX, QUERY, llava_llama_2_prompt

    tok = _load_tokenizer(WeightStore(zoo="tiny").resolve(VARIANT_ARTIFACTS["off-the-shelf"]).path)
    q = QUERY.format("open cupboard")
    item = {"image": "x.jpg", "conversations": [{"from": "human", "value": f"{q}\n<image>"},
                                                {"from": "gpt", "value": "the person pulls the door"},
                                                {"from": "human", "value": "and then?"},
                                                {"from": "gpt", "value": "the person looks inside"}]}
    ids, labels = conversation_tokens(item, tok, 2048)
    from lego.vllm_prompt import tokenize_with_image

    prompt = tokenize_with_image(llava_llama_2_prompt(q), tok)  # round 1 = the inference prompt
    ans1 = tok("the person pulls the door", add_special_tokens=False).input_ids + [tok.eos_token_id]
    instr2 = [tok.bos_token_id] + tokenize_with_image("[INST] and then? [/INST]", tok)[1:]
    ans2 = tok("the person looks inside", add_special_tokens=False).input_ids + [tok.eos_token_id]
    assert ids == prompt + ans1 + instr2 + ans2 and ids.count(IMAGE_TOKEN_INDEX) == 1
    assert labels == [IGNORE_INDEX] * len(prompt) + ans1 + [IGNORE_INDEX] * len(instr2) + ans2
    assert conversation_tokens(item, tok, 10) == (ids[:10], labels[:10])


def test_train_vllm_few_steps_and_load_back(split, tmp_path):
    from lego.cli import train_vllm as cmd
    from lego.train import llava_original_state_dict
    from lego.vllm import LegoVLLM
    from lego.vllm_convert import convert_llava_state_dict, load_original_state_dict

    conv, items = _conversations(tmp_path, split)
    images = DEMO_ROOT / "EgoGen" / "epickitchen" / "val"
    out = tmp_path / "vllm"
    r = CliRunner().invoke(cmd, ["--conversations", str(conv), "--images", str(images), "--out", str(out),
                                 "--zoo", "tiny", "--batch-size", "2", "--lr", "1e-3", "--quiet"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "trained 6 steps (4 conversations)" in r.output  # 3 epochs x 2 batches
    record = json.loads((out / "training.json").read_text())
    losses = record["losses"]
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < np.mean(losses[:2])
    assert (out / TINY_MARKER).is_file()

    # the release's file layout, loadable as the lego-vllm-ego4d artifact
    store = WeightStore(zoo="real", overrides={"lego-vllm-ego4d": out, "llava-vision-tower":
                                               WeightStore(zoo="tiny").resolve("llava-vision-tower").path})
    vllm = LegoVLLM.from_artifacts(store, "ego4d", device="cpu", max_new_tokens=4)
    feats = vllm.describe([split[0].input_path], [split[0].action], "epickitchens")[0]
    assert feats.image.shape[1] == 64 and np.isfinite(feats.text).all()
    # trained: the language model and projector moved, saved weights round-trip exactly
    init = load_original_state_dict(WeightStore(zoo="tiny").resolve("llava-llama-2-13b").path)
    saved = load_original_state_dict(out / "llava-llama-2-13b-chat-forecasting-finetune")
    assert set(saved) == {k for k in init if not k.endswith("rotary_emb.inv_freq")}
    for k in ("model.mm_projector.weight", "model.layers.0.mlp.up_proj.weight", "lm_head.weight"):
        assert not torch.allclose(saved[k].float(), init[k].float())
    from lego.vllm_convert import TargetNames

    names = TargetNames.of(vllm.model.state_dict().keys())
    assert set(convert_llava_state_dict(llava_original_state_dict(vllm.model), names)) == {
        k for k in vllm.model.state_dict() if not k.startswith(names.vision)}


# ---------------------------------------------------------------------------
# kill -9 during a checkpoint save
# ---------------------------------------------------------------------------
_KILLED_TRAINING = r"""
import os, shutil, signal, sys
from pathlib import Path

import torch

torch.set_num_threads(1)
import accelerate

from baselines.cli import BaselineTrainSpec, train_baseline, train_config
from egobench.data.datasets import DEMO_ROOT

out, where, at = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if where == "save_state":  # killed after accelerate wrote its files, before the state file and the rename
    real_save = accelerate.Accelerator.save_state

    def save_state(self, output_dir=None, **kw):
        r = real_save(self, output_dir, **kw)
        if output_dir.endswith(f"step-{at}"):
            os.kill(os.getpid(), signal.SIGKILL)
        return r

    accelerate.Accelerator.save_state = save_state
else:  # "prune": killed half-way through deleting an old checkpoint (state file already gone)
    real_rmtree = shutil.rmtree

    def rmtree(path, *a, **kw):
        p = Path(path)
        if p.is_dir() and (p / "trainer_state.json").is_file() and "checkpoints" in p.parts:
            (p / "trainer_state.json").unlink()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_rmtree(path, *a, **kw)

    shutil.rmtree = rmtree
spec = BaselineTrainSpec(model="ldm", dataset="epickitchens", data_root=DEMO_ROOT, init="sd15", part="val",
                         zoo="tiny", limit=2)
train_baseline(spec, train_config(out, **KW))
"""

_KILL_CFG = dict(max_steps=5, batch_size=1, grad_accum=1, resolution=RES, checkpoint_every=2, checkpoints_keep=1,
                 seed=3)


def _train_ldm(out, **kw):
    from baselines.cli import BaselineTrainSpec, train_baseline, train_config

    spec = BaselineTrainSpec(model="ldm", dataset="epickitchens", data_root=DEMO_ROOT, init="sd15", part="val",
                             zoo="tiny", limit=2)
    return train_baseline(spec, train_config(out, **{**_KILL_CFG, **kw}))


@pytest.mark.parametrize("where, resumes_from", [("save_state", 2), ("prune", 4)])
def test_kill_9_during_a_checkpoint_save_then_resume(tmp_path, tiny_zoo, where, resumes_from):
    """SIGKILL inside a save (files written, not published) or inside the deletion of an old
    checkpoint: resume loads only complete checkpoints, ends with the uninterrupted run's
    losses, and no partial folder is left behind."""
    import os
    import subprocess
    import sys

    from diffusion_core.checkpoints import STATE_FILE

    script = _KILLED_TRAINING.replace("**KW", f"**{_KILL_CFG!r}")
    env = {**os.environ, "EGOBENCH_TINY_ZOO": str(tiny_zoo)}
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-c", script, str(out), where, "4"], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == -9, r.stderr[-2000:]
    assert not (out / "model_index.json").exists()

    resumed = _train_ldm(out, resume=True)
    assert resumed.resumed_from == resumes_from and resumed.steps == _KILL_CFG["max_steps"]
    full = _train_ldm(tmp_path / "full")
    assert resumed.losses == full.losses  # bit-identical
    left = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert left == ["step-4"], left  # only complete checkpoints: no .tmp-/.trash- folder, no half-deleted step-2
    assert (out / "checkpoints" / "step-4" / STATE_FILE).is_file()
