"""EPIC-KITCHENS-100 pairs: parsing a real CSV excerpt, pair frames, end-to-end prepare."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from egobench.data.lego_release import load_release
from egobench.data.prepare import (
    PrepareReport,
    epic_fps,
    epic_pair_frames,
    prepare_epickitchens,
    read_epic_csv,
)
from egobench.errors import DataError

FIXTURE = Path(__file__).parent / "fixtures" / "epic100_validation_excerpt.csv"

# Two synthetic rows for an extension video (PXX_1YY, 50 fps): the real
# validation CSV has none. Not EPIC data; made up for this test.
SYNTHETIC_ROWS = (
    "P01_101_0,P01,P01_101,00:00:10.000,00:00:10.00,00:00:12.12,500,606,open door,open,3,door,8,['door'],[8]\n"
    "P01_101_1,P01,P01_101,00:00:00.100,00:00:00.26,00:00:01.00,13,50,take cup,take,0,cup,13,['cup'],[13]\n"
)

# (narration_id, input frame, target frame) worked out by hand:
#   60 fps: input = start - 15; 50 fps: input = start - round_half_up(12.5) = start - 13
#   target = start + round_half_up(0.6 * (stop - start))
HAND = {
    # P01_11_0: start 1, stop 113: input 1 - 15 = -14 (< 1: too close to start)
    "P01_11_0": (-14, 1 + 67),  # 0.6 * 112 = 67.2 -> 67
    "P01_11_1": (93 - 15, 93 + 32),  # 0.6 * 54 = 32.4 -> 32
    "P01_11_10": (2949 - 15, 2949 + 65),  # 0.6 * 108 = 64.8 -> 65
    "P01_11_104": (20474 - 15, 20474 + 251),  # 0.6 * 419 = 251.4 -> 251
    "P26_30_1": (190 - 15, 190 + 170),  # 0.6 * 284 = 170.4 -> 170
    "P22_01_100": (16095 - 15, 16095 + 36),  # 0.6 * 60 = 36
    "P01_101_0": (500 - 13, 500 + 64),  # 50 fps; 0.6 * 106 = 63.6 -> 64
    "P01_101_1": (13 - 13, 13 + 22),  # 50 fps; input 0 (< 1: too close); 0.6 * 37 = 22.2
}

# --- frames that spell their own number -------------------------------------
COLS, ROWS = 4, 4  # 16 bits


def number_image(n: int, w: int, h: int) -> Image.Image:
    a = np.zeros((h, w, 3), np.uint8)
    for b in range(COLS * ROWS):
        if n >> b & 1:
            r, c = divmod(b, COLS)
            a[r * h // ROWS : (r + 1) * h // ROWS, c * w // COLS : (c + 1) * w // COLS] = 255
    a[..., 1] = a[..., 0] // 2 + 40  # not gray, so an RGB JPEG
    return Image.fromarray(a)


def read_number(path: Path) -> int:
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)[..., 0]
    h, w = a.shape
    n = 0
    for b in range(COLS * ROWS):
        r, c = divmod(b, COLS)
        y0, y1 = r * h / ROWS, (r + 1) * h / ROWS
        x0, x1 = c * w / COLS, (c + 1) * w / COLS
        dy, dx = (y1 - y0) / 4, (x1 - x0) / 4
        if a[int(y0 + dy) : int(y1 - dy), int(x0 + dx) : int(x1 - dx)].mean() > 128:
            n |= 1 << b
    return n


@pytest.fixture()
def csv_path(tmp_path) -> Path:
    p = tmp_path / "EPIC_100_validation_plus.csv"
    p.write_text(FIXTURE.read_text(encoding="utf-8") + SYNTHETIC_ROWS, encoding="utf-8")
    return p


# Frame trees: P01_11 in the official layout at the real 456x256; P26_30 in the
# flat layout at 912x512 (to be downscaled); P01_101 flat at 640x360.
TREE = {
    "P01_11": ("P01/rgb_frames/P01_11", (456, 256)),
    "P26_30": ("P26_30", (912, 512)),
    "P01_101": ("P01_101", (640, 360)),
}


@pytest.fixture()
def frames_root(tmp_path, csv_path) -> Path:
    root = tmp_path / "frames"
    for row in read_epic_csv(csv_path):
        if row.video_id not in TREE:
            continue
        sub, (w, h) = TREE[row.video_id]
        inp, tgt = epic_pair_frames(row.video_id, row.start_frame, row.stop_frame)
        for f in (inp, tgt):
            if f < 1 or (row.narration_id == "P01_11_108" and f == tgt):
                continue  # P01_11_108 lacks its target frame
            p = root / sub / f"frame_{f:010d}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            number_image(f, w, h).save(p, quality=95)
    return root


# --- parsing and pair numbers -------------------------------------------------


def test_fixture_is_a_real_excerpt():
    rows = read_epic_csv(FIXTURE)
    assert len(rows) == 30
    first = rows[0]
    assert (
        first.narration_id,
        first.video_id,
        first.start_frame,
        first.stop_frame,
        first.narration,
        first.line_no,
    ) == ("P01_11_0", "P01_11", 1, 113, "take plate", 2)
    # quoted list columns parse (P03_26_0 has "['plate', 'side']")
    assert any(r.fields["all_nouns"] == "['plate', 'side']" for r in rows)


def test_fps_by_video_id():
    assert epic_fps("P01_11") == 60 and epic_fps("P26_30") == 60
    assert epic_fps("P01_101") == 50 and epic_fps("P37_103") == 50
    with pytest.raises(ValueError):
        epic_fps("P01_1")


def test_pair_frames_by_hand(csv_path):
    rows = {r.narration_id: r for r in read_epic_csv(csv_path)}
    for nid, want in HAND.items():
        r = rows[nid]
        assert epic_pair_frames(r.video_id, r.start_frame, r.stop_frame) == want, nid


# --- end to end ----------------------------------------------------------------


def test_prepare_end_to_end(tmp_path, csv_path, frames_root):
    out = tmp_path / "out"
    rep = prepare_epickitchens(csv_path, frames_root, out)
    assert isinstance(rep, PrepareReport)
    assert rep.dataset == "epickitchens"
    assert rep.n_rows == 32
    # too close: P01_11_0, P03_26_0, P18_04_0, P17_02_0 (all start at frame 1), P01_101_1
    # frame missing: 12 rows of videos without frames + P01_11_108 (target absent)
    assert rep.filtered == {
        "duplicate_action_id": 0,
        "too_close_to_video_start": 5,
        "input_not_before_target": 0,
        "frame_missing": 13,
    }
    assert rep.n_written == 14 and rep.n_over_limit == 0 and rep.n_reused == 0
    assert rep.n_written + sum(rep.filtered.values()) == rep.n_rows
    assert "14 pairs" in rep.summary() and "frame_missing" in rep.summary()

    base = out / "EgoGen" / "epickitchen"
    split = json.loads((out / "epickitchen_val.json").read_text())
    meta = json.loads((out / "epickitchen_metadata.json").read_text())
    assert sorted(split) == ["P01_101", "P01_11", "P26_30"]
    assert sum(len(v) for v in split.values()) == 14
    assert "P01_11_0" not in split["P01_11"] and "P01_11_108" not in split["P01_11"]
    assert split["P01_11"]["P01_11_1"] == {
        "image_0": "P01_11/P01_11_1/P01_11_0000000078.jpg",
        "image_1": "P01_11/P01_11_1/P01_11_0000000125.jpg",
        "action": "put down plate",
        "llava_forecast_finetune": "",
        "verb": "put-down",
        "noun": "plate",
    }
    assert split["P01_101"]["P01_101_0"]["image_0"] == "P01_101/P01_101_0/P01_101_0000000487.jpg"
    assert split["P01_101"]["P01_101_0"]["image_1"] == "P01_101/P01_101_0/P01_101_0000000564.jpg"
    assert meta == {
        "P01_11": {"height": 256, "width": 456, "fps": 60, "video_id": "P01_11", "participant_id": "P01"},
        "P26_30": {"height": 512, "width": 912, "fps": 60, "video_id": "P26_30", "participant_id": "P26"},
        "P01_101": {"height": 360, "width": 640, "fps": 50, "video_id": "P01_101", "participant_id": "P01"},
    }

    # hand-computed frames, by decoding the numbers drawn in them
    for nid in ("P01_11_1", "P01_11_10", "P01_11_104", "P26_30_1", "P01_101_0"):
        vid = nid.rsplit("_", 1)[0]
        inp, tgt = HAND[nid]
        files = sorted((base / "val" / vid / nid).iterdir())
        assert [f.name for f in files] == [f"{vid}_{inp:010d}.jpg", f"{vid}_{tgt:010d}.jpg"]
        assert [read_number(f) for f in files] == [inp, tgt]
        gt = list((base / "val_gt_for_metric" / vid / nid).iterdir())
        assert [g.name for g in gt] == [files[1].name]
        assert gt[0].read_bytes() == files[1].read_bytes()

    # every pair in the split: files exist, input first in sorted order, right frames, sizes
    widths = {"P01_11": 456, "P26_30": 456, "P01_101": 455}  # 640 * 256 / 360 = 455.1
    for clip, actions in split.items():
        for e in actions.values():
            i0, i1 = base / "val" / e["image_0"], base / "val" / e["image_1"]
            assert sorted(os.listdir(i0.parent)) == [i0.name, i1.name]
            assert read_number(i0) == int(i0.stem.rsplit("_", 1)[1])
            assert read_number(i1) == int(i1.stem.rsplit("_", 1)[1])
            for f in (i0, i1):
                with Image.open(f) as im:
                    assert im.size == (widths[clip], 256) and im.format == "JPEG"
            assert (base / "val_gt_for_metric" / e["image_1"]).is_file()
    # frames already 456x256 are copied unchanged
    src = frames_root / "P01/rgb_frames/P01_11/frame_0000000078.jpg"
    assert (base / "val/P01_11/P01_11_1/P01_11_0000000078.jpg").read_bytes() == src.read_bytes()
    assert not list(out.rglob(".tmp-egobench-*"))

    # the harness's reader of the official layout accepts the output
    split_obj = load_release(out, "epickitchens")
    assert len(split_obj) == 14
    s = split_obj.by_id()["P01_11__P01_11_1"]
    assert read_number(s.input_path) == 78 and read_number(s.target_path) == 125
    assert s.action == "put down plate" and s.meta["height"] == 256
    # EPIC's own verb and noun columns travel through the split JSON to the sample
    assert (s.verb, s.noun) == ("put-down", "plate")


def test_rerun_is_resumable_and_limit(tmp_path, csv_path, frames_root):
    out = tmp_path / "out"
    first = prepare_epickitchens(csv_path, frames_root, out, limit=3)
    assert first.n_written == 3 and first.n_over_limit == 11
    assert first.n_written + first.n_over_limit + sum(first.filtered.values()) == 32
    assert sum(len(v) for v in json.loads(first.split_json.read_text()).values()) == 3
    one = out / "EgoGen/epickitchen/val/P01_11/P01_11_1/P01_11_0000000125.jpg"
    stamp = one.stat().st_mtime_ns
    second = prepare_epickitchens(csv_path, frames_root, out)
    assert second.n_written == 14 and second.n_reused == 3
    assert one.stat().st_mtime_ns == stamp  # not rewritten


def test_killed_run_leaves_no_split_json(tmp_path, csv_path, frames_root, monkeypatch):
    import egobench.data.prepare as prep

    calls = []
    real_write = prep._write

    def dying_write(path, data):
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
        real_write(path, data)

    monkeypatch.setattr(prep, "_write", dying_write)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        prepare_epickitchens(csv_path, frames_root, out)
    assert not (out / "epickitchen_val.json").exists()
    assert not (out / "epickitchen_metadata.json").exists()
    monkeypatch.setattr(prep, "_write", real_write)
    rep = prepare_epickitchens(csv_path, frames_root, out)
    assert rep.n_written == 14 and rep.n_reused == 1


# --- errors ----------------------------------------------------------------------


def _edit_line(src: Path, dst: Path, line_no: int, fn) -> Path:
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[line_no - 1] = fn(lines[line_no - 1])
    dst.write_text("".join(lines), encoding="utf-8")
    return dst


def test_non_integer_frame_names_the_line(tmp_path):
    bad = _edit_line(FIXTURE, tmp_path / "bad.csv", 5, lambda s: s.replace(",19636,", ",19x36,"))
    with pytest.raises(DataError, match=r"bad\.csv:5: start_frame .*'19x36'"):
        read_epic_csv(bad)


def test_wrong_field_count_names_the_line(tmp_path):
    bad = _edit_line(FIXTURE, tmp_path / "bad.csv", 9, lambda s: s.replace(",wipe,", ",", 1))
    with pytest.raises(DataError, match=r"bad\.csv:9: expected 15 fields, got 14"):
        prepare_epickitchens(bad, tmp_path, tmp_path / "out")


def test_missing_column(tmp_path):
    bad = _edit_line(FIXTURE, tmp_path / "bad.csv", 1, lambda s: s.replace("stop_frame", "end_frame"))
    with pytest.raises(DataError, match=r"bad\.csv: missing column\(s\) stop_frame"):
        read_epic_csv(bad)


def test_no_frames_at_all_is_an_error(tmp_path, csv_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no EPIC-KITCHENS frame folder"):
        prepare_epickitchens(csv_path, tmp_path / "empty", tmp_path / "out")


# --- hostile frames and kill -9 (issue 13) -----------------------------------------


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


_KILLER = """
import os, signal, sys
from pathlib import Path
import egobench.data.prepare as prep
from egobench.io import atomic_open
at, mode = int(sys.argv[4]), sys.argv[5]
calls = [0]
real = prep._write
def write(path, data):
    calls[0] += 1
    if calls[0] == at:
        if mode == "mid":  # die half way through writing the file
            with atomic_open(path, "wb") as f:
                f.write(data[: len(data) // 2])
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
    real(path, data)
prep._write = write
prep.prepare_epickitchens(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
"""


@pytest.mark.parametrize("at,mode", [(1, "mid"), (10, "before"), (23, "mid"), (42, "mid")])
def test_kill_9_during_prepare_resumes_to_identical_output(tmp_path, csv_path, frames_root, at, mode):
    import subprocess
    import sys

    clean = tmp_path / "clean"
    prepare_epickitchens(csv_path, frames_root, clean)
    assert sum(1 for p in clean.rglob("*.jpg")) == 42  # 14 pairs: input, target, target for metrics

    out = tmp_path / "killed"
    r = subprocess.run([sys.executable, "-c", _KILLER, str(csv_path), str(frames_root), str(out), str(at), mode],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == -9, r.stderr
    assert not (out / "epickitchen_val.json").exists() and not (out / "epickitchen_metadata.json").exists()
    if mode == "mid":
        assert list(out.rglob(".tmp-egobench-*"))  # the half-written file never took the final name
    rep = prepare_epickitchens(csv_path, frames_root, out)
    assert rep.n_written == 14 and (rep.n_reused == 0 if at == 1 else 0 < rep.n_reused < 14)
    assert _tree(out) == _tree(clean)  # same names, same bytes, no temp file left


def test_decompression_bomb_source_frame_is_one_line(tmp_path, csv_path, frames_root):
    from tests.conftest import bomb_png

    frame = frames_root / "P01/rgb_frames/P01_11/frame_0000000078.jpg"
    frame.write_bytes(bomb_png())
    with pytest.raises(DataError) as e:
        prepare_epickitchens(csv_path, frames_root, tmp_path / "out")
    msg = str(e.value)
    assert msg.startswith(f"{frame}: ") and "decompression bomb" in msg.lower() and "\n" not in msg


def test_truncated_source_frame_of_output_size_is_not_copied(tmp_path, csv_path, frames_root):
    frame = frames_root / "P01/rgb_frames/P01_11/frame_0000000078.jpg"
    data = frame.read_bytes()
    frame.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"^{frame}: cannot decode image"):
        prepare_epickitchens(csv_path, frames_root, tmp_path / "out")
    assert not (tmp_path / "out" / "epickitchen_val.json").exists()


def test_gray_source_jpeg_of_output_size_is_reencoded_as_rgb(tmp_path, csv_path, frames_root):
    frame = frames_root / "P01/rgb_frames/P01_11/frame_0000000078.jpg"
    Image.open(frame).convert("L").save(frame, quality=95)
    out = tmp_path / "out"
    prepare_epickitchens(csv_path, frames_root, out)
    written = out / "EgoGen/epickitchen/val/P01_11/P01_11_1/P01_11_0000000078.jpg"
    with Image.open(written) as im:
        assert im.mode == "RGB" and im.size == (456, 256)
    assert written.read_bytes() != frame.read_bytes()
