"""Protocol post-processing of method outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from egobench.data import Sample
from egobench.postprocess import BadOutputError, finalize, output_relpath
from egobench.protocol import load_protocol


def _sample(tmp_path, w=80, h=45, meta_hw=(1080, 1920)):
    t = tmp_path / "t.jpg"
    Image.new("RGB", (w, h), (10, 20, 30)).save(t)
    return Sample("clipA__act1", "epickitchens", t, t, "open drawer",
                  meta={"clip_id": "clipA", "action_id": "act1", "image_1": "clipA/act1/f_0000000200.jpg",
                        "height": meta_hw[0], "width": meta_hw[1]})


def test_official_minmax_stretch_matches_released_formula(tmp_path):
    gen = load_protocol("lego-official").generation
    s = _sample(tmp_path)
    torch.manual_seed(0)
    x = torch.rand(3, 256, 256) * 1.6 - 0.8  # a decoder output in roughly [-1, 1]
    img = np.asarray(finalize(x, s, gen))
    # released code: bicubic to (256, round(W/H*256)), then (g-min)/(max-min)*255 -> uint8
    y = F.interpolate(x[None], size=(256, round(1920 / 1080 * 256)), mode="bicubic", align_corners=False)[0]
    ref = ((y - y.min()) / (y.max() - y.min()) * 255).numpy().astype(np.uint8).transpose(1, 2, 0)
    assert img.shape == (256, 455, 3)
    np.testing.assert_array_equal(img, ref)


def test_v1_clamps(tmp_path):
    gen = load_protocol("egobench-v1").generation
    x = torch.full((3, 256, 455), 1.7)
    x[0] = -0.3
    img = np.asarray(finalize(x, _sample(tmp_path), gen))
    assert img[..., 0].max() == 0 and img[..., 1].min() == 255


def test_bad_outputs_are_reported(tmp_path):
    gen = load_protocol("egobench-v1").generation
    with pytest.raises(BadOutputError, match="NaN"):
        finalize(torch.full((3, 8, 8), float("nan")), _sample(tmp_path), gen)
    with pytest.raises(BadOutputError, match="3 channels"):
        finalize(torch.zeros(4, 8, 8), _sample(tmp_path), gen)
    with pytest.raises(BadOutputError, match="constant"):
        finalize(torch.zeros(3, 8, 8), _sample(tmp_path), load_protocol("lego-official").generation)


def test_output_paths(tmp_path):
    s = _sample(tmp_path)
    assert output_relpath(s, load_protocol("lego-official").generation) == "clipA/act1/f_0000000200.jpg"
    assert output_relpath(s, load_protocol("egobench-v1").generation) == "clipA__act1.png"


def test_target_aspect_falls_back_to_the_target_frame(tmp_path):
    gen = load_protocol("egobench-v1").generation
    s = _sample(tmp_path, w=80, h=60, meta_hw=(None, None))
    img = finalize(Image.new("RGB", (256, 256)), s, gen)
    assert img.size == (round(80 / 60 * 256), 256)
    assert Path(s.target_path).is_file()
