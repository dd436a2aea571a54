"""LEGO: conditioning module, diffusers pipeline, sampler vs k-diffusion, methods (tiny zoo)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from diffusion_core.scheduler import KDiffusionEulerAncestralScheduler
from lego.conditioning import LEGOConditioning
from lego.pipeline import LEGOPipeline
from lego.tiny import SCHEDULER_CONFIG, TINY_CONDITIONING, tiny_components

SIZE = 64  # test images (tiny VAE: 8x down -> 8 x 8 latents)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pipe() -> LEGOPipeline:
    p = LEGOPipeline(**tiny_components("full"))
    p.scheduler = KDiffusionEulerAncestralScheduler.from_config(p.scheduler.config)
    p.set_progress_bar_config(disable=True)
    return p


def _inputs(batch: int, seed: int = 0, t_tokens=(30, 90)):
    g = torch.Generator().manual_seed(seed)
    return dict(
        image=torch.rand(batch, 3, SIZE, SIZE, generator=g),
        prompt=[f"the person opens drawer {i}" for i in range(batch)],
        vllm_image=[torch.randn(16, 64, generator=g) for _ in range(batch)],
        vllm_text=[torch.randn(t_tokens[i % len(t_tokens)], 64, generator=g) for i in range(batch)],
    )


def _public(config) -> dict:
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


def _record_unet(pipe):
    """Collect (sample, encoder_hidden_states, output) of every UNet call."""
    calls = []

    def pre(module, args, kwargs):
        calls.append({"sample": args[0].clone(), "ctx": kwargs["encoder_hidden_states"].clone()})

    def post(module, args, kwargs, output):
        calls[-1]["out"] = output[0].clone()

    return calls, [pipe.unet.register_forward_pre_hook(pre, with_kwargs=True),
                   pipe.unet.register_forward_hook(post, with_kwargs=True)]


# ---------------------------------------------------------------------------
# Conditioning
# ---------------------------------------------------------------------------
def test_conditioning_loads_released_keys_and_gives_410_tokens():
    torch.manual_seed(0)
    # the released LatentDiffusion's modules, built as ddpm_egogen.py builds them
    released = nn.Module()
    released.projection_img = nn.Linear(5120, 768)
    released.projection_txt = nn.Linear(5120, 768)
    layer = nn.TransformerEncoderLayer(d_model=768, nhead=8, batch_first=True, norm_first=True)
    released.self_attn_mix = nn.TransformerEncoder(encoder_layer=layer, num_layers=2, enable_nested_tensor=False)
    released.eval()

    cond = LEGOConditioning().eval()
    assert set(cond.state_dict()) == set(released.state_dict())
    cond.load_state_dict(released.state_dict(), strict=True)
    enc_layer = cond.self_attn_mix.layers[0]
    assert enc_layer.norm_first and enc_layer.self_attn.batch_first
    assert enc_layer.linear1.out_features == 2048 and enc_layer.dropout.p == 0.1
    assert enc_layer.activation is nn.functional.relu
    assert cond.context_length() == 410

    clip = torch.randn(1, 77, 768)
    img, txt = torch.randn(1, 256, 5120), torch.randn(1, 100, 5120)
    with torch.no_grad():
        ctx = cond(clip, img, txt)
        assert ctx.shape == (1, 410, 768)
        assert torch.equal(ctx[:, :77], clip)
        torch.testing.assert_close(ctx[:, 77:333], released.projection_img(img))
        # text: truncated to 77 before projection, self-attention on the text tokens only
        ref_txt = released.self_attn_mix(released.projection_txt(txt[:, :77]))
        torch.testing.assert_close(ctx[:, 333:], ref_txt, rtol=1e-5, atol=1e-5)
        # short text: zero-padded *features* (projected to the bias), no mask
        short = txt[:, :10]
        padded = torch.cat([short, torch.zeros(1, 67, 5120)], dim=1)
        torch.testing.assert_close(cond(clip, img, short)[:, 333:],
                                   released.self_attn_mix(released.projection_txt(padded)), rtol=1e-5, atol=1e-5)
        null = cond(clip, drop_vllm=True)
        assert null.shape == (1, 410, 768) and not null[:, 77:].any()


@pytest.mark.parametrize("use_image,use_text,length", [(True, True, 77 + 16 + 77), (True, False, 77 + 16),
                                                       (False, True, 77 + 77)])
def test_variant_context_lengths(use_image, use_text, length):
    cond = LEGOConditioning(**TINY_CONDITIONING, use_image=use_image, use_text=use_text).eval()
    clip = torch.randn(2, 77, 32)
    img = torch.randn(2, 16, 64) if use_image else None
    txt = torch.randn(2, 5, 64) if use_text else None
    with torch.no_grad():
        assert cond(clip, img, txt).shape == (2, length, 32)
        assert cond(clip, drop_vllm=True).shape == (2, length, 32)
    assert cond.context_length() == length
    with pytest.raises(ValueError, match="vllm_image"):
        cond(clip, None if use_image else torch.randn(2, 16, 64), txt)


def test_conditioning_rejects_bad_config_and_shapes():
    with pytest.raises(ValueError, match="conditioning=None"):
        LEGOConditioning(use_image=False, use_text=False)
    with pytest.raises(ValueError, match="context_dim 30 is not divisible by heads 4"):
        LEGOConditioning(context_dim=30, heads=4)
    cond = LEGOConditioning(**TINY_CONDITIONING)
    with pytest.raises(ValueError, match=r"vllm_image must be shaped \(1, 16, 64\), got \(1, 15, 64\)"):
        cond(torch.randn(1, 77, 32), torch.randn(1, 15, 64), torch.randn(1, 5, 64))


def test_conditioning_config_round_trips(tmp_path):
    cond = LEGOConditioning(**TINY_CONDITIONING, use_text=False).eval()
    cond.save_pretrained(tmp_path / "c")
    saved = json.loads((tmp_path / "c" / "config.json").read_text())
    assert saved["_class_name"] == "LEGOConditioning"
    assert {k: saved[k] for k in TINY_CONDITIONING} == TINY_CONDITIONING and saved["use_text"] is False
    again = LEGOConditioning.from_pretrained(tmp_path / "c").eval()
    assert _public(again.config) == _public(cond.config)
    x, img = torch.randn(1, 77, 32), torch.randn(1, 16, 64)
    with torch.no_grad():
        assert torch.equal(again(x, img), cond(x, img))


def test_pipeline_folder_round_trips(tmp_path, pipe):
    pipe.save_pretrained(tmp_path / "ldm")
    index = json.loads((tmp_path / "ldm" / "model_index.json").read_text())
    assert index["conditioning"] == ["lego.conditioning", "LEGOConditioning"]
    again = LEGOPipeline.from_pretrained(tmp_path / "ldm", local_files_only=True)
    assert isinstance(again.conditioning, LEGOConditioning)
    assert _public(again.conditioning.config) == _public(pipe.conditioning.config)
    # the k-diffusion sampler is saved by its module and loads back as itself
    assert index["scheduler"] == ["diffusion_core.scheduler", "KDiffusionEulerAncestralScheduler"]
    assert type(again.scheduler) is KDiffusionEulerAncestralScheduler


# ---------------------------------------------------------------------------
# Sampler: k-diffusion 0.0.15 (CompVisDenoiser + sample_euler_ancestral), re-implemented here
# ---------------------------------------------------------------------------
def _ldm_alphas_cumprod(n=1000, start=0.00085, end=0.012):
    # ldm make_beta_schedule("linear") + register_schedule: float64 numpy, stored float32
    betas = (torch.linspace(start**0.5, end**0.5, n, dtype=torch.float64) ** 2).numpy()
    return torch.tensor(np.cumprod(1.0 - betas, axis=0), dtype=torch.float32)


class RefCompVisDenoiser:
    def __init__(self, eps_model, alphas_cumprod):
        self.sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.log_sigmas = self.sigmas.log()
        self.eps_model = eps_model

    def get_sigmas(self, n):
        t = torch.linspace(len(self.sigmas) - 1, 0, n)
        return torch.cat([self.t_to_sigma(t), torch.zeros(1)])

    def t_to_sigma(self, t):
        low_idx, high_idx, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[low_idx] + w * self.log_sigmas[high_idx]).exp()

    def sigma_to_t(self, sigma):
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        high_idx = low_idx + 1
        low, high = self.log_sigmas[low_idx], self.log_sigmas[high_idx]
        w = ((low - log_sigma) / (low - high)).clamp(0, 1)
        return ((1 - w) * low_idx + w * high_idx).view(sigma.shape)

    def __call__(self, x, sigma, **kwargs):
        c_out, c_in = -sigma[:, None, None, None], 1 / (sigma[:, None, None, None] ** 2 + 1) ** 0.5
        return x + self.eps_model(x * c_in, self.sigma_to_t(sigma), **kwargs) * c_out


def ref_sample_euler_ancestral(model, x, sigmas, extra_args, noise_sampler):
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_up = min(sigmas[i + 1], (sigmas[i + 1] ** 2 * (sigmas[i] ** 2 - sigmas[i + 1] ** 2) / sigmas[i] ** 2) ** 0.5)
        sigma_down = (sigmas[i + 1] ** 2 - sigma_up**2) ** 0.5
        d = (x - denoised) / sigmas[i]
        x = x + d * (sigma_down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigma_up
    return x


@pytest.mark.parametrize("steps", [1, 7, 100])
def test_scheduler_matches_kdiffusion_euler_ancestral(steps):
    def eps_model(x, t):  # a smooth toy denoiser that depends on x and t
        return torch.tanh(0.7 * x + 0.3) * torch.cos(t[:, None, None, None] / 170.0) + 0.1 * x

    shape = (2, 4, 8, 8)
    ref_model = RefCompVisDenoiser(eps_model, _ldm_alphas_cumprod())
    sigmas = ref_model.get_sigmas(steps)
    g = torch.Generator().manual_seed(123)
    x = torch.randn(shape, generator=g) * sigmas[0]
    ref = ref_sample_euler_ancestral(ref_model, x, sigmas, {}, lambda s, sn: torch.randn(shape, generator=g))
    ref_state = g.get_state()

    sched = KDiffusionEulerAncestralScheduler(**SCHEDULER_CONFIG)
    sched.set_timesteps(steps)
    torch.testing.assert_close(sched.sigmas, sigmas, rtol=0, atol=0)
    g = torch.Generator().manual_seed(123)
    lat = torch.randn(shape, generator=g) * sched.init_noise_sigma
    for t in sched.timesteps:
        eps = eps_model(sched.scale_model_input(lat, t), t.expand(shape[0]))
        lat = sched.step(eps, t, lat, generator=g).prev_sample
    torch.testing.assert_close(lat, ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(g.get_state(), ref_state)  # same draws: none at the final sigma 0


def test_stock_diffusers_scheduler_differs_from_kdiffusion():
    """Why the subclass exists: linear (not log) sigma interpolation, and a noise
    draw at the final step."""
    stock = __import__("diffusers").EulerAncestralDiscreteScheduler(**SCHEDULER_CONFIG)
    stock.set_timesteps(100)
    ref = RefCompVisDenoiser(None, _ldm_alphas_cumprod()).get_sigmas(100)
    rel = ((stock.sigmas - ref).abs() / ref.clamp(min=1e-8))[:-1]
    assert rel.max() > 1e-5
    ours = KDiffusionEulerAncestralScheduler.from_config(stock.config)
    ours.set_timesteps(100)
    torch.testing.assert_close(ours.timesteps, torch.linspace(999, 0, 100), rtol=0, atol=2e-3)


def test_pipeline_matches_released_cfg_denoiser(pipe):
    """Full loop vs the released CFGDenoiser + CompVisDenoiser + sample_euler_ancestral."""
    inp = _inputs(1)
    steps, s_txt, s_img = 4, 7.5, 1.5
    out = pipe(**inp, num_inference_steps=steps, guidance_scale=s_txt, image_guidance_scale=s_img,
               generator=torch.Generator().manual_seed(5), output_type="latent").images

    with torch.no_grad():
        cond_ctx = pipe.conditioning(pipe.encode_prompt(inp["prompt"], "cpu"), inp["vllm_image"][0][None],
                                     inp["vllm_text"][0][None])
        uncond_ctx = pipe.conditioning(pipe.encode_prompt([""], "cpu"), drop_vllm=True)
        c_concat = pipe.vae.encode(2 * inp["image"] - 1).latent_dist.mode()  # unscaled mode

        def apply_model(x, t, cond):  # DiffusionWrapper, conditioning_key "hybrid"
            xc = torch.cat([x] + cond["c_concat"], dim=1)
            return pipe.unet(xc, t, encoder_hidden_states=torch.cat(cond["c_crossattn"], 1)).sample

        model = RefCompVisDenoiser(apply_model, _ldm_alphas_cumprod())

        def cfg_denoiser(z, sigma, cond, uncond, text_cfg_scale, image_cfg_scale):  # metrics/inference.py
            cfg_cond = {
                "c_crossattn": [torch.cat([cond["c_crossattn"][0], uncond["c_crossattn"][0], uncond["c_crossattn"][0]])],
                "c_concat": [torch.cat([cond["c_concat"][0], cond["c_concat"][0], uncond["c_concat"][0]])],
            }
            out_cond, out_img_cond, out_uncond = model(z.repeat(3, 1, 1, 1), sigma.repeat(3), cond=cfg_cond).chunk(3)
            return out_uncond + text_cfg_scale * (out_cond - out_img_cond) + image_cfg_scale * (out_img_cond - out_uncond)

        cond = {"c_crossattn": [cond_ctx], "c_concat": [c_concat]}
        uncond = {"c_crossattn": [uncond_ctx], "c_concat": [torch.zeros_like(c_concat)]}
        sigmas = model.get_sigmas(steps)
        g = torch.Generator().manual_seed(5)
        x = torch.randn(c_concat.shape, generator=g) * sigmas[0]
        ref = ref_sample_euler_ancestral(
            cfg_denoiser, x, sigmas,
            dict(cond=cond, uncond=uncond, text_cfg_scale=s_txt, image_cfg_scale=s_img),
            lambda s, sn: torch.randn(c_concat.shape, generator=g),
        )
    # float32 rounding only (guidance in eps vs denoised space, x / s vs x * (1 / s)):
    # the random tiny UNet under 7.5x guidance makes latents of ~50, so compare to their scale
    assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()


# ---------------------------------------------------------------------------
# Guidance and branches
# ---------------------------------------------------------------------------
def test_guidance_one_one_is_the_conditional_prediction(pipe, monkeypatch):
    calls, hooks = _record_unet(pipe)
    seen = []
    real_step = pipe.scheduler.step

    def step(model_output, *a, **k):
        seen.append(model_output.clone())
        return real_step(model_output, *a, **k)

    monkeypatch.setattr(pipe.scheduler, "step", step)
    try:
        pipe(**_inputs(2), num_inference_steps=3, guidance_scale=1.0, image_guidance_scale=1.0,
             generator=[torch.Generator().manual_seed(i) for i in range(2)], output_type="latent")
    finally:
        for h in hooks:
            h.remove()
    assert len(calls) == len(seen) == 3
    for c, e in zip(calls, seen):
        assert c["out"].shape[0] == 6  # [cond, image-only, uncond] x batch 2
        torch.testing.assert_close(e, c["out"].chunk(3)[0], rtol=0, atol=1e-6)


def test_unconditional_branches_get_zero_vllm_tokens_and_null_text(pipe):
    calls, hooks = _record_unet(pipe)
    inp = _inputs(2)
    try:
        pipe(**inp, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="latent")
    finally:
        for h in hooks:
            h.remove()
    with torch.no_grad():
        null_clip = pipe.encode_prompt([""], "cpu")
        prompt_clip = pipe.encode_prompt(inp["prompt"], "cpu")
        image_latents = pipe.vae.encode(2 * inp["image"] - 1).latent_dist.mode()
    for c in calls:
        ctx, sample = c["ctx"], c["sample"]
        assert ctx.shape == (6, 77 + 16 + 77, 32)
        cond, img_only, uncond = ctx.chunk(3)
        torch.testing.assert_close(cond[:, :77], prompt_clip)
        assert cond[:, 77:].abs().amin(dim=-1).gt(0).any()  # real VLLM tokens in the conditional branch
        for branch in (img_only, uncond):
            torch.testing.assert_close(branch[:, :77], null_clip.expand(2, -1, -1))
            assert not branch[:, 77:].any()  # zeroed VLLM tokens
        lat_cond, lat_img, lat_uncond = sample[:, 4:].chunk(3)
        torch.testing.assert_close(lat_cond, image_latents)
        torch.testing.assert_close(lat_img, image_latents)
        assert not lat_uncond.any()  # zero image latent


# ---------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------
def _gen(pipe, inp, seeds, steps=2):
    return pipe(**inp, num_inference_steps=steps,
                generator=[torch.Generator().manual_seed(s) for s in seeds]).images


def test_same_seed_same_images_different_seed_different(pipe):
    inp = _inputs(1)
    a, b, c = _gen(pipe, inp, [7]), _gen(pipe, inp, [7]), _gen(pipe, inp, [8])
    assert a.shape == (1, 3, SIZE, SIZE) and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


def test_per_sample_generators_are_batch_size_independent(pipe):
    inp = _inputs(3)
    together = _gen(pipe, inp, [11, 12, 13])
    for i in range(3):
        one = {k: v[i : i + 1] for k, v in inp.items()}
        torch.testing.assert_close(_gen(pipe, one, [11 + i])[0], together[i], rtol=1e-5, atol=1e-5)


def test_global_rng_when_no_generator(pipe):
    inp = _inputs(1)
    torch.manual_seed(3)
    a = pipe(**inp, num_inference_steps=2).images
    torch.manual_seed(3)
    b = pipe(**inp, num_inference_steps=2).images
    assert torch.equal(a, b)


def test_outputs_are_not_clamped_and_np_pil_agree(pipe):
    inp = _inputs(1)
    pt = _gen(pipe, inp, [1], steps=3)
    arr = pipe(**inp, num_inference_steps=3, generator=[torch.Generator().manual_seed(1)], output_type="np").images
    np.testing.assert_allclose(arr[0], pt[0].permute(1, 2, 0).numpy(), atol=1e-6)
    pil = pipe(**inp, num_inference_steps=3, generator=[torch.Generator().manual_seed(1)], output_type="pil").images
    assert pil[0].size == (SIZE, SIZE)
    # random tiny weights decode well outside [0, 1]; nothing clips them
    assert pt.min() < 0 or pt.max() > 1


@pytest.mark.parametrize("change,match", [
    (dict(num_inference_steps=0), "num_inference_steps` must be a positive integer, got 0"),
    (dict(vllm_image=None), "vllm_image` is required"),
    (dict(vllm_text=[torch.randn(5, 63)]), r"vllm_text` features must be \(T, 64\) per sample, got \(5, 63\)"),
    (dict(image=torch.rand(1, 3, 40, 64)), "multiples of 16, got 40x64"),
    (dict(prompt=["a", "b"]), "got 1 images for 2 prompts"),
    (dict(output_type="jpg"), "output_type` must be one of pt, np, pil, latent, got 'jpg'"),
    (dict(guidance_scale=math.nan), "guidance_scale` must be a finite number"),
])
def test_check_inputs_names_the_bad_value(pipe, change, match):
    inp = {**_inputs(1), **change}
    with pytest.raises(ValueError, match=match):
        pipe(**inp)


# ---------------------------------------------------------------------------
# Methods through the run engine (tiny zoo, demo split)
# ---------------------------------------------------------------------------
def _two_step_protocol():
    from egobench.protocol import load_protocol

    p = load_protocol("egobench-v1")
    return dataclasses.replace(
        p, generation=dataclasses.replace(p.generation, steps=2),
        metrics=tuple(m for m in p.metrics if m.name in ("psnr", "lpips")),
    )


def test_lego_method_runs_on_demo_with_tiny_zoo(tmp_path):
    import egobench

    res = egobench.run("lego.method:LEGO", "demo", protocol=_two_step_protocol(), zoo="tiny", limit=2,
                       out=tmp_path / "run", progress=False)
    assert res.generated == 2 and res.failed == 0
    for name in ("psnr", "lpips"):
        assert math.isfinite(res.metrics[name]["value"])
    manifest = json.loads((res.run_dir / "manifest.json").read_text())
    assert manifest["method"]["config"]["variant"] == "full"
    assert "lego-ego4d-ldm" in manifest["artifacts"]


def test_lego_desc_method_and_missing_features(tmp_path):
    from egobench.data import load_split
    from egobench.errors import DataError
    from egobench.weights import WeightStore
    from lego.method import LEGO, LEGODesc

    proto = _two_step_protocol()
    split = load_split("demo", None, 3)
    store = WeightStore(zoo="tiny")
    desc = LEGODesc(proto, weights=store, batch_size=2)
    desc.prepare(split)
    images = desc.generate(list(split)[:3], [1, 2, 3])
    assert [im.shape for im in images] == [(3, 256, 256)] * 3
    assert all(np.isfinite(im).all() for im in images)

    empty = tmp_path / "features"
    empty.mkdir()
    method = LEGO(proto, weights=store, features_root=str(empty))
    with pytest.raises(DataError, match=r"vllm_image_feature/llava-llama-2-13b-chat-forecasting-finetune-ckpt450/"
                                        r"val/demo4d_0001/.*\.npy: VLLM features not found \(3 of 3"):
        method.prepare(split)


def test_lego_method_global_rng_draws_sample_by_sample_in_order():
    """The released loop: one global seed, one sample at a time, so the noise of a
    sample depends only on what came before it, not on how samples were chunked."""
    from egobench.data import load_split
    from egobench.weights import WeightStore
    from lego.method import LEGO

    samples = list(load_split("demo", None, 2))
    method = LEGO(_two_step_protocol(), weights=WeightStore(zoo="tiny"), batch_size=8)
    method.prepare(load_split("demo", None, 2))
    torch.manual_seed(0)
    together = method.generate(samples, [None, None])
    torch.manual_seed(0)
    apart = method.generate(samples[:1], [None]) + method.generate(samples[1:], [None])
    for a, b in zip(together, apart):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="all integers"):
        method.generate(samples, [1, None])


def test_lego_method_options_are_checked():
    from egobench.errors import ConfigError
    from lego.method import LEGO, LEGOTxt

    proto = _two_step_protocol()
    with pytest.raises(ConfigError, match="unknown key 'feature_root'.*did you mean 'features_root'"):
        LEGO(proto, feature_root="x")
    with pytest.raises(ConfigError, match="'caption' is not one of"):
        LEGO(proto, text="caption")
    with pytest.raises(ConfigError, match="scaleup weights exist only for 'lego'"):
        LEGOTxt(proto, scaleup=True)


def test_lego_missing_weights_say_how_to_convert(tmp_path):
    from egobench.data import load_split
    from egobench.errors import MissingArtifactError
    from egobench.weights import ARTIFACTS, WeightStore
    from lego.method import LEGO, LEGOImg

    art = ARTIFACTS.get("lego-epic-ldm-scaleup")
    assert art.hf_repo is None and art.url is None and "egobench convert lego" in art.description
    split = load_split("demo", None, 1)
    store = WeightStore(zoo="real", weights_dir=tmp_path)
    with pytest.raises(MissingArtifactError, match=r"weights 'lego-ego4d-ldm' not found locally; no download "
                       r"source: make it with 'egobench convert lego --ckpt ego4d_diffusion_with_vllm_feature.ckpt "
                       r"--out \$EGOBENCH_WEIGHTS/lego-ego4d-ldm' from the released checkpoint "
                       r"hf://bolinlai/LEGO-Ego4D/ego4d_diffusion_with_vllm_feature.ckpt; or pass -o ldm=PATH"):
        LEGO(_two_step_protocol(), weights=store).prepare(split)
    with pytest.raises(MissingArtifactError, match="'egobench train lego -d ego4d --variant img "):
        LEGOImg(_two_step_protocol(), weights=store).prepare(split)
