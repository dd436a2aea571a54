"""One process-wide memo of loaded models, shared by every metric.

Metrics built twice in one process (the evaluator, the bench, a training
loop's validation) load each checkpoint once: ``shared_model(key, loader)``
returns the model stored under ``key``, calling ``loader()`` the first time.
``forget_shared_models()`` drops them all (the bench times cold loads with it).
Keys must name everything the loaded object depends on (file digest or path,
device, options).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

_MODELS: dict[Hashable, Any] = {}


def shared_model(key: Hashable, loader: Callable[[], T]) -> T:
    """The object stored under ``key``; ``loader()`` builds it on first use."""
    if key not in _MODELS:
        _MODELS[key] = loader()
    return _MODELS[key]


def loaded_models() -> list[Any]:
    """Every object loaded so far (what ``egobench bench`` puts forward hooks on)."""
    return list(_MODELS.values())


def drop_shared_models(match: Callable[[Hashable], bool]) -> None:
    """Forget the models whose key satisfies ``match`` (e.g. another device's copy)."""
    for key in [k for k in _MODELS if match(k)]:
        del _MODELS[key]


def forget_shared_models() -> None:
    """Forget every loaded model (the next use loads again)."""
    _MODELS.clear()
