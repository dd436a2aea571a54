"""CLIP image similarity and FID against open_clip, pytorch-fid and torch-fidelity on the same tiny weights.

The tiny zoo is built once per session (the Inception stand-in has the real
architecture, ~95 MB). Each reference builds its own network from the same
weight file: open_clip's ``create_model(..., pretrained=<file>)``, pytorch-fid's
``InceptionV3`` (its download pointed at the local file), torch-fidelity's
``inception-v3-compat``. Pool3 activations are compared on a few images; Fréchet
distances on 64-dimensional features (the first max pool, averaged: pytorch-fid's
``dims=64`` and torch-fidelity's ``"64"`` layer) of enough images for full-rank
covariances, since with fewer images than dimensions the distance is ill-conditioned.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from egobench import _compat
from egobench.errors import MissingArtifactError
from egobench.metrics.cache import FeatureCache
from egobench.metrics.clip_metric import (
    CLIP_MEAN,
    CLIP_STD,
    CONFIG_FILE,
    WEIGHTS_FILE,
    CLIPImage,
    CLIPTextEncoder,
    build_clip,
    clip_preprocess,
)
from egobench.metrics.fid import (
    FID,
    INCEPTION_FILE,
    frechet_distance,
    pool3_from_normalized,
    pytorch_fid_input,
)
from egobench.weights import WeightStore
from tests.conftest import (
    N_FULL_RANK,
    assert_full_rank,
    build_metric,
    first_pool_fid,
    metric_batch,
    smooth_frame,
    write_pngs,
)


@pytest.fixture(scope="module")
def targets() -> list[np.ndarray]:
    return [smooth_frame(100 + i) for i in range(2)]


# ---------------------------------------------------------------------------
# CLIP
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def open_clip_reference(tiny_store, tmp_path_factory):
    """open_clip's own model from the artifact's weight file: the artifact's architecture registered as
    an open_clip model config, then ``create_model(name, pretrained=<the same file>)``."""
    _compat.ensure_torchvision()
    import open_clip

    folder = tiny_store.resolve("clip-vit-l-14").path
    configs = tmp_path_factory.mktemp("open-clip-configs")
    cfg = json.loads((folder / CONFIG_FILE).read_text())["model_cfg"]
    (configs / "egobench-tiny-ViT-L-14.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(configs)
    model = open_clip.create_model("egobench-tiny-ViT-L-14", pretrained=str(folder / WEIGHTS_FILE))
    return model.eval()


def test_clip_equals_open_clip_encode_image_by_hand(tiny_store, open_clip_reference):
    """Reference: open_clip's model built from the same checkpoint file, and the released code's
    preprocessing written out by hand."""
    import open_clip

    ref = open_clip_reference
    gens = [smooth_frame(i, 48, 90) for i in range(3)]
    tgts = [smooth_frame(10 + i, 64, 80) for i in range(3)]

    def emb(img):
        x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255.0
        x = F.interpolate(x, size=224, mode="bicubic", align_corners=False)
        x = (x - torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
            open_clip.OPENAI_DATASET_STD
        ).view(1, 3, 1, 1)
        with torch.no_grad():
            f = ref.encode_image(x)
        return f / f.norm(dim=1, keepdim=True)

    want = [float(F.cosine_similarity(emb(g), emb(t))[0]) for g, t in zip(gens, tgts)]
    got = build_metric(CLIPImage, tiny_store).compute(metric_batch(gens, tgts))
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert not np.allclose(want, want[0], atol=1e-3)  # the images are told apart: the check can fail
    assert (CLIP_MEAN, CLIP_STD) == (open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)


def test_clip_identical_is_one_batch_invariant_and_cached(tiny_store, tmp_path):
    cache = FeatureCache(tmp_path / "fc")
    gens = [smooth_frame(i) for i in range(7)]
    tgts = [smooth_frame(50 + i) for i in range(7)]
    m = build_metric(CLIPImage, tiny_store, cache=cache)
    np.testing.assert_allclose(m.compute(metric_batch(tgts, tgts)), 1.0, atol=1e-6)
    assert m.encoded == {"generated": 7, "target": 7}
    whole = m.compute(metric_batch(gens, tgts))
    assert m.encoded["target"] == 7  # targets came from the cache
    one = np.concatenate([build_metric(CLIPImage, tiny_store).compute(metric_batch([g], [t])) for g, t in zip(gens, tgts)])
    np.testing.assert_allclose(whole, one, atol=1e-6)
    assert np.all(whole < 1.0 - 1e-4) and np.all(whole > -1.0)


def test_clip_shortside_crop_matches_torchvision(tiny_store):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    img = smooth_frame(3, 64, 115)
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255.0
    x = TF.center_crop(TF.resize(x, 224, InterpolationMode.BICUBIC, antialias=False), 224)
    want = TF.normalize(x, CLIP_MEAN, CLIP_STD)
    got = clip_preprocess(img, 224, "shortside-crop", antialias=False)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    squash = clip_preprocess(img, 224, "squash")
    assert squash.shape == (3, 224, 224) and not torch.allclose(squash, got)


def test_clip_real_architecture_is_vit_l_14_with_quick_gelu(tmp_path):
    from open_clip.transformer import QuickGELU

    model = build_clip("ViT-L-14", None, None, device="meta")  # structure only, no weights
    vis, blocks = model.visual, model.visual.transformer.resblocks
    assert (len(blocks), vis.transformer.width, vis.patch_size) == (24, 1024, (14, 14))
    assert tuple(vis.image_size) == (224, 224)
    assert tuple(vis.proj.shape) == (1024, 768) and model.transformer.width == 768
    assert all(isinstance(b.mlp.gelu, QuickGELU) for b in list(blocks) + list(model.transformer.resblocks))
    bad = tmp_path / CONFIG_FILE
    bad.write_text(json.dumps({"model_cfg": {"quick_gelu": False}}))
    with pytest.raises(ValueError, match="quick_gelu"):
        build_clip("ViT-L-14", None, bad, device="meta")


def test_clip_text_encoder_normalised_and_matches_open_clip(tiny_store, open_clip_reference):
    import open_clip

    enc = CLIPTextEncoder(tiny_store)
    texts = ["The person pulls the drawer & looks inside.", "open drawer", "word " * 200]
    got = enc.embed(texts)
    assert got.shape == (3, 32) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    tokens = open_clip.tokenize(texts)
    assert tokens.shape == (3, 77) and int(tokens[2, -1]) == 49407  # truncated, ends with <end_of_text>
    with torch.no_grad():
        ref = open_clip_reference.encode_text(tokens)
    ref = (ref / ref.norm(dim=1, keepdim=True)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert enc.embed([]).shape == (0, 32)


# ---------------------------------------------------------------------------
# FID
# ---------------------------------------------------------------------------
def _pytorch_fid_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """pytorch-fid's own statistics and ``calculate_frechet_distance`` on two feature sets."""
    _compat.ensure_torchvision()  # before pytorch-fid imports torchvision
    from pytorch_fid.fid_score import calculate_frechet_distance

    a1, a2 = f1.astype(np.float64), f2.astype(np.float64)
    return float(calculate_frechet_distance(a1.mean(0), np.cov(a1, rowvar=False), a2.mean(0), np.cov(a2, rowvar=False)))


@pytest.mark.parametrize("n1,n2", [(80, 90), (200, 150)])
def test_frechet_formulas_match_pytorch_fid(n1, n2):
    """Full-rank 64-d covariances (N > d), where the distance is well conditioned: both traces agree
    with pytorch-fid's to float64 rounding of 64 x 64 products."""
    rng = np.random.default_rng(n1)
    d = 64
    mix = rng.standard_normal((d, d)) / 4
    f1 = (rng.standard_normal((n1, d)) @ mix + 0.3).astype(np.float32)
    f2 = (rng.standard_normal((n2, d)) @ (mix + 0.05) + rng.standard_normal(d) * 0.2).astype(np.float32)
    ref = _pytorch_fid_distance(f1, f2)
    got_sqrtm, _ = frechet_distance(f1, f2, "sqrtm")
    got_svd, _ = frechet_distance(f1, f2, "svd")
    assert got_sqrtm == pytest.approx(ref, rel=1e-9, abs=1e-9)
    assert got_svd == pytest.approx(ref, rel=1e-6, abs=1e-8)
    same, _ = frechet_distance(f1, f1, "svd")
    assert abs(same) < 1e-9 * max(1.0, float(np.var(f1, axis=0).sum()))


def test_pytorch_fid_input_stage():
    img = smooth_frame(7, 45, 80)
    x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255.0
    want = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
    got = pytorch_fid_input([img, img])
    assert got.shape == (2, 3, 299, 299)
    torch.testing.assert_close(got[:1], want, atol=0, rtol=0)


def test_fid_torch_fidelity_mode_equals_calculate_metrics(tiny_store, full_rank_image_sets, monkeypatch):
    """torch-fidelity's calculate_metrics on the files, with its own extractor class on the same weights file."""
    from torch_fidelity import calculate_metrics
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    generated, targets, folders = full_rank_image_sets
    weights_file = tiny_store.resolve("inception-fid").file(INCEPTION_FILE)
    ref = calculate_metrics(
        input1=str(folders["t"]), input2=str(folders["g"]), fid=True, feature_layer_fid="64",
        feature_extractor="inception-v3-compat", feature_extractor_weights_path=str(weights_file),
        cuda=False, cache=False, verbose=False, save_cpu_ram=True,
    )["frechet_inception_distance"]  # fmt: skip
    m = first_pool_fid(tiny_store, monkeypatch, resize="torch-fidelity", trace_sqrt="svd")
    # torch-fidelity's mode runs the extractor's own forward: the same class asked for its "64" feature
    m.model = FeatureExtractorInceptionV3(name="inception-v3-compat", features_list=["64"],
                                          feature_extractor_weights_path=str(weights_file)).eval()
    m.update(metric_batch(generated, targets))
    res = m.result()
    t_feats, g_feats = m.feature_matrices()
    assert_full_rank(t_feats)
    assert_full_rank(g_feats)
    assert (res["n"], res["feature_dim"]) == (N_FULL_RANK, 64) and "rank_deficient" not in res
    # torch-fidelity takes the means in float32 (np.mean of float32 features) where egobench uses float64:
    # ~1e-7 relative on each mean, a few 1e-7 on the distance (measured 4e-7); the rest is float64
    assert res["value"] == pytest.approx(ref, rel=1e-5)
    assert res["value"] > 0.1  # two different sets: a distance far from 0, so a wrong one shows


def test_fid_torch_fidelity_mode_pool3_walk_equals_the_extractor(tiny_store, targets):
    """The layer walk used by the pytorch-fid and clean modes equals torch-fidelity's extractor forward."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    m = build_metric(FID, tiny_store, resize="torch-fidelity", trace_sqrt="svd")
    m.update(metric_batch(targets, targets))
    t_feats, _ = m.feature_matrices()
    x = torch.from_numpy(targets[0]).permute(2, 0, 1)[None].float()
    x = (interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False) - 128) / 128
    np.testing.assert_allclose(pool3_from_normalized(m.model, x).numpy()[0], t_feats[0], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def pytorch_fid_inception(tiny_store):
    """pytorch-fid's InceptionV3 (its FIDInceptionA/C/E graph) loading the tiny artifact's file where
    it would download pt_inception-2015-12-05 (no network): ``make(blocks)`` builds one."""
    _compat.ensure_torchvision()  # before pytorch-fid imports torchvision
    import pytorch_fid.inception as pfi

    weights_file = tiny_store.resolve("inception-fid").file(INCEPTION_FILE)
    asked = []

    def local(url, progress=True, **kwargs):
        asked.append(url)
        return torch.load(weights_file, map_location="cpu", weights_only=True)

    def make(blocks):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(pfi, "load_state_dict_from_url", local)
            net = pfi.InceptionV3(blocks, use_fid_inception=True).eval()  # load_state_dict is strict
        assert asked[-1] == pfi.FID_WEIGHTS_URL
        return net

    return make


def test_lego_official_fid_activations_equal_pytorch_fid(tiny_store, pytorch_fid_inception, tmp_path):
    """pool3 activations of lego-official's FID (pytorch-fid input stage) against pytorch-fid's
    get_activations on the same files (its loading, ToTensor, resize, 2x - 1 and network)."""
    from pytorch_fid.fid_score import get_activations

    from egobench.protocol import load_protocol

    settings = {m.name: m for m in load_protocol("lego-official").metrics}["fid"].settings
    assert settings["resize"] == "pytorch-fid"
    images = [smooth_frame(700 + i, 45, 80) for i in range(3)]
    files = [str(p) for p in write_pngs(tmp_path, images)]
    ref = get_activations(files, pytorch_fid_inception([3]), batch_size=3, dims=2048, device="cpu", num_workers=0)
    m = build_metric(FID, tiny_store, **settings)
    got = m.features(images)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    assert np.std(ref, axis=0).max() > 1e-3  # the images give different activations


def test_lego_official_fid_equals_pytorch_fid_calculate_frechet_distance(
    tiny_store, pytorch_fid_inception, full_rank_image_sets, monkeypatch
):
    """lego-official's FID (pytorch-fid input stage, scipy sqrtm) against pytorch-fid's
    calculate_activation_statistics + calculate_frechet_distance on the same files, at pytorch-fid's
    dims=64 (full-rank covariances with N_FULL_RANK images)."""
    from pytorch_fid.fid_score import calculate_activation_statistics, calculate_frechet_distance

    from egobench.protocol import load_protocol

    generated, targets, folders = full_rank_image_sets
    net = pytorch_fid_inception([0])  # block 0: the first max pool; get_activations averages it to 64-d
    stats = {side: calculate_activation_statistics(sorted(str(p) for p in folders[side].iterdir()), net,
                                                   batch_size=34, dims=64, device="cpu", num_workers=0)
             for side in ("t", "g")}  # fmt: skip
    ref = calculate_frechet_distance(*stats["t"], *stats["g"])
    settings = {m.name: m for m in load_protocol("lego-official").metrics}["fid"].settings
    m = first_pool_fid(tiny_store, monkeypatch, **settings)
    m.update(metric_batch(generated, targets))
    res = m.result()
    t_feats, g_feats = m.feature_matrices()
    assert_full_rank(t_feats)
    assert_full_rank(g_feats)
    assert (res["trace_sqrt"], res["n"], res["feature_dim"]) == ("sqrtm", N_FULL_RANK, 64)
    np.testing.assert_allclose(t_feats.mean(0), stats["t"][0], rtol=1e-5, atol=1e-6)
    # the same float32 activations (up to the rounding of batched convolutions), float64 statistics
    # and the same scipy sqrtm on a full-rank 64 x 64 product: equal to ~1e-7 relative
    assert res["value"] == pytest.approx(ref, rel=1e-5)
    assert res["value"] > 0.1


def test_fid_target_cache_identity_and_batch_invariance(tiny_store, targets, tmp_path):
    cache = FeatureCache(tmp_path / "fc")
    g1 = [smooth_frame(300 + i) for i in range(2)]
    g2 = [smooth_frame(400 + i) for i in range(2)]
    m1 = build_metric(FID, tiny_store, cache=cache, trace_sqrt="svd")
    m1.update(metric_batch(g1, targets))
    assert m1.forwarded == {"generated": 2, "target": 2}
    # a second method against the same targets: no target-side Inception forward
    m2 = build_metric(FID, tiny_store, cache=cache, trace_sqrt="svd")
    m2.update(metric_batch(g2[:1], targets[:1]))
    m2.update(metric_batch(g2[1:2], targets[1:2]))
    assert m2.forwarded == {"generated": 2, "target": 0} and m2.result()["n"] == 2
    r1, r2 = m1.result(), m2.result()
    assert r1["value"] > 0 and r2["value"] > 0 and r1["value"] != r2["value"]
    # FID(x, x) ~ 0; generated features one image per forward vs cached targets (batch of 2)
    m3 = build_metric(FID, tiny_store, cache=cache, trace_sqrt="svd")
    m3.batch_size = 1
    m3.update(metric_batch(targets, targets))
    assert m3.forwarded == {"generated": 2, "target": 0}
    t_feats, g_feats = m3.feature_matrices()
    np.testing.assert_allclose(g_feats, t_feats, rtol=1e-5, atol=1e-6)
    res = m3.result()
    assert abs(res["value"]) < 1e-6 * float(np.var(t_feats, axis=0).sum())
    # result() is the float64 formula on the accumulated features
    assert r1["value"] == pytest.approx(frechet_distance(*m1.feature_matrices(), "svd")[0], rel=1e-12)


def test_fid_result_edge_cases(tiny_store):
    m = build_metric(FID, tiny_store)
    assert m.result()["value"] is None
    rng = np.random.default_rng(0)
    m._target.append(rng.standard_normal((1, 2048)).astype(np.float32))
    m._generated.append(rng.standard_normal((1, 2048)).astype(np.float32))
    res = m.result()
    assert res["value"] is None and res["n"] == 1 and "at least 2" in res["note"]


@pytest.mark.slow
def test_fid_sqrtm_on_2048d_features_matches_svd(tiny_store):
    """pytorch-fid's 2048 x 2048 sqrtm (15-45 s on a 2-core CPU) against the exact SVD form
    (the formulas are checked against scipy on small features above)."""
    rng = np.random.default_rng(1)
    f1 = np.abs(rng.standard_normal((40, 2048))).astype(np.float32)
    f2 = (np.abs(rng.standard_normal((50, 2048))) * 1.1).astype(np.float32)
    m = build_metric(FID, tiny_store)  # default trace_sqrt: sqrtm
    m._target.append(f1)
    m._generated.append(f2)
    res = m.result()
    assert res["value"] == pytest.approx(frechet_distance(f1, f2, "svd")[0], rel=1e-6)
    assert res.get("sqrtm_imag_max", 0.0) < 1e-3 and res["rank_deficient"]


# ---------------------------------------------------------------------------
# missing weights
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls,artifact", [(FID, "inception-fid"), (CLIPImage, "clip-vit-l-14")])
def test_missing_artifact_is_one_line(cls, artifact, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    real = WeightStore(zoo="real", weights_dir=tmp_path / "weights")
    with pytest.raises(MissingArtifactError) as e:
        cls(cls.parse_settings({}, "test"), weights=real)
    msg = str(e.value)
    assert "\n" not in msg and f"egobench weights download {artifact}" in msg


def test_tiny_artifacts_layout(tiny_store):
    clip_dir: Path = tiny_store.resolve("clip-vit-l-14").path
    assert (clip_dir / "open_clip_model.safetensors").is_file() and (clip_dir / CONFIG_FILE).is_file()
    state = torch.load(tiny_store.resolve("inception-fid").file(INCEPTION_FILE), map_location="cpu", weights_only=True)
    assert state["fc.weight"].shape == (1008, 2048) and state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
