"""``egobench convert lego``: a scaled-down checkpoint with the released key names -> LEGO diffusers folder.

The synthetic checkpoint is made from a tiny LEGO pipeline by the inverse key
mapping below (test-only; it is checked against diffusers' forward converters
before use), saved as a Lightning-style ``.ckpt`` with an EMA copy and pickled
hyper-parameter objects, and converted back through the CLI.
"""

from __future__ import annotations

import pickle
import sys
import types

import pytest
import torch
from click.testing import CliRunner
from diffusers.loaders.single_file_utils import (
    DIFFUSERS_TO_LDM_MAPPING,
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
)

from diffusion_core.scheduler import KDiffusionEulerAncestralScheduler
from egobench.errors import DataError, UserError
from lego.cli import convert
from lego.pipeline import LEGOPipeline
from lego.tiny import tiny_components

SIZE = 64


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------
# diffusers -> CompVis key names (test helper; the converter under test is diffusers')
# ---------------------------------------------------------------------------
_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
           "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _resnet(rest: str, table=_RESNET) -> str:
    for new, old in table.items():
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def unet_to_ldm(sd: dict, layers_per_block: int) -> dict:
    L = layers_per_block
    top = {v.rsplit(".", 1)[0]: k.rsplit(".", 1)[0] for k, v in DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"].items()}
    top = {d: ldm for ldm, d in top.items()}  # diffusers stem -> ldm stem
    up_with_attn = {int(k.split(".")[1]) for k in sd if k.startswith("up_blocks.") and ".attentions." in k}
    out = {}
    for key, v in sd.items():
        stem, leaf = key.rsplit(".", 1)
        p = key.split(".")
        if stem in top:
            name = f"{top[stem]}.{leaf}"
        elif p[0] in ("down_blocks", "up_blocks"):
            b = int(p[1])
            first = 1 + b * (L + 1) if p[0] == "down_blocks" else b * (L + 1)
            blocks = "input_blocks" if p[0] == "down_blocks" else "output_blocks"
            if p[2] == "resnets":
                name = f"{blocks}.{first + int(p[3])}.0.{_resnet('.'.join(p[4:]))}"
            elif p[2] == "attentions":
                name = f"{blocks}.{first + int(p[3])}.1.{'.'.join(p[4:])}"
            elif p[2] == "downsamplers":
                name = f"input_blocks.{first + L}.0.op.{leaf}"
            else:  # upsamplers
                name = f"output_blocks.{first + L}.{2 if b in up_with_attn else 1}.conv.{leaf}"
        elif p[0] == "mid_block":
            idx = {("resnets", "0"): 0, ("attentions", "0"): 1, ("resnets", "1"): 2}[(p[1], p[2])]
            rest = ".".join(p[3:])
            name = f"middle_block.{idx}.{_resnet(rest) if p[1] == 'resnets' else rest}"
        else:
            raise AssertionError(f"unmapped UNet key {key}")
        out["model.diffusion_model." + name] = v
    return out


def vae_to_ldm(sd: dict, n_blocks: int) -> dict:
    top = {d: ldm for d, ldm in DIFFUSERS_TO_LDM_MAPPING["vae"].items()}
    out = {}
    for key, v in sd.items():
        p = key.split(".")
        if key in top:
            name = top[key]
        elif p[1] == "down_blocks":
            rest = ".".join(p[4:])
            if p[3] == "downsamplers":
                name = f"encoder.down.{p[2]}.downsample.{'.'.join(p[5:])}"
            else:
                name = f"encoder.down.{p[2]}.block.{p[4]}.{_resnet('.'.join(p[5:]), {'conv_shortcut': 'nin_shortcut'})}"
        elif p[1] == "up_blocks":
            i = n_blocks - 1 - int(p[2])
            if p[3] == "upsamplers":
                name = f"decoder.up.{i}.upsample.{'.'.join(p[5:])}"
            else:
                name = f"decoder.up.{i}.block.{p[4]}.{_resnet('.'.join(p[5:]), {'conv_shortcut': 'nin_shortcut'})}"
        elif p[1] == "mid_block" and p[2] == "resnets":
            name = f"{p[0]}.mid.block_{int(p[3]) + 1}.{_resnet('.'.join(p[4:]), {'conv_shortcut': 'nin_shortcut'})}"
        elif p[1] == "mid_block" and p[2] == "attentions":
            rest = ".".join(p[4:])
            for new, old in _VAE_ATTN.items():
                if rest.startswith(new + "."):
                    rest = old + rest[len(new):]
            name = f"{p[0]}.mid.attn_1.{rest}"
            if v.ndim == 2:
                v = v[:, :, None, None]  # CompVis attention projections are 1x1 convs
        else:
            raise AssertionError(f"unmapped VAE key {key}")
        out["first_stage_model." + name] = v
    return out


def clip_to_ldm(sd: dict) -> dict:
    out = {}
    for key, v in sd.items():
        key = key if key.startswith("text_model.") else "text_model." + key
        out["cond_stage_model.transformer." + key] = v
    out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    return out


def _schedule_buffers() -> dict:
    import numpy as np

    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    ac = np.cumprod(1 - betas)
    return {"betas": torch.tensor(betas, dtype=torch.float32), "alphas_cumprod": torch.tensor(ac, dtype=torch.float32),
            "sqrt_alphas_cumprod": torch.tensor(np.sqrt(ac), dtype=torch.float32)}


@pytest.fixture(scope="module")
def tiny():
    comps = tiny_components("full")
    g = torch.Generator().manual_seed(7)
    # an EMA that differs from the raw UNet, so picking the wrong one shows
    ema = {k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in comps["unet"].state_dict().items()}
    return comps, ema


def _state_dict(comps, ema_unet=None, with_conditioning=True) -> dict:
    L = comps["unet"].config.layers_per_block
    sd = unet_to_ldm(comps["unet"].state_dict(), L)
    if ema_unet is not None:
        for key, v in unet_to_ldm(ema_unet, L).items():
            sd["model_ema." + "".join(key.split(".")[1:])] = v  # LitEma: dots removed
        sd["model_ema.decay"] = torch.tensor(0.9999)
        sd["model_ema.num_updates"] = torch.tensor(1234, dtype=torch.int32)
    sd.update(vae_to_ldm(comps["vae"].state_dict(), len(comps["vae"].config.down_block_types)))
    sd.update(clip_to_ldm(comps["text_encoder"].state_dict()))
    if with_conditioning:
        sd.update(comps["conditioning"].state_dict())  # projection_img.*, projection_txt.*, self_attn_mix.*
    sd.update(_schedule_buffers())
    return sd


def _save_lightning_ckpt(path, state_dict, monkeypatch):
    """``{"state_dict", "global_step", "epoch", ...}`` plus pickled objects torch's weights-only loader refuses."""
    mod = types.ModuleType("omegaconf.dictconfig")

    class DictConfig:
        def __init__(self, content):
            self._content = content

    DictConfig.__module__ = "omegaconf.dictconfig"
    DictConfig.__qualname__ = "DictConfig"
    mod.DictConfig = DictConfig
    monkeypatch.setitem(sys.modules, "omegaconf", types.ModuleType("omegaconf"))
    monkeypatch.setitem(sys.modules, "omegaconf.dictconfig", mod)
    ckpt = {
        "epoch": 119, "global_step": 9999, "pytorch-lightning_version": "1.6.5", "state_dict": state_dict,
        "hyper_parameters": DictConfig({"linear_start": 0.00085, "use_ema": True}),
        "callbacks": {"ModelCheckpoint{'monitor': None}": {"best_model_score": None, "dirpath": "logs/x"}},
        "optimizer_states": [], "lr_schedulers": [],
    }
    torch.save(ckpt, path)
    monkeypatch.delitem(sys.modules, "omegaconf.dictconfig")
    monkeypatch.delitem(sys.modules, "omegaconf")
    return path


def _generate(pipe: LEGOPipeline) -> torch.Tensor:
    pipe.scheduler = KDiffusionEulerAncestralScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    g = torch.Generator().manual_seed(3)
    return pipe(
        image=torch.rand(2, 3, SIZE, SIZE, generator=g), prompt=["the person opens the drawer", "cut the onion"],
        vllm_image=torch.randn(2, 16, 64, generator=g), vllm_text=[torch.randn(30, 64, generator=g),
                                                                  torch.randn(90, 64, generator=g)],
        num_inference_steps=2, generator=[torch.Generator().manual_seed(s) for s in (0, 1)], output_type="pt",
    ).images


# ---------------------------------------------------------------------------
# the inverse helper is exact (so the end-to-end test means something)
# ---------------------------------------------------------------------------
def _same(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_inverse_mapping_round_trips_through_diffusers_converters(tiny):
    comps, _ = tiny
    unet, vae, clip = comps["unet"], comps["vae"], comps["text_encoder"]
    ldm = unet_to_ldm(unet.state_dict(), unet.config.layers_per_block)
    assert "model.diffusion_model.input_blocks.0.0.weight" in ldm and ldm[
        "model.diffusion_model.input_blocks.0.0.weight"].shape[1] == 8
    assert _same(convert_ldm_unet_checkpoint(ldm, dict(unet.config)), unet.state_dict())
    ldm_vae = vae_to_ldm(vae.state_dict(), len(vae.config.down_block_types))
    assert _same(convert_ldm_vae_checkpoint(ldm_vae, dict(vae.config)), vae.state_dict())
    back = convert_ldm_clip_checkpoint(clip_to_ldm(clip.state_dict()))
    back = {k.removeprefix("text_model."): v for k, v in back.items() if not k.endswith("position_ids")}
    assert _same(back, clip.state_dict())


def test_unet_conversion_on_the_sd15_block_layout():
    """SD 1.5's layout (4 blocks, 2 layers each, 12 input/output blocks; narrow channels), 8 input channels."""
    from diffusers import UNet2DConditionModel

    from lego.convert import convert_unet

    with torch.random.fork_rng():
        torch.manual_seed(0)
        unet = UNet2DConditionModel(
            sample_size=8, in_channels=8, out_channels=4, layers_per_block=2, block_out_channels=(8, 8, 16, 16),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=16,
            attention_head_dim=4, norm_num_groups=4,
        )
    ldm = unet_to_ldm(unet.state_dict(), 2)
    assert {k.split(".")[3] for k in ldm if ".input_blocks." in k} == {str(i) for i in range(12)}
    cfg = dict(unet.config, in_channels=4)  # a text-to-image template: channels come from the checkpoint
    out = convert_unet(ldm, cfg)
    assert out.config.in_channels == 8 and _same(out.state_dict(), unet.state_dict())


# ---------------------------------------------------------------------------
# end to end
# ---------------------------------------------------------------------------
def _convert(args):
    return CliRunner().invoke(convert, ["lego", "--template", "sd15-config", "--zoo", "tiny", "--heads", "2",
                                        "--image-tokens", "16", *args])


def test_convert_cli_gives_the_same_images_as_the_original_weights(tiny, tmp_path, monkeypatch):
    comps, ema = tiny
    ckpt = _save_lightning_ckpt(tmp_path / "ego4d_diffusion_with_vllm_feature.ckpt", _state_dict(comps, ema),
                                monkeypatch)
    with pytest.raises(pickle.UnpicklingError):  # the restricted loader is what reads it
        torch.load(ckpt, weights_only=True)
    out = tmp_path / "lego-ego4d-ldm"
    r = _convert(["--ckpt", str(ckpt), "--out", str(out)])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "EMA weights, step 9999" in r.output

    converted = LEGOPipeline.from_pretrained(out, local_files_only=True)
    assert converted.unet.config.in_channels == 8
    public = lambda c: {k: v for k, v in dict(c).items() if not k.startswith("_")}  # noqa: E731
    assert public(converted.conditioning.config) == public(comps["conditioning"].config)
    direct = LEGOPipeline(**tiny_components("full"))  # the same weights, built directly
    direct.unet.load_state_dict(ema)  # the released inference samples with the EMA UNet
    images = _generate(converted)
    assert torch.equal(images, _generate(direct))

    # --no-ema: the raw UNet (and other images)
    raw = tmp_path / "raw"
    assert _convert(["--ckpt", str(ckpt), "--out", str(raw), "--no-ema"]).exit_code == 0
    raw_pipe = LEGOPipeline.from_pretrained(raw, local_files_only=True)
    assert _same(raw_pipe.unet.state_dict(), comps["unet"].state_dict())
    assert not torch.allclose(_generate(raw_pipe), images, atol=1e-3)

    # the methods' variants: img keeps projection_img only; desc has no conditioning
    img = tmp_path / "img"
    assert _convert(["--ckpt", str(ckpt), "--out", str(img), "--variant", "img"]).exit_code == 0
    p = LEGOPipeline.from_pretrained(img, local_files_only=True)
    assert p.conditioning.config.use_image and not p.conditioning.config.use_text
    assert not hasattr(p.conditioning, "self_attn_mix")
    desc = tmp_path / "desc"
    assert _convert(["--ckpt", str(ckpt), "--out", str(desc), "--variant", "desc"]).exit_code == 0
    assert LEGOPipeline.from_pretrained(desc, local_files_only=True).conditioning is None

    r = _convert(["--ckpt", str(ckpt), "--out", str(out)])
    assert isinstance(r.exception, UserError) and "already exists" in str(r.exception)


def test_convert_errors_are_one_line(tiny, tmp_path, monkeypatch):
    from lego.convert import convert_lego_checkpoint

    comps, ema = tiny
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": _state_dict(comps, None), "global_step": 1}, plain)
    r = _convert(["--ckpt", str(plain), "--out", str(tmp_path / "o1")])
    assert isinstance(r.exception, DataError) and "no EMA weights" in str(r.exception) and "--no-ema" in str(
        r.exception)
    assert not (tmp_path / "o1").exists()

    nocond = tmp_path / "nocond.ckpt"
    torch.save({"state_dict": _state_dict(comps, ema, with_conditioning=False)}, nocond)
    r = _convert(["--ckpt", str(nocond), "--out", str(tmp_path / "o2")])
    assert isinstance(r.exception, DataError) and "projection_img.weight" in str(r.exception)

    # a template whose UNet does not fit: one line naming the first bad key
    from diffusion_core.tiny import build_tiny_sd15

    tpl = tmp_path / "tpl"
    build_tiny_sd15(tpl)
    cfg = (tpl / "unet" / "config.json")
    cfg.write_text(cfg.read_text().replace('"layers_per_block": 1', '"layers_per_block": 2'))
    with pytest.raises(DataError, match="UNet: the checkpoint does not fit the template config"):
        convert_lego_checkpoint(plain, tmp_path / "o3", tpl, use_ema=False, heads=2, image_tokens=16)

    evil = tmp_path / "evil.ckpt"
    import os

    torch.save({"state_dict": _state_dict(comps, ema), "hyper_parameters": {"cb": os.system}}, evil)
    r = _convert(["--ckpt", str(evil), "--out", str(tmp_path / "o4")])
    assert isinstance(r.exception, DataError) and "system" in str(r.exception)
