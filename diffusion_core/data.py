"""Training pairs (:class:`PairDataset`) and the seeded, resumable order they are read in."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from egobench.data import Sample, Split
from egobench.errors import ConfigError, DataError

TextSource = Literal["description", "action"] | Callable[[Sample], str]
ExtrasFn = Callable[[Sample], dict[str, Any]]


class PairDataset:
    """(input frame, target frame, text) pairs of a split with the released training transform.

    ``EgoGenDataset`` (train): both frames resized to ``resize`` x ``resize``
    with LANCZOS (aspect ratio not kept), mapped to ``2 x / 255 - 1``, then one
    random crop of ``resolution`` and one horizontal flip (probability
    ``flip_prob``) applied to the two frames together.

    ``text``: ``"description"`` (the enriched description,
    ``llava_forecast_finetune``: LEGO), ``"action"`` (the action label: the IP2P
    and LDM baselines) or a function of the sample. ``extras(sample)`` adds
    per-sample arrays to the item (e.g. LEGO's VLLM features); they are stacked
    into the batch.
    """

    def __init__(self, split: Split | Sequence[Sample], resolution: int = 256, resize: int | None = None,
                 random_crop: bool = True, flip_prob: float = 0.5, text: TextSource = "description",
                 extras: ExtrasFn | None = None):
        self.samples = list(split)
        if not self.samples:
            raise DataError("the training split has no samples")
        self.resolution = int(resolution)
        self.resize = int(resize or resolution)
        if self.resize < self.resolution:
            raise ConfigError(f"resize {self.resize} is smaller than the crop {self.resolution}")
        self.random_crop = random_crop
        self.flip_prob = float(flip_prob)
        self.text = text
        self.extras = extras
        if text in ("description", "action"):
            for s in self.samples:
                if not self.text_of(s):
                    raise DataError(f"sample {s.id}: empty {text} (no training text)")

    def __len__(self) -> int:
        return len(self.samples)

    def text_of(self, s: Sample) -> str:
        """The training text of sample ``s`` (what the CLIP encoder sees)."""
        if callable(self.text):
            return self.text(s)
        if self.text == "description":
            return s.description
        if self.text == "action":
            return s.action
        raise ConfigError(f"unknown text source {self.text!r}; use description, action or a function")

    def _frame(self, path: Path) -> torch.Tensor:
        from PIL import Image

        from egobench.methods import load_rgb

        img = load_rgb(path).resize((self.resize, self.resize), Image.Resampling.LANCZOS)
        return 2 * torch.from_numpy(np.array(img)).float().permute(2, 0, 1) / 255 - 1

    def item(self, index: int, rng: np.random.Generator | None = None) -> dict[str, Any]:
        """Sample ``index`` transformed with ``rng`` (None: center crop, no flip)."""
        s = self.samples[index]
        both = torch.cat([self._frame(s.input_path), self._frame(s.target_path)])
        n, size = self.resolution, self.resize
        if rng is not None and self.random_crop:
            top, left = int(rng.integers(0, size - n + 1)), int(rng.integers(0, size - n + 1))
        else:
            top = left = (size - n) // 2
        both = both[:, top : top + n, left : left + n]
        if rng is not None and rng.random() < self.flip_prob:
            both = both.flip(-1)
        out: dict[str, Any] = {"input": both[:3].contiguous(), "target": both[3:].contiguous(),
                               "text": self.text_of(s), "index": index}
        if self.extras is not None:
            for k, v in self.extras(s).items():
                if k in out:
                    raise ConfigError(f"extras key {k!r} clashes with a PairDataset field")
                out[k] = torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.item(index)


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        if isinstance(vals[0], torch.Tensor):
            out[k] = torch.stack(vals)
        elif isinstance(vals[0], (int, float)):
            out[k] = torch.tensor(vals)
        else:
            out[k] = vals
    return out


class TrainingStream(torch.utils.data.Dataset):
    """Position ``p`` of the endless training stream -> (sample of a per-epoch seeded
    permutation, with a crop/flip drawn from a generator seeded by ``p``)."""

    def __init__(self, dataset: PairDataset, seed: int):
        self.dataset = dataset
        self.seed = int(seed)
        self._perm: dict[int, np.ndarray] = {}

    def index(self, pos: int) -> int:
        n = len(self.dataset)
        epoch = pos // n
        if epoch not in self._perm:
            if len(self._perm) > 4:
                self._perm.clear()
            self._perm[epoch] = np.random.default_rng([self.seed, 0x0E0C, epoch]).permutation(n)
        return int(self._perm[epoch][pos % n])

    def __len__(self) -> int:  # pragma: no cover - positions are unbounded; DataLoader uses the batch sampler
        return 2**62

    def __getitem__(self, pos: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, 0xA06, pos])
        return self.dataset.item(self.index(pos), rng)


class MicroBatches(torch.utils.data.Sampler):
    """Stream positions of micro-batches ``start..stop-1`` for process ``rank`` of ``world``."""

    def __init__(self, start: int, stop: int, batch: int, rank: int, world: int):
        self.start, self.stop, self.batch, self.rank, self.world = start, stop, batch, rank, world

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        for m in range(self.start, self.stop):
            first = (m * self.world + self.rank) * self.batch
            yield list(range(first, first + self.batch))
