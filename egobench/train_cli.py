"""``egobench train <model>``: subcommands come from the ``egobench.train``
entry-point group (``lego``, ``vllm``, ``ip2p``, ``ldm``, or an outside
package's), one :class:`~egobench.registry.Registry`, loaded only when invoked."""

from __future__ import annotations

import click

from .cli import RegistryGroup


class _TrainGroup(RegistryGroup):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, entry_point_group="egobench.train", kind="train command", **kwargs)


@click.group("train", cls=_TrainGroup)
def train() -> None:
    """Finetune a model (LEGO's LDM or VLLM, a baseline) on a split's training data."""
