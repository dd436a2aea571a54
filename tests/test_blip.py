"""BLIP caption similarity: captions, checkpoint conversion, beam search, the metric."""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from egobench.errors import MissingArtifactError, UserError
from egobench.metrics import MetricBatch
from egobench.metrics import blip as B
from egobench.metrics import blip_beam as BB
from egobench.metrics import blip_captioner as BC
from egobench.metrics import blip_convert as BV
from egobench.metrics import blip_protocol as BP
from egobench.metrics import blip_text as BT
from egobench.metrics import blip_tiny as BY
from egobench.metrics.cache import FeatureCache
from egobench.weights import Resolved, WeightStore

PROMPT = "a picture of"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> WeightStore:
    return WeightStore(zoo="tiny", tiny_root=tmp_path_factory.mktemp("blip-zoo"))


@pytest.fixture(scope="session")
def hf_base(store):
    return BC.load_blip_captioner(store.resolve("blip-base-caption"), "hf")


@pytest.fixture(scope="session")
def original_base(store):
    return BC.load_blip_captioner(
        store.resolve("blip-base-caption-original"), "original", tokenizer_res=store.resolve("blip-bert-tokenizer")
    )


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth and noisy frames of several sizes (all resized to 384 by BLIP)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = [(48, 64), (45, 80), (96, 96)][i % 3]
        if i % 2:
            out.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        else:
            small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
            out.append(np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)))
    return out


def _reference_pixels(images: list[np.ndarray]) -> torch.Tensor:
    """The released transform_test, written with torchvision on PIL images."""
    from PIL import Image
    from torchvision import transforms
    from torchvision.transforms.functional import InterpolationMode

    tf = transforms.Compose(
        [
            transforms.Resize((384, 384), interpolation=InterpolationMode.BICUBIC),
            transforms.ToTensor(),
            transforms.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
        ]
    )
    return torch.stack([tf(Image.fromarray(a).convert("RGB")) for a in images])


def _plain_tokenizer(folder):
    """bert-base-uncased style tokenizer + BLIP's [DEC]/[ENC], loaded independently of egobench."""
    from transformers import BertTokenizer

    tok = BertTokenizer.from_pretrained(str(folder), local_files_only=True)
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tok


# --- captions -------------------------------------------------------------------------------


def test_preprocess_equals_released_transform():
    imgs = _images(4)
    assert torch.equal(BC.preprocess(imgs), _reference_pixels(imgs))


def test_captions_equal_transformers_generate(store, hf_base):
    model, tokenizer = hf_base
    imgs = _images(5)
    got = BC.BlipCaptioner(model, tokenizer, batch_size=30, beam_search="transformers").caption(imgs)

    tok = _plain_tokenizer(store.resolve("blip-base-caption").path)
    pixels = _reference_pixels(imgs)
    prompt = tok([PROMPT] * len(imgs), return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(
            pixel_values=pixels, input_ids=prompt, num_beams=3, max_length=20, min_length=5, repetition_penalty=1.0
        )
    want = [
        tok.decode(o, skip_special_tokens=True, clean_up_tokenization_spaces=True)[len(PROMPT) :].strip() for o in out
    ]
    assert got == want
    assert all(isinstance(c, str) for c in got) and any(c for c in got)


def test_prompt_ids_are_dec_a_picture_of(hf_base):
    model, tok = hf_base
    ids = BT.prompt_input_ids(tok, 2)
    assert ids.shape == (2, 4)
    assert ids[0, 0].item() == model.config.text_config.bos_token_id == tok.convert_tokens_to_ids("[DEC]")
    assert tok.convert_ids_to_tokens(ids[0, 1:].tolist()) == ["a", "picture", "of"]


def test_decode_matches_tokenizer_decode_with_cleanup(store, hf_base):
    _, tok = hf_base
    ref = _plain_tokenizer(store.resolve("blip-base-caption").path)
    rng = np.random.default_rng(3)
    for _ in range(200):
        ids = rng.integers(0, len(ref), rng.integers(1, 16)).tolist()
        assert BT.decode_released(tok, ids) == ref.decode(
            ids, skip_special_tokens=True, clean_up_tokenization_spaces=True
        )
    # the released stripping is by characters: "a picture of" + "##y" decodes to "a picture ofy"
    ids = BT.prompt_input_ids(tok, 1)[0].tolist() + tok.convert_tokens_to_ids(["##y", "man", "?"])
    assert BT.strip_prompt(BT.decode_released(tok, ids)) == "y man?"


# transformers 4.19.2 generate() (the LEGO environment) on a synthetic model whose
# logits are logits_for(sequence); 8 items, 3 beams, prompts of 4 tokens, eos 3, pad 0.
# Produced with the transformers 4.19.2 wheel by scripts/blip_goldens/make_goldens.py (README.md there says how).
_V, _EOS, _PAD = 11, 3, 0
_GOLDEN_4_19_2 = {
    (20, 5): [
        [10, 5, 6, 7, 6, 7, 10, 9],
        [9, 5, 6, 7, 2, 8, 9, 1, 8, 7, 6, 7, 2, 9, 2],
        [8, 5, 6, 7, 2, 9, 8, 6, 2, 2, 1],
        [7, 5, 6, 7, 7, 2, 8, 2, 7, 8, 5, 8, 5, 6, 1, 6],
        [6, 5, 6, 7, 7, 2, 8, 2, 2, 2, 1],
        [5, 5, 6, 7, 8, 1, 4, 1, 8, 7, 6, 7, 2, 9, 2],
        [4, 5, 6, 7, 8, 1, 9, 1, 8, 2, 1],
        [10, 5, 6, 7, 6, 7, 10, 9],
    ],
    (12, 8): [
        [10, 5, 6, 7, 6, 7, 10, 9],
        [9, 5, 6, 7, 2, 8, 9, 1, 8, 7, 6, 2],
        [8, 5, 6, 7, 2, 9, 8, 6, 2, 2, 6, 6],
        [7, 5, 6, 7, 7, 2, 8, 2, 7, 8, 5, 8],
        [6, 5, 6, 7, 7, 2, 8, 2, 2, 2, 1, 7],
        [5, 5, 6, 7, 8, 1, 4, 1, 8, 7, 6, 2],
        [4, 5, 6, 7, 8, 1, 9, 1, 8, 7, 6, 2],
        [10, 5, 6, 7, 6, 7, 10, 9],
    ],
    (9, 5): [
        [10, 5, 6, 7, 6, 7, 10, 9, 8],
        [9, 5, 6, 7, 2, 8, 9, 1, 8],
        [8, 5, 6, 7, 2, 9, 8, 6, 7],
        [7, 5, 6, 7, 7, 2, 8, 2, 2],
        [6, 5, 6, 7, 7, 2, 8, 2, 7],
        [5, 5, 6, 7, 8, 1, 4, 1, 8],
        [4, 5, 6, 7, 8, 1, 9, 1, 8],
        [10, 5, 6, 7, 6, 7, 10, 9, 8],
    ],
}


def _logits_for(seq: list[int]) -> list[float]:
    h = sum((i + 1) * t * 0.37 for i, t in enumerate(seq))
    n = len(seq)
    out = [2.5 * math.sin(1.3 * v + h + 0.11 * n) for v in range(_V)]
    out[_EOS] += 0.9 * (n - 4) / 4 - 1.5 + 0.4 * math.cos(3.1 * seq[0])
    out[_PAD] = -6.0
    return out


@pytest.mark.parametrize("lengths", sorted(_GOLDEN_4_19_2))
def test_released_beam_search_matches_transformers_4_19_2(lengths):
    max_length, min_length = lengths
    prompt = torch.tensor([[10 - i % 7, 5, 6, 7] for i in range(8)])

    def step(ids: torch.Tensor) -> torch.Tensor:
        return torch.tensor([_logits_for(r) for r in ids.tolist()], dtype=torch.float64).float()

    got = BB.released_beam_search(
        step,
        lambda rows: None,
        prompt,
        num_beams=3,
        max_length=max_length,
        min_length=min_length,
        eos_token_id=_EOS,
        pad_token_id=_PAD,
    )
    assert got == _GOLDEN_4_19_2[lengths]


def test_released_beam_search_with_cache_equals_without(hf_base):
    """The key/value cache reordering gives the same tokens as recomputing every prefix."""
    model, tok = hf_base
    pixels = BC.preprocess(_images(3))
    cached = BC.BlipCaptioner(model, tok).generate_ids(pixels)
    with torch.no_grad():
        emb = model.vision_model(pixel_values=pixels)[0].repeat_interleave(3, dim=0)
        mask = torch.ones(emb.shape[:-1], dtype=torch.long)

        def step(ids):
            out = model.text_decoder(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                encoder_hidden_states=emb,
                encoder_attention_mask=mask,
                use_cache=False,
                return_dict=True,
            )
            return out.logits[:, -1, :]

        cfg = model.config.text_config
        plain = BB.released_beam_search(
            step,
            lambda rows: None,
            BT.prompt_input_ids(tok, 3),
            eos_token_id=cfg.sep_token_id,
            pad_token_id=cfg.pad_token_id,
        )
    assert cached == plain


# --- original checkpoints ---------------------------------------------------------------------


@pytest.mark.parametrize("model", ["base", "large"])
def test_original_checkpoint_round_trip(store, model):
    """tiny .pth (original key names) -> converted model == the transformers model it came from."""
    res = store.resolve(f"blip-{model}-caption-original")
    state = torch.load(res.file(BP.ORIGINAL_FILES[model]), map_location="cpu", weights_only=True)["model"]
    assert any(k.startswith("visual_encoder.blocks.0.attn.qkv") for k in state)
    assert (
        "text_decoder.cls.predictions.decoder.weight" in state and "text_decoder.bert.embeddings.position_ids" in state
    )
    converted, tok = BC.load_blip_captioner(res, "original", tokenizer_res=store.resolve("blip-bert-tokenizer"))
    source = BY.tiny_model(model)  # what the builder converted (vision LayerNorm eps 1e-6)
    assert converted.config.vision_config.layer_norm_eps == 1e-6
    a, b = converted.state_dict(), source.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pixels = BC.preprocess(_images(3, seed=5))
    ids = BT.prompt_input_ids(tok, 3)
    with torch.no_grad():
        la = converted(pixel_values=pixels, input_ids=ids).logits
        lb = source(pixel_values=pixels, input_ids=ids).logits
    assert torch.equal(la, lb)
    imgs = _images(4, seed=6)
    assert BC.BlipCaptioner(converted, tok).caption(imgs) == BC.BlipCaptioner(source, tok).caption(imgs)


def test_key_mapping_is_a_bijection():
    for model in ("base", "large"):
        for key in BY.tiny_model(model).state_dict():
            orig = BV.hf_to_original_key(key)
            assert orig is not None and BV.original_to_hf_key(orig) == key


def _save_original(folder, state):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state}, folder / BP.ORIGINAL_FILES["base"])
    return Resolved("blip-base-caption-original", folder, "override", False)


def test_original_checkpoint_with_missing_or_extra_key_fails_naming_the_file(store, tmp_path):
    res = store.resolve("blip-base-caption-original")
    state = torch.load(res.file(BP.ORIGINAL_FILES["base"]), map_location="cpu", weights_only=True)["model"]
    tok_res = store.resolve("blip-bert-tokenizer")

    broken = dict(state)
    del broken["visual_encoder.blocks.1.attn.proj.weight"]
    bad = _save_original(tmp_path / "missing", broken)
    with pytest.raises(UserError) as e:
        BC.load_blip_captioner(bad, "original", tokenizer_res=tok_res)
    msg = str(e.value)
    assert (
        str(bad.file(BP.ORIGINAL_FILES["base"])) in msg
        and "vision_model.encoder.layers.1.self_attn.projection.weight" in msg
    )
    assert "\n" not in msg

    extra = dict(state)
    extra["text_encoder.bert.embeddings.word_embeddings.weight"] = torch.zeros(3, 3)
    bad = _save_original(tmp_path / "extra", extra)
    with pytest.raises(UserError, match="unexpected 1 key.*text_encoder"):
        BC.load_blip_captioner(bad, "original", tokenizer_res=tok_res)

    bad = _save_original(tmp_path / "notblip", {"foo": torch.zeros(1)})
    with pytest.raises(UserError, match="not a BLIP caption checkpoint"):
        BC.load_blip_captioner(bad, "original", tokenizer_res=tok_res)


def test_original_position_embedding_resized_like_blip(store, tmp_path):
    res = store.resolve("blip-base-caption-original")
    state = torch.load(res.file(BP.ORIGINAL_FILES["base"]), map_location="cpu", weights_only=True)["model"]
    pos = torch.randn(1, 1 + 4 * 4, state["visual_encoder.pos_embed"].shape[-1])  # a 256px checkpoint
    state["visual_encoder.pos_embed"] = pos
    model, _ = BC.load_blip_captioner(
        _save_original(tmp_path / "p", state), "original", tokenizer_res=store.resolve("blip-bert-tokenizer")
    )
    grid = pos[:, 1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, size=(6, 6), mode="bicubic", align_corners=False)
    want = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).flatten(1, 2)], dim=1)
    assert torch.equal(model.vision_model.embeddings.position_embedding.detach(), want)


def test_config_inferred_from_real_blip_shapes():
    """ViT-B / ViT-L + BERT-base shapes (meta tensors) give BLIP's published configurations."""

    class Tok:
        sep_token_id, pad_token_id = 102, 0

        def __len__(self):
            return 30524

        def convert_tokens_to_ids(self, t):
            return 30522

    def shapes(width, depth, mlp):
        m = lambda *s: torch.empty(*s, device="meta")  # noqa: E731
        st = {
            "visual_encoder.cls_token": m(1, 1, width),
            "visual_encoder.pos_embed": m(1, 577, width),
            "visual_encoder.patch_embed.proj.weight": m(width, 3, 16, 16),
            "visual_encoder.blocks.0.mlp.fc1.weight": m(mlp, width),
            "text_decoder.bert.embeddings.word_embeddings.weight": m(30524, 768),
            "text_decoder.bert.embeddings.position_embeddings.weight": m(512, 768),
            "text_decoder.bert.encoder.layer.0.intermediate.dense.weight": m(3072, 768),
            "text_decoder.bert.encoder.layer.0.crossattention.self.key.weight": m(768, width),
        }
        st.update({f"visual_encoder.blocks.{i}.norm1.weight": m(width) for i in range(depth)})
        st.update({f"text_decoder.bert.encoder.layer.{i}.attention.self.query.weight": m(768, 768) for i in range(12)})
        return st

    for width, depth, mlp, heads in ((768, 12, 3072, 12), (1024, 24, 4096, 16)):
        cfg = BV.infer_original_config(shapes(width, depth, mlp), Tok())
        v, t = cfg.vision_config, cfg.text_config
        assert (v.hidden_size, v.num_hidden_layers, v.num_attention_heads, v.intermediate_size) == (
            width,
            depth,
            heads,
            mlp,
        )
        assert (v.image_size, v.patch_size, v.layer_norm_eps) == (384, 16, 1e-6)
        assert (t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.vocab_size) == (768, 12, 12, 30524)
        assert (t.encoder_hidden_size, t.bos_token_id, t.sep_token_id, t.pad_token_id) == (width, 30522, 102, 0)


# --- the metric -------------------------------------------------------------------------------


class FakeEncoder:
    """Deterministic bag-of-words text embedding; records what it embedded."""

    def __init__(self, domain: str):
        self.domain = domain
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), 16))
        for i, t in enumerate(texts):
            for w in t.lower().split():
                seed = int.from_bytes(hashlib.sha256(f"{self.domain}|{w}".encode()).digest()[:4], "little")
                out[i] += np.random.default_rng(seed).standard_normal(16)
            out[i, 0] += 0.1  # never all-zero
        return out


@pytest.fixture
def fake_encoders(monkeypatch):
    made: dict[str, FakeEncoder] = {}

    def _text_encoder(self, domain):
        key = self._encoder_domain(domain)
        return made.setdefault(key, FakeEncoder(key))

    monkeypatch.setattr(B.BLIPSimilarity, "_text_encoder", _text_encoder)
    return made


def _metric(store, cache=None, **settings):
    cls = B.BLIPSimilarity
    return cls(cls.parse_settings(settings, "test"), weights=store, cache=cache)


def _batch(n: int, domains=None) -> MetricBatch:
    imgs = _images(n, seed=9)
    return MetricBatch(
        ids=[f"s{i}" for i in range(n)],
        generated=imgs,
        target=imgs,
        description=[f"the person picks up a knife {i} and cuts the bread" for i in range(n)],
        action=[f"cut bread {i}" for i in range(n)],
        domain=domains or ["ego4d"] * n,
    )


def test_metric_scores_and_captions(store, fake_encoders):
    m = _metric(store)
    batch = _batch(5)
    scores, extra = m.compute(batch)
    assert scores.shape == (5,) and np.all(np.abs(scores) <= 1.0) and np.all(np.isfinite(scores))
    assert set(extra) == {"caption"} and len(extra["caption"]) == 5
    assert extra["caption"] == m.captioner.caption(batch.generated)
    enc = fake_encoders["ego4d"]
    assert enc.calls[0] == extra["caption"] and enc.calls[1] == batch.description
    want = [
        float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))
        for a, b in zip(enc.embed(extra["caption"]), enc.embed(batch.description))
    ]
    np.testing.assert_allclose(scores, want, rtol=1e-12)


def test_metric_batch_size_does_not_change_captions(store, fake_encoders):
    batch = _batch(7)
    s1, e1 = _metric(store, batch_size=1).compute(batch)
    s7, e7 = _metric(store, batch_size=7).compute(batch)
    assert e1["caption"] == e7["caption"]
    np.testing.assert_array_equal(s1, s7)


def test_metric_reference_action_domains_and_cache(store, fake_encoders, tmp_path):
    batch = _batch(4, domains=["ego4d", "epickitchen", "ego4d", "epickitchen"])
    cache = FeatureCache(tmp_path / "cache")
    m = _metric(store, cache=cache, reference="action", weights_format="original", beam_search="transformers")
    s1, e1 = m.compute(batch)
    assert sorted(fake_encoders) == ["ego4d", "epickitchen"]  # EgoVLP: one text tower per domain
    assert fake_encoders["epickitchen"].calls[1] == [batch.action[1], batch.action[3]]
    assert cache.misses == 4
    for enc in fake_encoders.values():
        enc.calls.clear()
    s2, e2 = m.compute(batch)
    assert cache.hits == 4 and e1 == e2
    np.testing.assert_allclose(s1, s2, rtol=1e-12)
    assert all(len(enc.calls) == 1 for enc in fake_encoders.values())  # captions only: references came from the cache

    clip = _metric(store, text_encoder="clip")
    clip.compute(batch)
    assert "" in fake_encoders  # CLIP: one encoder for every domain


def test_metric_settings_and_artifacts():
    cls = B.BLIPSimilarity
    s = cls.parse_settings({"model": "large", "weights_format": "original"}, "test")
    assert cls.artifacts(s) == ["blip-large-caption-original", "blip-bert-tokenizer"]
    assert cls.artifacts(cls.parse_settings({}, "test")) == ["blip-base-caption"]
    assert cls.needs == ("generated", "description", "action") and cls.higher_is_better
    with pytest.raises(UserError):
        cls.parse_settings({"beams": 5}, "test")
    with pytest.raises(UserError):
        cls.parse_settings({"model": "huge"}, "test")


def test_missing_artifact_is_one_line_naming_the_download_command(tmp_path, monkeypatch):
    monkeypatch.setattr("egobench.weights._hf_cached_folder", lambda art: None)
    store = WeightStore(zoo="real", weights_dir=tmp_path / "weights")
    with pytest.raises(MissingArtifactError) as e:
        _metric(store, model="large")
    msg = str(e.value)
    assert "\n" not in msg and "egobench weights download blip-large-caption" in msg
    with pytest.raises(MissingArtifactError, match="egobench weights download blip-base-caption-original"):
        _metric(store, weights_format="original")


def test_hf_port_preprocessor_config_is_checked(store, tmp_path):
    import json
    import shutil

    res = store.resolve("blip-base-caption")
    folder = tmp_path / "port"
    shutil.copytree(res.path, folder)
    cfg = json.loads((folder / "preprocessor_config.json").read_text())
    cfg["image_mean"] = [0.5, 0.5, 0.5]
    (folder / "preprocessor_config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="preprocessing differs"):
        BC.load_blip_captioner(Resolved("blip-base-caption", folder, "override", True), "hf")


def test_original_checkpoint_with_pickled_config_loads_without_running_code(store, tmp_path):
    """BLIP's training scripts save {'model', 'config', ...}; an object torch's weights_only
    loader refuses goes through egobench.checkpoint's restricted unpickler."""
    import argparse

    res = store.resolve("blip-base-caption-original")
    state = torch.load(res.file(BP.ORIGINAL_FILES["base"]), map_location="cpu", weights_only=True)["model"]
    folder = tmp_path / "with-config"
    folder.mkdir()
    path = folder / BP.ORIGINAL_FILES["base"]
    torch.save({"model": state, "config": argparse.Namespace(image_size=384), "epoch": 4}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location="cpu", weights_only=True)
    loaded = BV.load_original_checkpoint(path)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


# --- mode: released (the released script never calls .eval()) -------------------------------------
# A transcription, written for this test, of the released captioning path run in training mode:
# metrics/blip/vit.py (BLIP's ViT with timm 0.9.5's DropPath), metrics/blip/med.py (BertLMHeadModel
# with its dropout sites) and BLIP_Decoder.generate (prompt, 3 beams, key/value cache, decode,
# caption[len(prompt):]) on the original checkpoint's tensors. The beam search itself draws nothing
# and is BB.released_beam_search, pinned to the transformers 4.19.2 wheel by the golden test above.

_HIDDEN_P = _ATTN_P = 0.1  # the released med_config.json


def _timm_drop_path(x, p):
    """timm 0.9.5 drop_path(x, p, training=True, scale_by_keep=True)."""
    if p == 0.0:
        return x
    keep = 1 - p
    r = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    if keep > 0.0:
        r.div_(keep)
    return x * r


def _released_vit(st, x, drop_path_rate):
    """vit.py VisionTransformer.forward in training mode (drop_rate = attn_drop_rate = 0)."""
    F = torch.nn.functional
    w = lambda k: st[f"visual_encoder.{k}"]  # noqa: E731
    dim = w("cls_token").shape[-1]
    heads = dim // 64
    depth = len({k.split(".")[2] for k in st if k.startswith("visual_encoder.blocks.")})
    patch = w("patch_embed.proj.weight").shape[-1]
    x = F.conv2d(x, w("patch_embed.proj.weight"), w("patch_embed.proj.bias"), stride=patch).flatten(2).transpose(1, 2)
    x = torch.cat((w("cls_token").expand(x.shape[0], -1, -1), x), dim=1)
    x = x + w("pos_embed")[:, : x.size(1), :]
    x = F.dropout(x, 0.0, training=True)  # pos_drop
    dpr = [v.item() for v in torch.linspace(0, drop_path_rate, depth)]
    for i in range(depth):
        b = lambda k, i=i: st[f"visual_encoder.blocks.{i}.{k}"]  # noqa: E731
        h = F.layer_norm(x, (dim,), b("norm1.weight"), b("norm1.bias"), eps=1e-6)
        B_, N, C = h.shape
        qkv = F.linear(h, b("attn.qkv.weight"), b("attn.qkv.bias")).reshape(B_, N, 3, heads, C // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * (C // heads) ** -0.5).softmax(dim=-1)
        attn = F.dropout(attn, 0.0, training=True)  # attn_drop
        h = F.linear((attn @ v).transpose(1, 2).reshape(B_, N, C), b("attn.proj.weight"), b("attn.proj.bias"))
        h = F.dropout(h, 0.0, training=True)  # proj_drop
        x = x + _timm_drop_path(h, dpr[i])
        h = F.layer_norm(x, (dim,), b("norm2.weight"), b("norm2.bias"), eps=1e-6)
        h = F.dropout(F.gelu(F.linear(h, b("mlp.fc1.weight"), b("mlp.fc1.bias"))), 0.0, training=True)
        h = F.dropout(F.linear(h, b("mlp.fc2.weight"), b("mlp.fc2.bias")), 0.0, training=True)
        x = x + _timm_drop_path(h, dpr[i])
    return F.layer_norm(x, (dim,), w("norm.weight"), w("norm.bias"), eps=1e-6)


def _released_decoder_step(st, input_ids, attention_mask, past, enc):
    """med.py BertLMHeadModel.forward (is_decoder, mode 'multimodal', use_cache) in training mode:
    next-token logits and the new self-attention key/value cache."""
    F = torch.nn.functional
    w = lambda k: st[f"text_decoder.{k}"]  # noqa: E731
    hidden = w("bert.embeddings.word_embeddings.weight").shape[1]
    heads = hidden // 64
    layers = len({k.split(".")[4] for k in st if k.startswith("text_decoder.bert.encoder.layer.")})
    past_len = past[0][0].shape[2] if past is not None else 0
    n, L = input_ids.shape
    # BertEmbeddings
    emb = F.embedding(input_ids, w("bert.embeddings.word_embeddings.weight"))
    emb += F.embedding(torch.arange(past_len, past_len + L)[None], w("bert.embeddings.position_embeddings.weight"))
    h = F.dropout(F.layer_norm(emb, (hidden,), w("bert.embeddings.LayerNorm.weight"), w("bert.embeddings.LayerNorm.bias"),
                               eps=1e-12), _HIDDEN_P, training=True)
    # get_extended_attention_mask (decoder: causal, prefix of ones for the cache) and invert_attention_mask
    seq = torch.arange(L)
    causal = (seq[None, None, :].repeat(n, L, 1) <= seq[None, :, None]).to(attention_mask.dtype)
    if causal.shape[2] < attention_mask.shape[1]:
        causal = torch.cat([torch.ones((n, L, attention_mask.shape[1] - L), dtype=causal.dtype), causal], dim=-1)
    self_mask = (1.0 - (causal[:, None] * attention_mask[:, None, None, :]).float()) * -10000.0
    enc_mask = (1.0 - torch.ones(enc.shape[:2])[:, None, None, :]) * -1e9

    def split(t):
        return t.view(*t.shape[:-1], heads, hidden // heads).permute(0, 2, 1, 3)

    def attention(pre, x, kv_source, mask, cache):
        q = split(F.linear(x, w(f"{pre}.self.query.weight"), w(f"{pre}.self.query.bias")))
        k = split(F.linear(kv_source, w(f"{pre}.self.key.weight"), w(f"{pre}.self.key.bias")))
        v = split(F.linear(kv_source, w(f"{pre}.self.value.weight"), w(f"{pre}.self.value.bias")))
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hidden // heads) + mask
        probs = F.dropout(torch.nn.Softmax(dim=-1)(scores), _ATTN_P, training=True)
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        ctx = ctx.view(*ctx.shape[:-2], hidden)
        out = F.dropout(F.linear(ctx, w(f"{pre}.output.dense.weight"), w(f"{pre}.output.dense.bias")), _HIDDEN_P,
                        training=True)
        out = F.layer_norm(out + x, (hidden,), w(f"{pre}.output.LayerNorm.weight"), w(f"{pre}.output.LayerNorm.bias"),
                           eps=1e-12)
        return out, (k, v)

    present = []
    for i in range(layers):
        pre = f"bert.encoder.layer.{i}"
        a, kv = attention(f"{pre}.attention", h, h, self_mask, past[i] if past is not None else None)
        present.append(kv)
        a, _ = attention(f"{pre}.crossattention", a, enc, enc_mask, None)  # cross K/V recomputed every step
        f = F.gelu(F.linear(a, w(f"{pre}.intermediate.dense.weight"), w(f"{pre}.intermediate.dense.bias")))
        f = F.dropout(F.linear(f, w(f"{pre}.output.dense.weight"), w(f"{pre}.output.dense.bias")), _HIDDEN_P,
                      training=True)
        h = F.layer_norm(f + a, (hidden,), w(f"{pre}.output.LayerNorm.weight"), w(f"{pre}.output.LayerNorm.bias"),
                         eps=1e-12)
    t = F.gelu(F.linear(h, w("cls.predictions.transform.dense.weight"), w("cls.predictions.transform.dense.bias")))
    t = F.layer_norm(t, (hidden,), w("cls.predictions.transform.LayerNorm.weight"),
                     w("cls.predictions.transform.LayerNorm.bias"), eps=1e-12)
    logits = F.linear(t, w("cls.predictions.decoder.weight"), w("cls.predictions.bias"))
    return logits[:, -1, :], tuple(present)


def _released_generate(st, tok, pixels, drop_path_rate):
    """BLIP_Decoder.generate(image, sample=False, num_beams=3, max_length=20, min_length=5) as the
    released script calls it, on a model left in training mode."""
    image_embeds = _released_vit(st, pixels, drop_path_rate).repeat_interleave(3, dim=0)
    input_ids = tok([PROMPT] * pixels.shape[0], return_tensors="pt").input_ids
    input_ids[:, 0] = tok.bos_token_id
    input_ids = input_ids[:, :-1]
    box = {"past": None}

    def step(ids):  # prepare_inputs_for_generation: the last token once a cache exists
        mask = torch.ones(ids.shape, dtype=torch.long)
        logits, box["past"] = _released_decoder_step(st, ids if box["past"] is None else ids[:, -1:], mask,
                                                      box["past"], image_embeds)
        return logits

    def reorder(rows):  # _reorder_cache
        box["past"] = tuple(tuple(t.index_select(0, rows) for t in layer) for layer in box["past"])

    with torch.no_grad():
        outputs = BB.released_beam_search(step, reorder, input_ids, num_beams=3, max_length=20, min_length=5,
                                         eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id)
    # transformers 4.19.2 decode() cleaned up tokenization spaces by default
    return [tok.decode(o, skip_special_tokens=True, clean_up_tokenization_spaces=True)[len(PROMPT):] for o in outputs]


def _released_captions_of_the_script(store, model, images, seed=42, batch=30):
    """compute_blip_caption's loop: seed, then batches of ``batch`` in order from one stream."""
    res = store.resolve(f"blip-{model}-caption-original")
    st = torch.load(res.file(BP.ORIGINAL_FILES[model]), map_location="cpu", weights_only=True)["model"]
    tok = _plain_tokenizer(store.resolve("blip-bert-tokenizer").path)
    torch.manual_seed(seed)  # seed_everything(42)
    out = []
    for i in range(0, len(images), batch):
        out += _released_generate(st, tok, _reference_pixels(images[i : i + batch]), {"base": 0.0, "large": 0.1}[model])
    return out


def _released_metric(store, **settings):
    return _metric(store, weights_format="original", mode="released", **settings)


@pytest.mark.parametrize("model", ["base", "large"])
def test_released_mode_captions_equal_the_released_code_on_cpu(store, fake_encoders, model):
    """Same seed right before the captioning pass, batches of 30 in order: the same captions,
    leading space included; the caller's random state is left as it was."""
    images = _images(34, seed=11)
    want = _released_captions_of_the_script(store, model, images)
    m = _released_metric(store, model=model)
    assert m.group_size == 30
    batch = _batch(34)
    batch.generated = images
    torch.manual_seed(123)
    before = torch.get_rng_state()
    got = m.compute(MetricBatch(**{**batch.__dict__, "memo": {}}))[1]["caption"]
    assert torch.equal(torch.get_rng_state(), before)
    assert got == want
    assert sum(c.startswith(" ") for c in got) > len(got) // 2  # caption[len(prompt):] keeps the space
    # dropout is on: eval mode captions the same frames differently
    plain = BC.BlipCaptioner(m.captioner.model, m.captioner.tokenizer).caption(images)
    assert sum(a.strip() != b for a, b in zip(got, plain)) > len(images) // 4


def _released_protocol(tmp_path, batch_size=4):
    from egobench.protocol import load_protocol

    path = tmp_path / "released.yaml"
    path.write_text(
        "name: released-test\nversion: '1'\nmetrics:\n"
        f"  - {{name: blip-b, metric: blip, settings: {{model: base, weights_format: original, mode: released, "
        f"batch_size: {batch_size}, draws: 2}}}}\n"
        f"  - {{name: blip-l, metric: blip, settings: {{model: large, weights_format: original, mode: released, "
        f"batch_size: {batch_size}}}}}\n")
    return load_protocol(path)


def _demo_samples(n):
    from egobench.data import load_split

    return list(load_split("demo", None, n))


def _evaluate(store, proto, samples, locate, batch_size, run_cache=None, progress=None):
    from egobench.evaluator import build_metrics, evaluate_samples

    cols = build_metrics(proto, store, "cpu", cache=FeatureCache(None))
    return evaluate_samples(samples, locate, cols, batch_size=batch_size, run_cache=run_cache, progress=progress)


def test_released_batches_are_fixed_groups_in_split_order_whatever_the_eval_batch_size(store, fake_encoders,
                                                                                       tmp_path):
    import pandas as pd

    proto = _released_protocol(tmp_path)
    samples = _demo_samples(10)
    locate = lambda s: s.target_path  # noqa: E731
    a = _evaluate(store, proto, samples, locate, batch_size=3)
    b = _evaluate(store, proto, samples, locate, batch_size=7)
    pd.testing.assert_frame_equal(a.samples, b.samples)
    assert a.metrics == b.metrics
    # = the metric fed the groups 0-3, 4-7, 8-9 directly, from one stream seeded at the pass start
    from egobench.evaluator import build_metrics
    from egobench.images import read_rgb

    cols = build_metrics(proto, store, "cpu", cache=FeatureCache(None))
    m = cols[1].metric  # blip-l
    m.begin()
    frames = [read_rgb(s.target_path) for s in samples]
    want = []
    for i in range(0, 10, 4):
        group = MetricBatch(ids=[s.id for s in samples[i:i + 4]], generated=frames[i:i + 4], target=frames[i:i + 4],
                            description=[s.description for s in samples[i:i + 4]],
                            action=[s.action for s in samples[i:i + 4]], domain=["ego4d"] * len(frames[i:i + 4]))
        want += m.compute(group)[1]["caption"]
    assert list(a.samples["blip-l_caption"]) == want
    # the spread across draws is recorded beside the mean (BLIP-B: 2 draws)
    info = a.metrics["blip-b"]
    assert info["draws"] == 2 and len(info["draw_values"]) == 2
    assert info["draw_std"] == pytest.approx(float(np.std(info["draw_values"], ddof=1)), rel=1e-12)
    assert info["value"] == pytest.approx(float(np.mean(info["draw_values"])), rel=1e-12)
    assert a.metrics["blip-l"]["draws"] == 1 and "draw_std" not in a.metrics["blip-l"]
    per = np.array([json.loads(x) for x in a.samples["blip-b_draw_scores"]])
    np.testing.assert_allclose(per.mean(axis=1), a.samples["blip-b"].to_numpy(), rtol=1e-12)
    assert a.metrics["blip-b"]["settings"]["mode"] == "released"


def test_released_run_killed_mid_way_resumes_to_identical_captions(store, fake_encoders, tmp_path, monkeypatch):
    """The stream state after each group is in the run cache: a resumed evaluation scores only the
    groups the kill interrupted, from the state the killed one reached, and equals an uninterrupted run."""
    import pandas as pd

    proto = _released_protocol(tmp_path)
    samples = _demo_samples(10)
    locate = lambda s: s.target_path  # noqa: E731
    whole = _evaluate(store, proto, samples, locate, batch_size=3, run_cache=FeatureCache(tmp_path / "whole"))
    ticks = []

    def killed(n):
        ticks.append(n)
        if len(ticks) == 3:  # after 9 samples: groups 0-3 and 4-7 scored, sample 8 waits for its group
            raise KeyboardInterrupt("killed")

    cache = tmp_path / "run-cache"
    with pytest.raises(KeyboardInterrupt):
        _evaluate(store, proto, samples, locate, batch_size=3, run_cache=FeatureCache(cache), progress=killed)
    calls = []
    real = BC.BlipCaptioner.caption
    monkeypatch.setattr(BC.BlipCaptioner, "caption", lambda self, ims: calls.append(len(ims)) or real(self, ims))
    resumed = _evaluate(store, proto, samples, locate, batch_size=5, run_cache=FeatureCache(cache))
    assert calls == [2, 2, 2]  # the last group only: BLIP-B's two draws, BLIP-L's one
    pd.testing.assert_frame_equal(resumed.samples, whole.samples)
    assert resumed.metrics == whole.metrics
    # unchanged outputs: nothing captioned again
    calls.clear()
    again = _evaluate(store, proto, samples, locate, batch_size=10, run_cache=FeatureCache(cache))
    assert calls == []
    pd.testing.assert_frame_equal(again.samples, whole.samples)
    # an output changed in the first group changes the stream for every later group: all recaptioned
    calls.clear()
    changed = _evaluate(store, proto, samples, lambda s: s.input_path if s is samples[1] else s.target_path,
                        batch_size=3, run_cache=FeatureCache(cache))
    assert calls == [4, 4, 4, 4, 4, 4, 2, 2, 2]
    fresh = _evaluate(store, proto, samples, lambda s: s.input_path if s is samples[1] else s.target_path,
                      batch_size=4)
    pd.testing.assert_frame_equal(changed.samples, fresh.samples)


def test_released_settings_are_checked_and_records_hold_every_setting(store):
    from egobench.errors import ConfigError

    cls = B.BLIPSimilarity
    with pytest.raises(ConfigError, match="draws 3 needs mode: released"):
        cls.parse_settings({"draws": 3}, "p.yaml")
    with pytest.raises(ConfigError, match="beam_search: released"):
        cls.parse_settings({"mode": "released", "beam_search": "transformers"}, "p.yaml")
    with pytest.raises(ConfigError, match="draws must be >= 1"):
        cls.parse_settings({"mode": "released", "draws": 0}, "p.yaml")
    with pytest.raises(ConfigError):
        cls.parse_settings({"mode": "train"}, "p.yaml")
    # the settings record (cache keys, metrics.json) holds every resolved setting, defaults included
    record = _metric(store).settings_record()
    assert set(record) == {"model", "weights_format", "text_encoder", "reference", "batch_size", "beam_search",
                           "mode", "seed", "draws"}
    assert (record["mode"], record["seed"], record["draws"]) == ("eval", 42, 1)
    assert _metric(store).group_size is None
    released = _released_metric(store, draws=2).settings_record()
    assert (released["mode"], released["seed"], released["draws"]) == ("released", 42, 2)


def test_shipped_protocols_blip_modes():
    from egobench.protocol import load_protocol

    official = load_protocol("lego-official")
    assert official.version == "1.1"
    for spec in official.metrics:
        if spec.metric == "blip":
            assert spec.settings["mode"] == "released" and spec.settings["seed"] == 42
            assert spec.settings["batch_size"] == 30
    v1 = load_protocol("egobench-v1")
    blips = [B.BLIPSimilarity.parse_settings(s.settings, "v1") for s in v1.metrics if s.metric == "blip"]
    assert blips and all(s.mode == "eval" and s.draws == 1 for s in blips)
    from importlib import resources

    for name in ("lego-official", "egobench-v1"):
        text = (resources.files("protocols") / f"{name}.yaml").read_text()
        assert "docs/protocols.md" in text
        # every document a protocol names is in the repository (a user has nothing else)
        root = Path(__file__).resolve().parent.parent
        for ref in re.findall(r"[\w./-]+\.md", text):
            assert (root / ref).is_file() and not ref.startswith(".."), ref


def test_report_notes_the_released_captioner_spread_under_table_2(tmp_path):
    import pandas as pd

    from reports.tables import RunData, build_tables

    def run(method, blip, mode_settings):
        metrics = {"method": method, "dataset": "demo", "comparable": False, "n_scored": 2,
                   "protocol": {"name": "lego-official", "version": "1.1", "hash": "ab" * 32},
                   "metric_order": ["blip-b", "blip-l"],
                   "metrics": {k: {"metric": "blip", "kind": "sample", "higher_is_better": True, "value": v,
                                   "display_scale": 100.0, "n": 2, "settings": mode_settings, **extra}
                               for k, (v, extra) in blip.items()}}
        samples = pd.DataFrame({"sample_id": ["a", "b"], "status": ["ok", "ok"],
                                "blip-b": [blip["blip-b"][0]] * 2, "blip-l": [blip["blip-l"][0]] * 2})
        return RunData(tmp_path / method, metrics, samples, {})

    released = {"mode": "released", "seed": 42, "draws": 3}
    runs = [run("input-copy", {"blip-b": (0.2, {"draws": 3, "draw_std": 0.0031}),
                               "blip-l": (0.3, {"draws": 3, "draw_std": 0.0042})}, released),
            run("oracle", {"blip-b": (0.25, {"draws": 3, "draw_std": 0.0012}),
                           "blip-l": (0.35, {"draws": 3, "draw_std": 0.0})}, released)]
    t2 = next(t for t in build_tables(runs, n_boot=10) if t.id.startswith("table2"))
    assert "BLIP-B/L: released captioner runs with dropout; values vary by about +-0.42 across seeds" in t2.notes
    one = [run("input-copy", {"blip-b": (0.2, {"draws": 1}), "blip-l": (0.3, {"draws": 1})},
               {"mode": "released", "seed": 42, "draws": 1})]
    t2 = next(t for t in build_tables(one, n_boot=10) if t.id.startswith("table2"))
    assert any("released captioner runs with dropout" in n and "not measured" in n for n in t2.notes)
    tiny = [run("input-copy", {"blip-b": (0.2, {"draws": 3, "draw_std": 3.1e-6}),
                               "blip-l": (0.3, {"draws": 3, "draw_std": 4.0e-6})}, released)]
    t2 = next(t for t in build_tables(tiny, n_boot=10) if t.id.startswith("table2"))
    assert "BLIP-B/L: released captioner runs with dropout; values vary by about +-0.0004 across seeds" in t2.notes
    plain = [run("input-copy", {"blip-b": (0.2, {}), "blip-l": (0.3, {})}, {"model": "base"})]
    t2 = next(t for t in build_tables(plain, n_boot=10) if t.id.startswith("table2"))
    assert not any("dropout" in n for n in t2.notes)
