"""The official release reader, the demo split, fingerprints and verify."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from egobench.cli import main
from egobench.data import load_split
from egobench.data.verify import verify
from egobench.errors import DataError


def test_release_reader_follows_the_official_layout(release):
    split = load_split("ego4d", release)
    assert len(split) == 3
    data = json.loads((release / "ego4d_val.json").read_text())
    s = split[0]
    entry = data[s.clip_id][s.action_id]
    assert s.input_path == release / "EgoGen/ego4d.fho/val" / entry["image_0"]
    # the target is read from val_gt_for_metric, as the released metric code does
    assert s.target_path.parent == release / "EgoGen/ego4d.fho/val_gt_for_metric" / s.clip_id / s.action_id
    assert s.target_path.name == entry["image_1"].split("/")[-1]
    assert s.action == entry["action"] and s.description == entry["llava_forecast_finetune"]
    assert s.meta["height"] and s.meta["width"]
    assert all(c.isalnum() or c in "._-" for c in s.id)
    assert load_split("epickitchens", release)[0].dataset == "epickitchens"


def test_env_var_data_root(release, monkeypatch):
    monkeypatch.setenv("EGOBENCH_DATA", str(release))
    assert len(load_split("epickitchens")) == 3


def test_fingerprint_tracks_frame_content(release):
    a = load_split("ego4d", release).fingerprint
    assert a == load_split("ego4d", release).fingerprint
    frame = next((release / "EgoGen/ego4d.fho/val_gt_for_metric").rglob("*.jpg"))
    frame.write_bytes(frame.read_bytes() + b"\0")
    assert load_split("ego4d", release).fingerprint != a


def test_limit(release):
    assert len(load_split("ego4d", release, limit=2)) == 2
    with pytest.raises(Exception, match="at least 1"):
        load_split("ego4d", release, limit=0)


def test_path_escape_is_rejected(release):
    p = release / "ego4d_val.json"
    data = json.loads(p.read_text())
    clip = sorted(data)[0]
    act = sorted(data[clip])[0]
    data[clip][act]["image_0"] = "../../../etc/passwd"
    p.write_text(json.dumps(data))
    with pytest.raises(DataError, match="relative path inside the split"):
        load_split("ego4d", release)


def test_demo_split_shape():
    split = load_split("demo")
    domains = [s.meta["domain"] for s in split]
    assert domains.count("ego4d") >= 12 and domains.count("epickitchens") >= 12
    assert all(s.action and s.description for s in split)
    assert all(s.meta.get("synthetic") for s in split)
    assert len({s.id for s in split}) == len(split)


def test_verify_reports_counts_fingerprint_and_bad_frames(release):
    rep = verify("epickitchens", release)
    assert rep.ok and rep.n_samples == 3 and rep.n_files == 6
    assert rep.fingerprint == load_split("epickitchens", release).fingerprint
    frame = next((release / "EgoGen/epickitchen/val").rglob("*.jpg"))
    frame.write_bytes(b"\xff\xd8broken")
    rep = verify("epickitchens", release)
    assert not rep.ok and str(frame) in rep.bad[0]
    r = CliRunner().invoke(main, ["data", "verify", "--dataset", "epickitchens", "--data-root", str(release)])
    assert r.exit_code == 1 and "1 bad frame" in r.output


def test_verify_demo_cli():
    r = CliRunner().invoke(main, ["data", "verify", "--dataset", "demo"])
    assert r.exit_code == 0, r.output
    assert "fingerprint" in r.output and "all frames decode" in r.output


@pytest.mark.parametrize("bad", ["..", "a/b", "../../etc"])
def test_ids_that_are_not_plain_folder_names_are_refused(release, bad):
    p = release / "epickitchen_val.json"
    data = json.loads(p.read_text())
    clip = sorted(data)[0]
    data[bad] = data.pop(clip)
    p.write_text(json.dumps(data))
    with pytest.raises(DataError, match="not a plain folder name"):
        load_split("epickitchens", release)


def test_report_escapes_dataset_strings(release, tmp_path):
    import egobench
    from reports.html import render_runs

    p = release / "ego4d_val.json"
    data = json.loads(p.read_text())
    clip = sorted(data)[0]
    act = sorted(data[clip])[0]
    data[clip][act]["action"] = "<script>alert(1)</script> & 100% {x}_y \"q\""
    p.write_text(json.dumps(data))
    res = egobench.run("input-copy", "ego4d", protocol="egobench-v1", data_root=release, zoo="tiny",
                       out=tmp_path / "r", progress=False)
    page = render_runs([res.run_dir], tmp_path / "report", title="t <b>")
    html = page.read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; 100% {x}_y &#34;q&#34;" in html
    assert "t &lt;b&gt;" in html


@pytest.mark.parametrize("action,particle,expected", [
    ("#C C opens drawer 3", False, ("open", "drawer")),
    ("#C C picks up a knife from the table", False, ("pick", "knife")),
    ("#C C puts the cut onion in the bowl.", False, ("put", "onion")),
    ("#C C carries the boxes", False, ("carry", "box")),
    ("#C C washes dishes with a sponge", False, ("wash", "dish")),
    ("#C C cuts a piece of dough", False, ("cut", "dough")),
    ("#C C ties the shoelaces", False, ("tie", "shoelace")),
    ("#c c touches #unsure", False, ("touch", "")),
    ("#C C looks around", False, ("look", "")),
    ("put down plate", True, ("put-down", "plate")),
    ("take knives", True, ("take", "knife")),
    ("pass glass", True, ("pass", "glass")),
    ("", True, ("", "")),
])
def test_verb_and_noun_are_derived_from_the_label(action, particle, expected):
    from egobench.data.actions import derive_verb_noun

    assert derive_verb_noun(action, particle=particle) == expected


def test_samples_carry_verb_and_noun(release):
    ego = load_split("ego4d", release)
    assert [(s.verb, s.noun) for s in ego] == [("open", "drawer")] * 3
    assert all(s.meta["verb"] == "open" and s.meta["noun"] == "drawer" for s in ego)
    # keys written into the split JSON (prepare writes EPIC's own columns) win over derivation
    p = release / "epickitchen_val.json"
    data = json.loads(p.read_text())
    clip = sorted(data)[0]
    act = sorted(data[clip])[0]
    data[clip][act].update(verb="pull-out", noun="drawer:top")
    p.write_text(json.dumps(data))
    epic = {s.action_id: s for s in load_split("epickitchens", release)}
    assert (epic[act].verb, epic[act].noun) == ("pull-out", "drawer:top")
    assert {(s.verb, s.noun) for a, s in epic.items() if a != act} == {("open", "drawer")}
    data[clip][act]["verb"] = 3
    p.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"'verb' must be a string, got 3"):
        load_split("epickitchens", release)


def test_verb_noun_of_a_sample_built_by_hand():
    from pathlib import Path

    from egobench.data import Sample

    s = Sample("x", "ego4d", Path("a.jpg"), Path("b.jpg"), "#C C stirs the soup", meta={"domain": "ego4d"})
    assert (s.verb, s.noun) == ("stir", "soup")


def test_write_layout_skeleton_and_samples_csv(release, tmp_path):
    import csv

    from PIL import Image

    from egobench.data.layout import COLUMNS, write_layout
    from egobench.runner import scan_external

    p = release / "ego4d_val.json"
    data = json.loads(p.read_text())
    clip = sorted(data)[0]
    act = sorted(data[clip])[0]
    data[clip][act]["action"] = "=HYPERLINK(\"http://x\")"
    p.write_text(json.dumps(data))
    split = load_split("ego4d", release)
    out = tmp_path / "layout"
    res = write_layout(split, out)
    assert res.n_samples == len(split) == 3 and res.samples_csv == out / "samples.csv"
    with open(res.samples_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS and [r["sample_id"] for r in rows] == [s.id for s in split]
    for s, r in zip(split, rows, strict=True):
        assert (out / s.clip_id / s.action_id).is_dir()
        assert r["input_path"] == str(s.input_path.resolve())
        assert (int(r["target_width"]), int(r["target_height"])) == Image.open(s.target_path).size == (64, 48)
        assert (r["verb"], r["noun"], r["description"]) == (s.verb, s.noun, s.description)
        assert r["output_path"] == f"{s.clip_id}/{s.action_id}/{s.target_path.stem}.png"
    by_id = {r["sample_id"]: r for r in rows}
    assert by_id[f"{clip}__{act}"]["action"] == "'=HYPERLINK(\"http://x\")"  # never a live formula
    assert not list(out.rglob(".tmp-egobench-*"))
    # an outside script fills the skeleton; evaluate's scanner finds every image
    for r in rows:
        Image.open(r["input_path"]).save(out / r["output_path"])
    scan = scan_external(out, split)
    assert all(scan.located[s.id] == out / r["output_path"] for s, r in zip(split, rows, strict=True))
    # rerunning keeps the images and rewrites the CSV
    assert write_layout(split, out).n_samples == 3 and (out / rows[0]["output_path"]).is_file()
