"""Trivial reference bounds: they bracket what any method should score.

``input-copy`` returns the input frame (a method that changes nothing);
``oracle`` returns the ground-truth target (the ceiling, up to the protocol's
re-encoding).
"""

from __future__ import annotations

from collections.abc import Sequence

from .data import Sample
from .methods import Method, load_rgb


class InputCopy(Method):
    name = "input-copy"
    summary = "returns the input frame unchanged (lower bound: no action rendered)"
    is_bound = True

    def generate(self, samples: Sequence[Sample], seeds: Sequence[int | None]):
        return [load_rgb(s.input_path) for s in samples]


class Oracle(Method):
    name = "oracle"
    summary = "returns the ground-truth target frame (upper bound)"
    is_bound = True

    def generate(self, samples: Sequence[Sample], seeds: Sequence[int | None]):
        return [load_rgb(s.target_path) for s in samples]


#: the bounds every comparison shows beside the methods (``egobench demo`` runs them next to its method)
BOUNDS: tuple[type[Method], ...] = (InputCopy, Oracle)
