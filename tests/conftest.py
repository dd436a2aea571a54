"""Shared fixtures: a small LEGO-layout release built on the fly, a tiny zoo."""

from __future__ import annotations

import json
import os
from pathlib import Path

import egobench._compat as _compat

_compat.ensure_torchvision()  # before anything imports torchvision

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

# The tiny zoo's random weights produce denormal floats that make CPU kernels
# crawl (LPIPS 10x slower); flushing them changes only values below ~1e-38.
torch.set_flush_denormal(True)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _frame(rng: np.random.Generator, w: int, h: int, shift: int) -> Image.Image:
    base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)
    arr = np.array(img)
    arr[h // 3 : h // 3 + 20, 10 + shift : 40 + shift] = [230, 40, 40]
    return Image.fromarray(arr)


def make_release(root: Path, n_per: int = 3, seed: int = 0) -> Path:
    """Write a small release in the official LEGO layout (both sub-datasets)."""
    rng = np.random.default_rng(seed)
    for folder, prefix, size in (("ego4d.fho", "ego4d", (64, 48)), ("epickitchen", "epickitchen", (80, 45))):
        split: dict = {}
        meta: dict = {}
        for i in range(n_per):
            clip = f"{prefix}clip{i // 2}"
            action = f"{prefix}_act{i}"
            inp, tgt = f"{clip}_{100 + i:010d}.jpg", f"{clip}_{200 + i:010d}.jpg"
            d = root / "EgoGen" / folder / "val" / clip / action
            g = root / "EgoGen" / folder / "val_gt_for_metric" / clip / action
            d.mkdir(parents=True, exist_ok=True)
            g.mkdir(parents=True, exist_ok=True)
            _frame(rng, *size, 0).save(d / inp, quality=95)
            t = _frame(rng, *size, 15)
            t.save(d / tgt, quality=95)
            t.save(g / tgt, quality=95)
            label = f"#C C opens drawer {i}" if prefix == "ego4d" else f"open drawer {i}"
            split.setdefault(clip, {})[action] = {
                "image_0": f"{clip}/{action}/{inp}",
                "image_1": f"{clip}/{action}/{tgt}",
                "action": label,
                "llava_forecast_finetune": f"The person pulls the drawer <{i}> & looks inside.",
            }
            meta[clip] = {"height": size[1] * 4, "width": size[0] * 4}
        (root / f"{prefix}_val.json").write_text(json.dumps(split, indent=1))
        (root / f"{prefix}_metadata.json").write_text(json.dumps(meta))
    return root


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return make_release(tmp_path / "lego_release")


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny-zoo")
    os.environ["EGOBENCH_TINY_ZOO"] = str(root)
    return root


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch, tiny_zoo):
    monkeypatch.delenv("EGOBENCH_DATA", raising=False)
    monkeypatch.delenv("EGOBENCH_WEIGHTS", raising=False)
    monkeypatch.setenv("EGOBENCH_TINY_ZOO", str(tiny_zoo))


@pytest.fixture(autouse=True)
def _feature_cache(monkeypatch, tmp_path_factory):
    """Each test session gets its own feature cache (never the user's)."""
    monkeypatch.setenv("EGOBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "feature-cache"))


SMALL_PROTOCOL = """
name: {name}
version: "1.0"
generation:
  seed: 0
  seed_policy: per-sample
  output_format: png
  value_map: clamp
  output_layout: flat
metrics:
"""


def fixed_batch_loss(folder: Path, batch: dict, n: int = 4) -> float:
    """A diffusion folder's mean training loss on ``batch`` over ``n`` fixed noise draws (seeds 0..n-1): the
    same draws before and after finetuning, so a fall is the weights', not the noise's."""
    from diffusion_core.bundle import load_sd_bundle
    from diffusion_core.loss import diffusion_loss

    bundle = load_sd_bundle(folder)
    with torch.no_grad():
        return float(np.mean([diffusion_loss(bundle, batch, dropout=None, generator=torch.Generator().manual_seed(k))
                              .item() for k in range(n)]))


def write_protocol(path: Path, metrics=("psnr",), name: str = "small", **generation) -> Path:
    """A protocol file scoring only ``metrics`` (fast tests of the run machinery); ``generation`` adds
    settings such as ``resolution=64, steps=2, scheduler="ddim"`` for tests that generate."""
    text = SMALL_PROTOCOL.format(name=name).replace(
        "generation:\n", "generation:\n" + "".join(f"  {k}: {v}\n" for k, v in generation.items()))
    text += "".join(f"  - name: {m}\n    metric: {m}\n" for m in metrics)
    path.write_text(text)
    return path


# --- helpers shared by several test modules ---------------------------------------------------

#: the repository root (protocol files, README, the checkout a child process must import)
REPO = Path(__file__).resolve().parent.parent


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a child ``python -m egobench``: this checkout first on PYTHONPATH, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def smooth_frame(seed: int, h: int = 64, w: int = 80) -> np.ndarray:
    """A smooth random frame with a coloured block (uint8 H x W x 3): resizing and models see structure."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    arr = np.array(Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC))
    y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
    arr[y : y + h // 3, x : x + w // 3] = rng.integers(0, 256, 3)
    return arr


def write_pngs(folder: Path, images: list[np.ndarray]) -> list[Path]:
    """``images`` as ``folder/000.png, 001.png, ...`` (a folder a reference library reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, a in enumerate(images):
        paths.append(folder / f"{i:03d}.png")
        Image.fromarray(a).save(paths[-1])
    return paths


def metric_batch(generated: list[np.ndarray], target: list[np.ndarray], prefix: str = "s"):
    """A :class:`MetricBatch` of generated/target pairs with content keys for the feature cache."""
    import hashlib

    from egobench.metrics import MetricBatch

    return MetricBatch(
        ids=[f"{prefix}{i}" for i in range(len(generated))], generated=list(generated), target=list(target),
        target_keys=[hashlib.sha256(t.tobytes() + str(t.shape).encode()).hexdigest() for t in target],
    )  # fmt: skip


def build_metric(cls, store, cache=None, **settings):
    """Metric class ``cls`` (or its registered name) with ``settings`` parsed as a protocol's would be."""
    if isinstance(cls, str):
        from egobench.metrics import METRICS

        cls = METRICS.get(cls)
    return cls(cls.parse_settings(settings, "test"), weights=store, cache=cache)


@pytest.fixture(scope="session")
def tiny_store(tiny_zoo):
    """A weight store on the session's tiny zoo (each artifact builds once)."""
    from egobench.weights import WeightStore

    return WeightStore(zoo="tiny", tiny_root=tiny_zoo)


def bomb_png(width: int = 30000, height: int | None = None) -> bytes:
    """About 100 KB of PNG whose header declares ``width`` x ``height`` RGB pixels (30000 x 30000:
    2.7 GB decoded), with enough rows of data that a decoder starts on it."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    height = width if height is None else height
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (1 + 3 * width) * min(height, 1100), 9)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    assert len(data) < 120_000
    return data


def assert_one_line(msg: str, *parts: str, limit: int = 400) -> str:
    """An error message fit for a terminal: one line, shorter than ``limit``, naming each of ``parts``."""
    assert "\n" not in msg and len(msg) < limit, msg[:1000]
    for p in parts:
        assert p in msg, (p, msg)
    return msg


def one_line_error(result, *needles: str) -> str:
    """A CLI result that failed as a user error: exit status 2, one ``egobench: error:`` line naming
    each of ``needles``, no traceback. Returns the line."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("egobench: error: "), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a test module (tiny models gain nothing from more, and OpenMP
    spin-waits make a busy 2-core machine many times slower): ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- FID on full-rank features ----------------------------------------------------------------
# With fewer images than feature dimensions the covariances are rank-deficient and the Fréchet
# distance ill-conditioned, so FID references are compared on the Inception network's first max
# pool averaged over space (64-d: pytorch-fid's dims=64 block, torch-fidelity's "64" feature) of
# more images than that.

#: images per side: more than the 64 feature dimensions
N_FULL_RANK = 68
#: egobench's pool3 layer walk stopped at the first max pool, then averaged
FIRST_POOL_LAYERS = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "AvgPool")


@pytest.fixture(scope="session")
def full_rank_image_sets(tmp_path_factory):
    """(generated, targets, folders): two visibly different sets of N_FULL_RANK small frames, as PNG files too."""
    targets = [smooth_frame(2000 + i, 32, 40) for i in range(N_FULL_RANK)]
    generated = [(smooth_frame(1000 + i, 32, 40).astype(np.int32) * 3 // 4 + 40).astype(np.uint8)
                 for i in range(N_FULL_RANK)]
    root = tmp_path_factory.mktemp("full-rank")
    folders = {"g": root / "g", "t": root / "t"}
    write_pngs(folders["g"], generated)
    write_pngs(folders["t"], targets)
    return generated, targets, folders


def assert_full_rank(features: np.ndarray) -> None:
    cov = np.cov(features.astype(np.float64), rowvar=False)
    assert np.linalg.matrix_rank(cov) == features.shape[1], "the test needs full-rank covariances"


def first_pool_fid(store, monkeypatch, **settings):
    """egobench's FID computing on the first-max-pool features (64-d) instead of pool3 (no feature
    cache: these features are not pool3's)."""
    from egobench.metrics import fid as fid_module

    monkeypatch.setattr(fid_module, "FEATURE_DIM", 64)
    monkeypatch.setattr(fid_module, "POOL3_LAYERS", FIRST_POOL_LAYERS)
    return build_metric(fid_module.FID, store, **settings)


# --- Cheap demo runs shared by the report, crowd-study and agreement tests ------------------------
#: the methods of the shared runs: the bounds and a copy method with a distinct name
STUDY_METHODS = ("input-copy", "oracle", "tests.plugins.methods:SlowCopy")
_RUNS: dict[str, dict[str, Path]] = {}


def make_runs(base: Path) -> dict[str, Path]:
    """Three cheap runs on the demo split (PSNR only), made once per test session and ``base``."""
    key = str(base)
    if key not in _RUNS:
        import dataclasses

        from egobench import run
        from egobench.protocol import load_protocol

        p = load_protocol("egobench-v1")
        p = dataclasses.replace(p, metrics=tuple(m for m in p.metrics if m.name in ("psnr",)))
        _RUNS[key] = {m: run(m, "demo", protocol=p, limit=8, out=base / "runs" / m.split(":")[-1],
                             progress=False).run_dir for m in STUDY_METHODS}
    return _RUNS[key]


@pytest.fixture
def runs(tmp_path_factory) -> dict[str, Path]:
    """The shared demo runs, by method."""
    return make_runs(tmp_path_factory.getbasetemp() / "shared-runs")
