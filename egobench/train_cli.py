"""``egobench train <model>``: subcommands come from the ``egobench.train``
entry-point group (``lego``, ``vllm``, ``ip2p``, ``ldm``, or an outside
package's), loaded only when invoked."""

from __future__ import annotations

from importlib import metadata

import click


class _TrainGroup(click.Group):
    def _eps(self) -> dict:
        return {ep.name: ep for ep in metadata.entry_points(group="egobench.train")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._eps()))

    def get_command(self, ctx: click.Context, name: str):
        cmd = super().get_command(ctx, name)
        if cmd is None and name in self._eps():
            cmd = self._eps()[name].load()
        return cmd


@click.group("train", cls=_TrainGroup)
def train() -> None:
    """Finetune a model (LEGO's LDM or VLLM, a baseline) on a split's training data."""
