"""Ego4D FHO pairs from a synthetic fho_main.json and mp4s written here with PyAV."""

from __future__ import annotations

import copy
import json
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from egobench.data.lego_release import load_release
from egobench.data.prepare import EGO4D_REASONS, prepare_ego4d
from egobench.errors import DataError

COLS, ROWS = 4, 2  # 8 bits per frame: the frame's own index


def bits_image(index: int, w: int, h: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    for b in range(COLS * ROWS):
        if index >> b & 1:
            r, c = divmod(b, COLS)
            img[r * h // ROWS : (r + 1) * h // ROWS, c * w // COLS : (c + 1) * w // COLS] = 255
    return img


def decode_index(path: Path) -> int:
    a = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    h, w = a.shape
    v = 0
    for b in range(COLS * ROWS):
        r, c = divmod(b, COLS)
        y0, y1 = r * h / ROWS, (r + 1) * h / ROWS
        x0, x1 = c * w / COLS, (c + 1) * w / COLS
        dy, dx = (y1 - y0) / 4, (x1 - x0) / 4
        if a[int(y0 + dy) : int(y1 - dy), int(x0 + dx) : int(x1 - dx)].mean() > 128:
            v |= 1 << b
    return v


def make_video(path: Path, n: int, w: int, h: int, *, first_pts: int = 0, fps: int = 30) -> None:
    """h264 with B-frames and a GOP of 12; frame i shows i and has pts first_pts + i."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.gop_size = 12
        s.codec_context.time_base = Fraction(1, fps)
        s.codec_context.options = {"crf": "12", "bf": "2"}
        for i in range(n):
            f = av.VideoFrame.from_ndarray(bits_image(i, w, h), format="rgb24")
            f.pts, f.time_base = first_pts + i, Fraction(1, fps)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def action(uid, pre, pnr, *, text="#C C opens drawer", valid=True, rejected=False, critical=True):
    cf = None
    if critical:
        cf = {
            "pre_45": None,
            "pre_30": None,
            "pre_15": pre,
            "pre_frame": pre,
            "contact_frame": None,
            "pnr_frame": pnr,
            "post_frame": None,
        }
    return {
        "uid": uid,
        "narration_text": text,
        "structured_verb": "open",
        "freeform_verb": "open",
        "is_valid_action": valid,
        "is_rejected": rejected,
        "is_partial": False,
        "start_sec": 0.0,
        "end_sec": 1.0,
        "start_frame": 0,
        "end_frame": 30,
        "critical_frames": cf,
        "clip_critical_frames": cf,
        "frames": [],
    }


VID_A, VID_B, VID_C = "vid-a", "vid-b", "vid-c"
N_A, N_B = 90, 60


def fho() -> dict:
    return {
        "version": "v2",
        "videos": [
            {
                "video_uid": VID_A,
                "video_metadata": {"fps": 30.0, "num_frames": N_A, "width": 64, "height": 48},
                "annotated_intervals": [
                    {
                        "clip_uid": "clip-a0",
                        "start_sec": 0.0,
                        "end_sec": 3.0,
                        "start_frame": 0,
                        "end_frame": N_A,
                        "narrated_actions": [
                            action("a1", 10, 25),
                            action("a2", 11, 26, rejected=True),
                            action("a3", 12, 27, valid=False),
                            action("a4", None, 28),
                            action("a5", 0, 0, critical=False),
                            action("a6", 13, 29, text="#O man X opens door"),
                            action("a7", -3, 8),
                            action("a8", 30, 30),
                            action("a9", 0, N_A - 1),  # first and last frame
                            action("a10", 50, N_A + 30),  # past the end of the video
                            action("a1", 14, 31),  # duplicate uid in the same clip
                        ],
                    },
                    {
                        "clip_uid": None,
                        "start_sec": 1.0,
                        "end_sec": 2.0,
                        "start_frame": 30,
                        "end_frame": 60,
                        "narrated_actions": [action("b1", 40, 41, text="#C C picks a cup")],
                    },
                ],
            },
            {
                # no width/height: taken from the decoded video (96x48)
                "video_uid": VID_B,
                "video_metadata": {"fps": 30, "num_frames": N_B},
                "annotated_intervals": [
                    {
                        "clip_uid": "clip-b0",
                        "start_sec": 0.0,
                        "end_sec": 2.0,
                        "start_frame": 0,
                        "end_frame": N_B,
                        "narrated_actions": [action("c1", 0, 7), action("c2", 20, N_B - 1)],
                    }
                ],
            },
            {
                "video_uid": VID_C,  # no mp4 for this one
                "video_metadata": {"fps": 30, "num_frames": 100, "width": 64, "height": 48},
                "annotated_intervals": [
                    {
                        "clip_uid": "clip-c0",
                        "start_sec": 0.0,
                        "end_sec": 2.0,
                        "start_frame": 0,
                        "end_frame": 60,
                        "narrated_actions": [action("d1", 5, 20)],
                    }
                ],
            },
        ],
    }


@pytest.fixture(scope="module")
def videos_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("full_scale")
    make_video(root / f"{VID_A}.mp4", N_A, 64, 48)
    make_video(root / f"{VID_B}.mp4", N_B, 96, 48, first_pts=5)  # starts 5 frames late
    with av.open(str(root / f"{VID_B}.mp4")) as c:
        assert c.streams.video[0].start_time > 0, "test video should not start at pts 0"
    return root


@pytest.fixture()
def ann(tmp_path) -> Path:
    p = tmp_path / "fho_main.json"
    p.write_text(json.dumps(fho(), indent=1))
    return p


# (clip_id, action_id, video_uid, input frame, target frame)
EXPECTED = [
    ("clip-a0", "a1", VID_A, 10, 25),
    ("clip-a0", "a9", VID_A, 0, N_A - 1),
    (VID_A, "b1", VID_A, 40, 41),
    ("clip-b0", "c1", VID_B, 0, 7),
    ("clip-b0", "c2", VID_B, 20, N_B - 1),
]


def test_prepare_ego4d_end_to_end(tmp_path, ann, videos_root):
    out = tmp_path / "out"
    rep = prepare_ego4d(ann, videos_root, out)
    assert rep.dataset == "ego4d"
    assert rep.n_rows == 15
    assert rep.filtered == {
        "duplicate_action_id": 1,
        "rejected": 1,
        "invalid_action": 1,
        "narration_not_CC": 1,
        "missing_critical_frame": 2,
        "too_close_to_video_start": 1,
        "input_not_before_target": 1,
        "video_missing": 1,
        "frame_past_video_end": 1,
    }
    assert set(rep.filtered) == set(EGO4D_REASONS)
    assert rep.n_written == 5 and rep.n_over_limit == 0
    assert rep.n_written + sum(rep.filtered.values()) == rep.n_rows

    base = out / "EgoGen" / "ego4d.fho"
    split = json.loads((out / "ego4d_val.json").read_text())
    meta = json.loads((out / "ego4d_metadata.json").read_text())
    assert {c: sorted(a) for c, a in split.items()} == {"clip-a0": ["a1", "a9"], VID_A: ["b1"], "clip-b0": ["c1", "c2"]}
    assert split["clip-a0"]["a1"] == {
        "image_0": "clip-a0/a1/vid-a_0000000010.jpg",
        "image_1": "clip-a0/a1/vid-a_0000000025.jpg",
        "action": "#C C opens drawer",
        "llava_forecast_finetune": "",
    }
    assert split[VID_A]["b1"]["action"] == "#C C picks a cup"
    assert meta["clip-a0"] == {
        "height": 48,
        "width": 64,
        "fps": 30.0,
        "video_id": VID_A,
        "clip_uid": "clip-a0",
        "num_frames": N_A,
    }
    assert meta[VID_A]["clip_uid"] is None
    assert (meta["clip-b0"]["height"], meta["clip-b0"]["width"]) == (48, 96)  # from the video

    for clip, aid, vid, inp, tgt in EXPECTED:
        folder = base / "val" / clip / aid
        names = sorted(os.listdir(folder))
        assert names == [f"{vid}_{inp:010d}.jpg", f"{vid}_{tgt:010d}.jpg"]
        assert [decode_index(folder / n) for n in names] == [inp, tgt]  # frame-exact
        e = split[clip][aid]
        assert (e["image_0"], e["image_1"]) == (f"{clip}/{aid}/{names[0]}", f"{clip}/{aid}/{names[1]}")
        gt = base / "val_gt_for_metric" / clip / aid
        assert os.listdir(gt) == [names[1]]
        assert (gt / names[1]).read_bytes() == (folder / names[1]).read_bytes()
        width = 341 if vid == VID_A else 512  # 64 * 256 / 48 = 341.3; 96 * 256 / 48
        for n in names:
            with Image.open(folder / n) as im:
                assert im.size == (width, 256) and im.format == "JPEG"
    assert not list(out.rglob(".tmp-egobench-*"))

    # the harness's reader of the official layout accepts the output
    split_obj = load_release(out, "ego4d")
    assert len(split_obj) == 5
    s = split_obj.by_id()["clip-b0__c2"]
    assert decode_index(s.input_path) == 20 and decode_index(s.target_path) == N_B - 1

    # a re-run reuses every frame and writes the same JSON
    before = (out / "ego4d_val.json").read_text()
    again = prepare_ego4d(ann, videos_root, out)
    assert again.n_written == 5 and again.n_reused == 5
    assert (out / "ego4d_val.json").read_text() == before


def test_limit(tmp_path, ann, videos_root):
    rep = prepare_ego4d(ann, videos_root, tmp_path / "out", limit=2)
    assert rep.n_written == 2
    # eligible in order: a1, a9, a10, b1 (vid-a), c1, c2 (vid-b); a10 was never tried
    assert rep.n_over_limit == 4 and rep.filtered["frame_past_video_end"] == 0
    assert rep.n_written + rep.n_over_limit + sum(rep.filtered.values()) == rep.n_rows
    split = json.loads(rep.split_json.read_text())
    assert split == {"clip-a0": split["clip-a0"]} and sorted(split["clip-a0"]) == ["a1", "a9"]
    assert sorted(json.loads(rep.metadata_json.read_text())) == ["clip-a0"]
    assert "left out by limit" in rep.summary()


def test_no_video_found_is_an_error(tmp_path, ann):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="none of the 3 annotated video"):
        prepare_ego4d(ann, tmp_path / "empty", tmp_path / "out")


def _write(tmp_path: Path, obj) -> Path:
    p = tmp_path / "fho_bad.json"
    p.write_text(json.dumps(obj))
    return p


def test_schema_errors_name_file_and_json_path(tmp_path, videos_root):
    with pytest.raises(DataError, match=r"fho_bad\.json: missing key 'videos'"):
        prepare_ego4d(_write(tmp_path, {"version": "v2"}), videos_root, tmp_path / "o")

    bad = copy.deepcopy(fho())
    del bad["videos"][1]["annotated_intervals"][0]["narrated_actions"][1]["uid"]
    with pytest.raises(
        DataError,
        match=(
            r"fho_bad\.json: videos\[1\]\.annotated_intervals\[0\]\.narrated_actions\[1\]: "
            r"missing key 'uid'"
        ),
    ):
        prepare_ego4d(_write(tmp_path, bad), videos_root, tmp_path / "o")

    bad = copy.deepcopy(fho())
    bad["videos"][0]["annotated_intervals"][0]["narrated_actions"][2]["critical_frames"]["pnr_frame"] = "25"
    with pytest.raises(
        DataError,
        match=(
            r"videos\[0\]\.annotated_intervals\[0\]\.narrated_actions\[2\]\.critical_frames"
            r"\.pnr_frame: expected integer, got string"
        ),
    ):
        prepare_ego4d(_write(tmp_path, bad), videos_root, tmp_path / "o")

    p = tmp_path / "broken.json"
    p.write_text('{"videos": [\n  {"video_uid": }\n]}')
    with pytest.raises(DataError, match=r"broken\.json:2:\d+: malformed JSON"):
        prepare_ego4d(p, videos_root, tmp_path / "o")


def test_hostile_fho_json_is_one_line(tmp_path, videos_root):
    """Duplicate keys, deep nesting and non-finite or negative numbers (issue 13)."""
    text = json.dumps(fho(), indent=1)
    # a key written twice: JSON keeps the last, silently changing the pair
    p = tmp_path / "dup.json"
    p.write_text(text.replace('"pnr_frame": 25', '"pnr_frame": 25, "pnr_frame": 26', 1))
    line = p.read_text().splitlines().index(next(x for x in p.read_text().splitlines() if '"pnr_frame": 26' in x)) + 1
    with pytest.raises(DataError, match=rf"^{p}:{line}: duplicate key 'pnr_frame'"):
        prepare_ego4d(p, videos_root, tmp_path / "o")
    p = tmp_path / "deep.json"
    p.write_text(text[:-1] + ', "x": ' + "[" * 20000 + "]" * 20000 + "}")
    with pytest.raises(DataError, match=rf"^{p}:\d+:\d+: JSON nested deeper than"):
        prepare_ego4d(p, videos_root, tmp_path / "o")
    for key, value, msg in (("fps", "NaN", "expected a finite number, got nan"),
                            ("fps", "Infinity", "expected a finite number, got inf"),
                            ("height", "-48", "must not be negative, got -48")):
        bad = copy.deepcopy(fho())
        bad["videos"][0]["video_metadata"][key] = 12345
        p = tmp_path / f"bad_{key}.json"
        p.write_text(json.dumps(bad).replace("12345", value))
        with pytest.raises(DataError, match=rf"^{p}: videos\[0\]\.video_metadata\.{key}: {msg}$"):
            prepare_ego4d(p, videos_root, tmp_path / "o")
    assert not (tmp_path / "o" / "ego4d_val.json").exists()
