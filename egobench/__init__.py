"""egobench: benchmark and evaluation harness for egocentric action frame generation.

The Python API mirrors the CLI one to one::

    import egobench
    res = egobench.run("input-copy", "demo", protocol="egobench-v1", zoo="tiny")
    print(res.table())
"""

from __future__ import annotations

from . import _compat

# Before anything else can import torchvision (see _compat for why).
_compat.ensure_torchvision()

from .data import DATASETS, Sample, Split, load_split  # noqa: E402
from .errors import UserError  # noqa: E402
from .methods import METHODS, Method, register_method  # noqa: E402
from .metrics import METRICS, Metric, MetricBatch  # noqa: E402
from .protocol import Protocol, available_protocols, load_protocol  # noqa: E402
from .runner import RunResult, evaluate, run  # noqa: E402
from .weights import ARTIFACTS, Artifact, WeightStore  # noqa: E402

__version__ = "0.1.0"


def prepare_epickitchens(*args, **kwargs):
    """``egobench prepare epickitchens``: derive the EPIC test pairs from raw annotations."""
    from .data.prepare import prepare_epickitchens as _impl

    return _impl(*args, **kwargs)


def prepare_ego4d(*args, **kwargs):
    """``egobench prepare ego4d``: derive the Ego4D test pairs from raw annotations."""
    from .data.prepare import prepare_ego4d as _impl

    return _impl(*args, **kwargs)


def verify_data(*args, **kwargs):
    """``egobench data verify``: every referenced frame exists and decodes."""
    from .data.verify import verify as _impl

    return _impl(*args, **kwargs)


def demo(*args, **kwargs):
    """``egobench demo``: the strongest available method on the demo split, with an HTML page."""
    from .demo import demo as _impl

    return _impl(*args, **kwargs)


__all__ = [
    "ARTIFACTS", "Artifact", "DATASETS", "METHODS", "METRICS", "Method", "Metric", "MetricBatch",
    "Protocol", "RunResult", "Sample", "Split", "UserError", "WeightStore", "available_protocols",
    "demo", "evaluate", "load_protocol", "load_split", "prepare_ego4d", "prepare_epickitchens",
    "register_method", "run", "verify_data",
]
