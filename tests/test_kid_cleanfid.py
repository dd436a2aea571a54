"""KID against torch-fidelity and FID's ``clean`` mode against clean-fid, same images, same weights.

The Inception stand-in of the tiny zoo has the real architecture (~95 MB), so the
pool3 tests use 3 images per side; the clean-fid Fréchet distance is compared on
64-d first-max-pool features of more images than that (full-rank covariances,
tests/conftest.py). clean-fid's own network is a TorchScript file it downloads
from NVIDIA; here clean-fid's ``InceptionV3W`` loads a TorchScript trace of the
tiny artifact's layers from a local folder instead (``download=False``), so the
whole clean-fid pipeline runs offline.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from egobench.errors import ConfigError
from egobench.metrics import METRICS
from egobench.metrics.cache import FeatureCache
from egobench.metrics.fid import FID, INCEPTION_FILE, POOL3_LAYERS, clean_fid_input
from egobench.metrics.kid import KID, KIDSettings, kernel_inception_distance
from egobench.protocol import load_protocol
from tests.conftest import (
    FIRST_POOL_LAYERS,
    assert_full_rank,
    build_metric,
    first_pool_fid,
    metric_batch,
    smooth_frame,
    write_pngs,
)

#: lego-official's hash per version: the sha256 of its resolved settings (every metric's defaults included),
#: so a changed setting or a new metric default moves it; adding KID and clean-fid (settings lego-official
#: does not use) must not
LEGO_OFFICIAL_HASHES = {"1.0": "a0030a5d00a1d3b4c1fd673de1ddb3df0266787d9d149b8810af14fdcbe1ca48",
                        "1.1": "c0f460b6f1083936b084d7a97526fb42dbef7470bfca82d3369e9da999b8fd73"}


@pytest.fixture(scope="module")
def images():
    return [smooth_frame(500 + i) for i in range(3)], [smooth_frame(600 + i) for i in range(3)]  # generated, targets


@pytest.fixture(scope="module")
def folders(images, tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    write_pngs(root / "g", images[0])
    write_pngs(root / "t", images[1])
    return root / "g", root / "t"


def test_kid_equals_torch_fidelity_calculate_metrics(tiny_store, images, folders):
    from torch_fidelity import calculate_metrics

    weights_file = tiny_store.resolve("inception-fid").file(INCEPTION_FILE)
    kwargs = dict(input1=str(folders[0]), input2=str(folders[1]), kid=True, feature_extractor="inception-v3-compat",
                  feature_extractor_weights_path=str(weights_file), cuda=False, cache=False, verbose=False,
                  save_cpu_ram=True)
    ref = calculate_metrics(**kwargs, kid_subset_size=3)
    m = build_metric(KID, tiny_store)  # default subset size 1000, capped at the 3 images
    m.update(metric_batch(*images))
    res = m.result()
    assert res["value"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-4, abs=1e-9)
    assert res["std"] == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-2, abs=1e-9)
    assert (res["subset_size"], res["n"], res["subsets"]) == (3, 3, 100) and "subset size 3" in res["note"]
    # torch-fidelity itself refuses the default subset size on 3 images: the cap is what makes small N work
    with pytest.raises(Exception, match="subset size"):
        calculate_metrics(**kwargs)


def test_kid_formula_settings_and_small_sets():
    rng = np.random.default_rng(3)
    g = rng.standard_normal((40, 16)).astype(np.float32)
    t = (rng.standard_normal((30, 16)) + 0.5).astype(np.float32)
    s = KIDSettings(subsets=7, subset_size=20)
    a, b = kernel_inception_distance(g, t, s), kernel_inception_distance(g, t, s)
    assert a == b and a["subset_size"] == 20 and a["std"] > 0  # seeded draws: reproducible, and they vary
    assert kernel_inception_distance(g, t, KIDSettings(subsets=7, subset_size=20, seed=1))["value"] != a["value"]
    same = rng.standard_normal((40, 16)).astype(np.float32)  # another draw of g's distribution
    assert abs(kernel_inception_distance(g, same, s)["value"]) < a["value"] / 5
    with pytest.raises(ConfigError, match="subset_size >= 2"):
        KID.parse_settings({"subset_size": 1}, "p.yaml: metrics[7].settings")
    with pytest.raises(ConfigError, match="unknown key 'subset'"):
        KID.parse_settings({"subset": 10}, "p.yaml: metrics[7].settings")


def test_kid_reuses_fid_features_no_second_inception_pass(tiny_store, images, tmp_path):
    gen, tgt = images
    cache = FeatureCache(tmp_path / "fc")
    fid = build_metric(FID, tiny_store, cache=cache, resize="torch-fidelity", trace_sqrt="svd")
    kid = build_metric(KID, tiny_store, cache=cache, resize="torch-fidelity")
    batch = metric_batch(gen, tgt)
    fid.update(batch)
    kid.update(batch)  # same batch, as the evaluator hands it to both
    assert fid.forwarded == {"generated": 3, "target": 3} and kid.forwarded == {"generated": 0, "target": 0}
    np.testing.assert_array_equal(kid.feature_matrices()[0], fid.feature_matrices()[0])
    # another batch object, KID first: the targets come from FID's cache entries
    kid2 = build_metric(KID, tiny_store, cache=cache, resize="torch-fidelity", subsets=10)
    kid2.update(metric_batch(gen[:2], tgt[:2]))
    assert kid2.forwarded == {"generated": 2, "target": 0}
    # a different input stage is a different feature set
    kid3 = build_metric(KID, tiny_store, cache=cache, resize="pytorch-fid")
    kid3.update(metric_batch(gen[:1], tgt[:1]))
    assert kid3.forwarded == {"generated": 1, "target": 1}
    assert kid.result()["value"] == kernel_inception_distance(
        fid.feature_matrices()[1], fid.feature_matrices()[0], KIDSettings())["value"]
    assert kid3.result()["value"] is None and "at least 2" in kid3.result()["note"]


def test_clean_input_stage_is_clean_fid_dataset(folders):
    from cleanfid.utils import ResizeDataset

    ds = ResizeDataset([str(folders[1] / "000.png")], mode="clean")
    ref = (ds[0][None] - 128) / 128  # what InceptionV3W.forward feeds its layers
    img = np.array(Image.open(folders[1] / "000.png").convert("RGB"))
    torch.testing.assert_close(clean_fid_input([img]), ref, atol=0, rtol=0)


class _Layers(torch.nn.Module):
    """torch-fidelity's pool3 layers (or the first ``names``) under the attribute name clean-fid's
    TorchScript file has."""

    def __init__(self, model, names=POOL3_LAYERS):
        super().__init__()
        self.layers = torch.nn.Sequential(*[getattr(model, n) for n in names])

    def forward(self, x):
        return self.layers(x)


@pytest.fixture(scope="module")
def clean_fid_net(tiny_store, tmp_path_factory):
    """clean-fid's network class, loading a TorchScript trace of the (tiny) artifact's layers from
    a local folder instead of NVIDIA's download."""
    from cleanfid.inception_torchscript import InceptionV3W

    model = build_metric(FID, tiny_store, resize="clean").model
    folder = tmp_path_factory.mktemp("cleanfid-net")
    with torch.no_grad():
        traced = torch.jit.trace(_Layers(model).eval(), torch.zeros(1, 3, 299, 299))
    torch.jit.save(traced, str(folder / "inception-2015-12-05.pt"))
    return InceptionV3W(str(folder), download=False).eval()


def test_fid_clean_mode_equals_clean_fid_features(tiny_store, images, folders, clean_fid_net):
    """pool3 features through clean-fid's own network class; the distance is checked on full-rank
    features below (on 3 images per side the 2048-d covariances are rank-deficient)."""
    from cleanfid import fid as cleanfid

    m = build_metric(FID, tiny_store, resize="clean", trace_sqrt="svd")
    m.update(metric_batch(*images))
    res = m.result()
    # clean-fid's own folder pipeline: file loading, clean resize, normalisation, its network class
    feats = {side: cleanfid.get_folder_features(str(folder), clean_fid_net, num_workers=0, batch_size=8,
                                                device=torch.device("cpu"), mode="clean", verbose=False)
             for side, folder in zip(("g", "t"), folders)}  # fmt: skip
    t, g = m.feature_matrices()
    np.testing.assert_allclose(g, feats["g"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(t, feats["t"], rtol=1e-4, atol=1e-5)
    assert res["resize"] == "clean"
    assert np.std(feats["t"], axis=0).max() > 1e-3  # the images give different features


def test_fid_clean_mode_equals_clean_fid_frechet_distance(tiny_store, full_rank_image_sets, monkeypatch):
    """clean-fid's folder pipeline (file loading, clean resize) and its ``frechet_distance`` on the
    statistics of 64-d first-max-pool features of N_FULL_RANK images per side (full rank), against
    egobench's clean mode on the same layers."""
    from cleanfid import fid as cleanfid

    generated, targets, folders = full_rank_image_sets
    m = first_pool_fid(tiny_store, monkeypatch, resize="clean", trace_sqrt="sqrtm")
    layers = _Layers(m.model, FIRST_POOL_LAYERS).eval()

    class FirstPool(torch.nn.Module):
        """What clean-fid's InceptionV3W does with its layers (normalise, run), at 64 features."""

        def forward(self, x):
            return layers((x - 128) / 128).flatten(1)

    feats = {side: cleanfid.get_folder_features(str(folders[side]), FirstPool(), num_workers=0, batch_size=34,
                                                device=torch.device("cpu"), mode="clean", verbose=False)
             for side in ("g", "t")}  # fmt: skip
    stats = {side: (np.mean(f, axis=0), np.cov(f, rowvar=False)) for side, f in feats.items()}
    ref = cleanfid.frechet_distance(*stats["t"], *stats["g"])
    m.update(metric_batch(generated, targets))
    res = m.result()
    t_feats, g_feats = m.feature_matrices()
    assert_full_rank(t_feats)
    assert_full_rank(g_feats)
    np.testing.assert_allclose(t_feats, feats["t"], rtol=1e-4, atol=1e-5)
    # the same float32 features up to batched-convolution rounding, float64 statistics, scipy sqrtm of a
    # full-rank 64 x 64 product in both
    assert res["value"] == pytest.approx(ref, rel=1e-5)
    assert res["value"] > 0.1


@pytest.mark.slow
def test_fid_clean_mode_equals_clean_fid_compute_fid(tiny_store, images, folders, clean_fid_net):
    """End to end through ``cleanfid.fid.compute_fid`` (two 2048 x 2048 sqrtm: minutes on 2 cores)."""
    from cleanfid import fid as cleanfid

    m = build_metric(FID, tiny_store, resize="clean")  # sqrtm: clean-fid's formula
    m.update(metric_batch(*images))
    ref = cleanfid.compute_fid(str(folders[1]), str(folders[0]), mode="clean", custom_feat_extractor=clean_fid_net,
                               device=torch.device("cpu"), num_workers=0, batch_size=8, verbose=False,
                               use_dataparallel=False)
    assert m.result()["value"] == pytest.approx(ref, rel=1e-3)


def test_protocols_name_kid_and_lego_official_unchanged():
    v1 = load_protocol("egobench-v1")
    kid = [m for m in v1.metrics if m.metric == "kid"]
    assert len(kid) == 1 and kid[0].name == "kid"
    fid = [m for m in v1.metrics if m.metric == "fid"][0]
    assert kid[0].settings["resize"] == fid.settings["resize"]  # one Inception pass for both
    lego = load_protocol("lego-official")
    assert "kid" not in [m.metric for m in lego.metrics]
    assert [m.settings.get("resize", "pytorch-fid") for m in lego.metrics if m.metric == "fid"] == ["pytorch-fid"]
    assert lego.version in LEGO_OFFICIAL_HASHES, "a new lego-official version: pin its hash here"
    assert lego.hash == LEGO_OFFICIAL_HASHES[lego.version]
    assert "kid" in METRICS and METRICS.get("kid") is KID
    FID.parse_settings({"resize": "clean"}, "test")
