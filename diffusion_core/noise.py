"""The LDM's forward noising process, for training (the samplers are in :mod:`diffusion_core.scheduler`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from egobench.errors import ConfigError


class NoiseSchedule:
    """The LDM's forward process ``q(x_t | x_0)`` from a diffusers scheduler config.

    ``beta_schedule="scaled_linear"`` is the LDM's ``linear`` schedule
    (linspace of square roots, squared) and ``"linear"`` its ``sqrt_linear``;
    the tables are computed in float64 and stored as float32, as
    ``DDPM.register_schedule`` does.
    """

    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012,
                 beta_schedule: str = "scaled_linear", trained_betas: Sequence[float] | None = None,
                 prediction_type: str = "epsilon"):
        if prediction_type != "epsilon":
            raise ConfigError(f"only epsilon-prediction models can be trained here, got {prediction_type!r}")
        n = int(num_train_timesteps)
        if trained_betas is not None:
            betas = np.asarray(trained_betas, dtype=np.float64)
        elif beta_schedule == "scaled_linear":
            betas = (torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float64) ** 2).numpy()
        elif beta_schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, n, dtype=torch.float64).numpy()
        else:
            raise ConfigError(f"unsupported beta_schedule {beta_schedule!r} (scaled_linear or linear)")
        alphas_cumprod = np.cumprod(1.0 - betas, axis=0)
        self.config = {"num_train_timesteps": n, "beta_start": beta_start, "beta_end": beta_end,
                       "beta_schedule": beta_schedule,
                       "trained_betas": None if trained_betas is None else [float(b) for b in betas]}
        self.num_train_timesteps = len(betas)
        self.alphas_cumprod = torch.tensor(alphas_cumprod, dtype=torch.float32)
        self.sqrt_alphas_cumprod = torch.tensor(np.sqrt(alphas_cumprod), dtype=torch.float32)
        self.sqrt_one_minus_alphas_cumprod = torch.tensor(np.sqrt(1.0 - alphas_cumprod), dtype=torch.float32)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> NoiseSchedule:
        keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type")
        return cls(**{k: config[k] for k in keys if k in config and config[k] is not None})

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (x0.ndim - 1)
        a = self.sqrt_alphas_cumprod.to(x0.device)[t].view(shape)
        s = self.sqrt_one_minus_alphas_cumprod.to(x0.device)[t].view(shape)
        return a.to(x0.dtype) * x0 + s.to(x0.dtype) * noise
