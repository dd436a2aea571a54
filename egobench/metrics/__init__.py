"""The metric interface and registry.

A metric declares what it needs (``generated``, ``target``, ``input``,
``description``, ``action``), whether higher is better, a version, and typed
settings (a dataclass; unknown keys are errors). Per-sample metrics return one
value per sample from :meth:`Metric.compute`; set metrics accumulate with
:meth:`Metric.update` and produce their numbers in :meth:`Metric.result`.
The math lives in pure functions beside each class so it can be checked
against the reference libraries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from ..config import from_dict
from ..registry import Registry

NEEDS = ("generated", "target", "input", "description", "action", "counterfactual")


@dataclass
class MetricBatch:
    """Decoded inputs for one batch, shared by every metric.

    Images are ``uint8`` arrays of shape (H, W, 3), decoded once per batch.
    """

    ids: list[str]
    generated: list[np.ndarray]
    target: list[np.ndarray]
    input: list[np.ndarray] = field(default_factory=list)
    description: list[str] = field(default_factory=list)
    action: list[str] = field(default_factory=list)
    domain: list[str] = field(default_factory=list)
    #: sha256 of each target / input file: content keys for the feature cache
    target_keys: list[str] = field(default_factory=list)
    input_keys: list[str] = field(default_factory=list)
    #: sha256 of each generated file (filled when the evaluation has a run cache)
    generated_keys: list[str] = field(default_factory=list)
    #: each sample's image made for a counterfactual action (the action-sensitivity probe; None
    #: where it has none) and its file's sha256 ("" for none), when a metric needs them
    counterfactual: list[np.ndarray | None] = field(default_factory=list)
    counterfactual_keys: list[str] = field(default_factory=list)
    #: per-batch scratch space shared by the metrics scoring this batch (preprocessed
    #: frames, captions): work two metrics would both do is done once. Dropped with the batch.
    memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)

    def shared(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per batch for ``key``; later calls with the same key reuse it."""
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]


@dataclass(frozen=True)
class NoSettings:
    pass


class Metric:
    """Base class; subclasses set the class variables and implement compute."""

    name: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ("generated", "target")
    higher_is_better: ClassVar[bool] = True
    version: ClassVar[str] = "1"
    kind: ClassVar[Literal["sample", "set"]] = "sample"
    display_scale: ClassVar[float] = 100.0  # the paper prints metrics x100
    Settings: ClassVar[type] = NoSettings
    #: False: the metric's numbers are fragile in half precision; it runs fp32 whatever the protocol says
    reduced_precision: ClassVar[bool] = True
    #: the protocol's evaluation precision (set by ``build_metrics``; effective on CUDA only)
    precision: str = "fp32"
    #: names of the extra per-sample columns ``compute`` returns (string values; returning one
    #: not named here is an error), so a run's score cache can give them back without recomputing
    extras: ClassVar[tuple[str, ...]] = ()
    #: the run's own cache (this run's scores and generated-side features, keyed by content),
    #: set by the evaluator while it scores; None outside an evaluation with one
    run_cache: Any = None
    #: per-sample metrics whose values depend on which samples are scored together (e.g. a captioner
    #: drawing from one random stream in fixed batches): the evaluator hands :meth:`compute` groups of
    #: exactly this many consecutive scored samples in order (the last one shorter), whatever its own
    #: batch size. None: any batch the evaluator forms.
    group_size: int | None = None
    #: True: the metric reads the whole split being scored (a label vocabulary, exemplar frames)
    #: through :meth:`bind_split`, which ``build_metrics(..., split=...)`` calls before any batch
    needs_split: ClassVar[bool] = False

    def __init__(self, settings: Any, *, weights: Any = None, device: str = "cpu", cache: Any = None):
        self.settings = settings
        self.weights = weights
        self.device = device
        #: a :class:`~egobench.metrics.cache.FeatureCache` (disabled when None)
        self.cache = cache

    def weights_digest(self, names: Sequence[str] | None = None) -> str:
        """sha256 over the files of ``names`` (default: every artifact this metric loads): cache keys."""
        import hashlib

        from ..data.split import file_digest
        from ..weights import ARTIFACTS

        h = hashlib.sha256()
        for name in self.artifacts(self.settings) if names is None else names:
            res = self.weights.resolve(name)
            for f in ARTIFACTS.get(name).files:
                h.update(f"{name}/{f}:{file_digest(res.file(f))}\n".encode())
        return h.hexdigest()

    @property
    def compute_dtype(self) -> Any:
        """The torch dtype the metric's models run under autocast, or None (fp32)."""
        return autocast_dtype(self.device, self.precision if self.reduced_precision else "fp32")

    @property
    def effective_precision(self) -> str:
        dtype = self.compute_dtype
        if dtype is None:
            return "fp32"
        import torch

        return {torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]

    def autocast(self) -> Any:
        """Context for the metric's model calls: CUDA autocast at the protocol's precision, or nothing."""
        import contextlib

        dtype = self.compute_dtype
        if dtype is None:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type="cuda", dtype=dtype)

    def cached(
        self, part: str, keys: list[str], compute: Callable[[list[int]], Sequence[np.ndarray]], cache: Any = None,
        artifacts: Sequence[str] | None = None,
    ) -> list[np.ndarray]:
        """Target-side values for ``keys`` through the feature cache (or through ``cache``,
        e.g. the run's own cache for generated-side values).

        ``part`` names what is cached (e.g. ``"target-embedding"``); the
        namespace adds the metric's name, version, settings and the digest of the
        weights the values come from (``artifacts``; default: all the metric's).
        """
        cache = self.cache if cache is None else cache
        if cache is None or not cache.enabled:
            return list(compute(list(range(len(keys)))))
        from .cache import namespace_key

        bases = self.__dict__.setdefault("_ns_bases", {})
        which = tuple(artifacts) if artifacts is not None else None
        if which not in bases:
            record = {**self.settings_record(), "_precision": self.effective_precision}
            bases[which] = (self.name, self.version, record, self.weights_digest(which))
        ns = namespace_key(*bases[which], part)
        return cache.get_or_compute(f"{self.name}-{ns}", keys, compute)

    @classmethod
    def parse_settings(cls, data: dict[str, Any] | None, where: str) -> Any:
        return from_dict(cls.Settings, data or {}, where)

    @classmethod
    def artifacts(cls, settings: Any) -> list[str]:
        """Names of the weight artifacts this metric loads with ``settings`` (for any domain)."""
        return []

    @classmethod
    def artifacts_for(cls, settings: Any, domains: Sequence[str]) -> list[str]:
        """The artifacts needed to score samples of ``domains`` only (what a run checks before it
        starts); by default all of :meth:`artifacts`."""
        return cls.artifacts(settings)

    def settings_record(self) -> dict[str, Any]:
        return dataclasses.asdict(self.settings)

    def bind_split(self, samples: Sequence[Any]) -> None:
        """Called once with every sample of the split being scored (all shards' samples, in split
        order) before the first batch, for metrics with :attr:`needs_split`."""

    def begin(self) -> None:
        """Called by the evaluator before it scores the first batch of an evaluation (a pass over
        the samples in order): metrics with state across batches reset it here."""

    # per-sample metrics
    def compute(self, batch: MetricBatch) -> np.ndarray | tuple[np.ndarray, dict[str, list]]:
        """One value per sample; optionally also extra per-sample columns
        (e.g. ``{"caption": [...]}``, stored as ``<column>_caption``)."""
        raise NotImplementedError

    def score_keys(self, batch: MetricBatch, keys: list[str]) -> list[str]:
        """The run cache's keys for this batch's scores. ``keys`` cover the content of everything a
        sample's row reads; a metric whose values also depend on other samples (its :attr:`group_size`
        group, earlier groups) folds that in. Called once per batch, in order, whether or not the
        scores are then found in the cache."""
        return keys

    def summary(self, values: np.ndarray, extras: dict[str, list]) -> dict[str, Any]:
        """More split-level numbers for ``metrics.json`` (per-sample metrics), from the scored rows'
        values and extra columns; the evaluator adds them beside ``value``."""
        return {}

    # set metrics
    def update(self, batch: MetricBatch) -> None:
        raise NotImplementedError

    def result(self) -> dict[str, float]:
        raise NotImplementedError

    # set metrics across processes: rank 0 gathers every shard's state
    def state(self) -> dict[str, Any]:
        """Picklable accumulated state (set metrics), for gathering across shards."""
        raise NotImplementedError(f"set metric {self.name} cannot be sharded")

    def load_states(self, states: list[dict[str, Any]], order: Sequence[str]) -> None:
        """Replace the accumulated state with the union of ``states``, in ``order`` of sample ids."""
        raise NotImplementedError(f"set metric {self.name} cannot be sharded")


def autocast_dtype(device: str, precision: str) -> Any:
    """torch dtype for ``precision`` on ``device``: None for fp32 and on anything but CUDA."""
    if precision == "fp32" or not str(device).startswith("cuda"):
        return None
    import torch

    try:
        return {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; use fp32, fp16 or bf16") from None


METRICS: Registry[type[Metric]] = Registry("metric", entry_point_group="egobench.metrics")
#: what ``egobench metrics`` lists without importing the metric modules (and torch);
#: tests/test_cli_start.py checks every entry against the loaded class
LISTING_KEYS = ("kind", "needs", "higher_is_better", "version")
_GEN_TGT = ("generated", "target")
_BUILTIN = (
    ("psnr", "egobench.metrics.psnr:PSNR", "sample", _GEN_TGT, True, "1"),
    ("lpips", "egobench.metrics.lpips_metric:LPIPS", "sample", _GEN_TGT, False, "1"),
    ("egovlp", "egobench.metrics.egovlp:EgoVLP", "sample", _GEN_TGT, True, "1"),
    ("egovlp-plus", "egobench.metrics.egovlp:EgoVLPPlus", "sample", (*_GEN_TGT, "input"), True, "1"),
    ("clip", "egobench.metrics.clip_metric:CLIPImage", "sample", _GEN_TGT, True, "1"),
    ("fid", "egobench.metrics.fid:FID", "set", _GEN_TGT, False, "1"),
    ("kid", "egobench.metrics.kid:KID", "set", _GEN_TGT, False, "1"),
    ("blip", "egobench.metrics.blip:BLIPSimilarity", "sample", ("generated", "description", "action"), True, "1"),
    ("action-acc", "egobench.metrics.action:ActionAccuracy", "sample", ("generated",), True, "1"),
    ("action-sim", "egobench.metrics.action:ActionSimilarity", "sample", ("generated",), True, "1"),
    ("action-sensitivity", "egobench.metrics.action:ActionSensitivity", "sample",
     ("generated", "target", "counterfactual"), True, "1"),
    ("vlm-judge", "egobench.metrics.vlm_judge:VLMJudge", "sample", ("generated", "input", "action"), True, "1"),
)
for _name, _ref, _kind, _needs, _hib, _ver in _BUILTIN:
    METRICS.add(_name, _ref, meta={"kind": _kind, "needs": _needs, "higher_is_better": _hib, "version": _ver})
