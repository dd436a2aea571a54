"""EgoVLP and EgoVLP+: cosine of EgoVLP clip embeddings, ground truth vs generated.

As the released code computes them (``metrics/all_metrics_in_one.py``,
``run_egovlp``):

* model per sub-dataset: Ego4D ``egovlp.pth`` with 4-frame clips, EPIC-KITCHENS
  ``epic_mir_plus.pth`` with 16-frame clips (``batch.domain`` picks it);
* every frame: to [0, 1] -> resize the short side to 224 (bilinear; the
  released environment, torchvision 0.12, does not antialias tensors) -> center
  crop 224 -> ImageNet mean/std;
* EgoVLP: a clip is the single image repeated; EgoVLP+: the first half of the
  clip is the input frame, the second half the image (Ego4D
  ``[input, input, frame, frame]``, EPIC ``[input] * 8 + [frame] * 8``), for the
  ground truth and the generated image alike; the generated image is first
  resized (bilinear) to the input's size when the two differ (the released
  code does this for EPIC; for Ego4D it would fail on such a pair);
* score: cosine of the two clip embeddings (``vid_proj`` of the CLS feature),
  rows normalized with eps 1e-8.

Frames are preprocessed one by one (the released code stacks the clip first;
for same-size frames the two are identical), so pairs of different sizes work.
Ground-truth clip embeddings go through the feature cache.

:class:`EgoVLPTextEncoder` is the text tower the released code uses to compare
BLIP captions with the enriched descriptions.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import pathlib
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from .. import _compat
from ..errors import DataError
from ..shared_models import shared_model
from ..weights import ARTIFACTS, Artifact, register_artifact
from . import Metric, MetricBatch
from .egovlp_model import EgoVLP as EgoVLPModel
from .egovlp_model import EgoVLPDims, cosine_rows, load_egovlp, to_official_checkpoint
from .imageops import to_unit_tensor
from .settings import EgoVLPPlusSettings, EgoVLPSettings

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIZE = 224
#: clips per forward pass (a 16-frame ViT-B clip is ~3k tokens)
CLIP_CHUNK = 8
#: text pieces per forward pass of the text tower
TEXT_CHUNK = 32

#: batch.domain value -> model family
FAMILIES = {"ego4d": "ego4d", "epickitchens": "epic", "epickitchen": "epic"}
ARTIFACT_OF = {"ego4d": "egovlp-ego4d", "epic": "egovlp-epic"}
CHECKPOINT_FILE = {"ego4d": "egovlp.pth", "epic": "epic_mir_plus.pth"}
TOKENIZER_ARTIFACT = "egovlp-distilbert"

_LEGO_METRICS = "bolinlai/LEGO-Metrics"
EGOVLP_EGO4D_ARTIFACT = Artifact(
    name="egovlp-ego4d",
    description="EgoVLP (FrozenInTime) pretrained on EgoClip: the Ego4D EgoVLP/EgoVLP+ metric model, 4 frames",
    files=(CHECKPOINT_FILE["ego4d"],),
    license="MIT (EgoVLP, showlab/EgoVLP); redistributed by bolinlai/LEGO-Metrics",
    hf_repo=_LEGO_METRICS,
    tiny="egobench.metrics.egovlp:build_tiny_ego4d",
    full_arch="egobench.metrics.egovlp:build_full_arch_ego4d",
)
EGOVLP_EPIC_ARTIFACT = Artifact(
    name="egovlp-epic",
    description="EgoVLP fine-tuned for EPIC-KITCHENS-100 multi-instance retrieval (EgoVLP_FT_EPIC+, "
    "adaptive MI-MM + dual-softmax): the EPIC EgoVLP/EgoVLP+ metric model, 16 frames",
    files=(CHECKPOINT_FILE["epic"],),
    license="MIT (EgoVLP, showlab/EgoVLP); redistributed by bolinlai/LEGO-Metrics",
    hf_repo=_LEGO_METRICS,
    tiny="egobench.metrics.egovlp:build_tiny_epic",
    full_arch="egobench.metrics.egovlp:build_full_arch_epic",
)
# LEGO-Metrics ships this folder only as a zip of a transformers cache dir
# (``distilber-base-uncased.zip``): the released code calls
# ``from_pretrained('distilbert-base-uncased', cache_dir=...)``, i.e. the hub
# repo itself, so the files come from there. Only the tokenizer is read (the
# text weights are in the EgoVLP checkpoints); vocab.txt is all it needs,
# config.json names the model type.
EGOVLP_DISTILBERT_ARTIFACT = Artifact(
    name=TOKENIZER_ARTIFACT,
    description="distilbert-base-uncased tokenizer (vocab) for EgoVLP's text tower",
    files=("config.json", "vocab.txt"),
    license="Apache-2.0",
    hf_repo="distilbert/distilbert-base-uncased",
    tiny="egobench.metrics.egovlp:build_tiny_distilbert",
)
# registered on import unless the names were already registered lazily
# ("egobench.metrics.egovlp:EGOVLP_EGO4D_ARTIFACT") so the CLI sees them unimported
for _art in (EGOVLP_EGO4D_ARTIFACT, EGOVLP_EPIC_ARTIFACT, EGOVLP_DISTILBERT_ARTIFACT):
    if _art.name not in ARTIFACTS:
        register_artifact(_art)


def model_family(domain: str, where: str = "egovlp") -> str:
    try:
        return FAMILIES[domain]
    except KeyError:
        raise DataError(
            f"{where}: unknown domain {domain!r}; EgoVLP has models for 'ego4d' and 'epickitchens'"
        ) from None


#: the frame count of the first copy of each (checkpoint, device) put in the shared memo: a text-tower
#: user (``num_frames=None``) takes that copy rather than loading another
_FIRST_FRAMES: dict[tuple[str, str], int | None] = {}


def shared_egovlp(path: str | Path, num_frames: int | None, device: str) -> EgoVLPModel:
    """The EgoVLP model of ``path`` for ``num_frames`` on ``device``, loaded once per process.

    ``num_frames=None`` (a text-tower user) takes any copy of the checkpoint already loaded on
    the device: the text tower does not depend on the clip length."""
    where = (str(path), str(device))
    if num_frames is None:
        num_frames = _FIRST_FRAMES.get(where)
    _FIRST_FRAMES.setdefault(where, num_frames)
    key = (str(path), "egovlp", num_frames, str(device))
    return shared_model(key, lambda: load_egovlp(path, num_frames=num_frames, device=device).eval())


# ---------------------------------------------------------------------------
# preprocessing (pure functions)
# ---------------------------------------------------------------------------


def _tf():
    _compat.ensure_torchvision()
    import torchvision.transforms.functional as tf
    from torchvision.transforms import InterpolationMode

    return tf, InterpolationMode.BILINEAR


def resize_exact(x: torch.Tensor, size: tuple[int, int], antialias: bool = False) -> torch.Tensor:
    """Bilinear resize of a (3, H, W) tensor to ``size`` (no-op when equal), like ``F.resize(x, (h, w))``."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    tf, bilinear = _tf()
    return tf.resize(x, list(size), interpolation=bilinear, antialias=antialias)


def preprocess_frame(img: np.ndarray | torch.Tensor, antialias: bool = False) -> torch.Tensor:
    """uint8 (H, W, 3) or [0, 1] (3, H, W) -> normalized (3, 224, 224):
    short side to 224 (bilinear), center crop 224, ImageNet mean/std."""
    x = to_unit_tensor(img) if isinstance(img, np.ndarray) else img
    tf, bilinear = _tf()
    x = tf.resize(x, SIZE, interpolation=bilinear, antialias=antialias)
    x = tf.center_crop(x, [SIZE, SIZE])
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - mean) / std


def make_clip(frame: torch.Tensor, frames: int, context: torch.Tensor | None = None) -> torch.Tensor:
    """(F, 3, 224, 224): ``frame`` repeated, or ``context`` for the first F // 2 frames then ``frame``."""
    if context is None:
        return frame.unsqueeze(0).expand(frames, *frame.shape)
    n_ctx = frames // 2
    return torch.cat(
        [context.unsqueeze(0).expand(n_ctx, *context.shape), frame.unsqueeze(0).expand(frames - n_ctx, *frame.shape)]
    )


def embed_clips(model: EgoVLPModel, clips: Sequence[torch.Tensor], device: str = "cpu") -> np.ndarray:
    """(N, proj_dim) float32 embeddings of normalized clips, ``CLIP_CHUNK`` at a time."""
    out = []
    with torch.no_grad():
        for start in range(0, len(clips), CLIP_CHUNK):
            x = torch.stack(list(clips[start : start + CLIP_CHUNK])).to(device=device, dtype=torch.float32)
            out.append(model.embed_video(x).float().cpu())
    if not out:
        return np.zeros((0, model.dims.proj_dim), dtype=np.float32)
    return torch.cat(out).numpy()


# ---------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------






class EgoVLP(Metric):
    """Cosine of EgoVLP embeddings of the GT clip and the generated clip (single image repeated)."""

    name = "egovlp"
    needs: ClassVar[tuple[str, ...]] = ("generated", "target")
    higher_is_better = True
    version = "1"
    kind = "sample"
    Settings = EgoVLPSettings
    uses_input: ClassVar[bool] = False

    def __init__(self, settings: EgoVLPSettings, *, weights=None, device: str = "cpu", cache=None):
        super().__init__(settings, weights=weights, device=device, cache=cache)
        self._models: dict[str, EgoVLPModel] = {}

    @classmethod
    def artifacts(cls, settings: EgoVLPSettings) -> list[str]:
        return [ARTIFACT_OF["ego4d"], ARTIFACT_OF["epic"]]

    @classmethod
    def artifacts_for(cls, settings: EgoVLPSettings, domains: Sequence[str]) -> list[str]:
        """Only the checkpoints of the families present (an Ego4D-only run needs no ``epic_mir_plus.pth``)."""
        families = {FAMILIES[d] for d in domains if d in FAMILIES}
        return [ARTIFACT_OF[f] for f in ("ego4d", "epic") if f in families]

    def frames(self, family: str) -> int:
        return self.settings.frames_ego4d if family == "ego4d" else self.settings.frames_epic

    def egovlp_model(self, family: str) -> EgoVLPModel:
        """The family's model, loaded on first use (one copy per process: EgoVLP, EgoVLP+ and the
        BLIP metrics' EgoVLP text tower share it)."""
        if family not in self._models:
            name = ARTIFACT_OF[family]
            path = self.weights.resolve(name).file(CHECKPOINT_FILE[family])
            self._models[family] = shared_egovlp(path, self.frames(family), self.device)
        return self._models[family]

    # -- clips ---------------------------------------------------------------
    def _frame(self, batch: MetricBatch, side: str, i: int, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Sample ``i``'s ``side`` frame (``generated``, ``target`` or ``input``), first resized to
        ``size`` when given and different, preprocessed; computed once per batch, so EgoVLP and
        EgoVLP+ (same preprocessing settings) share it, and EgoVLP+ prepares each input frame once."""
        image = getattr(batch, side)[i]
        if size is not None and tuple(size) == tuple(image.shape[:2]):
            size = None
        antialias = self.settings.antialias

        def compute() -> torch.Tensor:
            x = to_unit_tensor(image, self.device)  # preprocessing runs on the model's device
            if size is not None:
                x = resize_exact(x, size, antialias)
            return preprocess_frame(x, antialias)

        return batch.shared(("egovlp-frame", side, i, size, antialias), compute)

    def _clip(self, batch: MetricBatch, i: int, generated: bool) -> torch.Tensor:
        """Sample ``i``'s clip of its generated (or target) frame, from the batch's shared frames."""
        side = "generated" if generated else "target"
        context = size = None
        if self.uses_input:
            if generated and self.settings.resize_generated_to_input:
                size = tuple(batch.input[i].shape[:2])
            context = self._frame(batch, "input", i)
        return make_clip(self._frame(batch, side, i, size), self.frames(self._family(batch, i)), context)

    def _family(self, batch: MetricBatch, i: int) -> str:
        if i >= len(batch.domain):
            raise DataError(f"{self.name}: sample {batch.ids[i]!r} has no domain (ego4d or epickitchens)")
        return model_family(batch.domain[i], f"{self.name}: sample {batch.ids[i]!r}")

    def _embed(self, batch: MetricBatch, indices: list[int], generated: bool) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(indices)
        by_family: dict[str, list[int]] = {}
        for j, i in enumerate(indices):
            by_family.setdefault(self._family(batch, i), []).append(j)
        for family, js in by_family.items():
            clips = [self._clip(batch, indices[j], generated) for j in js]
            emb = embed_clips(self.egovlp_model(family), clips, self.device)
            for j, e in zip(js, emb, strict=True):
                out[j] = e
        return out  # type: ignore[return-value]

    def _target_keys(self, batch: MetricBatch) -> list[str] | None:
        n = len(batch)
        if len(batch.target_keys) != n or (self.uses_input and len(batch.input_keys) != n):
            return None
        keys = []
        for i in range(n):
            parts = [batch.target_keys[i], batch.input_keys[i] if self.uses_input else "", self._family(batch, i)]
            keys.append(hashlib.sha256("|".join(parts).encode()).hexdigest())
        return keys

    def compute(self, batch: MetricBatch) -> np.ndarray:
        n = len(batch)
        if n == 0:
            return np.empty(0, dtype=np.float64)
        if self.uses_input and len(batch.input) != n:
            raise DataError(f"{self.name}: needs the input frame of every sample")
        keys = self._target_keys(batch)
        if keys is None:
            gt = self._embed(batch, list(range(n)), generated=False)
        else:
            # per family: the namespace digests only the checkpoint the embeddings come from
            gt = [None] * n
            by_family: dict[str, list[int]] = {}
            for i in range(n):
                by_family.setdefault(self._family(batch, i), []).append(i)
            for family, idx in by_family.items():
                got = self.cached("target-embedding", [keys[i] for i in idx],
                                  lambda miss, idx=idx: self._embed(batch, [idx[j] for j in miss], generated=False),
                                  artifacts=[ARTIFACT_OF[family]])
                for i, v in zip(idx, got, strict=True):
                    gt[i] = v
        gen = self._embed(batch, list(range(n)), generated=True)
        sims = cosine_rows(torch.from_numpy(np.stack(gt)), torch.from_numpy(np.stack(gen)))
        return sims.double().numpy()


class EgoVLPPlus(EgoVLP):
    """EgoVLP+: clips hold the input frame (first half) and the image (second half)."""

    name = "egovlp-plus"
    needs: ClassVar[tuple[str, ...]] = ("generated", "target", "input")
    Settings = EgoVLPPlusSettings
    uses_input = True


# ---------------------------------------------------------------------------
# text tower (BLIP caption vs description similarity in the released code)
# ---------------------------------------------------------------------------


class EgoVLPTextEncoder:
    """EgoVLP text embeddings: DistilBERT [CLS] -> ``txt_proj`` (ReLU, Linear), (N, 256).

    The released code tokenizes each text alone with ``padding=True,
    truncation=True`` (distilbert-base-uncased: 512 tokens at most); here texts
    are batched with padding to the longest and an attention mask, which leaves
    the [CLS] output unchanged up to float rounding.
    """

    def __init__(self, weights: Any, device: str = "cpu", domain: str = "ego4d"):
        family = model_family(domain, "egovlp text encoder")
        self.device = device
        self.artifacts = text_artifacts(domain)
        path = weights.resolve(ARTIFACT_OF[family]).file(CHECKPOINT_FILE[family])
        self.model = shared_egovlp(path, None, device)
        tok_dir = weights.resolve(TOKENIZER_ARTIFACT).path
        _compat.ensure_torchvision()
        from transformers import DistilBertTokenizer

        self.tokenizer = DistilBertTokenizer.from_pretrained(str(tok_dir), do_lower_case=True, local_files_only=True)
        if len(self.tokenizer) > self.model.dims.text_vocab:
            raise DataError(
                f"{tok_dir}: tokenizer has {len(self.tokenizer)} tokens but {path} embeds "
                f"{self.model.dims.text_vocab} (mixing tiny and real weights?)"
            )
        self.max_length = min(512, self.model.dims.text_max_positions)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), TEXT_CHUNK):
                tok = self.tokenizer(
                    list(texts[start : start + TEXT_CHUNK]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                emb = self.model.embed_text(tok["input_ids"].to(self.device), tok["attention_mask"].to(self.device))
                out.append(emb.float().cpu())
        if not out:
            return np.zeros((0, self.model.dims.proj_dim), dtype=np.float32)
        return torch.cat(out).numpy()


def text_artifacts(domain: str) -> list[str]:
    """Artifacts :class:`EgoVLPTextEncoder` loads for ``domain``."""
    return [ARTIFACT_OF[model_family(domain, "egovlp text encoder")], TOKENIZER_ARTIFACT]


# ---------------------------------------------------------------------------
# tiny zoo: random weights in the official file format
# ---------------------------------------------------------------------------

_TINY_WORDS = """
the a an and or of to in on at for with from by into onto off up down out over under
is are was were be been being has have had do does did not no yes this that these those
it its he she they them his her their i you we my your our one two three some all any
person man woman hand hands left right finger fingers arm table counter floor wall door
drawer cupboard cabinet shelf fridge oven stove sink tap water bowl plate cup mug glass
bottle jar lid pan pot kettle knife fork spoon spatula board chopping cutting bread
butter cheese egg eggs meat chicken fish rice pasta noodle sauce salt pepper oil sugar
flour milk tea coffee onion garlic tomato potato carrot pepper lettuce apple banana
lemon orange fruit vegetable vegetables food dough towel cloth sponge soap bag box
paper package container tray bin phone tool tools hammer screw screwdriver nail wood
plank saw drill paint brush wire rope tape scissors needle thread shirt clothes shoe
car bike wheel tire key book pen pencil card machine
take takes took pick picks picked put puts place places open opens opened close closes
closed cut cuts cutting wash washes washing rinse rinses dry dries stir stirs pour
pours fill fills turn turns move moves hold holds holding grab grabs lift lifts push
pushes pull pulls press presses throw throws drop drops insert inserts remove removes
peel peels slice slices chop chops mix mixes shake shakes squeeze scoop scoops spread
spreads wipe wipes clean cleans fold folds adjust adjusts check checks look looks
walk walks reach reaches touch touches use uses using make makes making cook cooks
cooking fry fries boil boils bake bakes heat heats switch switches start stop sets set
get gets give gives keep keeps leave leaves carry carries bring brings hang hangs
screw unscrew tighten loosen attach detach paint draw write read play
about after again before between during through while then now just only also very
more most other another same new old small big large long short hot cold clean dirty
empty full wet top bottom side front back inside outside near next first last
picture photo image view scene kitchen room house garden
""".split()


def tiny_vocab() -> list[str]:
    """The tiny zoo's WordPiece vocabulary (deterministic)."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    pieces = [f"##{ch}" for ch in letters]
    symbols = list("0123456789.,'-!?<>&:;()\"#")
    out: list[str] = []
    for tok in specials + letters + pieces + symbols + _TINY_WORDS:
        if tok not in out:
            out.append(tok)
    return out


@contextlib.contextmanager
def _throwaway_parse_config() -> Iterator[type]:
    """A module named ``parse_config`` with a ``ConfigParser`` class, only while pickling."""
    mod = types.ModuleType("parse_config")

    class ConfigParser:  # the attributes EgoVLP's ConfigParser pickles
        pass

    ConfigParser.__module__ = "parse_config"
    ConfigParser.__qualname__ = "ConfigParser"
    mod.ConfigParser = ConfigParser  # type: ignore[attr-defined]
    previous = sys.modules.get("parse_config")
    sys.modules["parse_config"] = mod
    try:
        yield ConfigParser
    finally:
        if previous is None:
            sys.modules.pop("parse_config", None)
        else:
            sys.modules["parse_config"] = previous


def _official_config(cls: type, name: str, dims: EgoVLPDims) -> Any:
    cfg = cls.__new__(cls)
    cfg_file = f"configs/tiny/{name}.json"
    cfg.args = argparse.Namespace(config=cfg_file, resume=None, device=None, local_rank=0, seed=0)
    cfg.cfg_fname = pathlib.PosixPath(cfg_file)
    cfg.resume = None
    video_params = OrderedDict(
        model="SpaceTimeTransformer",
        arch_config="tiny",
        num_frames=dims.num_frames,
        pretrained=True,
        time_init="zeros",
        num_heads=dims.num_heads,  # egobench extension: EgoVLP infers heads from arch_config
    )
    text_params = OrderedDict(model="distilbert-base-uncased", pretrained=True, input="text", num_heads=dims.text_heads)
    cfg._config = OrderedDict(
        name=name,
        n_gpu=1,
        arch=OrderedDict(
            type="FrozenInTime",
            args=OrderedDict(video_params=video_params, text_params=text_params, projection="minimal", load_checkpoint=""),
        ),
        trainer=OrderedDict(epochs=1, save_dir="results/tiny", verbosity=2),
    )
    save = pathlib.PosixPath("results/tiny")
    cfg._save_dir = save / "models" / "0101_00"
    cfg._web_log_dir = save / "web" / "0101_00"
    cfg._log_dir = save / "log" / "0101_00"
    cfg._tf_dir = save / "tf" / "0101_00"
    return cfg


def _write_checkpoint(folder: Path, family: str, dims: EgoVLPDims, seed: int, size: str) -> None:
    """A random-weight EgoVLP of ``dims`` saved as the official checkpoint of ``family`` (the tiny
    ones get non-trivial norms so every parameter matters)."""
    from ..io import atomic_open

    torch.manual_seed(seed)
    model = EgoVLPModel(dims)
    if size == "tiny":
        with torch.no_grad():
            for mod in model.modules():
                if isinstance(mod, torch.nn.LayerNorm):
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.normal_(0.0, 0.1)
    with _throwaway_parse_config() as cls:
        config = _official_config(cls, f"egovlp-{family}-{size}", dims)
        ckpt = to_official_checkpoint(model, config, epoch=1, monitor_best=np.float64(0.0))
        with atomic_open(Path(folder) / CHECKPOINT_FILE[family], "wb") as f:
            torch.save(ckpt, f)


def _build_tiny_checkpoint(folder: Path, family: str, frames: int, seed: int) -> None:
    dims = EgoVLPDims(
        embed_dim=64,
        depth=2,
        num_heads=2,
        patch_size=32,  # 7x7 patches: 4x fewer tokens than ViT-B/16, same 224 input
        img_size=SIZE,
        num_frames=frames,
        mlp_hidden=256,
        proj_dim=256,
        text_vocab=len(tiny_vocab()),
        text_dim=32,
        text_layers=2,
        text_heads=2,
        text_hidden=64,
        text_max_positions=512,
    )
    _write_checkpoint(folder, family, dims, seed, "tiny")


def build_tiny_ego4d(folder: Path) -> None:
    _build_tiny_checkpoint(folder, "ego4d", frames=4, seed=21)


def build_tiny_epic(folder: Path) -> None:
    _build_tiny_checkpoint(folder, "epic", frames=16, seed=22)


def build_full_arch_ego4d(folder: Path) -> None:
    """EgoVLP at real size (ViT-B/16 + DistilBERT-base, 4 frames), random weights, official format."""
    _write_checkpoint(folder, "ego4d", EgoVLPDims(num_frames=4), 41, "full-arch")


def build_full_arch_epic(folder: Path) -> None:
    """EgoVLP at real size (ViT-B/16 + DistilBERT-base, 16 frames), random weights, official format."""
    _write_checkpoint(folder, "epic", EgoVLPDims(num_frames=16), 42, "full-arch")


def build_tiny_distilbert(folder: Path) -> None:
    """``vocab.txt`` (the tiny vocabulary) and a matching ``config.json``."""
    import json

    from ..io import atomic_write_text

    vocab = tiny_vocab()
    atomic_write_text(Path(folder) / "vocab.txt", "\n".join(vocab) + "\n")
    config = {
        "architectures": ["DistilBertForMaskedLM"],
        "model_type": "distilbert",
        "activation": "gelu",
        "dim": 32,
        "hidden_dim": 64,
        "n_heads": 2,
        "n_layers": 2,
        "max_position_embeddings": 512,
        "pad_token_id": 0,
        "sinusoidal_pos_embds": False,
        "vocab_size": len(vocab),
    }
    atomic_write_text(Path(folder) / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
