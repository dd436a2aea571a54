"""Compatibility shim for the PyPI torchvision wheel on a CPU-only torch.

The torchvision 0.28.0 wheel on PyPI is a CUDA build. Imported next to the CPU
build of torch 2.13.0 it fails with ``RuntimeError: operator torchvision::nms
does not exist`` because its compiled ops library does not load, and every
package that imports torchvision (lpips, open_clip, torch-fidelity,
transformers' image processors, diffusers) fails with it.

On that exact error only, we declare the missing operator schemas so the pure
Python parts of torchvision (models, transforms) import; compiled ops
(``torchvision.ops``) and ``torchvision.io`` codecs stay unavailable, and
egobench never uses them. On a CUDA build of torch the import simply works and
nothing is changed. This must run before anything imports torchvision.
"""

from __future__ import annotations

import sys

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_LIBS: list = []  # keep Library objects alive for the life of the process
applied = False


def ensure_torchvision() -> None:
    """Import torchvision, applying the schema shim if (and only if) needed."""
    global applied
    try:
        import torchvision  # noqa: F401
        return
    except ImportError:
        return  # torchvision is optional for the core harness
    except RuntimeError as e:
        if "operator torchvision::nms does not exist" not in str(e):
            raise
    import torch

    lib = torch.library.Library("torchvision", "DEF")
    for _name, schema in _SCHEMAS.items():
        try:
            lib.define(schema)
        except RuntimeError:
            pass  # already defined
    _LIBS.append(lib)
    for mod in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[mod]
    import torchvision  # noqa: F401,F811

    applied = True


class _Passthrough:
    """Loader handing back a module that is already imported (see :func:`install_lazy_shim`)."""

    def __init__(self, module, spec):
        self.module, self.spec = module, spec

    def create_module(self, spec):
        return self.module

    def exec_module(self, module) -> None:
        module.__spec__ = self.spec  # the real spec, not the passthrough one


class _ShimFinder:
    """Runs :func:`ensure_torchvision` on the first ``import torchvision``.

    Importing torch costs seconds; ``egobench --help`` and the listing commands
    must not pay it. Instead of importing torchvision when ``egobench`` is
    imported, this finder sits first on ``sys.meta_path`` and, when anything
    first imports torchvision (lpips, open_clip, transformers, ...), imports it
    through the shim and hands the finished module to the import system.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "torchvision":
            return None
        remove_lazy_shim()
        ensure_torchvision()
        module = sys.modules.get("torchvision")
        if module is None:
            return None  # not installed: let the normal finders say so
        import importlib.machinery

        real = module.__spec__
        spec = importlib.machinery.ModuleSpec("torchvision", _Passthrough(module, real),
                                              origin=getattr(real, "origin", None), is_package=True)
        spec.submodule_search_locations = list(getattr(real, "submodule_search_locations", None) or [])
        return spec


_FINDER = _ShimFinder()


def install_lazy_shim() -> None:
    """Defer :func:`ensure_torchvision` to the first import of torchvision."""
    if "torchvision" in sys.modules or _FINDER in sys.meta_path:
        return
    sys.meta_path.insert(0, _FINDER)


def remove_lazy_shim() -> None:
    while _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
