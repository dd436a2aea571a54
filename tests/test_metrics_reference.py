"""PSNR and LPIPS against the reference libraries on the same inputs and weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from egobench.metrics import MetricBatch
from egobench.metrics.lpips_metric import load_lpips
from egobench.weights import WeightStore
from tests.conftest import build_metric


def _imgs(seed, shape=(48, 64, 3)):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, shape), 0, 255).astype(np.uint8)
    return a, b


def test_psnr_matches_scikit_image(tiny_store):
    from skimage.metrics import peak_signal_noise_ratio

    m = build_metric("psnr", tiny_store)
    pairs = [_imgs(i) for i in range(4)]
    got = m.compute(MetricBatch(ids=list("abcd"), generated=[b for _, b in pairs], target=[a for a, _ in pairs]))
    ref = [peak_signal_noise_ratio(a / 255.0, b / 255.0, data_range=1.0) for a, b in pairs]
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_psnr_identical_is_inf_and_size_mismatch_resized_like_torchvision(tiny_store):
    _compat_tv = pytest.importorskip("torchvision.transforms.functional")
    a, b = _imgs(7, (45, 80, 3))
    m = build_metric("psnr", tiny_store, resize_filter="bilinear", antialias=False)
    assert m.compute(MetricBatch(ids=["x"], generated=[a], target=[a]))[0] == float("inf")
    big = np.repeat(b, 2, axis=1)[:, :81]  # width 81 vs 80, the EPIC case
    got = m.compute(MetricBatch(ids=["x"], generated=[big], target=[a]))[0]
    from skimage.metrics import peak_signal_noise_ratio

    gen = torch.from_numpy(big).permute(2, 0, 1).float() / 255
    gen = _compat_tv.resize(gen, [45, 80], antialias=False)  # torchvision's resize (the released code's)
    ref = peak_signal_noise_ratio(a / 255.0, gen.permute(1, 2, 0).double().numpy(), data_range=1.0)
    assert got == pytest.approx(ref, rel=1e-6)
    assert got != pytest.approx(m.compute(MetricBatch(ids=["x"], generated=[big[:, :80]], target=[a]))[0], rel=1e-3)


@pytest.mark.parametrize("input_range", ["unit", "signed"])
def test_lpips_squeeze_matches_the_lpips_package_loading_torchvision_weights(input_range, tiny_store, tmp_path,
                                                                           monkeypatch):
    """Reference: lpips.LPIPS(pretrained backbone) that torchvision loads from its own cache."""
    import lpips

    res = tiny_store.resolve("lpips-squeeze-backbone")
    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "squeezenet1_1-b8a52dc0.pth").write_bytes(res.file("squeezenet1_1-b8a52dc0.pth").read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    ref_model = lpips.LPIPS(net="squeeze", version="0.1", pretrained=True, pnet_rand=False, verbose=False).eval()
    # the real-zoo resolver finds the file in the torch hub cache, and refuses it:
    # random stand-in bytes do not carry torchvision's published digest
    from egobench.errors import MissingArtifactError

    with pytest.raises(MissingArtifactError, match=f"{ckpt}/squeezenet1_1-b8a52dc0.pth: sha256 does not start"):
        WeightStore(zoo="real").resolve("lpips-squeeze-backbone")

    pairs = [_imgs(10 + i) for i in range(3)]
    m = build_metric("lpips", tiny_store, net="squeeze", input_range=input_range)
    got = m.compute(MetricBatch(ids=list("abc"), generated=[b for _, b in pairs], target=[a for a, _ in pairs]))
    for (a, b), g in zip(pairs, got, strict=False):
        ta = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255
        tb = torch.from_numpy(b).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            # torchmetrics 0.6 (released code) passes [0,1] straight in; normalize=True maps to [-1,1]
            ref = ref_model(ta, tb, normalize=(input_range == "signed")).item()
        assert g == pytest.approx(ref, rel=1e-5, abs=1e-7)


def test_lpips_unit_range_quirk_lowers_scores(tiny_store):
    pairs = [_imgs(20 + i) for i in range(3)]
    batch = MetricBatch(ids=list("abc"), generated=[b for _, b in pairs], target=[a for a, _ in pairs])
    unit = build_metric("lpips", tiny_store, input_range="unit").compute(batch)
    signed = build_metric("lpips", tiny_store, input_range="signed").compute(batch)
    assert not np.allclose(unit, signed)


def test_lpips_backbone_loader_is_strict(tmp_path):
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="missing backbone weight"):
        load_lpips("squeeze", tmp_path / "bad.pth")


def test_missing_real_artifact_is_one_line_with_fetch_command(tmp_path, monkeypatch):
    from egobench.errors import MissingArtifactError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(MissingArtifactError) as e:
        WeightStore(zoo="real").resolve("lpips-squeeze-backbone")
    msg = str(e.value)
    assert "\n" not in msg
    assert "egobench weights download lpips-squeeze-backbone" in msg
    assert "download.pytorch.org" in msg


def test_tiny_zoo_is_deterministic(tmp_path):
    from egobench.weights import build_tiny

    a = build_tiny("lpips-squeeze-backbone", tmp_path / "a")
    b = build_tiny("lpips-squeeze-backbone", tmp_path / "b")
    sa = torch.load(a / "squeezenet1_1-b8a52dc0.pth", weights_only=True)
    sb = torch.load(b / "squeezenet1_1-b8a52dc0.pth", weights_only=True)
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
