"""Exponential moving average of trained parameters (the released ``LitEma``), checkpointable with accelerate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from egobench.errors import DataError


class EMA:
    """Exponential moving average of parameters, with ``LitEma``'s decay warm-up.

    Each :meth:`update` increments ``num_updates`` and uses
    ``decay_n = min(decay, (1 + n) / (10 + n))``; shadow ``-= (1 - decay_n) (shadow - param)``.
    Shadows are float32 copies on the parameters' device. ``state_dict`` /
    ``load_state_dict`` make it checkpointable with accelerate.
    """

    def __init__(self, named_params: Sequence[tuple[str, nn.Parameter]], decay: float = 0.9999):
        self.decay = float(decay)
        self.num_updates = 0
        self.params = dict(named_params)
        self.shadow = {k: p.detach().float().clone() for k, p in self.params.items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self) -> None:
        self.num_updates += 1
        one_minus = 1.0 - self.current_decay()
        for k, p in self.params.items():
            s = self.shadow[k]
            s.sub_(one_minus * (s - p.detach().float()))

    @torch.no_grad()
    def copy_to_params(self) -> None:
        for k, p in self.params.items():
            p.copy_(self.shadow[k].to(p.dtype))

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        shadow = state["shadow"]
        if set(shadow) != set(self.shadow):
            raise DataError("EMA checkpoint does not match the trained parameters")
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        for k, v in shadow.items():
            self.shadow[k].copy_(v)
