"""LEGOPipeline: the LEGO latent diffusion model as a diffusers pipeline.

Structure after diffusers' ``StableDiffusionInstructPix2PixPipeline``; behaviour
after the released inference code (``metrics/inference.py``: ``ImageEditor``,
``CFGDenoiser`` and k-diffusion 0.0.15's ``sample_euler_ancestral`` on a
``CompVisDenoiser``):

- input image in [-1, 1], encoded with the VAE posterior's ``mode()`` and *not*
  multiplied by the 0.18215 scale factor (``encode_first_stage(x).mode()``);
  it is concatenated to the noisy latent on the channel axis (8 UNet inputs);
- context = ``conditioning([CLIP(prompt) | VLLM image | VLLM text])``;
- three-way guidance, batch ``[cond, image-only, uncond]``:
  cond = (text context, image latent), image-only = (CLIP("") + zero VLLM
  tokens, image latent), uncond = (CLIP("") + zero VLLM tokens, zero latent);
  ``e = e_u + s_text (e_c - e_i) + s_img (e_i - e_u)``;
- k-diffusion's Euler ancestral sampler
  (:class:`diffusion_core.scheduler.KDiffusionEulerAncestralScheduler`);
- decode ``latents / 0.18215`` with the VAE; no clamping.

Throughput: each step is one UNet call on the whole batch and its three guidance
branches (``3 B`` rows); attention runs through the UNet's default processors
(PyTorch's scaled-dot-product attention); ``pipe.unet.compile()`` compiles the UNet
in place (``tests/test_throughput.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    SchedulerMixin,
    UNet2DConditionModel,
)
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextModel, CLIPTokenizer

from .conditioning import LEGOConditioning

OUTPUT_TYPES = ("pt", "np", "pil", "latent")


# ---------------------------------------------------------------------------
# Pipeline
# ---------------------------------------------------------------------------
@dataclass
class LEGOPipelineOutput(BaseOutput):
    """``images``: (B, 3, H, W) tensor (``pt``), (B, H, W, 3) array (``np``), PIL
    images (``pil``) or latents (``latent``). ``pt``/``np`` values are
    ``(x + 1) / 2`` of the decoder output, *not* clamped (mostly in [0, 1])."""

    images: torch.Tensor | np.ndarray | list[PIL.Image.Image]


ImageInput = PIL.Image.Image | list[PIL.Image.Image] | torch.Tensor | np.ndarray
FeatureInput = torch.Tensor | np.ndarray | list[torch.Tensor] | list[np.ndarray]


class LEGOPipeline(DiffusionPipeline):
    """Action frame generation with LEGO (Lai et al., ECCV 2024).

    Components: ``vae`` (AutoencoderKL), ``text_encoder`` (CLIPTextModel),
    ``tokenizer`` (CLIPTokenizer), ``unet`` (UNet2DConditionModel with 8 input
    channels), ``scheduler`` (any diffusers scheduler; the released sampler is
    :class:`~diffusion_core.scheduler.KDiffusionEulerAncestralScheduler`), ``conditioning``
    (:class:`LEGOConditioning`, or ``None`` for the descriptions-only variant).
    """

    model_cpu_offload_seq = "text_encoder->conditioning->unet->vae"
    _optional_components = ["conditioning"]

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: UNet2DConditionModel,
        scheduler: SchedulerMixin,
        conditioning: LEGOConditioning | None = None,
    ):
        super().__init__()
        self.register_modules(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
            scheduler=scheduler, conditioning=conditioning,
        )
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)

    # -- helpers ------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (VAE and UNet downsampling)."""
        return self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    def encode_prompt(self, prompt: list[str], device: torch.device) -> torch.Tensor:
        """CLIP last hidden state of ``prompt`` padded/truncated to the tokenizer's
        77 tokens (``FrozenCLIPEmbedder``)."""
        ids = self.tokenizer(
            prompt, padding="max_length", max_length=self.tokenizer.model_max_length,
            truncation=True, return_tensors="pt",
        ).input_ids
        return self.text_encoder(ids.to(device))[0]

    @staticmethod
    def preprocess(image: ImageInput) -> torch.Tensor:
        """PIL images -> (B, 3, H, W) in [-1, 1] as ``EgoGenDatasetEval`` does
        (``2 * x / 255 - 1``); float tensors/arrays are taken as [0, 1]."""
        if isinstance(image, PIL.Image.Image):
            image = [image]
        if isinstance(image, list):
            arrs = [torch.tensor(np.array(im.convert("RGB"))).float() for im in image]
            return torch.stack([2 * a / 255 - 1 for a in arrs]).permute(0, 3, 1, 2)
        x = torch.as_tensor(image).float()
        if x.ndim == 3:
            x = x[None]
        return 2 * x - 1

    def _features(self, x: FeatureInput | None, name: str, batch: int, device, dtype) -> torch.Tensor | None:
        """Stack per-sample features; text features are padded per sample first."""
        if x is None:
            return None
        if isinstance(x, (list, tuple)):
            items = [torch.as_tensor(np.asarray(f) if not isinstance(f, torch.Tensor) else f) for f in x]
            if name == "vllm_text":
                items = [self.conditioning.pad_text(f[None].float())[0] for f in items]
            x = torch.stack([f.float() for f in items])
        else:
            x = torch.as_tensor(x)
        return x.to(device=device, dtype=dtype)

    def check_inputs(
        self, image, prompt, vllm_image, vllm_text, num_inference_steps, guidance_scale,
        image_guidance_scale, generator, output_type,
    ) -> int:
        """Validate before any compute; returns the batch size."""
        if isinstance(prompt, str):
            prompt = [prompt]
        if not isinstance(prompt, list) or not prompt or not all(isinstance(p, str) for p in prompt):
            raise ValueError(f"`prompt` must be a string or a non-empty list of strings, got {prompt!r:.200}")
        batch = len(prompt)
        if image is None:
            raise ValueError("`image` is required (the input frame)")
        if isinstance(image, PIL.Image.Image):
            sizes = [(image.height, image.width)]
        elif isinstance(image, list):
            if not all(isinstance(im, PIL.Image.Image) for im in image):
                raise ValueError("`image` given as a list must hold PIL images")
            sizes = [(im.height, im.width) for im in image]
        elif isinstance(image, (torch.Tensor, np.ndarray)):
            shape = tuple(image.shape)
            if len(shape) not in (3, 4) or shape[-3] != 3:
                raise ValueError(f"`image` tensor must be (3, H, W) or (B, 3, H, W) in [0, 1], got {shape}")
            sizes = [shape[-2:]] * (shape[0] if len(shape) == 4 else 1)
        else:
            raise ValueError(f"`image` must be a PIL image, a list of them or a tensor, got {type(image).__name__}")
        if len(sizes) != batch:
            raise ValueError(f"got {len(sizes)} images for {batch} prompts")
        if len(set(sizes)) > 1:
            raise ValueError(f"all images in a batch must have one size, got {sorted(set(sizes))}")
        m = self.size_multiple
        h, w = sizes[0]
        if h % m or w % m:
            raise ValueError(f"image height and width must be multiples of {m}, got {h}x{w}")
        cond = self.conditioning
        for name, x, used in (
            ("vllm_image", vllm_image, cond is not None and cond.config.use_image),
            ("vllm_text", vllm_text, cond is not None and cond.config.use_text),
        ):
            if used and x is None:
                raise ValueError(f"`{name}` is required: this pipeline's conditioning uses it")
            if not used and x is not None:
                raise ValueError(f"`{name}` was given but this pipeline's conditioning does not use it")
            if x is None:
                continue
            n = len(x) if isinstance(x, (list, tuple)) else x.shape[0]
            if n != batch:
                raise ValueError(f"`{name}` has {n} samples for {batch} prompts")
            shapes = [tuple(f.shape) for f in x] if isinstance(x, (list, tuple)) else [tuple(x.shape[1:])]
            for s in shapes:
                ok = len(s) == 2 and s[1] == cond.config.vllm_hidden and s[0] >= 1
                if name == "vllm_image":
                    ok = ok and s[0] == cond.config.image_tokens
                if not ok:
                    tokens = cond.config.image_tokens if name == "vllm_image" else "T"
                    raise ValueError(
                        f"`{name}` features must be ({tokens}, {cond.config.vllm_hidden}) per sample, got {s}"
                    )
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}")
        for name, g in (("guidance_scale", guidance_scale), ("image_guidance_scale", image_guidance_scale)):
            if not isinstance(g, (int, float)) or not math.isfinite(g):
                raise ValueError(f"`{name}` must be a finite number, got {g!r}")
        if isinstance(generator, list) and len(generator) != batch:
            raise ValueError(f"got {len(generator)} generators for {batch} prompts")
        latent = self.vae.config.latent_channels
        if self.unet.config.in_channels != 2 * latent:
            raise ValueError(
                f"unet.config.in_channels is {self.unet.config.in_channels}; LEGO needs {latent} noise + "
                f"{latent} image latent channels = {2 * latent}"
            )
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
        return batch

    # -- generation ----------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        image: ImageInput,
        prompt: str | list[str],
        vllm_image: FeatureInput | None = None,
        vllm_text: FeatureInput | None = None,
        num_inference_steps: int = 100,
        guidance_scale: float = 7.5,
        image_guidance_scale: float = 1.5,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pt",
        return_dict: bool = True,
        callback_on_step_end: Callable[[LEGOPipeline, int, torch.Tensor, dict], dict] | None = None,
    ) -> LEGOPipelineOutput | tuple:
        """Generate the frame after the action.

        Args:
            image: input frame(s): PIL, or float (B, 3, H, W) in [0, 1]; sides
                multiples of :attr:`size_multiple` (LEGO: 256 x 256).
            prompt: the enriched action description(s), fed to CLIP.
            vllm_image: VLLM image features, (B, 256, 5120) or a list of (256, 5120).
            vllm_text: VLLM text features, (B, T, 5120) or a list of (T_i, 5120);
                truncated or zero-padded to 77 tokens.
            num_inference_steps: Euler ancestral steps (100 in the release).
            guidance_scale: text guidance (7.5); image_guidance_scale: image guidance (1.5).
            generator: one ``torch.Generator``, one per sample, or ``None`` for the
                global RNG (the released code's single seed).
            output_type: ``pt`` | ``np`` | ``pil`` | ``latent``.
            callback_on_step_end: called after every denoising step as diffusers'
                pipelines call it, ``f(pipe, i, t, {"latents": latents})``; a returned
                ``"latents"`` replaces the latents.

        With one generator per sample, every random draw of a sample (initial noise
        and the noise of each ancestral step) comes from its own generator, so a
        sample's noise does not depend on the other samples of the batch.
        """
        # 1. Check inputs
        batch = self.check_inputs(
            image, prompt, vllm_image, vllm_text, num_inference_steps, guidance_scale,
            image_guidance_scale, generator, output_type,
        )
        prompt = [prompt] if isinstance(prompt, str) else list(prompt)
        device = self._execution_device
        dtype = self.unet.dtype

        # 2. Encode the prompts and the empty prompt with CLIP (77 tokens)
        prompt_embeds = self.encode_prompt(prompt, device)
        null_embeds = self.encode_prompt([""], device).expand(batch, -1, -1)

        # 3. Cross-attention contexts: [CLIP | VLLM image | VLLM text]; zero VLLM tokens when unconditional
        if self.conditioning is not None:
            cdtype = self.conditioning.dtype
            feats_img = self._features(vllm_image, "vllm_image", batch, device, cdtype)
            feats_txt = self._features(vllm_text, "vllm_text", batch, device, cdtype)
            context = self.conditioning(prompt_embeds, feats_img, feats_txt)
            null_context = self.conditioning(null_embeds, drop_vllm=True)
        else:
            context, null_context = prompt_embeds, null_embeds
        # batch order [cond, image-only, uncond] as the released CFGDenoiser
        contexts = torch.cat([context, null_context, null_context]).to(dtype)

        # 4. Encode the input image: posterior mode, unscaled (encode_first_stage(x).mode())
        pixels = self.preprocess(image).to(device=device, dtype=self.vae.dtype)
        image_latents = self.vae.encode(pixels).latent_dist.mode()
        concat = torch.cat([image_latents, image_latents, torch.zeros_like(image_latents)]).to(dtype)

        # 5. Timesteps and sigmas
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps

        # 6. Initial noise * sigma_max. The global RNG draws like the released randn_like(image
        #    latent) (fp16 under fp16); seeded generators draw fp32 so noise is precision-independent
        noise_dtype = image_latents.dtype if generator is None else torch.float32
        latents = randn_tensor(image_latents.shape, generator=generator, device=device, dtype=noise_dtype)
        latents = (latents * self.scheduler.init_noise_sigma).to(torch.float32)

        # 7. Denoising loop with three-way guidance
        for i, t in enumerate(self.progress_bar(timesteps)):
            x_in = self.scheduler.scale_model_input(torch.cat([latents] * 3), t)
            x_in = torch.cat([x_in.to(dtype), concat], dim=1)
            eps = self.unet(x_in, t, encoder_hidden_states=contexts, return_dict=False)[0].float()
            eps_cond, eps_img, eps_uncond = eps.chunk(3)
            eps = eps_uncond + guidance_scale * (eps_cond - eps_img) + image_guidance_scale * (eps_img - eps_uncond)
            latents = self.scheduler.step(eps, t, latents, generator=generator, return_dict=False)[0]
            if callback_on_step_end is not None:
                latents = callback_on_step_end(self, i, t, {"latents": latents}).pop("latents", latents)

        # 8. Decode (1 / 0.18215) and map [-1, 1] -> [0, 1] without clamping
        if output_type == "latent":
            images = latents
        else:
            decoded = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
            images = (decoded.float() + 1) / 2
            if output_type == "np":
                images = images.permute(0, 2, 3, 1).cpu().numpy()
            elif output_type == "pil":
                arr = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
                images = [PIL.Image.fromarray(a) for a in arr]
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return LEGOPipelineOutput(images=images)
