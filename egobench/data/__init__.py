"""Splits: typed samples, the official LEGO release layout, raw-annotation
preparation and the embedded demo split."""

from .datasets import DATASETS, load_split
from .split import Sample, Split

__all__ = ["DATASETS", "Sample", "Split", "load_split"]
