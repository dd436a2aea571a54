"""Synthetic (input, target, generated) frames and samples, so the bench needs no dataset."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egobench.errors import UserError

DOMAINS = ("ego4d", "epickitchens", "mixed")
#: the size of LEGO's released frames (height 256, 16:9)
FRAME_SIZE = (456, 256)
VERBS = ("opens drawer", "cuts tomato", "picks up cup", "washes plate", "turns on tap", "closes fridge")


def frame(rng: np.random.Generator, size: tuple[int, int], box: tuple[int, int]) -> Any:
    """A smooth random frame with a coloured block (the "hand") at ``box``."""
    from PIL import Image

    (w, h), (x, y) = size, box
    img = np.array(Image.fromarray(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)).resize(
        (w, h), Image.Resampling.BICUBIC))
    img[y : y + h // 4, x : x + w // 6] = rng.integers(100, 256, 3, dtype=np.uint8)
    return Image.fromarray(img)


def write_triples(folder: Path, count: int, generated_format: str = "png", seed: int = 0,
                  size: tuple[int, int] = FRAME_SIZE, tick: Callable[[int], None] = lambda n: None,
                  ) -> list[tuple[Path, Path, Path]]:
    """``count`` (input, target, generated) files: JPEG q95 frames like the release; the generated image
    is the target blurred, shifted and noisy, at the target's size, in ``generated_format``."""
    from PIL import Image, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    rng, (w, h), ext = np.random.default_rng(seed), size, "png" if generated_format == "png" else "jpg"
    out = []
    for i in range(count):
        frame_rng = np.random.default_rng(rng.integers(1 << 62))
        box_in = (int(frame_rng.integers(0, w // 2)), int(frame_rng.integers(0, h // 2)))
        box_tg = (min(box_in[0] + w // 8, w - w // 6), min(box_in[1] + h // 10, h - h // 4))
        state = frame_rng.bit_generator.state
        inp = frame(frame_rng, size, box_in)
        frame_rng.bit_generator.state = state  # same scene, the block moved
        tgt = frame(frame_rng, size, box_tg)
        arr = np.asarray(tgt.filter(ImageFilter.GaussianBlur(1.5)).transform(
            size, Image.Transform.AFFINE, (1, 0, -3, 0, 1, 2), Image.Resampling.BILINEAR), dtype=np.int16)
        gen = Image.fromarray(np.clip(arr + frame_rng.integers(-12, 13, arr.shape), 0, 255).astype(np.uint8))
        paths = (folder / f"input_{i:05d}.jpg", folder / f"target_{i:05d}.jpg", folder / f"generated_{i:05d}.{ext}")
        inp.save(paths[0], quality=95)
        tgt.save(paths[1], quality=95)
        gen.save(paths[2], **({} if ext == "png" else {"quality": 75}))
        out.append(paths)
        tick(1)
    return out


def make_samples(triples: Sequence[tuple[Path, Path, Path]], n: int, domain: str = "ego4d"):
    """``n`` samples cycling over ``triples``; returns (samples, locate)."""
    from egobench.data.split import Sample

    if domain not in DOMAINS:
        raise UserError(f"bench: unknown domain '{domain}'; use one of {', '.join(DOMAINS)}")
    samples, where = [], {}
    for i in range(n):
        (inp, tgt, gen), verb, sid = triples[i % len(triples)], VERBS[i % len(VERBS)], f"bench-{i:05d}"
        dom = domain if domain != "mixed" else ("ego4d", "epickitchens")[i % 2]
        samples.append(Sample(
            id=sid, dataset=dom, input_path=inp, target_path=tgt, action=f"#C C {verb}" if dom == "ego4d" else verb,
            description=f"The person {verb} {i} with the left hand while standing at the counter.",
            meta={"domain": dom, "clip_id": f"clip{i // 4}", "action_id": sid}))
        where[sid] = gen
    return samples, lambda s: where.get(s.id)


def write_split(root: Path, n: int, size: tuple[int, int]) -> None:
    """A LEGO-layout Ego4D split of ``n`` samples under ``root``, each with its own input and target frame."""
    from egobench.io import atomic_write_json

    val, (w, h) = root / "EgoGen" / "ego4d.fho" / "val", size
    (val / "f").mkdir(parents=True, exist_ok=True)
    rng, data = np.random.default_rng(0), {}
    for i in range(n):
        for side, box in (("in", (i % (w // 2), h // 9)), ("tg", (i % (w // 2) + w // 8, h // 3))):
            frame(rng, size, box).save(val / "f" / f"{side}{i:06d}.jpg", quality=95)
        data.setdefault(f"c{i // 100:04d}", {})[f"a{i:06d}"] = {
            "image_0": f"f/in{i:06d}.jpg", "image_1": f"f/tg{i:06d}.jpg", "action": f"#C C opens drawer {i % 7}",
            "llava_forecast_finetune": f"The person opens drawer {i % 7} with the left hand."}
    atomic_write_json(root / "ego4d_val.json", data)
