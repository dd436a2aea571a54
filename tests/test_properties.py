"""Property-based tests: parsers either parse (checked against the input) or raise a one-line DataError."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from egobench.data.lego_release import load_release
from egobench.data.prepare import epic_pair_frames, read_epic_csv
from egobench.errors import DataError, UserError

FIXTURE = Path(__file__).parent / "fixtures" / "epic100_validation_excerpt.csv"
def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 30, 30)).save(buf, format="JPEG")
    return buf.getvalue()


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_subnormal=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


#: a real (tiny) JPEG written at every frame path a document references
FRAME = _jpeg()

#: folder-name text: any printable character but the path separators (the reader refuses control
#: characters, "/" and "\\" in ids; "." and ".." are filtered out here)
name_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"), min_size=1, max_size=8
).filter(lambda t: t not in (".", ".."))

entry_fields = st.fixed_dictionaries(
    {"input": name_text, "target": name_text, "action": st.text(min_size=1, max_size=20)},
    optional={"llava_forecast_finetune": st.text(max_size=30) | st.none()},
)

#: [(clip text, [(action text, fields)])]: the ids get an ASCII index, so most draws map to distinct sample ids
well_shaped = st.lists(st.tuples(name_text, st.lists(st.tuples(name_text, entry_fields), min_size=1, max_size=2)),
                       min_size=1, max_size=3)


def _document(shape) -> dict:
    """The split JSON of a well-shaped draw, with release-style frame paths (clip/action/file)."""
    doc: dict = {}
    for i, (clip_text, actions) in enumerate(shape):
        clip = f"{clip_text}~c{i}"
        for j, (action_text, f) in enumerate(actions):
            action = f"{action_text}~a{j}"
            entry = {"image_0": f"{clip}/{action}/{f['input']}.jpg", "image_1": f"{clip}/{action}/{f['target']}.jpg",
                     "action": f["action"]}
            if "llava_forecast_finetune" in f:
                entry["llava_forecast_finetune"] = f["llava_forecast_finetune"]
            doc.setdefault(clip, {})[action] = entry
    return doc


def _write_release(root: Path, folder: str, prefix: str, doc: dict) -> None:
    """The split file and every frame its well-shaped entries reference (inputs and targets in val/,
    targets again in val_gt_for_metric/ as the release has them)."""
    val = root / "EgoGen" / folder / "val"
    gt = root / "EgoGen" / folder / "val_gt_for_metric"
    val.mkdir(parents=True)
    gt.mkdir()
    for clip, actions in doc.items():
        if not isinstance(actions, dict):
            continue
        for action, e in actions.items():
            if not (isinstance(e, dict) and isinstance(e.get("image_0"), str) and isinstance(e.get("image_1"), str)):
                continue
            for p in (val / e["image_0"], val / e["image_1"], gt / clip / action / e["image_1"].rsplit("/", 1)[-1]):
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(FRAME)
    (root / f"{prefix}_val.json").write_text(json.dumps(doc))


def _check_loaded(split, doc: dict, root: Path, folder: str) -> None:
    """What a successful load must give: one sample per entry, with its frames and its text."""
    entries = {(c, a): e for c, actions in doc.items() for a, e in actions.items()}
    assert len(split) == len(entries) and len({s.id for s in split}) == len(split)
    for s in split:
        e = entries[(s.meta["clip_id"], s.meta["action_id"])]
        assert s.input_path == root / "EgoGen" / folder / "val" / e["image_0"]
        assert s.target_path == root / "EgoGen" / folder / "val_gt_for_metric" / s.meta["clip_id"] / (
            s.meta["action_id"]) / e["image_1"].rsplit("/", 1)[-1]
        assert s.input_path.read_bytes() == FRAME and s.target_path.read_bytes() == FRAME
        assert s.action == e["action"] and s.description == (e.get("llava_forecast_finetune") or "")
        assert s.meta["image_1"] == e["image_1"]


@SETTINGS
@given(shape=well_shaped, extra=st.dictionaries(st.text(max_size=10), json_values, max_size=2))
def test_release_reader_on_arbitrary_json(tmp_path_factory, shape, extra):
    """A release with real frames whose split JSON gets arbitrary clips added (often none): it loads, with a
    sample per entry, or fails with a one-line user error."""
    root = tmp_path_factory.mktemp("rel")
    doc = {**_document(shape), **extra}
    _write_release(root, "epickitchen", "epickitchen", doc)
    try:
        split = load_release(root, "epickitchens")
    except UserError as e:
        assert "\n" not in str(e) and extra, str(e)  # only the arbitrary part can break it
        event("refused")
        return
    event("loaded")
    _check_loaded(split, doc, root, "epickitchen")


@SETTINGS
@given(shape=well_shaped)
@example(shape=[("clip é 🎬", [("act 'x'", {"input": "in put", "target": "tärget", "action": "#C C opens"})])])
def test_release_reader_on_well_shaped_entries_with_odd_strings(tmp_path_factory, shape):
    """Odd but valid ids, file names and texts, every frame present: the split loads."""
    root = tmp_path_factory.mktemp("rel")
    doc = _document(shape)
    _write_release(root, "ego4d.fho", "ego4d", doc)
    try:
        split = load_release(root, "ego4d")
    except DataError as e:  # two (clip, action) pairs whose ids differ only in characters safe_id replaces
        assert "map to the same sample id" in str(e) and "\n" not in str(e), str(e)
        event("sample ids collide")
        return
    event("loaded")
    _check_loaded(split, doc, root, "ego4d.fho")


def _rows():
    with open(FIXTURE, newline="") as f:
        return list(csv.reader(f))


@SETTINGS
@given(row=st.integers(1, 30), col=st.integers(0, 14), value=st.text(max_size=12))
def test_epic_csv_with_one_mutated_cell(tmp_path_factory, row, col, value):
    rows = _rows()
    rows[row][col] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    p = tmp_path_factory.mktemp("csv") / "x.csv"
    p.write_text(buf.getvalue())
    try:
        parsed = read_epic_csv(p)
    except DataError as e:
        msg = str(e)
        assert "\n" not in msg and str(p) in msg
        return
    assert len(parsed) == 30


@SETTINGS
@given(start=st.integers(1, 10**6), dur=st.integers(0, 10**5), ext=st.booleans())
def test_epic_pair_rule(start, dur, ext):
    video = "P01_101" if ext else "P01_01"
    fps = 50 if ext else 60
    inp, tgt = epic_pair_frames(video, start, start + dur)
    assert start - inp == int(0.25 * fps + 0.5)
    assert tgt - start == int(0.6 * dur + 0.5)
    assert inp < tgt or dur == 0
