"""egobench: benchmark and evaluation harness for egocentric action frame generation.

The Python API mirrors the CLI one to one::

    import egobench
    res = egobench.run("input-copy", "demo", protocol="egobench-v1", zoo="tiny")
    print(res.table())

egobench is the harness: it imports no model package (``lego``, ``baselines``) and
no report code (``reports``). Methods, weight artifacts, extra commands and
ablation tables come in through entry-point groups (``egobench.methods``,
``egobench.artifacts``, ``egobench.commands``, ``egobench.train``,
``egobench.ablations``); the commands that make reports (``egobench report``,
``egobench demo``) are registered by ``reports`` (``reports.demo.demo`` is the
demo's Python API). The trivial bounds (``input-copy``, ``oracle``) are
egobench's own (:mod:`egobench.bounds`).
"""

from __future__ import annotations

from . import _compat

# torchvision needs a fix on CPU torch (see _compat); it is applied when
# anything first imports torchvision, so ``import egobench`` stays cheap.
_compat.install_lazy_shim()

# The public names are imported on first use (PEP 562): ``egobench --help``
# and the listing commands must not pay for torch and pandas.
_LAZY = {
    "DATASETS": ".data", "Sample": ".data", "Split": ".data", "load_split": ".data",
    "UserError": ".errors",
    "METHODS": ".methods", "Method": ".methods", "register_method": ".methods",
    "METRICS": ".metrics", "Metric": ".metrics", "MetricBatch": ".metrics",
    "Protocol": ".protocol", "available_protocols": ".protocol", "load_protocol": ".protocol",
    "RunResult": ".runner", "evaluate": ".runner", "run": ".runner",
    "ARTIFACTS": ".weights", "Artifact": ".weights", "WeightStore": ".weights",
    "Scorer": ".scorer",
    # not ``.compare``: importing a submodule named like the function would rebind egobench.compare to it
    "compare": ".compare_folders", "Comparison": ".compare_folders",
}


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'egobench' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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


__all__ = [
    "ARTIFACTS", "Artifact", "Comparison", "DATASETS", "METHODS", "METRICS", "Method", "Metric", "MetricBatch",
    "Protocol", "RunResult", "Sample", "Scorer", "Split", "UserError", "WeightStore", "available_protocols",
    "compare", "evaluate", "load_protocol", "load_split", "prepare_ego4d", "prepare_epickitchens",
    "register_method", "run", "verify_data",
]
