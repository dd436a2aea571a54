"""Seed policies.

``per-sample``: each sample's seed is derived from (protocol seed, sample id)
with SHA-256, so it does not depend on batch size, shard count, order or
resumption. ``global``: the released code's behaviour, one RNG seeded once per
run and consumed in order; methods get ``None`` and use the global RNG, so the
noise depends on chunking and a resumed run does not reproduce an
uninterrupted one bit for bit (the manifest says so).
"""

from __future__ import annotations

import hashlib
import random

import numpy as np


def sample_seed(protocol_seed: int, sample_id: str) -> int:
    digest = hashlib.sha256(f"{protocol_seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
