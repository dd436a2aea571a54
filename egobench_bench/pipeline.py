"""Item 4: ``lego.pipeline.LEGOPipeline`` (descriptions only, no VLLM conditioning) with its k-diffusion
sampler against diffusers' ``StableDiffusionInstructPix2PixPipeline`` with diffusers' Euler ancestral,
both built from the same UNet, VAE, text encoder and tokenizer (:mod:`diffusion_core.tiny`, or SD 1.5's
sizes from :mod:`diffusion_core.full_arch`), with the same steps, guidance and batch; "not available
yet" while the LEGO pipeline does not import or fails."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .clock import timed
from .progress import bar
from .report import TITLES, Measurement
from .synthetic import frame

#: item 4 works on square frames of this side (LEGO's 256 x 256)
GEN_RESOLUTION = 256
SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 prediction_type="epsilon", timestep_spacing="linspace", steps_offset=0)


def lego_pipeline_status() -> tuple[Any, str]:
    """(``LEGOPipeline`` class or None, the reason when None)."""
    try:
        cls = getattr(importlib.import_module("lego.pipeline"), "LEGOPipeline", None)
    except Exception as e:  # noqa: BLE001 - a half-written module must not break the bench
        return None, f"lego.pipeline does not import ({type(e).__name__}: {e})"
    return (cls, "") if cls is not None else (None, "lego.pipeline has no LEGOPipeline")


def measure(opts: Any, device: str) -> Measurement:
    """Best of ``opts.pipeline_repeats`` calls of each pipeline, alternating, after one warm-up call each."""
    lego_cls, reason = lego_pipeline_status()
    try:
        if lego_cls is None:
            raise RuntimeError(reason)
        import torch
        from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

        from diffusion_core.scheduler import KDiffusionEulerAncestralScheduler
        from egobench.protocol import load_protocol

        from .options import PROFILES

        gen, steps, batch = load_protocol("lego-official").generation, opts.steps, PROFILES[opts.profile]["gen_batch"]
        with bar(1, "bench: building UNet/VAE/text encoder", opts.progress, "model set") as tick:
            if opts.profile == "tiny":
                from diffusion_core.tiny import tiny_components as components
            else:
                from diffusion_core.full_arch import sd15_components as components
            comps = components(seed=0)
            tick(1)
        ip2p = StableDiffusionInstructPix2PixPipeline(
            scheduler=EulerAncestralDiscreteScheduler(**SCHEDULER), safety_checker=None, feature_extractor=None,
            requires_safety_checker=False, **comps)
        lego = lego_cls(scheduler=KDiffusionEulerAncestralScheduler(**SCHEDULER), conditioning=None, **comps)
        rng = np.random.default_rng(7)
        images = [frame(rng, (GEN_RESOLUTION, GEN_RESOLUTION), (40 + 20 * i, 60)) for i in range(batch)]
        prompts = [f"The person opens drawer {i} with the left hand." for i in range(batch)]

        def call(pipe: Any, n_steps: int) -> float:
            return timed(device, lambda: pipe(
                image=images, prompt=prompts, num_inference_steps=n_steps, guidance_scale=gen.text_guidance,
                image_guidance_scale=gen.image_guidance, generator=torch.Generator(device=device).manual_seed(0),
                output_type="pt"))[0]

        times: dict[str, list[float]] = {"lego": [], "ip2p": []}
        with bar(2 + 2 * opts.pipeline_repeats, f"bench: lego vs ip2p ({steps} steps)", opts.progress, "call") as tick:
            for p in (ip2p, lego):  # warm-up
                p.to(device).set_progress_bar_config(disable=True)
                call(p, 1)
                tick(1)
            for _ in range(opts.pipeline_repeats):  # alternate so drifting load hits both alike
                for name, p in (("ip2p", ip2p), ("lego", lego)):
                    times[name].append(call(p, steps))
                    tick(1)
    except Exception as e:  # noqa: BLE001 - the LEGO pipeline is work in progress
        reason = reason or f"LEGOPipeline failed: {type(e).__name__}: {e}"
        return Measurement("pipeline", TITLES["pipeline"], None, summary=reason[:300], note="not available yet",
                           details={"reason": reason})
    t_lego, t_ip2p = min(times["lego"]), min(times["ip2p"])
    return Measurement(
        "pipeline", TITLES["pipeline"], t_lego / t_ip2p,
        summary=f"lego {t_lego:.2f} s, ip2p {t_ip2p:.2f} s (best of {opts.pipeline_repeats}); {steps} steps, batch "
                f"{batch}, {GEN_RESOLUTION}x{GEN_RESOLUTION}, same UNet/VAE/text encoder, no VLLM conditioning",
        details={"lego_s": times["lego"], "ip2p_s": times["ip2p"], "steps": steps, "batch": batch,
                 "lego_scheduler": "KDiffusionEulerAncestralScheduler", "ip2p_scheduler": "EulerAncestralDiscreteScheduler",
                 "unet_parameters": sum(p.numel() for p in comps["unet"].parameters())})
