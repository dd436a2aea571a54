"""BLIP in training mode (``mode: released``): dropout, drop path and the device generator they draw from.

**Training mode (``mode: released``).** ``compute_blip_caption`` builds the
captioner with ``blip_decoder(...)``, moves it to the GPU and never calls
``.eval()``, so the released captions are made with dropout on: BERT dropout 0.1
(``med_config.json``) at every dropout site of the text decoder, and stochastic
depth 0.1 in BLIP-L's ViT (``create_vit``: ``drop_path_rate`` 0.1 for ``large``,
0 for ``base``; per block ``linspace(0, 0.1, depth)``, timm 0.9.5's ``DropPath``).
The ViT's own dropouts have p = 0 and draw nothing. ``mode: released`` turns on
exactly these: the text decoder's ``nn.Dropout`` modules at the med_config rates
(transformers' port has the same modules at the same places, called in the same
order: embeddings; per layer self-attention probabilities, self-output,
cross-attention probabilities, cross-output, feed-forward output) and drop path
around each ViT block's attention and MLP (:func:`vision_forward_released`).
The draws come from the metric device's default generator, which a captioning
pass seeds with ``seed`` (the script's ``seed_everything(42)``) and carries from
batch to batch: batches of ``batch_size`` (30) consecutive scored samples in
split order (the evaluator forms them whatever its own batch size, see
:attr:`~egobench.metrics.Metric.group_size`), so a caption depends on its batch
and on every batch before it, as in the released script. ``draws: K`` repeats
the pass with seeds ``seed``, ``seed + 1``, ... and scores the mean over draws
(``draw_std`` in ``metrics.json``: the spread of the split means). What cannot
be reproduced (the exact draw of a full released run on its GPU) is listed in
``docs/protocols.md``. ``mode: eval`` (default) is deterministic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import UserError
from .blip_protocol import RELEASED_ATTENTION_DROPOUT, RELEASED_HIDDEN_DROPOUT


def drop_path_rates(rate: float, depth: int) -> list[float]:
    """Stochastic depth per block as BLIP's ViT sets it: ``linspace(0, rate, depth)`` in float32,
    each value as a Python float (block 0 gets 0: no drop path, nothing drawn)."""
    return [float(x) for x in torch.linspace(0, rate, depth)]


def drop_path(x: torch.Tensor, p: float) -> torch.Tensor:
    """Stochastic depth in training mode with timm 0.9.5's semantics (the LEGO environment): one
    Bernoulli(1 - p) draw per row from the default generator of ``x``'s device, the kept rows scaled
    by 1 / (1 - p); p = 0 returns ``x`` and draws nothing."""
    if p == 0.0:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    mask.div_(keep)
    return x * mask


def vision_forward_released(vision_model: Any, pixel_values: torch.Tensor, rates: Sequence[float]) -> torch.Tensor:
    """BLIP's ViT in training mode on a transformers ``BlipVisionModel``: per block
    ``x + drop_path(attn(norm1(x)))`` then ``x + drop_path(mlp(norm2(x)))``, then the final norm
    (``last_hidden_state``). The ViT's dropouts (p = 0 in BLIP) stay off: they draw nothing."""
    layers = vision_model.encoder.layers
    if len(rates) != len(layers):
        raise ValueError(f"{len(rates)} drop path rates for {len(layers)} ViT blocks")
    h = vision_model.embeddings(pixel_values)
    for layer, p in zip(layers, rates):
        h = h + drop_path(layer.self_attn(hidden_states=layer.layer_norm1(h))[0], p)
        h = h + drop_path(layer.mlp(layer.layer_norm2(h)), p)
    return vision_model.post_layernorm(h)


@contextlib.contextmanager
def released_training_mode(model: Any) -> Any:
    """The text decoder's dropouts on, at the released ``med_config.json`` rates, for the duration
    (attention-probability dropouts at ``attention_probs_dropout_prob``, the others at
    ``hidden_dropout_prob``); everything else keeps its mode. Restored afterwards (the model may be
    shared with an eval-mode column)."""
    decoder = model.text_decoder
    sites = [(name, m) for name, m in decoder.named_modules() if isinstance(m, torch.nn.Dropout)]
    n_layers = len(decoder.bert.encoder.layer)
    # embeddings + per layer: self-attention probs, self output, cross-attention probs, cross output, FFN output
    if len(sites) != 1 + 5 * n_layers:
        raise RuntimeError(f"BLIP text decoder has {len(sites)} dropout modules; the released decoder has "
                           f"{1 + 5 * n_layers} (transformers' BLIP port changed?)")
    saved = [(m, m.p, m.training) for _, m in sites]
    try:
        for name, m in sites:
            m.p = RELEASED_ATTENTION_DROPOUT if name.endswith("self.dropout") else RELEASED_HIDDEN_DROPOUT
            m.train()
        yield
    finally:
        for m, p, training in saved:
            m.p = p
            m.train(training)


class DeviceGenerator:
    """The default generator of the metric's device (what dropout and drop path draw from): read,
    set, and the state a fresh generator seeded with ``seed`` has (``seed_everything(seed)``)."""

    def __init__(self, device: str):
        dev = torch.device(device)
        if dev.type not in ("cpu", "cuda"):
            raise UserError(f"metric blip: mode 'released' draws from a CPU or CUDA generator, not '{device}'")
        self.type = dev.type
        self.index = (dev.index if dev.index is not None else torch.cuda.current_device()) if dev.type == "cuda" else None

    def get(self) -> torch.Tensor:
        return torch.get_rng_state() if self.type == "cpu" else torch.cuda.get_rng_state(self.index)

    def set(self, state: torch.Tensor) -> None:
        if self.type == "cpu":
            torch.set_rng_state(state)
        else:
            torch.cuda.set_rng_state(state, self.index)

    def seeded(self, seed: int) -> torch.Tensor:
        where = "cpu" if self.type == "cpu" else f"cuda:{self.index}"
        return torch.Generator(device=where).manual_seed(seed).get_state()
