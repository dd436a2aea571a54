"""Item 4: ``lego.pipeline.LEGOPipeline`` (descriptions only, no VLLM conditioning) against diffusers'
``StableDiffusionInstructPix2PixPipeline`` built from the same UNet, VAE, text encoder and tokenizer,
with the same steps, guidance and batch; "not available yet" while the LEGO pipeline does not import."""

from __future__ import annotations

import importlib
import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .clock import sync
from .progress import bar
from .report import TITLES, Measurement
from .synthetic import frame

#: item 4 works on square frames of this side (LEGO's 256 x 256)
GEN_RESOLUTION = 256
SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 prediction_type="epsilon", timestep_spacing="linspace", steps_offset=0)
#: per profile: UNet, VAE and text-encoder sizes (full-arch: SD 1.5's; tiny: the same layout, small)
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "full-arch": {
        "unet": dict(layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
                     down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                     up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768),
        "vae": dict(layers_per_block=2, block_out_channels=(128, 256, 512, 512)),
        "text": dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                     num_attention_heads=12, hidden_act="quick_gelu"),
    },
    "tiny": {
        "unet": dict(layers_per_block=1, block_out_channels=(32, 64), down_block_types=("DownBlock2D",
                     "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                     cross_attention_dim=32, norm_num_groups=8),
        "vae": dict(layers_per_block=1, norm_num_groups=4, block_out_channels=(8, 16, 16, 16)),
        "text": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4),
    },
}


def lego_pipeline_status() -> tuple[Any, str]:
    """(``LEGOPipeline`` class or None, the reason when None)."""
    try:
        if importlib.util.find_spec("lego.pipeline") is None:
            return None, "lego.pipeline does not exist"
        mod = importlib.import_module("lego.pipeline")
    except Exception as e:  # noqa: BLE001 - a half-written module must not break the bench
        return None, f"lego.pipeline does not import ({type(e).__name__}: {e})"
    cls = getattr(mod, "LEGOPipeline", None)
    return (cls, "") if cls is not None else (None, "lego.pipeline has no LEGOPipeline")


def _clip_tokenizer(folder: Path) -> Any:
    """A byte-level CLIPTokenizer with a small vocabulary (no download)."""
    import json

    from transformers import CLIPTokenizer

    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs + [256 + k for k in range(256 - len(bs))]  # the bytes outside bs map to 256, 257, ...
    chars = [chr(c) for c in cs]
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=77)


def diffusion_components(profile: str, folder: Path) -> dict[str, Any]:
    """UNet (8 input channels), VAE, CLIP text encoder and tokenizer of ``profile``; random weights."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer, size = _clip_tokenizer(folder / "tokenizer"), SIZES[profile]
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(sample_size=32, in_channels=8, out_channels=4, attention_head_dim=8, **size["unet"])
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, sample_size=GEN_RESOLUTION,
                            scaling_factor=0.18215, **size["vae"])
        text = CLIPTextModel(CLIPTextConfig(**{"vocab_size": len(tokenizer), **size["text"]},
                                            max_position_embeddings=77, **ids))
    for m in (unet, vae, text):
        m.eval().requires_grad_(False)
    return {"unet": unet, "vae": vae, "text_encoder": text, "tokenizer": tokenizer}


def measure(profile: str, device: str, steps: int, gen_batch: int, repeats: int, progress: bool) -> Measurement:
    """Best of ``repeats`` calls of each pipeline, alternating, after one warm-up call each."""
    lego_cls, reason = lego_pipeline_status()
    if lego_cls is None:
        return Measurement("pipeline", TITLES["pipeline"], None, summary=reason, note="not available yet",
                           details={"reason": reason})
    import torch
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

    from egobench.protocol import load_protocol

    gen = load_protocol("lego-official").generation
    try:
        with bar(1, "bench: building UNet/VAE/text encoder", progress, "model set") as tick, \
                tempfile.TemporaryDirectory() as tmp:
            comps = diffusion_components(profile, Path(tmp))
            tick(1)
        ip2p = StableDiffusionInstructPix2PixPipeline(
            scheduler=EulerAncestralDiscreteScheduler(**SCHEDULER), safety_checker=None, feature_extractor=None,
            requires_safety_checker=False, **comps)
        lego_sched_cls = getattr(importlib.import_module("lego.pipeline"), "KDiffusionEulerAncestralScheduler",
                                 EulerAncestralDiscreteScheduler)
        lego = lego_cls(scheduler=lego_sched_cls(**SCHEDULER), conditioning=None, **comps)
        for p in (ip2p, lego):
            p.to(device)
            p.set_progress_bar_config(disable=True)
        rng = np.random.default_rng(7)
        images = [frame(rng, (GEN_RESOLUTION, GEN_RESOLUTION), (40 + 20 * i, 60)) for i in range(gen_batch)]
        prompts = [f"The person opens drawer {i} with the left hand." for i in range(gen_batch)]

        def call(pipe: Any, n_steps: int) -> float:
            g = torch.Generator(device=device).manual_seed(0)
            sync(device)
            t0 = time.perf_counter()
            pipe(image=images, prompt=prompts, num_inference_steps=n_steps, guidance_scale=gen.text_guidance,
                 image_guidance_scale=gen.image_guidance, generator=g, output_type="pt")
            sync(device)
            return time.perf_counter() - t0

        times: dict[str, list[float]] = {"lego": [], "ip2p": []}
        with bar(2 + 2 * repeats, f"bench: lego vs ip2p ({steps} steps)", progress, "call") as tick:
            for p in (ip2p, lego):  # warm-up
                call(p, 1)
                tick(1)
            for _ in range(repeats):  # alternate so drifting load hits both alike
                for name, p in (("ip2p", ip2p), ("lego", lego)):
                    times[name].append(call(p, steps))
                    tick(1)
    except Exception as e:  # noqa: BLE001 - the LEGO pipeline is work in progress
        reason = f"LEGOPipeline failed: {type(e).__name__}: {e}"
        return Measurement("pipeline", TITLES["pipeline"], None, summary=reason[:300], note="not available yet",
                           details={"reason": reason})
    t_lego, t_ip2p = min(times["lego"]), min(times["ip2p"])
    return Measurement(
        "pipeline", TITLES["pipeline"], t_lego / t_ip2p,
        summary=f"lego {t_lego:.2f} s, ip2p {t_ip2p:.2f} s (best of {repeats}); {steps} steps, batch {gen_batch}, "
                f"{GEN_RESOLUTION}x{GEN_RESOLUTION}, same UNet/VAE/text encoder, no VLLM conditioning",
        details={"lego_s": times["lego"], "ip2p_s": times["ip2p"], "steps": steps, "batch": gen_batch,
                 "lego_scheduler": lego_sched_cls.__name__, "ip2p_scheduler": "EulerAncestralDiscreteScheduler",
                 "unet_parameters": sum(p.numel() for p in comps["unet"].parameters())})
