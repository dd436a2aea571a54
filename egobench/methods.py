"""The public method interface: what a paper author implements to be scored.

A method turns a batch of samples (input frame + action + description) into
images. Register it with ``@register_method("name")`` or, from an outside
package, through the ``egobench.methods`` entry-point group::

    [project.entry-points."egobench.methods"]
    my-method = "my_pkg.module:MyMethod"

``generate`` returns one image per sample: a ``PIL.Image`` (final pixels), or a
float array / tensor in [0, 1] shaped (3, H, W) or (H, W, 3), which the
protocol's post-processing turns into pixels (resize, value map, file format).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from .data.split import Sample, Split
from .registry import Registry

GeneratedImage = Any  # PIL.Image.Image | np.ndarray | torch.Tensor

#: the record ``egobench train`` leaves beside a model it saved: what it was finetuned on
TRAINING_RECORD = "training.json"


class Method:
    """Base class for generation methods."""

    name: ClassVar[str] = ""
    #: a one-line description shown by ``egobench methods``
    summary: ClassVar[str] = ""
    #: True for reference bounds that are not real methods (input copy, oracle)
    is_bound: ClassVar[bool] = False
    #: weight artifacts this method loads (for ``egobench weights`` and the manifest)
    artifacts: ClassVar[tuple[str, ...]] = ()
    #: show per-step progress while generating (the runner sets it; False under ``--quiet``)
    progress: bool = True

    def __init__(self, protocol: Any, weights: Any = None, device: str = "cpu", **options: Any):
        if options:
            from .errors import ConfigError

            raise ConfigError(f"method '{self.name}' takes no options, got {', '.join(sorted(options))}")
        self.protocol = protocol
        self.weights = weights
        self.device = device

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> None:
        """Refuse bad options before a run directory exists: parsed against ``options_class`` (a
        closed dataclass) when the method has one; refused when the method takes none; otherwise
        left to the constructor."""
        from .config import from_dict
        from .errors import ConfigError

        options_class = getattr(cls, "options_class", None)
        if options_class is not None:
            from_dict(options_class, dict(options), f"method '{cls.name}' options")
        elif options and cls.__init__ is Method.__init__:
            raise ConfigError(f"method '{cls.name}' takes no options, got {', '.join(sorted(options))}")

    def config(self) -> dict[str, Any]:
        """Everything about this method that changes its images (for the manifest)."""
        return {"name": self.name}

    def prepare(self, split: Split) -> None:
        """Optional expensive per-split work (e.g. VLLM features)."""

    def generate(self, samples: Sequence[Sample], seeds: Sequence[int | None]) -> list[GeneratedImage]:
        raise NotImplementedError


METHODS: Registry[type[Method]] = Registry("method", entry_point_group="egobench.methods")
register_method = METHODS.register


def benchmark_training(folder: Any) -> dict[str, Any] | None:
    """What a weights folder trained by ``egobench train`` says it was finetuned on (dataset, part, split
    fingerprint, steps, init), or None: no such record (an off-the-shelf model, or not a folder)."""
    from pathlib import Path

    from .io import read_json

    path = Path(folder).expanduser() / TRAINING_RECORD
    if not path.is_file():
        return None
    record = read_json(path)
    if not isinstance(record, dict) or not record.get("dataset") or not record.get("split_fingerprint"):
        return None
    keys = ("dataset", "part", "split_fingerprint", "steps", "model", "init", "init_source")
    return {k: record[k] for k in keys if k in record}


def mark_finetuned(config: dict[str, Any], folders: Sequence[Any]) -> None:
    """Record in a method's config that its weights were finetuned on the benchmark when one of the
    ``folders`` it used (or a folder named by its options or ``weights``) carries a training record.
    A method's own ``finetuned_on_benchmark`` (False for zero-shot editors) is kept as it says."""
    from pathlib import Path

    if "finetuned_on_benchmark" in config:
        return
    named = [config.get("weights")] + list((config.get("options") or {}).values())
    candidates = [v for v in named if isinstance(v, str) and v] + list(folders)
    for folder in candidates:
        if not Path(folder).expanduser().is_dir():
            continue
        trained = benchmark_training(folder)
        if trained is not None:
            config["finetuned_on_benchmark"] = True
            config["trained_on"] = trained
            return


def load_rgb(path: Any) -> Image.Image:
    """Open an image file as RGB, decoding it fully now (errors name the file)."""
    from .images import open_rgb

    return open_rgb(path)


def as_uint8(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.uint8)
