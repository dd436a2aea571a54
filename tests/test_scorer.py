"""egobench.Scorer: the streaming API gives what ``egobench evaluate`` gives on the same images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import egobench
from egobench.errors import UserError
from egobench.images import read_rgb
from egobench.scorer import Scorer, to_uint8_image

N = 5


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Deterministic 'generated' frames for the first N demo samples (the input frame, shifted and
    noised), saved losslessly as ``<sample_id>.png`` the way an outside method would."""
    split = egobench.load_split("demo", limit=N)
    folder = tmp_path_factory.mktemp("gen")
    rng = np.random.default_rng(0)
    images = {}
    for s in split:
        x = read_rgb(s.input_path).astype(np.int16)
        x = np.clip(np.roll(x, 3, axis=1) + rng.integers(-25, 26, x.shape), 0, 255).astype(np.uint8)
        Image.fromarray(x).save(folder / f"{s.id}.png")
        images[s.id] = x
    return folder, images


@pytest.fixture(scope="module")
def evaluated(generated, tmp_path_factory):
    folder, _ = generated
    return egobench.evaluate(folder, "demo", protocol="egobench-v1", limit=N, zoo="tiny", device="cpu",
                             out=tmp_path_factory.mktemp("run"), progress=False)


def test_scorer_equals_evaluate_on_the_same_images(generated, evaluated):
    _, images = generated
    ids = list(images)
    want = {name: info["value"] for name, info in evaluated.metrics.items()}
    assert set(want) >= {"egovlp", "clip", "fid", "kid", "psnr", "lpips", "blip-b"}
    scorer = Scorer("egobench-v1", "demo", zoo="tiny", device="cpu", limit=N)
    # one update in split order, as the evaluation batched them: the same numbers (up to float32
    # rounding in the models' forwards, ~1e-8 relative)
    scorer.update(ids, [images[i] for i in ids])
    got = scorer.compute()
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=1e-6, abs=1e-9), name
    detail = scorer.compute(details=True)
    assert detail["kid"]["std"] == pytest.approx(evaluated.metrics["kid"]["std"], rel=1e-4, abs=1e-9)
    assert detail["fid"]["n"] == N and detail["psnr"]["n"] == N
    # streamed out of order, in pieces, as PIL images and float CHW tensors in [0, 1]
    scorer.reset()
    with pytest.raises(UserError, match="nothing scored"):
        scorer.compute()
    rev = ids[::-1]
    scorer.update(rev[:2], [Image.fromarray(images[i]) for i in rev[:2]])
    scorer.update(rev[2:], torch.stack([torch.from_numpy(images[i]).permute(2, 0, 1) / 255.0 for i in rev[2:]]))
    assert len(scorer) == N
    again = scorer.compute()
    assert again.keys() == want.keys()
    for name in want:
        assert again[name] == pytest.approx(want[name], rel=1e-5, abs=1e-8), name


def test_scorer_refuses_unknown_duplicate_and_malformed(generated):
    _, images = generated
    ids = list(images)
    scorer = Scorer("egobench-v1", "demo", zoo="tiny", device="cpu", limit=N, metrics=["psnr"])
    with pytest.raises(UserError, match="unknown sample id 'nope'"):
        scorer.update(["nope"], [images[ids[0]]])
    with pytest.raises(UserError, match=f"sample id '{ids[0]}' was already scored"):
        scorer.update([ids[0], ids[0]], [images[ids[0]]] * 2)
    assert len(scorer) == 0  # a refused update scores nothing
    scorer.update(ids[:1], [images[ids[0]]])
    with pytest.raises(UserError, match=f"'{ids[0]}' was already scored"):
        scorer.update(ids[:1], [images[ids[0]]])
    with pytest.raises(UserError, match="2 sample id\\(s\\) but 1 image"):
        scorer.update(ids[1:3], [images[ids[1]]])
    with pytest.raises(UserError, match="expected an RGB image"):
        scorer.update(ids[1:2], [images[ids[1]][..., 0]])
    assert list(scorer.compute()) == ["psnr"]
    with pytest.raises(UserError, match="has no metric 'fdi'"):
        Scorer("egobench-v1", "demo", zoo="tiny", metrics=["fdi"])


def test_to_uint8_image_conversions():
    a = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    np.testing.assert_array_equal(to_uint8_image(a), a)
    np.testing.assert_array_equal(to_uint8_image(torch.from_numpy(a).permute(2, 0, 1).float() / 255), a)
    f = torch.tensor([[[-0.5, 0.5, 1.5, 0.2]]] * 3)  # (3, 1, 4): clamped, rounded
    np.testing.assert_array_equal(to_uint8_image(f)[0, :, 0], [0, 128, 255, 51])
    with pytest.raises(UserError, match="NaN"):
        to_uint8_image(torch.full((3, 2, 2), float("nan")))
    with pytest.raises(UserError, match="got str"):
        to_uint8_image("x.png")


def test_training_logs_validation_metrics_through_the_scorer(tmp_path):
    """train_loop(validation=...) scores the current weights every N steps and leaves training as it was."""
    import json

    from diffusion_core.bundle import load_sd_bundle
    from diffusion_core.data import PairDataset
    from diffusion_core.training import TrainConfig, train_loop
    from diffusion_core.validation import Validation
    from egobench.weights import WeightStore

    sd15 = WeightStore(zoo="tiny").resolve("sd15").path
    ds = PairDataset(list(egobench.load_split("demo", limit=2)), resolution=64, text="action")

    def config(name):
        return TrainConfig(tmp_path / name, max_steps=3, batch_size=1, resolution=64, checkpoint_every=0)

    scorer = Scorer("egobench-v1", "demo", zoo="tiny", device="cpu", limit=2, metrics=["psnr", "clip"])
    val = Validation(scorer, every=2, num_inference_steps=2)
    with_val = train_loop(load_sd_bundle(sd15, in_channels=8), ds, config("val"), validation=val)
    lines = [json.loads(x) for x in (tmp_path / "val" / "validation.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 3] and [r["step"] for r in val.history] == [2, 3]  # every 2 + last
    for r in lines:
        assert r["n"] == 2 and set(r["metrics"]) == {"psnr", "clip"}
        assert all(np.isfinite(v) for v in r["metrics"].values())
    plain = train_loop(load_sd_bundle(sd15, in_channels=8), ds, config("plain"))
    assert with_val.losses == plain.losses  # validation draws nothing from training's random streams
