"""Typed option dataclasses as click commands: the harness's :mod:`egobench.options` (``option``,
``option_like``, ``click_options``, ``from_click``), which the training commands use as the harness's
commands do; kept under this name for the train commands and the bench."""

from __future__ import annotations

from egobench.options import click_options, from_click, option, option_like

__all__ = ["click_options", "from_click", "option", "option_like"]
