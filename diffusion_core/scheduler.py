"""Samplers: k-diffusion's Euler ancestral as a diffusers scheduler, and the protocol's scheduler table.

``euler-ancestral`` is k-diffusion 0.0.15's ``sample_euler_ancestral`` (the released LEGO and
InstructPix2Pix sampler), so LEGO and the baselines differ in their models, not in how they are sampled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# SchedulerMixin must be a name of this module: a pipeline folder saved with the k-diffusion scheduler
# names this module, and diffusers' from_pretrained looks the loading base classes up in it
from diffusers import EulerAncestralDiscreteScheduler, SchedulerMixin
from diffusers.schedulers.scheduling_euler_ancestral_discrete import EulerAncestralDiscreteSchedulerOutput
from diffusers.utils.torch_utils import randn_tensor

from egobench.errors import ConfigError

from .noise import NoiseSchedule


class KDiffusionEulerAncestralScheduler(EulerAncestralDiscreteScheduler):
    """diffusers' Euler ancestral scheduler with k-diffusion 0.0.15's exact behaviour.

    The stock scheduler differs from ``K.sampling.sample_euler_ancestral`` on a
    ``K.external.CompVisDenoiser`` in three ways that this subclass removes:

    1. sigmas at fractional timesteps are interpolated linearly in sigma; k-diffusion
       interpolates in log-sigma (``DiscreteSchedule.t_to_sigma``);
    2. the LDM's ``alphas_cumprod`` is a float64 cumulative product stored as
       float32; diffusers multiplies in float32;
    3. it draws noise at the last step too (times ``sigma_up = 0``), which
       consumes RNG draws k-diffusion 0.0.15 does not (``if sigmas[i + 1] > 0``);
       that matters for the released one-global-seed runs.

    The UNet gets ``t = sigma_to_t(sigma)`` as k-diffusion feeds it (fractional).
    The config is the stock one (``beta_schedule="scaled_linear"`` *is* the LDM's
    ``linear`` schedule, linspace of square roots, squared), so
    ``KDiffusionEulerAncestralScheduler.from_config(pipe.scheduler.config)`` works.
    """

    def _ldm_log_sigmas(self) -> torch.Tensor:
        c = self.config
        n = c.num_train_timesteps
        if c.trained_betas is not None:
            betas = np.asarray(c.trained_betas, dtype=np.float64)
        elif c.beta_schedule == "scaled_linear":  # LDM "linear"
            betas = (torch.linspace(c.beta_start**0.5, c.beta_end**0.5, n, dtype=torch.float64) ** 2).numpy()
        elif c.beta_schedule == "linear":  # LDM "sqrt_linear"
            betas = torch.linspace(c.beta_start, c.beta_end, n, dtype=torch.float64).numpy()
        else:
            betas = self.betas.double().numpy()
        alphas_cumprod = torch.tensor(np.cumprod(1.0 - betas, axis=0), dtype=torch.float32)
        return (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).log()

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        if self.config.timestep_spacing != "linspace":
            raise ValueError(
                f"KDiffusionEulerAncestralScheduler needs timestep_spacing='linspace', "
                f"got {self.config.timestep_spacing!r}"
            )
        if self.config.prediction_type != "epsilon":
            raise ValueError(f"KDiffusionEulerAncestralScheduler needs prediction_type='epsilon', "
                             f"got {self.config.prediction_type!r}")
        self.num_inference_steps = num_inference_steps
        log_sigmas = self._ldm_log_sigmas()
        # CompVisDenoiser.get_sigmas(n): t = linspace(t_max, 0, n), log-linear t_to_sigma
        t = torch.linspace(len(log_sigmas) - 1, 0, num_inference_steps)
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        sigmas = ((1 - w) * log_sigmas[low] + w * log_sigmas[high]).exp()
        self.sigmas = torch.cat([sigmas, sigmas.new_zeros([1])])  # kept on CPU like the parent
        self.timesteps = _sigma_to_t(sigmas, log_sigmas).to(device=device)
        self._step_index = None
        self._begin_index = None

    def step(
        self,
        model_output: torch.Tensor,
        timestep: float | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | list[torch.Generator] | None = None,
        return_dict: bool = True,
    ) -> EulerAncestralDiscreteSchedulerOutput | tuple:
        """One ``sample_euler_ancestral`` step from an epsilon prediction."""
        if self.step_index is None:
            self._init_step_index(timestep)
        sigma = self.sigmas[self.step_index].to(sample.device)
        sigma_next = self.sigmas[self.step_index + 1].to(sample.device)
        x = sample.to(torch.float32)
        denoised = x + model_output.to(torch.float32) * -sigma  # CompVisDenoiser: c_out = -sigma
        # get_ancestral_step(sigma, sigma_next, eta=1)
        sigma_up = torch.minimum(sigma_next, (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2) ** 0.5)
        sigma_down = (sigma_next**2 - sigma_up**2) ** 0.5
        d = (x - denoised) / sigma  # to_d
        x = x + d * (sigma_down - sigma)
        if sigma_next > 0:
            noise = randn_tensor(x.shape, generator=generator, device=x.device, dtype=torch.float32)
            x = x + noise * sigma_up
        self._step_index += 1
        prev = x.to(model_output.dtype)
        if not return_dict:
            return (prev, denoised)
        return EulerAncestralDiscreteSchedulerOutput(prev_sample=prev, pred_original_sample=denoised)


def _sigma_to_t(sigma: torch.Tensor, log_sigmas: torch.Tensor) -> torch.Tensor:
    """k-diffusion's ``DiscreteSchedule.sigma_to_t`` (no quantization)."""
    log_sigma = sigma.log()
    dists = log_sigma - log_sigmas[:, None]
    low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=log_sigmas.shape[0] - 2)
    high_idx = low_idx + 1
    low, high = log_sigmas[low_idx], log_sigmas[high_idx]
    w = ((low - log_sigma) / (low - high)).clamp(0, 1)
    return ((1 - w) * low_idx + w * high_idx).view(sigma.shape)


def make_scheduler(kind: str, config: Any) -> SchedulerMixin:
    """The protocol's sampler from a folder's scheduler config."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    table = {
        "euler-ancestral": KDiffusionEulerAncestralScheduler,  # the released sampler
        "euler": EulerDiscreteScheduler,
        "ddim": DDIMScheduler,
        "dpm-solver": DPMSolverMultistepScheduler,
    }
    if kind not in table:
        raise ConfigError(f"unknown scheduler '{kind}'; use one of {', '.join(table)}")
    return table[kind].from_config(config)


def inference_scheduler(noise: NoiseSchedule, k_diffusion: bool = True, sdxl: bool = False) -> SchedulerMixin:
    """Euler ancestral on the training schedule (the sampler InstructPix2Pix and LEGO use).

    ``k_diffusion=True``: ``timestep_spacing="linspace"``, no offset (k-diffusion's
    ``get_sigmas``, what LEGO's pipeline expects); False: SD 1.5's ``"leading"`` spacing
    with ``steps_offset=1`` (what diffusers' Stable Diffusion pipelines expect). ``sdxl``: Euler
    (not ancestral) with that spacing, the sampler SDXL InstructPix2Pix's release folder names."""
    spacing = dict(timestep_spacing="linspace", steps_offset=0) if k_diffusion else dict(
        timestep_spacing="leading", steps_offset=1)
    if sdxl:
        from diffusers import EulerDiscreteScheduler

        return EulerDiscreteScheduler(**noise.config, prediction_type="epsilon", **spacing)
    return EulerAncestralDiscreteScheduler(**noise.config, prediction_type="epsilon", **spacing)
