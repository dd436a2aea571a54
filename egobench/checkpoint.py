"""Loading legacy pickled checkpoints without running code from them.

Some checkpoints the field publishes are full pickles, not plain state dicts:
EgoVLP's ``egovlp.pth`` / ``epic_mir_plus.pth`` carry a pickled
``parse_config.ConfigParser`` next to the weights, and Lightning ``.ckpt``
files carry hyper-parameter objects. ``torch.load(weights_only=True)`` refuses
those, and ``weights_only=False`` would import and run whatever the pickle
names. :func:`load_checkpoint` sits in between: it gives ``torch.load`` a
pickle module whose unpickler resolves only

* what torch needs to rebuild tensors (rebuild functions, dtypes, sizes),
* plain data types (``OrderedDict``, ``set``, ``argparse.Namespace``, paths,
  ``datetime``, numpy scalars and arrays),
* a short list of *inert* classes (``parse_config.ConfigParser``, omegaconf
  and Lightning containers) that are replaced by :class:`StandIn` objects which
  only keep their pickled state and never run code,

and refuses everything else (``os.system``, ``builtins.eval``, ...) with a
one-line :class:`~egobench.errors.DataError`. TorchScript archives, which
``torch.load`` would hand to ``torch.jit.load``, are refused as well.
"""

from __future__ import annotations

import _compat_pickle
import argparse
import collections
import datetime
import functools
import importlib
import io
import os
import pathlib
import pickle
import types
import zipfile
from collections.abc import Iterable
from typing import Any, ClassVar

from .errors import DataError

__all__ = ["INERT_CLASSES", "StandIn", "load_checkpoint", "restricted_pickle_module"]


class StandIn:
    """What an inert pickled object becomes: its pickled data, nothing else.

    ``state`` holds what the pickle passed to ``__setstate__`` (the object's
    ``__dict__`` for ordinary classes), ``args``/``kwargs`` what it passed to
    the constructor, ``items``/``listitems`` what it stored as a mapping or
    list subclass. ``pickled_name`` is the ``module.Class`` the pickle named.
    """

    pickled_name: ClassVar[str] = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> StandIn:
        obj = object.__new__(cls)
        obj.args = args
        obj.kwargs = kwargs
        obj.state = {}
        obj.items = {}
        obj.listitems = []
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # constructor args are kept by __new__
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and all(s is None or isinstance(s, dict) for s in state):
            merged: dict = {}
            for part in state:  # (__dict__, __slots__ values)
                merged.update(part or {})
            self.state = merged
        elif isinstance(state, dict):
            self.state = dict(state)
        else:
            self.state = {"__state__": state}

    # mapping / list subclasses are unpickled with SETITEMS / APPENDS
    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.listitems.append(value)

    def extend(self, values: Iterable[Any]) -> None:
        self.listitems.extend(values)

    def __repr__(self) -> str:
        return f"StandIn({self.pickled_name}, state keys={sorted(map(str, self.state))})"


#: classes whose pickles are plain data: they become StandIn objects
INERT_CLASSES: frozenset[str] = frozenset(
    {
        "parse_config.ConfigParser",  # EgoVLP / LEGO training config
        "omegaconf.dictconfig.DictConfig",
        "omegaconf.listconfig.ListConfig",
        "omegaconf.base.ContainerMetadata",
        "omegaconf.base.Metadata",
        "omegaconf.nodes.AnyNode",
        "omegaconf.nodes.StringNode",
        "omegaconf.nodes.IntegerNode",
        "omegaconf.nodes.FloatNode",
        "omegaconf.nodes.BooleanNode",
        "pytorch_lightning.utilities.parsing.AttributeDict",
        "lightning_fabric.utilities.data.AttributeDict",
        "lightning.fabric.utilities.data.AttributeDict",
    }
)

_STANDINS: dict[str, type[StandIn]] = {}


def _standin_class(qualified: str) -> type[StandIn]:
    if qualified not in _STANDINS:
        name = qualified.rsplit(".", 1)[-1]
        _STANDINS[qualified] = type(name, (StandIn,), {"pickled_name": qualified, "__module__": __name__})
    return _STANDINS[qualified]


# -- safe replacements for the few helper functions pickles name ------------


def _safe_codecs_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes`` (latin-1 only)."""
    if not isinstance(obj, str) or encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError("refusing _codecs.encode with anything but a str and latin-1")
    return obj.encode("latin-1", errors)


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` (protocol 0/1 objects) for allowed classes only."""
    if base is not object or not isinstance(cls, type):
        raise pickle.UnpicklingError(f"refusing copyreg._reconstructor({cls!r}, {base!r})")
    return cls.__new__(cls)


def _torch_load_bytes_weights_only(data: bytes) -> Any:
    """``torch.storage._load_from_bytes`` (storages in plain pickles), without its unrestricted load."""
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


@functools.cache
def _torch_globals() -> dict[tuple[str, str], Any]:
    import torch
    import torch._tensor
    import torch._utils

    out: dict[tuple[str, str], Any] = {}
    for name in (
        "_rebuild_tensor",
        "_rebuild_tensor_v2",
        "_rebuild_tensor_v3",
        "_rebuild_parameter",
        "_rebuild_parameter_with_state",
        "_rebuild_device_tensor_from_numpy",
        "_rebuild_device_tensor_from_cpu_tensor",
        "_rebuild_meta_tensor_no_storage",
        "_rebuild_wrapper_subclass",
        "_rebuild_qtensor",
        "_rebuild_sparse_tensor",
        "_rebuild_nested_tensor",
    ):
        if hasattr(torch._utils, name):
            out[("torch._utils", name)] = getattr(torch._utils, name)
    out[("torch._tensor", "_rebuild_from_type_v2")] = torch._tensor._rebuild_from_type_v2
    out[("torch._tensor", "Tensor")] = torch.Tensor
    out[("torch", "Tensor")] = torch.Tensor
    out[("torch.nn.parameter", "Parameter")] = torch.nn.Parameter
    out[("torch", "Size")] = torch.Size
    out[("torch", "device")] = torch.device
    out[("torch", "UntypedStorage")] = torch.UntypedStorage
    out[("torch.serialization", "_get_layout")] = torch.serialization._get_layout
    out[("torch.storage", "_load_from_bytes")] = _torch_load_bytes_weights_only
    for name in dir(torch):
        obj = getattr(torch, name, None)
        if isinstance(obj, (torch.dtype, torch.layout, torch.memory_format)):
            out[("torch", name)] = obj
    return out


def _numpy_global(module: str, name: str) -> Any | None:
    if module.startswith("numpy.core"):  # numpy 1.x paths; numpy 2 moved them to numpy._core
        module = "numpy._core" + module[len("numpy.core"):]
    allowed = {
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
    }
    if (module, name) not in allowed and not (module == "numpy.dtypes" and name.endswith("DType")):
        return None
    try:
        mod = importlib.import_module(module)
    except ImportError:
        if module.startswith("numpy._core"):  # numpy 1.x
            mod = importlib.import_module("numpy.core" + module[len("numpy._core"):])
        else:
            return None
    return getattr(mod, name, None)


_PLAIN: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    ("collections", "Counter"): collections.Counter,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    ("builtins", "range"): range,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "int"): int,
    ("builtins", "float"): float,
    ("builtins", "bool"): bool,
    ("builtins", "str"): str,
    ("builtins", "bytes"): bytes,
    ("_codecs", "encode"): _safe_codecs_encode,
    ("copyreg", "_reconstructor"): _safe_reconstructor,
    ("copy_reg", "_reconstructor"): _safe_reconstructor,
    ("argparse", "Namespace"): argparse.Namespace,
    ("datetime", "datetime"): datetime.datetime,
    ("datetime", "date"): datetime.date,
    ("datetime", "time"): datetime.time,
    ("datetime", "timedelta"): datetime.timedelta,
    ("datetime", "timezone"): datetime.timezone,
    ("typing", "Any"): Any,
}
for _mod in ("pathlib", "pathlib._local"):
    _PLAIN[(_mod, "Path")] = pathlib.Path
    _PLAIN[(_mod, "PosixPath")] = pathlib.PurePosixPath if os.name == "nt" else pathlib.PosixPath
    _PLAIN[(_mod, "WindowsPath")] = pathlib.PureWindowsPath if os.name != "nt" else pathlib.WindowsPath
    _PLAIN[(_mod, "PurePath")] = pathlib.PurePath
    _PLAIN[(_mod, "PurePosixPath")] = pathlib.PurePosixPath
    _PLAIN[(_mod, "PureWindowsPath")] = pathlib.PureWindowsPath


def _py3_name(module: str, name: str) -> tuple[str, str]:
    """Python 2 names (``__builtin__.set``: torch saves with protocol 2) as Python 3 ones."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _resolve(module: str, name: str, inert: frozenset[str]) -> Any | None:
    """The object the pickle may use for ``module.name``, or None when refused."""
    if (module, name) in _PLAIN:
        return _PLAIN[(module, name)]
    if module == "torch" or module.startswith("torch."):
        return _torch_globals().get((module, name))
    if module == "numpy" or module.startswith("numpy."):
        return _numpy_global(module, name)
    if f"{module}.{name}" in inert:
        return _standin_class(f"{module}.{name}")
    return None


def restricted_pickle_module(path: str | os.PathLike | None = None, inert: Iterable[str] = ()) -> types.ModuleType:
    """A module-like object with the restricted ``Unpickler`` and ``load``, for ``torch.load(pickle_module=...)``.

    ``torch.load`` subclasses ``pickle_module.Unpickler`` (to map storage
    types) and calls ``pickle_module.load`` for the legacy format's headers;
    both go through :meth:`Unpickler.find_class` below.
    """
    where = str(path) if path is not None else "<checkpoint>"
    inert_names = INERT_CLASSES | frozenset(inert)

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            module, name = _py3_name(module, name)
            obj = _resolve(module, name, inert_names)
            if obj is None:
                raise DataError(
                    f"{where}: refusing to unpickle {module}.{name}: not a tensor, plain data or known inert "
                    "class (the file may be malicious or not a checkpoint)"
                )
            return obj

    def load(file: Any, **kwargs: Any) -> Any:
        return Unpickler(file, **kwargs).load()

    def loads(data: bytes, **kwargs: Any) -> Any:
        return Unpickler(io.BytesIO(data), **kwargs).load()

    mod = types.ModuleType("egobench_restricted_pickle")
    mod.Unpickler = Unpickler  # type: ignore[attr-defined]
    mod.load = load  # type: ignore[attr-defined]
    mod.loads = loads  # type: ignore[attr-defined]
    mod.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
    return mod


def load_checkpoint(path: str | os.PathLike, inert: Iterable[str] = ()) -> dict:
    """Load a pickled checkpoint on the CPU, resolving only allow-listed globals.

    Reads ``torch.save`` files (zip and legacy) and plain pickles. ``inert``
    adds ``module.Class`` names to :data:`INERT_CLASSES`. Raises
    :class:`DataError` for a missing file, a refused global, a TorchScript
    archive, or a file that is not a checkpoint dict.
    """
    import torch

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: checkpoint not found")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            raise DataError(f"{path}: refusing to load a TorchScript archive as a checkpoint")
    restricted = restricted_pickle_module(path, inert)
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=restricted)
        except RuntimeError as e:
            if "magic number" not in str(e):
                raise
            with open(path, "rb") as f:  # a plain pickle (pickle.dump), not torch.save's format
                obj = restricted.load(f, encoding="utf-8")
    except DataError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a checkpoint dict, got {type(obj).__name__}")
    return obj
