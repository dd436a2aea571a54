"""Frame-exact random access in egobench.data.video (videos written here with PyAV)."""

from __future__ import annotations

import random
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from egobench.data.video import (
    FrameNotFoundError,
    VideoReader,
    extract_frame,
    extract_frames,
    frame_to_pts,
    round_half_up,
)
from egobench.errors import DataError

W, H = 64, 48
COLS, ROWS = 4, 2  # 8 bits: frame index 0..255


def bits_image(index: int, w: int = W, h: int = H) -> np.ndarray:
    """A frame whose 4x2 black/white blocks spell ``index`` in binary."""
    img = np.zeros((h, w, 3), np.uint8)
    bw, bh = w // COLS, h // ROWS
    for b in range(COLS * ROWS):
        if index >> b & 1:
            r, c = divmod(b, COLS)
            img[r * bh : (r + 1) * bh, c * bw : (c + 1) * bw] = 255
    return img


def decode_index(img) -> int:
    a = np.asarray(img.convert("L"), dtype=np.float64)
    h, w = a.shape
    bw, bh = w / COLS, h / ROWS
    v = 0
    for b in range(COLS * ROWS):
        r, c = divmod(b, COLS)
        y0, y1 = int(r * bh + bh / 4), int((r + 1) * bh - bh / 4)
        x0, x1 = int(c * bw + bw / 4), int((c + 1) * bw - bw / 4)
        if a[y0:y1, x0:x1].mean() > 128:
            v |= 1 << b
    return v


def make_video(path: Path, n: int, *, fps: int = 30, first_pts: int = 0, codec: str = "libx264", gop: int = 12) -> Path:
    """Write ``n`` frames; frame i shows i; its pts is ``first_pts + i`` (1/fps units)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.codec_context.gop_size = gop
        s.codec_context.time_base = Fraction(1, fps)
        if codec == "libx264":  # B-frames: decode order != presentation order
            s.codec_context.options = {"crf": "12", "bf": "2"}
        else:
            s.codec_context.options = {"qscale": "2"}
        for i in range(n):
            f = av.VideoFrame.from_ndarray(bits_image(i), format="rgb24")
            f.pts = first_pts + i
            f.time_base = Fraction(1, fps)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


N = 90


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    return {
        "h264": make_video(d / "h264.mp4", N),
        "mpeg4": make_video(d / "mpeg4.mp4", N, codec="mpeg4"),
        "h264_late": make_video(d / "late.mp4", N, first_pts=5),
    }


@pytest.mark.parametrize("name", ["h264", "mpeg4", "h264_late"])
def test_random_access_is_frame_exact(videos, name):
    rng = random.Random(0)
    idx = list(range(N))
    rng.shuffle(idx)
    idx += [0, N - 1, 45, 45, 1]
    got = [decode_index(im) for im in extract_frames(videos[name], idx)]
    assert got == idx


@pytest.mark.parametrize("gap", [1, 10_000])
def test_one_reader_many_reads(videos, gap):
    """Always-seek and always-decode-forward (when ahead) give the same exact frames."""
    rng = random.Random(gap)
    idx = [rng.randrange(N) for _ in range(60)] + [N - 1, 0]
    with VideoReader(videos["h264"], reseek_gap=gap) as r:
        assert [decode_index(r.read(i)) for i in idx] == idx


def test_frames_are_pil_rgb(videos):
    im = extract_frame(videos["h264"], 7)
    assert im.mode == "RGB" and im.size == (W, H)
    assert decode_index(im) == 7


def test_nonzero_start_time_is_honoured(videos):
    with VideoReader(videos["h264_late"]) as r:
        assert r.start_time > 0  # the container really starts late
        assert [decode_index(r.read(i)) for i in (0, 1, 2, 3, 50, N - 1)] == [0, 1, 2, 3, 50, N - 1]
        # ignoring start_time would hand back wrong frames
        r.start_time = 0
        assert decode_index(r.read(3)) != 3


def test_past_end_raises_and_reader_recovers(videos):
    with VideoReader(videos["h264"]) as r:
        with pytest.raises(FrameNotFoundError, match=f"frame {N}"):
            r.read(N)
        assert decode_index(r.read(N - 1)) == N - 1
        assert decode_index(r.read(2)) == 2
    with pytest.raises(FrameNotFoundError):
        extract_frames(videos["h264"], [3, N + 10])


def test_fps_override(videos):
    # the caller's fps defines the index -> time map: at fps 15, index i is frame 2i
    got = [decode_index(im) for im in extract_frames(videos["h264"], [0, 5, 44], fps=15)]
    assert got == [0, 10, 88]


def test_missing_or_bad_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        VideoReader(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(DataError, match="bad.mp4"):
        VideoReader(bad)


def test_frame_to_pts_numbers():
    # 30 fps, mp4 time base 1/15360 (512 ticks per frame), stream starting at 2550
    assert frame_to_pts(0, fps=30, time_base=Fraction(1, 15360), start_time=2550) == 2550
    assert frame_to_pts(3, fps=30, time_base=Fraction(1, 15360), start_time=2550) == 2550 + 1536
    assert frame_to_pts(3, fps=30, time_base=Fraction(1, 15360), start_time=None) == 1536
    # NTSC: 30000/1001 fps in 1/30000 -> 1001 ticks per frame, also from the float rate
    assert frame_to_pts(10, fps=Fraction(30000, 1001), time_base=Fraction(1, 30000)) == 10010
    assert frame_to_pts(10, fps=29.97002997002997, time_base=Fraction(1, 30000)) == 10010
    # millisecond time base: 33.33 -> 33, 66.67 -> 67
    assert frame_to_pts(1, fps=30, time_base=Fraction(1, 1000)) == 33
    assert frame_to_pts(2, fps=30, time_base=Fraction(1, 1000)) == 67
    with pytest.raises(ValueError):
        frame_to_pts(-1, fps=30, time_base=Fraction(1, 1000))


def test_round_half_up_numbers():
    assert [round_half_up(x) for x in (12.5, 13.5, 0.5, 2.4999, -0.5, 15)] == [13, 14, 1, 2, 0, 15]


@given(st.integers(min_value=-(10**6), max_value=10**6), st.integers(min_value=1, max_value=1000))
def test_round_half_up_matches_decimal(num, den):
    want = int((Decimal(num) / Decimal(den)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    # Decimal's ROUND_HALF_UP rounds halves away from zero; ours rounds them up
    if (2 * num) % (2 * den) == den and num < 0:
        want += 1
    assert round_half_up(Fraction(num, den)) == want
