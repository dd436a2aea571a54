"""VLLM features computed by egobench: their own tag, provenance.json, one source per LEGO run, another VLM."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import egobench
from egobench.cli import main
from egobench.errors import DataError, UserError
from egobench.protocol import load_protocol
from egobench.weights import WeightStore
from lego.features import feature_paths, has_features, load_features, save_features
from lego.lemmatize import backend
from lego.method import LEGO, RELEASED_TAGS
from lego.tiny import tiny_features
from lego.vllm_features import RECORDS
from lego.vllm_prompt import QUERY, action_phrase
from lego.vllm_provenance import PROVENANCE, append_record, claim, entry_sha, read_provenance

pytestmark = pytest.mark.usefixtures("one_thread")

ALT = "lego-vllm-qwen2-vl-2b"


def _fast(steps: int = 2):
    proto = load_protocol("egobench-v1")
    return dataclasses.replace(proto, generation=dataclasses.replace(proto.generation, steps=steps),
                               metrics=tuple(m for m in proto.metrics if m.name in ("psnr",)))


def _manifest_features(run_dir) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())["method"]["config"]["features"]


# ---------------------------------------------------------------------------
# the command: own tag, provenance, records; lego reads them and records the source
# ---------------------------------------------------------------------------
def test_vllm_features_command_writes_own_tag_and_provenance_then_lego_records_it(tmp_path, monkeypatch):
    feat = tmp_path / "feat"
    r = CliRunner().invoke(main, ["vllm-features", "--dataset", "demo", "--out", str(feat), "--limit", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "computed features for 1 sample(s)" in r.output
    (s,) = egobench.load_split("demo", limit=1)
    tag = "egobench-lego-vllm-ego4d"
    assert tag not in RELEASED_TAGS.values()
    assert not has_features(feat, s, RELEASED_TAGS["ego4d"])  # never under the released dump's tag
    f = load_features(feat, s, tag)
    assert f.image.shape == (16, 64) and f.text.ndim == 2 and f.description  # tiny LLaVA: 16 tokens, 64 wide

    prov = read_provenance(feat)
    entry = prov[tag]
    assert entry["sha256"] == entry_sha(entry)
    vlm = entry["vlm"]
    assert vlm["id"] == "lego-vllm-ego4d" and vlm["tiny"] is True and vlm["hf_repo"] == "bolinlai/LEGO-Ego4D"
    # the weights digest covers the LLaVA checkpoint and the CLIP tower, file by file
    assert any(k.startswith("lego-vllm-ego4d/") for k in vlm["files"])
    assert any(k.startswith("llava-vision-tower/") for k in vlm["files"])
    blob = json.dumps(dict(sorted(vlm["files"].items())), sort_keys=True, separators=(",", ":")).encode()
    assert vlm["weights_sha256"] == hashlib.sha256(blob).hexdigest()
    import transformers

    assert entry["versions"]["transformers"] == transformers.__version__
    assert entry["lemmatizer"]["ego4d"] == backend() and entry["seed"] == 42
    assert entry["sampling"]["temperature"] == 0.2 and entry["sampling"]["max_new_tokens"] == 1024
    assert entry["query"]["template"] == QUERY
    assert entry["sizes"]["hidden"] == 64 and entry["sizes"]["image_tokens"] == 16

    records = [json.loads(line) for line in (feat / RECORDS).read_text().splitlines()]
    assert [r["sample"] for r in records] == [s.id]
    rec = records[0]
    assert rec["model_tag"] == tag and rec["provenance"] == entry["sha256"] and rec["vlm"] == "lego-vllm-ego4d"
    assert rec["lemmatizer"] == backend() and rec["action_phrase"] == action_phrase(s.action, "ego4d")

    again = CliRunner().invoke(main, ["vllm-features", "--dataset", "demo", "--out", str(feat), "--limit", "1",
                                      "--quiet"])
    assert "computed features for 0 sample(s); 1 already present" in again.output
    # another seed for the same tag: refused in one line naming what differs, before the VLM is loaded
    import lego.vllm_features as VF

    monkeypatch.setattr(VF, "_load", lambda *a, **k: pytest.fail("the VLM was loaded"))
    other = CliRunner().invoke(main, ["vllm-features", "--dataset", "demo", "--out", str(feat), "--limit", "2",
                                      "--seed", "7", "--quiet"])
    assert other.exit_code == 2 and "seed" in other.output and "another --out" in other.output
    assert len(other.output.strip().splitlines()) == 1
    assert len((feat / RECORDS).read_text().splitlines()) == 1

    res = egobench.run("lego", "demo", protocol=_fast(), limit=1, out=tmp_path / "run", progress=False,
                       method_options={"features_root": str(feat)})
    assert res.generated == 1 and math.isfinite(res.metrics["psnr"]["value"])
    rec = _manifest_features(tmp_path / "run")
    assert rec["source"] == "self-computed" and rec["tags"] == {"ego4d": tag}
    assert rec["provenance"] == {tag: entry["sha256"]}
    assert rec["provenance_sha256"] == hashlib.sha256((feat / PROVENANCE).read_bytes()).hexdigest()


# ---------------------------------------------------------------------------
# one source per run (no VLM runs in these: features are written by hand)
# ---------------------------------------------------------------------------
def _entry(tag: str, seed: int = 42) -> dict:
    entry = {"tag": tag, "vlm": {"id": "lego-vllm-ego4d", "tiny": True}, "sizes": {"hidden": 64, "image_tokens": 16},
             "seed": seed, "sampling": {}, "query": {"template": QUERY}}
    entry["sha256"] = entry_sha(entry)
    return entry


def _self_computed(root, samples, tag="egobench-lego-vllm-ego4d", entry=None):
    entry = entry or _entry(tag)
    claim(root, entry)
    for s in samples:
        append_record(root, {"sample": s.id, "model_tag": tag, "provenance": entry["sha256"]})
        save_features(root, s, tiny_features(s), tag)


def _released(root, samples):
    for s in samples:
        save_features(root, s, tiny_features(s), RELEASED_TAGS["ego4d"])


@pytest.fixture
def two(tiny_zoo):
    return list(egobench.load_split("demo", limit=2))


def _lego(root, **options):
    return LEGO(_fast(), weights=WeightStore(zoo="tiny"), features_root=str(root), **options)


def test_released_dumps_alone_are_read_as_released(tmp_path, two):
    _released(tmp_path, two)
    m = _lego(tmp_path)
    m.prepare(egobench.data.Split("t", two))
    assert m.config()["features"] == {"source": "released", "root": str(tmp_path),
                                      "tags": {"ego4d": RELEASED_TAGS["ego4d"]}}


def test_released_and_self_computed_samples_in_one_run_are_refused(tmp_path, two):
    _released(tmp_path, two[:1])
    _self_computed(tmp_path, two[1:])
    with pytest.raises(DataError) as e:
        _lego(tmp_path).prepare(egobench.data.Split("t", two))
    msg = str(e.value)
    assert "\n" not in msg and "released dumps" in msg and "self-computed" in msg and "one feature source" in msg
    assert two[0].id in msg and two[1].id in msg


def test_computing_the_missing_samples_beside_released_dumps_is_refused(tmp_path, two):
    _released(tmp_path, two[:1])
    with pytest.raises(DataError, match="released dumps .* features this run would compute"):
        _lego(tmp_path, compute_features=True).prepare(egobench.data.Split("t", two))
    assert not (tmp_path / PROVENANCE).exists()  # refused before any VLLM ran


def test_one_tag_made_with_two_provenances_is_refused(tmp_path, two):
    _self_computed(tmp_path, two)
    # one sample's files replaced by ones made with another seed (copied in from another folder)
    append_record(tmp_path, {"sample": two[1].id, "model_tag": "egobench-lego-vllm-ego4d",
                             "provenance": _entry("egobench-lego-vllm-ego4d", seed=7)["sha256"]})
    with pytest.raises(DataError, match="mixes two provenances") as e:
        _lego(tmp_path).prepare(egobench.data.Split("t", two))
    assert two[1].id in str(e.value) and "\n" not in str(e.value)


def test_released_tag_files_computed_by_an_older_egobench_are_not_taken_for_released_dumps(tmp_path, two):
    _released(tmp_path, two)
    append_record(tmp_path, {"sample": two[0].id, "model_tag": RELEASED_TAGS["ego4d"], "seed": 42})
    with pytest.raises(DataError, match="without provenance"):
        _lego(tmp_path).prepare(egobench.data.Split("t", two))


def test_a_tag_keeps_one_provenance_and_a_tampered_file_is_refused(tmp_path):
    tag = "egobench-x"
    assert claim(tmp_path, _entry(tag)) == _entry(tag)["sha256"]
    assert claim(tmp_path, _entry(tag)) == _entry(tag)["sha256"]  # the same again: fine (resume)
    with pytest.raises(UserError, match=r"differs in seed\)"):
        claim(tmp_path, _entry(tag, seed=1))
    claim(tmp_path, _entry("egobench-y", seed=1))  # another tag in the same root: its own entry
    assert set(read_provenance(tmp_path)) == {tag, "egobench-y"}
    data = json.loads((tmp_path / PROVENANCE).read_text())
    data["tags"][tag]["seed"] = 43
    (tmp_path / PROVENANCE).write_text(json.dumps(data))
    with pytest.raises(DataError, match="does not match its sha256"):
        read_provenance(tmp_path)


# ---------------------------------------------------------------------------
# another transformers VLM as the prompt enhancer
# ---------------------------------------------------------------------------
def test_sizes_are_read_from_the_vlms_config_and_processor(tiny_zoo):
    from transformers import AutoConfig

    from lego.vllm_hf import vlm_sizes

    folder = WeightStore(zoo="tiny").resolve(ALT).path
    cfg = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    sizes = vlm_sizes(folder)
    assert sizes.hidden == cfg.text_config.hidden_size == 32
    # 112 x 112 px (the tiny processor's pixel budget), 14 px patches merged 2 x 2: 4 x 4 tokens
    assert (sizes.image_side, sizes.image_tokens) == (112, 16)
    from lego.tiny import TINY_QWEN2_VL_SIZES  # the tiny LDM artifacts trained "on" it are sized so

    assert TINY_QWEN2_VL_SIZES == {"vllm_hidden": sizes.hidden, "image_tokens": sizes.image_tokens}


def test_lego_with_another_vlm_runs_end_to_end_and_records_it(tmp_path, tiny_zoo):
    feat = tmp_path / "feat"
    res = egobench.run("lego", "demo", protocol=_fast(), limit=2, out=tmp_path / "run", progress=False,
                       method_options={"vllm": ALT, "features_root": str(feat), "compute_features": True})
    assert res.generated == 2 and math.isfinite(res.metrics["psnr"]["value"])
    tag = f"egobench-{ALT}"
    rec = _manifest_features(tmp_path / "run")
    assert rec["source"] == "self-computed" and rec["vlm"] == {tag: ALT}
    entry = read_provenance(feat)[tag]
    assert rec["provenance"] == {tag: entry["sha256"]}
    assert entry["vlm"]["class"] == "Qwen2VLForConditionalGeneration" and entry["vlm"]["hf_repo"] == "Qwen/Qwen2-VL-2B-Instruct"
    assert "could not be verified offline" in entry["vlm"]["note"]
    assert entry["sizes"] == {"hidden": 32, "image_tokens": 16, "image_side": 112}
    assert "<|image_pad|>" in entry["query"]["example"] and "open the drawer" in entry["query"]["example"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert ALT in manifest["artifacts"] and manifest["method"]["config"]["vllm"] == ALT
    assert set(manifest["method"]["config"]["model_tags"].values()) == {tag}  # the tags read, not the released ones
    for s in egobench.load_split("demo", limit=2):
        f = load_features(feat, s, tag)
        assert f.image.shape == (16, 32) and f.text.shape[1] == 32
        assert not feature_paths(feat, s, RELEASED_TAGS["ego4d"])[0].exists()
    records = {r["sample"]: r for r in map(json.loads, (feat / RECORDS).read_text().splitlines())}
    assert {r["vlm"] for r in records.values()} == {ALT}
    # the LDM trained on this VLM's features (its artifact; the tiny one sized for the tiny Qwen2-VL)
    ldm = manifest["artifacts"]["lego-ego4d-ldm-qwen2-vl-2b"]
    cond = json.loads((Path(ldm["path"]) / "conditioning" / "config.json").read_text())
    assert (cond["vllm_hidden"], cond["image_tokens"]) == (32, 16)


def test_a_tiny_ldm_is_sized_from_an_unregistered_vlms_features(tmp_path, tiny_zoo):
    from lego.feature_source import SELF, FeatureSource

    folder = WeightStore(zoo="tiny").resolve(ALT).path  # given as a folder: no LDM artifact for it
    m = LEGO(_fast(), weights=WeightStore(zoo="tiny"), vllm=str(folder))
    default, tiny = m.ldm_folder("ego4d")
    assert tiny and json.loads((default / "conditioning" / "config.json").read_text())["vllm_hidden"] == 64
    m._use_sizes(FeatureSource(SELF, tmp_path, {"ego4d": "t"}, sizes={"t": {"hidden": 32, "image_tokens": 16}}))
    sized, tiny = m.ldm_folder("ego4d")
    assert tiny and sized != default
    cond = json.loads((sized / "conditioning" / "config.json").read_text())
    assert (cond["vllm_hidden"], cond["image_tokens"]) == (32, 16)


def test_an_ldm_sized_for_another_vllm_is_refused_in_one_line(tmp_path, two):
    from lego.tiny import build_tiny_ldm

    ldm = build_tiny_ldm(tmp_path / "ldm")  # conditioning for the tiny LLaVA: 64 wide
    feat = tmp_path / "feat"
    tag = f"egobench-{ALT}"
    entry = {"tag": tag, "vlm": {"id": ALT}, "sizes": {"hidden": 32, "image_tokens": 16}}
    entry["sha256"] = entry_sha(entry)
    claim(feat, entry)
    for s in two:
        append_record(feat, {"sample": s.id, "model_tag": tag, "provenance": entry["sha256"]})
        save_features(feat, s, tiny_features(s), tag)
    with pytest.raises(egobench.errors.ConfigError, match="takes 64-wide VLLM features .* makes 32-wide") as e:
        _lego(feat, vllm=ALT, ldm=str(ldm)).prepare(egobench.data.Split("t", two))
    assert "\n" not in str(e.value)


def test_vllm_values_are_checked(tmp_path):
    from egobench.errors import ConfigError
    from lego.vllm_choice import parse_vllm, self_tag

    assert parse_vllm("Qwen/Qwen2-VL-2B-Instruct").artifact == ALT  # the HF id of a registered artifact
    assert self_tag(parse_vllm("some-org/some-vlm")) == "egobench-hf-some-org--some-vlm"
    for bad in ("llava-llama-2-13b", "../no/such/vlm", "a b c", "x/.."):
        with pytest.raises(ConfigError):
            parse_vllm(bad)
    with pytest.raises(ConfigError, match="exclude each other"):
        LEGO(_fast(), weights=WeightStore(zoo="tiny"), vllm=ALT, vllm_finetuned=False)
    # refused before the runner makes a run directory
    with pytest.raises(ConfigError, match="LEGO's own LLaVA"):
        egobench.run("lego", "demo", protocol=_fast(), limit=1, out=tmp_path / "run", progress=False,
                     method_options={"vllm": "llava-llama-2-13b"})
    assert not (tmp_path / "run").exists()


def test_released_features_are_not_under_a_self_computed_tag():
    assert not any(t.startswith("egobench-") for t in RELEASED_TAGS.values())
    assert np.isfinite(tiny_features(egobench.load_split("demo", limit=1)[0]).image).all()


def test_ablate_table4_generates_the_vllm_backend_row(tmp_path, tiny_zoo):
    from egobench.ablate import ablate
    from lego.ablations import BACKEND_GROUP, VLLM_BACKENDS

    res = ablate("demo", protocol=_fast(), limit=1, runs_dir=tmp_path / "runs", tables=(4,), progress=False)
    labels = [label for label, _ in res.rows(4)]
    backend = [f"{BACKEND_GROUP}: {name}" for name in VLLM_BACKENDS]
    assert labels == ["w/o finetuning", "w/ finetuning", *backend]
    run = dict(res.rows(4))[backend[0]]
    assert run.generated == 1 and math.isfinite(run.metrics["psnr"]["value"])
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    assert manifest["method"]["options"] == {"vllm": ALT}
    rec = manifest["method"]["config"]["features"]
    assert rec["source"] == "self-computed" and rec["vlm"] == {f"egobench-{ALT}": ALT}
    # the other rows read LEGO's own (here: tiny stand-in) features, not the backend's
    other = json.loads((dict(res.rows(4))["w/ finetuning"].run_dir / "manifest.json").read_text())
    assert other["method"]["config"]["features"]["source"] == "tiny-stand-in"
    md = (res.out / "tables.md").read_text()
    assert f"| {backend[0]} | lego |" in md


def test_train_lego_on_another_vlms_features_then_lego_uses_that_ldm(tmp_path, tiny_zoo):
    feat, out = tmp_path / "feat", tmp_path / "ldm"
    r = CliRunner().invoke(main, ["vllm-features", "--dataset", "demo", "--out", str(feat), "--limit", "2",
                                  "--vllm", "Qwen/Qwen2-VL-2B-Instruct", "--quiet"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["train", "lego", "--dataset", "demo", "--out", str(out), "--features-root", str(feat),
                                  "--vllm", ALT, "--max-steps", "1", "--batch-size", "2", "--grad-accum", "1",
                                  "--checkpoint-every", "0", "--limit", "2", "--quiet"])
    assert r.exit_code == 0, r.output
    cond = json.loads((out / "conditioning" / "config.json").read_text())
    assert (cond["vllm_hidden"], cond["image_tokens"]) == (32, 16)  # sized from the features
    log = json.loads((out / "training.json").read_text())
    tag = f"egobench-{ALT}"
    assert log["features"]["source"] == "self-computed"
    assert log["features"]["provenance"] == {tag: read_provenance(feat)[tag]["sha256"]}
    res = egobench.run("lego", "demo", protocol=_fast(), limit=2, out=tmp_path / "run", progress=False,
                       method_options={"vllm": ALT, "features_root": str(feat), "ldm": str(out)})
    assert res.generated == 2 and _manifest_features(tmp_path / "run")["vlm"] == {tag: ALT}
