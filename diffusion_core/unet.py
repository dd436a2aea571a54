"""UNet surgery for InstructPix2Pix-style training: extra input channels for the image latent."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from egobench.errors import ConfigError


def widen_conv_in(unet: Any, in_channels: int) -> Any:
    """Give ``unet`` ``in_channels`` input channels, the new ones zero-initialized (InstructPix2Pix).

    The existing channels keep their weights (the first ``old`` input channels),
    the bias is kept; a no-op when the UNet already has ``in_channels``.
    """
    old = unet.conv_in
    if old.in_channels == in_channels:
        return unet
    if old.in_channels > in_channels:
        raise ConfigError(f"cannot narrow the UNet input from {old.in_channels} to {in_channels} channels")
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                    device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels].copy_(old.weight)
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)
    return unet
