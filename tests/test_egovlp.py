"""EgoVLP / EgoVLP+: checkpoint compatibility, the divided attention, metric values,
the restricted unpickler and missing weights."""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import pickle
import sys
import types
import uuid
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from egobench.checkpoint import StandIn, load_checkpoint
from egobench.errors import ConfigError, DataError, MissingArtifactError
from egobench.metrics import MetricBatch
from egobench.metrics.cache import FeatureCache
from egobench.metrics.egovlp import (
    EgoVLP,
    EgoVLPPlus,
    EgoVLPPlusSettings,
    EgoVLPSettings,
    EgoVLPTextEncoder,
    preprocess_frame,
)
from egobench.metrics.egovlp_model import (
    DividedAttention,
    SpaceTimeTransformer,
    egovlp_from_checkpoint,
    load_egovlp,
)
from egobench.weights import WeightStore

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> WeightStore:
    """One tiny zoo for the module (each checkpoint builds once)."""
    return WeightStore(zoo="tiny", tiny_root=tmp_path_factory.mktemp("egovlp-zoo"))


def _images(seed: int, n: int, hw: tuple[int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):  # smooth random images (blocky noise upsampled) so resizing matters
        small = torch.from_numpy(rng.random((1, 3, 8, 8), dtype=np.float32))
        big = F.interpolate(small, size=hw, mode="bilinear", align_corners=False)[0]
        out.append((big.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8))
    return out


def _batch(n_ego: int, n_epic: int, seed: int = 0, same: bool = False) -> MetricBatch:
    tgt = _images(seed, n_ego, (256, 341)) + _images(seed + 1, n_epic, (256, 456))
    gen = list(tgt) if same else _images(seed + 2, n_ego, (256, 341)) + _images(seed + 3, n_epic, (256, 456))
    inp = _images(seed + 4, n_ego, (256, 341)) + _images(seed + 5, n_epic, (256, 456))
    n = n_ego + n_epic
    return MetricBatch(
        ids=[f"s{seed}_{i}" for i in range(n)],
        generated=gen,
        target=tgt,
        input=inp,
        domain=["ego4d"] * n_ego + ["epickitchens"] * n_epic,
        target_keys=[f"t{seed}_{i}" for i in range(n)],
        input_keys=[f"i{seed}_{i}" for i in range(n)],
    )


def _sub(b: MetricBatch, idx: list[int]) -> MetricBatch:
    return MetricBatch(
        ids=[b.ids[i] for i in idx],
        generated=[b.generated[i] for i in idx],
        target=[b.target[i] for i in idx],
        input=[b.input[i] for i in idx],
        domain=[b.domain[i] for i in idx],
        target_keys=[b.target_keys[i] for i in idx],
        input_keys=[b.input_keys[i] for i in idx],
    )


@contextlib.contextmanager
def _parse_config_module():
    """A throwaway ``parse_config.ConfigParser`` class, importable only while pickling."""
    mod = types.ModuleType("parse_config")

    class ConfigParser:
        pass

    ConfigParser.__module__ = "parse_config"
    ConfigParser.__qualname__ = "ConfigParser"
    mod.ConfigParser = ConfigParser
    sys.modules["parse_config"] = mod
    try:
        yield ConfigParser
    finally:
        del sys.modules["parse_config"]


def _official_shapes(frames: int) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the released checkpoints (docs/checkpoints.md), written out independently."""
    d, hid, vocab = 768, 3072, 30522
    s: dict[str, tuple[int, ...]] = {
        "text_model.embeddings.word_embeddings.weight": (vocab, d),
        "text_model.embeddings.position_embeddings.weight": (512, d),
        "text_model.embeddings.LayerNorm.weight": (d,),
        "text_model.embeddings.LayerNorm.bias": (d,),
    }
    for i in range(6):
        p = f"text_model.transformer.layer.{i}."
        for lin in ("q_lin", "k_lin", "v_lin", "out_lin"):
            s[p + f"attention.{lin}.weight"] = (d, d)
            s[p + f"attention.{lin}.bias"] = (d,)
        for ln in ("sa_layer_norm", "output_layer_norm"):
            s[p + f"{ln}.weight"] = (d,)
            s[p + f"{ln}.bias"] = (d,)
        s[p + "ffn.lin1.weight"], s[p + "ffn.lin1.bias"] = (hid, d), (hid,)
        s[p + "ffn.lin2.weight"], s[p + "ffn.lin2.bias"] = (d, hid), (d,)
    s["video_model.cls_token"] = (1, 1, d)
    s["video_model.pos_embed"] = (1, 197, d)
    s["video_model.temporal_embed"] = (1, frames, d)
    s["video_model.patch_embed.proj.weight"] = (d, 3, 16, 16)
    s["video_model.patch_embed.proj.bias"] = (d,)
    for i in range(12):
        p = f"video_model.blocks.{i}."
        for ln in ("norm1", "norm2", "norm3"):
            s[p + f"{ln}.weight"], s[p + f"{ln}.bias"] = (d,), (d,)
        for att in ("attn", "timeattn"):
            s[p + f"{att}.qkv.weight"], s[p + f"{att}.qkv.bias"] = (3 * d, d), (3 * d,)
            s[p + f"{att}.proj.weight"], s[p + f"{att}.proj.bias"] = (d, d), (d,)
        s[p + "mlp.fc1.weight"], s[p + "mlp.fc1.bias"] = (hid, d), (hid,)
        s[p + "mlp.fc2.weight"], s[p + "mlp.fc2.bias"] = (d, hid), (d,)
    s["video_model.norm.weight"], s["video_model.norm.bias"] = (d,), (d,)
    s["txt_proj.1.weight"], s["txt_proj.1.bias"] = (256, d), (256,)
    s["vid_proj.0.weight"], s["vid_proj.0.bias"] = (256, d), (256,)
    return s


def _write_full_size(path: Path, frames: int, position_ids: bool = False) -> dict[str, tuple[int, ...]]:
    """A real-architecture checkpoint in the official layout. Every tensor is a stride-0 view of
    one random scalar, so the file stays tiny while the shapes are the real ones."""
    shapes = _official_shapes(frames)
    g = torch.Generator().manual_seed(frames)
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    if position_ids:
        sd["module.text_model.embeddings.position_ids"] = torch.arange(512).unsqueeze(0)
    for k, shape in shapes.items():
        sd[f"module.{k}"] = (torch.rand(1, generator=g) * 0.02).expand(*shape)
    with _parse_config_module() as cls:
        cfg = cls.__new__(cls)
        cfg.args = argparse.Namespace(config="configs/pt/egoclip.json", resume=None, device="0")
        cfg.cfg_fname = pathlib.PosixPath("configs/pt/egoclip.json")
        cfg.resume = None
        cfg._config = OrderedDict(
            name="EgoClip_4f",
            arch=OrderedDict(
                type="FrozenInTime",
                args=OrderedDict(
                    video_params=OrderedDict(
                        model="SpaceTimeTransformer", arch_config="base_patch16_224", num_frames=frames,
                        pretrained=True, time_init="zeros",
                    ),
                    text_params=OrderedDict(model="distilbert-base-uncased", pretrained=True, input="text"),
                    projection="minimal",
                    load_checkpoint="",
                ),
            ),
        )
        cfg._save_dir = pathlib.PosixPath("results/EgoClip_4f/models/0501_12")
        torch.save({"arch": "DistributedDataParallel", "epoch": 10, "state_dict": sd,
                    "monitor_best": np.float64(0.5), "config": cfg}, path)
    return shapes


# ---------------------------------------------------------------------------
# checkpoint compatibility
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("frames", [4, 16])
def test_real_architecture_loads_strictly(tmp_path, frames):
    path = tmp_path / "egovlp.pth"
    shapes = _write_full_size(path, frames, position_ids=frames == 16)
    assert path.stat().st_size < 2_000_000
    model = load_egovlp(path)
    d = model.dims
    assert (d.embed_dim, d.depth, d.num_heads, d.patch_size, d.img_size, d.num_frames) == (768, 12, 12, 16, 224, frames)
    assert (d.text_vocab, d.text_dim, d.text_layers, d.text_heads, d.text_hidden) == (30522, 768, 6, 12, 3072)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == shapes
    assert torch.equal(model.text_model.embeddings.position_ids[0], torch.arange(512))
    assert "parse_config" not in sys.modules  # the config was never imported, only stood in for
    # (no full-size forward: seconds on a CPU; the math is checked at small sizes below)


def test_checkpoint_config_becomes_stand_in(store):
    ckpt = load_checkpoint(store.resolve("egovlp-ego4d").file("egovlp.pth"))
    cfg = ckpt["config"]
    assert isinstance(cfg, StandIn) and cfg.pickled_name == "parse_config.ConfigParser"
    assert cfg.state["_config"]["arch"]["args"]["projection"] == "minimal"
    assert isinstance(cfg.state["args"], argparse.Namespace)
    assert isinstance(cfg.state["cfg_fname"], pathlib.PurePath)
    assert ckpt["epoch"] == 1 and float(ckpt["monitor_best"]) == 0.0
    assert all(k.startswith("module.") for k in ckpt["state_dict"])
    assert "parse_config" not in sys.modules


def test_wrong_weights_are_a_data_error(store):
    ckpt = load_checkpoint(store.resolve("egovlp-ego4d").file("egovlp.pth"))
    sd = dict(ckpt["state_dict"])
    sd.pop("module.video_model.blocks.1.norm3.weight")
    with pytest.raises(DataError, match="norm3"):
        egovlp_from_checkpoint({**ckpt, "state_dict": sd}, where="x.pth")
    sd = dict(ckpt["state_dict"], **{"module.video_model.extra": torch.zeros(1)})
    with pytest.raises(DataError, match="extra"):
        egovlp_from_checkpoint({**ckpt, "state_dict": sd}, where="x.pth")


def test_num_frames_like_the_released_loader(store):
    path = store.resolve("egovlp-ego4d").file("egovlp.pth")
    te4 = load_egovlp(path).video_model.temporal_embed
    te2 = load_egovlp(path, num_frames=2).video_model.temporal_embed
    te6 = load_egovlp(path, num_frames=6).video_model.temporal_embed
    assert torch.equal(te2, te4[:, :2])
    assert torch.equal(te6[:, :4], te4) and not te6[:, 4:].any()


# ---------------------------------------------------------------------------
# the divided space-time attention against a loop-by-loop reference
# ---------------------------------------------------------------------------


def _ref_attention(att: DividedAttention, x: torch.Tensor, frames: int, patches: int, over: str) -> torch.Tensor:
    b, t, dim = x.shape
    h = att.num_heads
    d = dim // h
    qkv = att.qkv(x)
    out = torch.zeros(b, t, dim, dtype=x.dtype)

    def attend(qv, keys, vals):
        w = torch.softmax(torch.stack([(qv * k).sum() for k in keys]), 0)
        return sum(wi * vi for wi, vi in zip(w, vals))

    for bi in range(b):
        for hi in range(h):
            q = [qkv[bi, i, hi * d:(hi + 1) * d] * d**-0.5 for i in range(t)]
            k = [qkv[bi, i, dim + hi * d: dim + (hi + 1) * d] for i in range(t)]
            v = [qkv[bi, i, 2 * dim + hi * d: 2 * dim + (hi + 1) * d] for i in range(t)]
            out[bi, 0, hi * d:(hi + 1) * d] = attend(q[0], k, v)  # CLS: all tokens
            for f in range(frames):
                for n in range(patches):
                    tok = 1 + f * patches + n
                    if over == "space":
                        group = [1 + f * patches + m for m in range(patches)]
                    else:
                        group = [1 + g * patches + n for g in range(frames)]
                    keys = [k[0]] + [k[j] for j in group]
                    vals = [v[0]] + [v[j] for j in group]
                    out[bi, tok, hi * d:(hi + 1) * d] = attend(q[tok], keys, vals)
    return att.proj(out)


def _ref_forward(model: SpaceTimeTransformer, x: torch.Tensor) -> torch.Tensor:
    b, f = x.shape[:2]
    n = model.patches_per_frame
    tokens = []
    for bi in range(b):
        seq = [model.cls_token[0, 0] + model.pos_embed[0, 0]]
        for fi in range(f):
            feat = model.patch_embed.proj(x[bi, fi][None])[0]  # (D, g, g)
            for pi in range(n):
                r, c = divmod(pi, feat.shape[-1])
                seq.append(feat[:, r, c] + model.pos_embed[0, 1 + pi] + model.temporal_embed[0, fi])
        tokens.append(torch.stack(seq))
    z = torch.stack(tokens)
    for blk in model.blocks:
        t_out = _ref_attention(blk.timeattn, blk.norm3(z), f, n, "time")
        s_out = _ref_attention(blk.attn, blk.norm1(z + t_out), f, n, "space")
        z = z + s_out
        z = z + blk.mlp.fc2(F.gelu(blk.mlp.fc1(blk.norm2(z))))
    return model.norm(z)[:, 0]


def test_divided_attention_matches_loop_reference():
    torch.manual_seed(0)
    att = DividedAttention(8, 2).double()
    x = torch.randn(2, 1 + 3 * 4, 8, dtype=torch.float64)
    with torch.no_grad():
        for over in ("space", "time"):
            got = att(x, 3, 4, over)
            want = _ref_attention(att, x, 3, 4, over)
            assert torch.allclose(got, want, atol=1e-5, rtol=0), over
        assert not torch.allclose(att(x, 3, 4, "space"), att(x, 3, 4, "time"))


def test_space_time_transformer_matches_loop_reference():
    torch.manual_seed(1)
    model = SpaceTimeTransformer(embed_dim=8, depth=2, num_heads=2, patch_size=8, img_size=16, num_frames=4, mlp_hidden=16)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
        x = torch.randn(2, 3, 3, 16, 16)  # 3 frames < the model's 4: temporal entries 0..2
        got = model(x)
        want = _ref_forward(model, x)
    assert torch.allclose(got, want, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------
# preprocessing and metric values
# ---------------------------------------------------------------------------


def test_preprocess_short_side_then_center_crop():
    img = _images(7, 1, (256, 341))[0]
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    y = F.interpolate(x[None], size=(224, 298), mode="bilinear", align_corners=False, antialias=False)[0]
    y = y[:, :, 37:261]  # round((298 - 224) / 2) = 37
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    assert torch.allclose(preprocess_frame(img), (y - mean) / std, atol=1e-5)


@pytest.mark.parametrize("cls,settings", [(EgoVLP, EgoVLPSettings()), (EgoVLPPlus, EgoVLPPlusSettings())])
def test_identical_images_score_one(store, cls, settings):
    metric = cls(settings, weights=store)
    vals = metric.compute(_batch(2, 2, same=True))
    assert vals.shape == (4,) and vals.dtype == np.float64
    assert np.allclose(vals, 1.0, atol=1e-6)


def test_batch_size_invariance(store):
    batch = _batch(4, 3, seed=3)
    metric = EgoVLPPlus(EgoVLPPlusSettings(), weights=store)
    together = metric.compute(batch)
    alone = np.array([metric.compute(_sub(batch, [i]))[0] for i in range(len(batch))])
    assert np.allclose(together, alone, atol=1e-6, rtol=0)
    assert together.std() > 0  # the samples do differ


def test_plus_differs_from_plain(store):
    batch = _batch(2, 2, seed=5)
    plain = EgoVLP(EgoVLPSettings(), weights=store).compute(batch)
    plus = EgoVLPPlus(EgoVLPPlusSettings(), weights=store).compute(batch)
    assert np.abs(plain - plus).min() > 1e-4


def test_epic_generated_resized_to_input(store):
    batch = _batch(0, 2, seed=9)
    batch.generated = [g[:, :455] for g in batch.generated]  # 256x455 vs the input's 256x456
    on = EgoVLPPlus(EgoVLPPlusSettings(), weights=store).compute(batch)
    off = EgoVLPPlus(EgoVLPPlusSettings(resize_generated_to_input=False), weights=store).compute(batch)
    assert np.all(np.isfinite(on)) and np.abs(on - off).max() > 0


def test_target_side_is_cached(store, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    metric = EgoVLPPlus(EgoVLPPlusSettings(), weights=store, cache=cache)
    batch = _batch(2, 2, seed=11)
    first = metric.compute(batch)
    clips: list[int] = []
    for family in ("ego4d", "epic"):
        metric.egovlp_model(family).video_model.register_forward_hook(lambda m, a, o: clips.append(a[0].shape[0]))
    second = metric.compute(batch)
    assert sum(clips) == len(batch)  # generated side only
    assert np.allclose(first, second, atol=1e-6)
    assert cache.hits == len(batch)
    clips.clear()
    batch.target_keys = [k + "-changed" for k in batch.target_keys]
    metric.compute(batch)
    assert sum(clips) == 2 * len(batch)


def test_unknown_domain_and_bad_settings(store):
    batch = _batch(1, 0)
    batch.domain = ["charades"]
    with pytest.raises(DataError, match="charades"):
        EgoVLP(EgoVLPSettings(), weights=store).compute(batch)
    with pytest.raises(ConfigError):
        EgoVLP.parse_settings({"frames_ego4d": 0}, "metrics.egovlp")
    with pytest.raises(ConfigError):
        EgoVLPPlus.parse_settings({"frames_epic": 1}, "metrics.egovlp-plus")
    with pytest.raises(ConfigError):
        EgoVLP.parse_settings({"frame_ego4d": 4}, "metrics.egovlp")


def test_missing_artifact_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr("egobench.weights._hf_cached_folder", lambda art: None)  # ignore a real HF cache
    (tmp_path / "weights").mkdir()
    monkeypatch.setenv("EGOBENCH_WEIGHTS", str(tmp_path / "weights"))
    metric = EgoVLP(EgoVLPSettings(), weights=WeightStore(zoo="real"))
    with pytest.raises(MissingArtifactError) as err:
        metric.compute(_batch(1, 0))
    msg = str(err.value)
    assert "\n" not in msg and "egovlp-ego4d" in msg and "egobench weights download egovlp-ego4d" in msg


# ---------------------------------------------------------------------------
# text tower
# ---------------------------------------------------------------------------


def test_text_encoder(store):
    enc = EgoVLPTextEncoder(store, domain="epickitchens")
    texts = ["The person opens the drawer.", "a picture of a man cutting bread on a board", "Stir"]
    together = enc.embed(texts)
    assert together.shape == (3, 256) and together.dtype == np.float32
    alone = np.concatenate([enc.embed([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)
    assert not np.allclose(together[0], together[1])
    assert enc.embed([]).shape == (0, 256)


# ---------------------------------------------------------------------------
# the restricted unpickler
# ---------------------------------------------------------------------------


class _Shell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("fmt", ["zip", "torch-legacy", "plain-pickle"])
def test_code_in_pickle_is_refused(tmp_path, fmt):
    marker = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    path = tmp_path / "evil.pth"
    payload = {"state_dict": {"w": torch.zeros(2)}, "config": _Shell(marker)}  # tensors load before the payload
    if fmt == "zip":
        torch.save(payload, path)
    elif fmt == "torch-legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=2)
    with pytest.raises(DataError) as err:
        load_checkpoint(path)
    assert not marker.exists()
    msg = str(err.value)
    assert "refusing to unpickle" in msg and "system" in msg and str(path) in msg and "\n" not in msg


def test_other_code_globals_are_refused(tmp_path):
    path = tmp_path / "eval.pth"
    torch.save({"x": _Eval()}, path)
    with pytest.raises(DataError, match="builtins.eval"):
        load_checkpoint(path)
    path2 = tmp_path / "popen.pkl"
    path2.write_bytes(b"csubprocess\nPopen\n(S'true'\ntR.")  # protocol-0 GLOBAL + REDUCE
    with pytest.raises(DataError, match="subprocess.Popen"):
        load_checkpoint(path2)


def test_plain_checkpoints_still_load(tmp_path):
    path = tmp_path / "ok.pth"
    sd = OrderedDict(w=torch.arange(6.0).view(2, 3), p=torch.nn.Parameter(torch.ones(2)))
    torch.save({"state_dict": sd, "step": np.int64(3), "dtype": torch.float16, "p": pathlib.PosixPath("/a/b"),
                "s": {1, 2}, "b": b"\x00\xff"}, path)
    ck = load_checkpoint(path)
    assert torch.equal(ck["state_dict"]["w"], sd["w"]) and ck["step"] == 3 and ck["dtype"] is torch.float16
    assert ck["p"] == pathlib.PosixPath("/a/b") and ck["s"] == {1, 2} and ck["b"] == b"\x00\xff"
    legacy = tmp_path / "legacy.pth"
    torch.save({"state_dict": sd}, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(load_checkpoint(legacy)["state_dict"]["w"], sd["w"])
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"state_dict": sd}, protocol=2))  # storages via torch.storage._load_from_bytes
    assert torch.equal(load_checkpoint(plain)["state_dict"]["w"], sd["w"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit itself is deprecated
def test_torchscript_archive_is_refused(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(DataError, match="TorchScript"):
        load_checkpoint(path)


def test_missing_or_garbage_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_checkpoint(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match="junk.pth"):
        load_checkpoint(junk)


def test_a_one_dataset_run_needs_only_that_datasets_checkpoints(monkeypatch, tmp_path):
    """An Ego4D-only evaluation neither checks nor reads epic_mir_plus.pth (preflight, cache keys)."""
    from egobench.data import load_split
    from egobench.errors import MissingArtifactError
    from egobench.evaluator import build_metrics, evaluate_samples
    from egobench.metrics.cache import FeatureCache
    from egobench.protocol import load_protocol
    from egobench.runner import preflight_artifacts
    from egobench.weights import WeightStore

    store = WeightStore(zoo="tiny")
    real = store.resolve

    def no_epic(name):
        if name == "egovlp-epic":
            raise MissingArtifactError("egovlp-epic: not found (test)")
        return real(name)

    monkeypatch.setattr(store, "resolve", no_epic)
    split = list(load_split("demo", None, None))
    ego = [s for s in split if s.meta.get("domain") == "ego4d"][:3]
    epic = [s for s in split if s.meta.get("domain") == "epickitchens"][:1]
    assert ego and epic
    proto = load_protocol("lego-official")
    preflight_artifacts(proto, store, ego)  # no error
    with pytest.raises(MissingArtifactError, match="egovlp-epic"):
        preflight_artifacts(proto, store, ego + epic)
    with pytest.raises(MissingArtifactError, match="egovlp-epic"):
        preflight_artifacts(proto, store)  # without a split: everything
    cache = FeatureCache(tmp_path / "cache")  # its keys digest the weights: only egovlp.pth may be read
    cols = build_metrics(proto, store, "cpu", only=["egovlp", "egovlp-plus", "blip-b"], cache=cache)
    ev = evaluate_samples(ego, lambda s: s.input_path, cols, batch_size=3)
    assert ev.n_scored == 3 and cache.misses > 0


def test_one_model_per_checkpoint_and_device_in_the_shared_memo(store):
    """The metric's copy serves the text tower (which ignores the clip length); a forgotten memo
    loads afresh; another clip length is another model."""
    from egobench.metrics.egovlp import ARTIFACT_OF, CHECKPOINT_FILE, shared_egovlp
    from egobench.shared_models import forget_shared_models

    path = store.resolve(ARTIFACT_OF["ego4d"]).file(CHECKPOINT_FILE["ego4d"])
    forget_shared_models()
    video = shared_egovlp(path, 4, "cpu")
    assert shared_egovlp(path, None, "cpu") is video
    assert shared_egovlp(path, 4, "cpu") is video
    assert shared_egovlp(path, 8, "cpu") is not video
    forget_shared_models()
    again = shared_egovlp(path, None, "cpu")
    assert again is not video and shared_egovlp(path, 4, "cpu") is again
