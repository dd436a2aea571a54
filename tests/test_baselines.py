"""The diffusion baselines: ip2p, sdedit, proxedit (tiny zoo, CPU)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from egobench.data import Split, load_split
from egobench.errors import ConfigError, MissingArtifactError
from egobench.protocol import load_protocol
from egobench.weights import WeightStore
from tests.conftest import fixed_batch_loss


def _protocol(steps: int = 2, **gen):
    p = load_protocol("egobench-v1")
    return dataclasses.replace(
        p, generation=dataclasses.replace(p.generation, steps=steps, **gen),
        metrics=tuple(m for m in p.metrics if m.name in ("psnr", "lpips")),
    )


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def samples():
    return list(load_split("demo", None, 2))


@pytest.fixture(scope="module")
def ldm_pipe():
    from baselines.tiny import tiny_ldm_pipeline

    return tiny_ldm_pipeline()


def _z_independent(pipe):
    """The tiny LDM with ``conv_in`` zeroed: the UNet's output depends on t and the
    text only, so DDIM inversion is exactly invertible when timesteps line up."""
    import copy

    pipe = copy.copy(pipe)
    pipe.unet = copy.deepcopy(pipe.unet)
    with torch.no_grad():
        pipe.unet.conv_in.weight.zero_()
    return pipe


# ---------------------------------------------------------------------------
# ip2p
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("scheduler, diffusers_class", [("ddim", "DDIMScheduler"), ("euler", "EulerDiscreteScheduler")])
def test_ip2p_equals_diffusers_pipeline_called_directly(samples, scheduler, diffusers_class):
    """The ip2p method against diffusers' own InstructPix2Pix pipeline on the same tiny-zoo folder.

    The reference side uses nothing of the project: diffusers loads the folder, the sampler is
    diffusers' class built from the folder's scheduler config, and the input frame is opened with
    PIL and squashed to 256 x 256 by the pipeline's own ``VaeImageProcessor.resize`` (its default
    resample, LANCZOS), then normalized by the pipeline. The protocol names a diffusers sampler
    (``ddim``, ``euler``), so the method is meant to run exactly this computation: same weights,
    same classes and settings, fp32 on the same CPU kernels with the same batch shapes. The
    tolerance is therefore zero; any difference means the method changed a step (a resize, a
    scheduler setting, the text, the guidance). (``euler-ancestral`` is k-diffusion's sampler, not
    diffusers'; test_lego_pipeline compares it with k-diffusion's equations.)
    """
    import diffusers
    from diffusers import StableDiffusionInstructPix2PixPipeline
    from PIL import Image

    from baselines.ip2p import IP2P

    proto = _protocol(steps=3, scheduler=scheduler)
    method = IP2P(proto, weights=WeightStore(zoo="tiny"))
    method.prepare(load_split("demo", None, 2))
    ours = method.generate(samples, [11, 12])

    folder, tiny = method.folder("ego4d")
    assert tiny
    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
        str(folder), safety_checker=None, requires_safety_checker=False, local_files_only=True)
    pipe.scheduler = getattr(diffusers, diffusers_class).from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    gen = proto.generation

    def frame(s):
        with Image.open(s.input_path) as im:
            return pipe.image_processor.resize(im.convert("RGB"), 256, 256)

    def direct(group, seeds=None):
        generator = None if seeds is None else [torch.Generator().manual_seed(k) for k in seeds]
        return pipe(
            prompt=[s.action for s in group], image=[frame(s) for s in group], num_inference_steps=3,
            guidance_scale=gen.text_guidance, image_guidance_scale=gen.image_guidance, generator=generator,
            output_type="pt",
        ).images

    # per-sample seeds: one pipeline call per sample by default (batch-size independent)
    ref = [direct([s], [k])[0] for s, k in zip(samples, (11, 12))]
    assert [o.shape for o in ours] == [(3, 256, 256)] * 2
    for a, b in zip(ours, ref):
        assert np.array_equal(a, b.numpy()), np.abs(a - b.numpy()).max()
    # -o batch_size=2: one call for both
    batched = IP2P(proto, weights=WeightStore(zoo="tiny"), batch_size=2).generate(samples, [11, 12])
    for a, b in zip(batched, direct(samples, [11, 12])):
        assert np.array_equal(a, b.numpy()), np.abs(a - b.numpy()).max()

    # global RNG: one sample at a time, in order, from the global generator
    torch.manual_seed(5)
    glob = method.generate(samples, [None, None])
    torch.manual_seed(5)
    assert np.array_equal(glob[0], direct(samples[:1])[0].numpy())


# ---------------------------------------------------------------------------
# sdedit
# ---------------------------------------------------------------------------
def test_sdedit_near_zero_strength_returns_input_up_to_vae_round_trip(samples):
    from diffusers.image_processor import VaeImageProcessor

    from baselines._common import load_input
    from baselines.sdedit import SDEdit

    # 100 steps x strength 0.01 = one DDIM step at t = 1
    method = SDEdit(_protocol(steps=100, scheduler="ddim"), weights=WeightStore(zoo="tiny"), strength=0.01)
    out = method.generate(samples[:1], [3])[0]
    vae = method.pipeline("ego4d").vae
    x = VaeImageProcessor(vae_scale_factor=8).preprocess(load_input(samples[0], 256))
    with torch.no_grad():
        # img2img's first draw from the sample's generator is the posterior sample
        z = vae.encode(x).latent_dist.sample(torch.Generator().manual_seed(3))
        round_trip = (vae.decode(z).sample / 2 + 0.5).clamp(0, 1)[0].numpy()
    err = np.abs(out - round_trip).mean()
    # one step at t = 1 moves the unit-std latent by about sqrt(1 - alpha_1) = 0.04 of its std;
    # the tiny VAE's own round-trip error is about 0.2
    assert err < 0.03, err
    # contrast: a full-strength edit is far from it
    far = SDEdit(_protocol(steps=2), weights=WeightStore(zoo="tiny"), strength=1.0).generate(samples[:1], [3])[0]
    assert np.abs(far - round_trip).mean() > 10 * err


def test_sdedit_strength_is_checked():
    from baselines.sdedit import SDEdit

    with pytest.raises(ConfigError, match=r"strength must be in \(0, 1\]"):
        SDEdit(_protocol(), strength=0.0)
    with pytest.raises(ConfigError, match="runs no denoising step"):
        SDEdit(_protocol(steps=10), strength=0.05)
    with pytest.raises(ConfigError, match="unknown key 'strenght'.*did you mean 'strength'"):
        SDEdit(_protocol(), strenght=0.5)


# ---------------------------------------------------------------------------
# proxedit: the pieces
# ---------------------------------------------------------------------------
def test_prox_operators_match_their_formulas():
    from baselines.proxedit import edit_mask, pair_threshold, prox_l0, prox_l1, threshold

    d = torch.linspace(-5, 5, 101).reshape(1, 1, 1, 101)
    tau = torch.tensor(1.0)
    l0 = prox_l0(d, tau)
    expect_l0 = torch.where(d.abs() <= 1, torch.zeros_like(d), d - torch.sign(d))  # soft threshold
    torch.testing.assert_close(l0, expect_l0)
    l1 = prox_l1(d, tau)
    expect_l1 = torch.where(d.abs() <= 1, 0.0, torch.where(d > 0, torch.where(d < 2, d - 1, d - 2), d + 2))
    torch.testing.assert_close(l1, expect_l1)
    # the code's sequential where(): d in (-2 tau, -tau) comes out positive
    assert float(prox_l1(torch.tensor(-1.5), tau)) == pytest.approx(0.5)
    # masks: |prox(d)| > tau selects |d| > 2 tau (l0) and |d| > 3 tau (l1)
    assert torch.equal(edit_mask(l0, tau, 0).bool(), d.abs() > 2)
    assert torch.equal(edit_mask(l1, tau, 0).bool(), d.abs() > 3)

    g = torch.Generator().manual_seed(0)
    e = torch.randn(1, 4, 8, 8, generator=g)
    assert float(threshold(e.abs(), 0.7)) == pytest.approx(float(np.quantile(e.abs().numpy(), 0.7)), rel=1e-6)
    assert float(threshold(e.abs(), -0.25)) == 0.25  # a negative quantile is a fixed threshold
    # the code's threshold: over [source row (zero under NPI), target row]
    pair = torch.cat([torch.zeros(256), e.abs().flatten()]).numpy()
    assert float(pair_threshold(e, 0.7)) == pytest.approx(float(np.quantile(pair, 0.7)), rel=1e-6)
    # ... which is about the (2q - 1) quantile of the target row alone
    lo, hi = np.quantile(e.abs().numpy(), [0.39, 0.41])
    assert lo <= float(pair_threshold(e, 0.7)) <= hi


def test_edit_mask_dilates_per_channel_and_inversion_guidance_formula():
    from baselines.proxedit import edit_mask, inversion_guidance

    d = torch.zeros(1, 2, 6, 6)
    d[0, 0, 2, 3] = 5.0
    mask = edit_mask(d, torch.tensor(1.0), radius=1)
    expect = torch.zeros_like(d)
    expect[0, 0, 1:4, 2:5] = 1.0
    assert torch.equal(mask, expect)
    z, z_inv = torch.randn(1, 2, 6, 6), torch.randn(1, 2, 6, 6)
    out = inversion_guidance(z, z_inv, mask, lr=1.0)  # z - (z - z_inv): z_inv up to rounding
    torch.testing.assert_close(out[mask == 0], z_inv[mask == 0], atol=1e-6, rtol=0)
    assert torch.equal(out[mask == 1], z[mask == 1])
    half = inversion_guidance(z, z_inv, mask, lr=0.5)
    torch.testing.assert_close(half[mask == 0], ((z + z_inv) / 2)[mask == 0])


def test_refinement_mapper_aligns_tokens():
    from baselines.proxedit import align_tokens, refinement_mapper

    assert align_tokens([0, 1], [0, 7, 8, 1]) == [0, -1, -1, 1]  # "" -> "open drawer": BOS, EOS kept
    assert align_tokens([0, 5, 6, 1], [0, 5, 9, 6, 1]) == [0, 1, -1, 2, 3]  # a word inserted
    mapper, alphas = refinement_mapper([0, 1], [0, 7, 8, 1], max_len=8)
    assert mapper.tolist() == [0, -1, -1, 1, 4, 5, 6, 7]  # padding positions map to themselves
    assert alphas.tolist() == [1, 0, 0, 1, 1, 1, 1, 1]


def test_p2p_controller_and_processor():
    from diffusers.models.attention_processor import AttnProcessor

    from baselines.proxedit import P2PAttnProcessor, PromptToPrompt
    from baselines.tiny import tiny_ldm_pipeline

    mapper, alphas = torch.tensor([0, 2, 1, 3]), torch.tensor([1.0, 1.0, 0.0, 1.0])
    ctl = PromptToPrompt(mapper, alphas, steps=10, cross_replace=0.4, self_replace=0.6)
    assert (ctl.cross_until, ctl.self_until) == (4, 6)
    probs = torch.rand(3 * 2, 5, 4)  # 3 rows x 2 heads, 5 queries, 4 keys
    p = probs.clone().view(3, 2, 5, 4)
    out = ctl(probs.clone(), is_cross=True).view(3, 2, 5, 4)
    assert torch.equal(out[:2], p[:2])  # source and target-uncond rows untouched
    torch.testing.assert_close(out[2], p[0][..., mapper] * alphas + p[2] * (1 - alphas))
    assert torch.equal(ctl(probs.clone(), is_cross=False).view(3, 2, 5, 4)[2], p[0])
    ctl.step = 3  # last step with cross-attention refinement
    assert not torch.equal(ctl(probs.clone(), is_cross=True), probs)
    ctl.step = 4
    assert torch.equal(ctl(probs.clone(), is_cross=True), probs)
    assert not torch.equal(ctl(probs.clone(), is_cross=False), probs)  # self-attention until step 6
    ctl.step = 6
    assert torch.equal(ctl(probs.clone(), is_cross=False), probs)
    many = torch.rand(3 * 2, 32 * 32 + 1, 4)  # more queries than the code replaces
    ctl.step = 0
    assert torch.equal(ctl(many.clone(), is_cross=False), many)

    # with nothing to replace, the processor is diffusers' AttnProcessor
    unet = tiny_ldm_pipeline().unet
    z, ctx = torch.randn(3, 4, 8, 8), torch.randn(3, 77, 32)
    idle = PromptToPrompt(torch.arange(77), torch.ones(77), steps=10, cross_replace=0.0, self_replace=0.0)
    with torch.no_grad():
        unet.set_attn_processor(AttnProcessor())
        ref = unet(z, 500, encoder_hidden_states=ctx).sample
        unet.set_attn_processor(P2PAttnProcessor(idle))
        got = unet(z, 500, encoder_hidden_states=ctx).sample
    torch.testing.assert_close(got, ref)


# ---------------------------------------------------------------------------
# proxedit: inversion, reconstruction, guidance on the trajectory
# ---------------------------------------------------------------------------
def test_ddim_inversion_then_reconstruction_returns_the_latent(ldm_pipe):
    from diffusers import DDIMInverseScheduler

    from baselines.proxedit import ProxEditor, ProxEditSettings

    ed = ProxEditor.from_pipeline(_z_independent(ldm_pipe))
    z0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    emb = ed.encode_text([""])
    traj = ed.invert(z0, emb, 10)
    assert len(traj) == 11 and torch.equal(traj[0], z0)
    rec = ed.sample(traj[-1], emb, 10)
    assert float((rec - z0).norm() / z0.norm()) < 1e-5
    # the full edit path with guidance off (target = source, no prox, no inversion guidance)
    # reconstructs too: negative-prompt inversion + prompt-to-prompt leave it unchanged
    none = ProxEditSettings(steps=10, prox="none", inversion_guidance=False)
    torch.testing.assert_close(ed.edit(traj, "", "", none), rec, atol=1e-5, rtol=0)
    # control: inverse timesteps one offset off do not come back
    ed.inverse_scheduler = DDIMInverseScheduler.from_config({**ed.inverse_scheduler.config, "steps_offset": 0})
    off = ed.sample(ed.invert(z0, emb, 10)[-1], emb, 10)
    assert float((off - z0).norm() / z0.norm()) > 1e-2


def test_inversion_guidance_keeps_unedited_positions_on_the_trajectory(ldm_pipe):
    from baselines.proxedit import ProxEditor, ProxEditSettings

    ed = ProxEditor.from_pipeline(ldm_pipe)
    z0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    steps = 10
    traj = ed.invert(z0, ed.encode_text([""]), steps)
    trace: list[dict] = []
    out = ed.edit(traj, "", "open drawer", ProxEditSettings(steps=steps), trace=trace)
    guided = [r for r in trace if r["t"] < 400]
    assert [r["t"] for r in trace] == [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]
    assert len(guided) == 4 and all(r["mask"] is None for r in trace if r["t"] >= 400)
    for r in guided:
        keep = r["mask"] == 0
        z_inv = r["z_inv"].expand_as(r["z"])
        # unedited positions: on the trajectory (z - (z - z*) up to rounding); edited: the DDIM step
        torch.testing.assert_close(r["z"][keep], z_inv[keep], atol=1e-6, rtol=0)
        assert torch.equal(r["z"][~keep], r["stepped"][~keep])
        torch.testing.assert_close(r["z"][0], r["z_inv"][0], atol=1e-6, rtol=0)  # the source branch (mask 0)
        assert 0 < float(r["mask"][1].mean()) < 1
    # the last step lands on z*_0 = the input latent wherever the final mask is 0
    keep = trace[-1]["mask"][1:] == 0
    torch.testing.assert_close(out[keep], z0[keep], atol=1e-6, rtol=0)
    assert float((out - z0).abs().max()) > 1e-2
    # without proximal guidance there is no mask and no pull toward the trajectory
    trace = []
    ed.edit(traj, "", "open drawer", ProxEditSettings(steps=steps, prox="none"), trace=trace)
    assert all(r["mask"] is None and torch.equal(r["z"], r["stepped"]) for r in trace)


def test_proxedit_options_are_checked():
    from baselines.proxedit import ProxEdit

    with pytest.raises(ConfigError, match="unknown key 'cross_replace_steps'.*did you mean 'cross_replace'"):
        ProxEdit(_protocol(), cross_replace_steps=0.4)
    with pytest.raises(ConfigError, match="'l2' is not one of"):
        ProxEdit(_protocol(), prox="l2")
    with pytest.raises(ConfigError, match=r"self_replace must be in \[0, 1\]"):
        ProxEdit(_protocol(), self_replace=1.5)
    s = ProxEdit(_protocol(steps=7)).settings
    assert (s.steps, s.guidance, s.prox, s.quantile, s.recon_t, s.recon_lr) == (7, 7.5, "l0", 0.7, 400, 1.0)
    assert (s.cross_replace, s.self_replace, s.dilate, s.inversion_guidance) == (0.4, 0.6, 1, True)
    assert ProxEdit(_protocol(), steps=50, guidance=3.0).settings.steps == 50


# ---------------------------------------------------------------------------
# Through the run engine, weights, artifacts
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("method, artifact", [
    ("baselines.ip2p:IP2P", "ip2p-ego4d"),
    ("baselines.sdedit:SDEdit", "ldm-ego4d"),
    ("baselines.proxedit:ProxEdit", "ldm-ego4d"),
])
def test_baselines_run_on_demo_with_tiny_zoo(tmp_path, method, artifact):
    import egobench

    res = egobench.run(method, "demo", protocol=_protocol(steps=2), zoo="tiny", limit=2,
                       out=tmp_path / "run", progress=False)
    assert res.generated == 2 and res.failed == 0 and not res.comparable
    for name in ("psnr", "lpips"):
        assert math.isfinite(res.metrics[name]["value"])
    manifest = json.loads((res.run_dir / "manifest.json").read_text())
    assert artifact in manifest["artifacts"]
    assert manifest["method"]["config"]["weights"]["ego4d"] == artifact


def test_missing_weights_say_how_to_make_them(tmp_path):
    from baselines.ip2p import IP2P
    from baselines.proxedit import ProxEdit

    split = load_split("demo", None, 1)
    store = WeightStore(zoo="real", weights_dir=tmp_path)
    with pytest.raises(MissingArtifactError, match="weights 'ldm-ego4d' not found locally; no download source: "
                                                   "make it with 'egobench train ldm -d ego4d "):
        ProxEdit(_protocol(), weights=store).prepare(split)
    with pytest.raises(MissingArtifactError, match="'egobench train ip2p -d ego4d .*or pass -o model=PATH"):
        IP2P(_protocol(), weights=store).prepare(split)
    with pytest.raises(MissingArtifactError, match="fetch it with 'egobench weights download ip2p-init'"):
        IP2P(_protocol(), weights=store, finetuned=False).prepare(split)
    with pytest.raises(ConfigError, match="not a diffusers folder.*egobench train ip2p"):
        IP2P(_protocol(), model=str(tmp_path))


def test_artifacts_are_declared():
    import baselines.ip2p  # noqa: F401
    import baselines.sdedit  # noqa: F401
    from egobench.weights import ARTIFACTS

    init = ARTIFACTS.get("ip2p-init")
    assert init.hf_repo == "timbrooks/instruct-pix2pix" and "tokenizer/vocab.json" in init.files
    for name in ("ip2p-ego4d", "ip2p-epic", "ldm-ego4d", "ldm-epic"):
        art = ARTIFACTS.get(name)
        assert art.hf_repo is None and art.url is None and "egobench train" in art.description
        assert art.tiny and art.tiny.startswith("baselines.tiny:")


# ---------------------------------------------------------------------------
# Finetuning: egobench train ip2p / train ldm
# ---------------------------------------------------------------------------
RES = 64  # training crops (8 x 8 latents)


@pytest.mark.parametrize("model, init", [("ip2p", "ip2p-init"), ("ldm", "sd15")])
def test_finetuning_lowers_the_loss_and_loads_back(tmp_path, model, init):
    from click.testing import CliRunner

    from baselines.cli import train_ip2p, train_ldm
    from baselines.ip2p import IP2P
    from baselines.proxedit import ProxEdit
    from baselines.sdedit import SDEdit
    from diffusion_core.data import PairDataset, collate
    from egobench.data.datasets import DEMO_ROOT
    from egobench.data.lego_release import load_release
    from egobench.weights import TINY_MARKER

    split = load_release(DEMO_ROOT, "epickitchens", part="val")  # the demo's EPIC part as training data
    ds = PairDataset(list(split)[:2], resolution=RES, text="action")
    batch = collate([ds.item(0), ds.item(1)])
    before = fixed_batch_loss(WeightStore(zoo="tiny").resolve(init).path, batch)

    out = tmp_path / model
    args = ["--dataset", "epickitchens", "--data-root", str(DEMO_ROOT), "--out", str(out), "--part", "val",
            "--zoo", "tiny", "--max-steps", "16", "--batch-size", "2", "--grad-accum", "1", "--lr", "1e-3",
            "--resolution", str(RES), "--limit", "2", "--no-ema", "--checkpoint-every", "0", "--quiet"]
    cmd = train_ip2p if model == "ip2p" else train_ldm
    r = CliRunner().invoke(cmd, args)
    assert r.exit_code == 0, r.output
    option = "model" if model == "ip2p" else "ldm"
    assert "trained 16 steps" in r.output and f"-o {option}={out}" in r.output
    after = fixed_batch_loss(out, batch)
    assert after < 0.9 * before, (before, after)  # measured: ip2p 1.13 -> 0.84, ldm 1.17 -> 0.78
    record = json.loads((out / "training.json").read_text())
    assert record["model"] == model and record["text"] == "action" and record["mode"] == (
        "ip2p" if model == "ip2p" else "t2i")
    assert (out / TINY_MARKER).is_file()
    from egobench.weights import ARTIFACTS

    artifact = "ip2p-epic" if model == "ip2p" else "ldm-epic"  # the folder can be placed as the artifact
    assert all((out / f).is_file() for f in ARTIFACTS.get(artifact).files)

    # the folder loads back into the methods
    samples = list(split)[:1]
    methods = [IP2P(_protocol(), model=str(out))] if model == "ip2p" else [
        SDEdit(_protocol(), ldm=str(out)), ProxEdit(_protocol(), ldm=str(out))]
    for m in methods:
        images = m.generate(samples, [1])
        assert images[0].shape == (3, 256, 256) and np.isfinite(images[0]).all()

    r = CliRunner().invoke(cmd, args)  # same --out again, no --resume
    assert r.exit_code != 0 and "already holds a trained model" in str(r.exception)


def test_train_ip2p_from_sd15_widens_the_unet(tmp_path):
    from click.testing import CliRunner
    from diffusers import UNet2DConditionModel

    from baselines.cli import train_ip2p, train_ldm
    from egobench.data.datasets import DEMO_ROOT

    args = ["--dataset", "epickitchens", "--data-root", str(DEMO_ROOT), "--part", "val", "--zoo", "tiny",
            "--max-steps", "1", "--batch-size", "1", "--grad-accum", "1", "--resolution", str(RES), "--limit", "1",
            "--checkpoint-every", "0", "--quiet"]
    r = CliRunner().invoke(train_ip2p, args + ["--out", str(tmp_path / "a"), "--init", "sd15"])
    assert r.exit_code == 0, r.output
    assert "Loading" not in r.output and "it/s" not in r.output, r.output  # --quiet: no library bars either
    assert UNet2DConditionModel.load_config(tmp_path / "a" / "unet")["in_channels"] == 8
    r = CliRunner().invoke(train_ldm, args + ["--out", str(tmp_path / "b"), "--init", "ip2p-init"])
    assert r.exit_code != 0 and "cannot be finetuned as ldm" in str(r.exception)


# ---------------------------------------------------------------------------
# progress per sample and per step; --quiet silences it and the libraries
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("ref, steps_per_sample", [
    ("lego.method:LEGO", 2),
    ("baselines.ip2p:IP2P", 2),
    ("baselines.sdedit:SDEdit", 1),  # int(2 steps x strength 0.6)
    ("baselines.proxedit:ProxEdit", 4),  # 2 inversion + 2 editing steps
])
def test_diffusion_progress_per_sample_and_step_and_quiet(monkeypatch, capfd, ref, steps_per_sample):
    import importlib
    import warnings

    import egobench.progress

    bars: list[dict] = []

    class Recorder:  # stands in for egobench.progress.Progress (a tqdm bar only on a terminal)
        def __init__(self, total, desc, *, unit="sample", **kw):
            self.rec = {"desc": desc, "total": total, "unit": unit, "ticks": 0}
            bars.append(self.rec)

        def __call__(self, n=1):
            self.rec["ticks"] += n

        def close(self):
            self.rec["closed"] = True

    monkeypatch.setattr(egobench.progress, "Progress", Recorder)
    module, name = ref.split(":")
    cls = getattr(importlib.import_module(module), name)
    samples = list(load_split("demo", None, 2))

    method = cls(_protocol(steps=2), weights=WeightStore(zoo="tiny"))
    method.prepare(Split("demo", samples))
    method.generate(samples, [1, 2])
    s = steps_per_sample
    assert bars == [{"desc": f"{cls.name} sample {i}/2", "total": s, "unit": "step", "ticks": s, "closed": True}
                    for i in (1, 2)]

    # --quiet (the runner sets progress False): no bar, nothing on stderr even while a pipeline
    # loads (diffusers' and transformers' loading bars and INFO lines), no deprecation warning
    bars.clear()
    capfd.readouterr()
    quiet = cls(_protocol(steps=2), weights=WeightStore(zoo="tiny"))
    quiet.progress = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet.prepare(Split("demo", samples))
        quiet.generate(samples, [1, 2])
    assert bars == []
    assert capfd.readouterr().err == ""
    assert [w for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))] == []


def test_train_cli_logs_validation_metrics_every_n_steps(tmp_path):
    """`egobench train ip2p --val-every N`: the Scorer scores the current weights every N steps
    (and after the last) and the numbers land in validation.jsonl."""
    from click.testing import CliRunner

    from baselines.cli import train_ip2p
    from egobench.data.datasets import DEMO_ROOT

    out = tmp_path / "ip2p"
    args = ["--dataset", "epickitchens", "--data-root", str(DEMO_ROOT), "--out", str(out), "--part", "val",
            "--zoo", "tiny", "--max-steps", "3", "--batch-size", "1", "--grad-accum", "1", "--resolution", "64",
            "--limit", "2", "--no-ema", "--checkpoint-every", "0", "--quiet",
            "--val-every", "2", "--val-limit", "2", "--val-metrics", "psnr"]
    r = CliRunner().invoke(train_ip2p, args)
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in (out / "validation.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 3]
    assert all(x["n"] == 2 and set(x["metrics"]) == {"psnr"} and np.isfinite(x["metrics"]["psnr"]) for x in lines)
    bad = CliRunner().invoke(train_ip2p, args[:-6] + ["--out", str(tmp_path / "b"), "--val-every", "1",
                                                      "--val-limit", "0"])
    assert bad.exit_code != 0 and "--val-limit must be at least 1" in (bad.output + str(bad.exception))


def test_train_commands_are_their_options_dataclasses():
    """`train ip2p|ldm` options come from IP2PTrainOptions / LDMTrainOptions fields: the flags and defaults
    stay the ones users have (pinned here), and the command builds the dataclass the API takes."""
    from unittest import mock

    from click.testing import CliRunner

    from baselines import cli

    pinned = {
        "--dataset": None, "--data-root": None, "--out": None, "--init": "", "--part": "train", "--max-steps": 10000,
        "--batch-size": 32, "--grad-accum": 4, "--lr": 1e-4, "--seed": 23, "--resolution": 256,
        "--mixed-precision": "no", "--checkpoint-every": 1000, "--no-ema": "flag", "--resume": "flag",
        "--num-workers": 0, "--limit": None, "--zoo": "real", "--weights": "multiple", "--val-every": 0, "--val-limit": 8,
        "--val-metrics": "psnr,lpips,clip", "--val-protocol": "egobench-v1", "--quiet": "flag",
    }
    for cmd, init in ((cli.train_ip2p, "ip2p-init"), (cli.train_ldm, "sd15")):
        got = {p.opts[0]: "flag" if p.is_flag else ("multiple" if p.multiple else p.default) for p in cmd.params}
        assert list(got) == list(pinned)
        assert {k: v for k, v in got.items() if k not in ("--dataset", "--data-root", "--out")} == {
            k: v for k, v in {**pinned, "--init": init}.items() if k not in ("--dataset", "--data-root", "--out")}
        assert [p.name for p in cmd.params if p.required] == ["dataset", "data_root", "out"]
    with mock.patch.object(cli, "run_train") as run:
        r = CliRunner().invoke(cli.train_ldm, ["-d", "ego4d", "--data-root", "R", "--out", "O", "--lr", "0.5",
                                               "--weights", "a=b", "--no-ema"])
    assert r.exit_code == 0, r.output
    (opts,), _ = run.call_args
    assert opts == cli.LDMTrainOptions(dataset="ego4d", data_root="R", out="O", lr=0.5, weights=("a=b",), no_ema=True)
    assert opts.model == "ldm" and opts.folder_option == "ldm" and opts.init == "sd15"


def test_off_the_shelf_ip2p_is_recorded_as_zero_shot():
    """finetuned=false runs the hub weights: the manifest says zero-shot, so tables mark the row."""
    from baselines.ip2p import IP2P
    from egobench.protocol import load_protocol
    from egobench.weights import WeightStore

    proto = load_protocol("egobench-v1")
    assert IP2P(proto, weights=WeightStore(zoo="tiny"), finetuned=False).config()["finetuned_on_benchmark"] is False
    assert "finetuned_on_benchmark" not in IP2P(proto, weights=WeightStore(zoo="tiny")).config()


def test_train_lego_and_the_baselines_share_one_options_base():
    """`train lego|ip2p|ldm` take the shared options from diffusion_core's TrainOptions (declared once): each
    subclass states only what differs, its own options keep their --help place, and the loop settings agree."""
    import dataclasses

    import pytest

    from baselines import cli
    from diffusion_core.options import click_options, option, option_like
    from diffusion_core.train_options import TrainOptions
    from lego.cli import LEGOTrainOptions, train_lego

    assert issubclass(LEGOTrainOptions, TrainOptions) and issubclass(cli.LDMTrainOptions, TrainOptions)
    assert [p.opts[0] for p in train_lego.params] == [
        "--dataset", "--data-root", "--features-root", "--out", "--variant", "--init", "--part", "--model-tag",
        "--vllm", "--text", "--max-steps", "--batch-size", "--grad-accum", "--lr", "--seed", "--resolution",
        "--mixed-precision", "--checkpoint-every", "--no-ema", "--released-behaviour", "--resume", "--num-workers",
        "--limit", "--zoo", "--weights", "--quiet"]
    by_name = {p.name: p for p in train_lego.params}
    assert not by_name["data_root"].required and by_name["batch_size"].default == 32
    assert by_name["batch_size"].help == "micro-batch per process (released: 32)"
    assert list(by_name["dataset"].type.choices) == ["ego4d", "epickitchens", "demo"]
    lego = LEGOTrainOptions(dataset="demo", out="O", lr=0.5, no_ema=True, resume=True)
    ldm = cli.LDMTrainOptions(dataset="ego4d", data_root="R", out="O", lr=0.5, no_ema=True, resume=True)
    assert lego.loop_settings() == ldm.loop_settings()
    assert lego.loop_settings()["learning_rate"] == 0.5 and lego.loop_settings()["use_ema"] is False
    with pytest.raises(TypeError, match="unknown option settings"):
        option_like(TrainOptions, "lr", hlep="typo")
    from types import SimpleNamespace

    from diffusion_core.train_options import trained_summary

    assert trained_summary(SimpleNamespace(steps=3, resumed_from=2, losses=[0.5, 0.25])) == \
        "trained 3 steps (resumed at step 2): final loss 0.2500"
    assert trained_summary(SimpleNamespace(steps=3, resumed_from=None, losses=[1.0])) == "trained 3 steps: final loss 1.0000"

    @dataclasses.dataclass(kw_only=True)
    class Bad(TrainOptions):
        extra: int = option(0, after="no-such-option")

    with pytest.raises(TypeError, match="names no option"):
        click_options(Bad)
