"""Frame-exact frame extraction from video files with PyAV.

A frame index ``i`` (0-based, counted from the first frame of the stream) maps
to a presentation timestamp in the stream's time base::

    pts(i) = start_time + round_half_up(i / (fps * time_base))

where ``start_time`` is ``stream.start_time`` (0 when unknown) and ``fps`` is
the frame rate given by the caller (for Ego4D: ``video_metadata.fps``) or else
the stream's ``average_rate``. Some videos do not start at pts 0 (Ego4D has
videos that start one frame late), which is why ``start_time`` is added.

To get frame ``i`` the reader seeks to the keyframe at or before ``pts(i)``
(``container.seek(pts, backward=True, any_frame=False, stream=stream)``) and
decodes forward; the frame returned is the first decoded frame whose
``pts >= pts(i)``. If the stream ends first, :class:`FrameNotFoundError` is
raised. If a seek lands after the target (a demuxer that did not go back far
enough), the reader seeks further back and, as a last resort, to the start.

Several indices from one video are read in one open: they are visited in
ascending order and, when the next target is close ahead of the current
decoding position (less than ``reseek_gap`` frames), decoding simply continues
instead of seeking again.

Only PyAV is used (no torchvision.io, decord or OpenCV). Frames come back as
PIL RGB images.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image

from ..errors import DataError

__all__ = [
    "FrameNotFoundError",
    "VideoReader",
    "extract_frame",
    "extract_frames",
    "frame_to_pts",
    "round_half_up",
]


class FrameNotFoundError(DataError):
    """A requested frame index lies beyond the end of the video stream."""


def round_half_up(x: Fraction | int | float) -> int:
    """Round to the nearest integer, halves away from -inf (``2.5 -> 3``).

    Floats are converted exactly (``Fraction(x)``), so no binary-float surprise
    beyond the float's own value.
    """
    return math.floor(Fraction(x) + Fraction(1, 2))


def _as_fraction(x: Fraction | int | float | str) -> Fraction:
    if isinstance(x, float):
        # 29.97002997... -> 30000/1001; 30.0 -> 30
        return Fraction(x).limit_denominator(1_000_000)
    return Fraction(x)


def frame_to_pts(
    frame_index: int,
    *,
    fps: Fraction | int | float,
    time_base: Fraction,
    start_time: int | None = 0,
) -> int:
    """Presentation timestamp (in ``time_base`` units) of frame ``frame_index``.

    ``pts = start_time + round_half_up(frame_index / (fps * time_base))``; a
    ``start_time`` of ``None`` counts as 0.
    """
    if frame_index < 0:
        raise ValueError(f"frame index must be >= 0, got {frame_index}")
    fps_f = _as_fraction(fps)
    if fps_f <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    offset = round_half_up(Fraction(frame_index) / (fps_f * Fraction(time_base)))
    return (start_time or 0) + offset


class VideoReader:
    """An open video file for frame-exact random access by frame index.

    Use as a context manager::

        with VideoReader(path, fps=30) as r:
            a, b = r.get_frames([45, 60])

    ``fps`` overrides the stream's ``average_rate`` for the index -> pts map.
    ``reseek_gap``: when the next wanted frame is fewer than this many frames
    ahead of the current decoding position, keep decoding rather than seek
    (default: two seconds of frames).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: Fraction | int | float | None = None,
        reseek_gap: int | None = None,
        threads: bool = True,
    ) -> None:
        self.path = Path(path)
        try:
            self._container = av.open(str(self.path))
        except FileNotFoundError:
            raise DataError(f"{self.path}: video file not found") from None
        except (av.error.FFmpegError, OSError) as e:
            raise DataError(f"{self.path}: cannot open video ({e})") from None
        try:
            if not self._container.streams.video:
                raise DataError(f"{self.path}: no video stream")
            self._stream = self._container.streams.video[0]
            if threads:
                self._stream.thread_type = "AUTO"
            if fps is None:
                fps = self._stream.average_rate or self._stream.guessed_rate
                if not fps:
                    raise DataError(f"{self.path}: frame rate unknown; pass fps explicitly")
            self.fps = _as_fraction(fps)
            if self.fps <= 0:
                raise DataError(f"{self.path}: frame rate must be positive, got {fps}")
            if self._stream.time_base is None:
                raise DataError(f"{self.path}: video stream has no time base")
            self.time_base = Fraction(self._stream.time_base)
            self.start_time = self._stream.start_time or 0
            # one frame in pts units (at least 1)
            self._frame_pts = max(1, round_half_up(1 / (self.fps * self.time_base)))
            if reseek_gap is None:
                reseek_gap = max(1, round_half_up(2 * self.fps))
            self.reseek_gap = reseek_gap
        except BaseException:
            self._container.close()
            raise
        self._decoder: Iterator[Any] | None = None
        self._pending: Any = None
        self._prev_target: int | None = None

    # -- context manager -------------------------------------------------
    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._reset()
        self._container.close()

    # -- properties ------------------------------------------------------
    @property
    def width(self) -> int:
        return int(self._stream.codec_context.width)

    @property
    def height(self) -> int:
        return int(self._stream.codec_context.height)

    def pts_of(self, frame_index: int) -> int:
        return frame_to_pts(frame_index, fps=self.fps, time_base=self.time_base, start_time=self.start_time)

    # -- decoding --------------------------------------------------------
    # State: ``_decoder`` yields decoded frames in presentation order;
    # ``_pending`` is the frame returned for the previous target ``_prev_target``
    # (the first frame with pts >= it). Every frame decoded before ``_pending``
    # had pts < ``_prev_target``, so for a later target >= ``_prev_target`` the
    # answer is ``_pending`` or a frame after it: continuing is always exact,
    # and the gap only decides whether seeking would be faster.

    def _reset(self) -> None:
        self._decoder = None
        self._pending = None
        self._prev_target = None

    def _seek(self, pts: int) -> None:
        self._container.seek(pts, backward=True, any_frame=False, stream=self._stream)
        self._decoder = self._frames()
        self._pending = None
        self._prev_target = None

    def _frames(self) -> Iterator[Any]:
        for frame in self._container.decode(self._stream):
            if frame.pts is None:
                raise DataError(f"{self.path}: decoded a frame without a timestamp")
            yield frame

    def _past_end(self, frame_index: int, target: int) -> FrameNotFoundError:
        self._reset()
        return FrameNotFoundError(f"{self.path}: frame {frame_index} (pts {target}) is past the end of the video")

    def _decode_to(self, target: int, frame_index: int, first: Any = None) -> Any:
        """First frame with ``pts >= target``, from ``first``/``_pending`` onwards."""
        frame = first if first is not None else self._pending
        assert self._decoder is not None
        while frame is None or frame.pts < target:
            frame = next(self._decoder, None)
            if frame is None:
                raise self._past_end(frame_index, target)
        self._pending = frame
        self._prev_target = target
        return frame

    def _get_one(self, frame_index: int) -> Any:
        target = self.pts_of(frame_index)
        if (
            self._decoder is not None
            and self._pending is not None
            and self._prev_target is not None
            and target >= self._prev_target
            and target - self._pending.pts < self.reseek_gap * self._frame_pts
        ):
            return self._decode_to(target, frame_index)
        # Seek to the keyframe at or before the target; if the demuxer lands
        # after the target, back off further, finally to the stream start.
        back = 0
        while True:
            seek_to = target - back
            at_start = seek_to <= self.start_time
            self._seek(self.start_time if at_start else seek_to)
            assert self._decoder is not None
            first = next(self._decoder, None)
            if first is None:
                raise self._past_end(frame_index, target)
            if first.pts <= target or at_start:
                return self._decode_to(target, frame_index, first)
            back = max(2 * back, self.reseek_gap * self._frame_pts)

    def get_frames(self, indices: Sequence[int]) -> list[Image.Image]:
        """Frames at ``indices`` (any order, repeats allowed) as PIL RGB images."""
        out: dict[int, Image.Image] = {}
        for i, img in self.iter_frames(indices):
            out[i] = img
        return [out[int(i)] for i in indices]

    def iter_frames(self, indices: Iterable[int]) -> Iterator[tuple[int, Image.Image]]:
        """Yield ``(index, image)`` for each distinct index, in ascending order."""
        wanted = sorted(set(int(i) for i in indices))
        for i in wanted:
            if i < 0:
                raise ValueError(f"{self.path}: frame index must be >= 0, got {i}")
        for i in wanted:
            yield i, self.read(i)

    def read(self, index: int) -> Image.Image:
        """The frame at ``index``; fastest when called with ascending indices."""
        if index < 0:
            raise ValueError(f"{self.path}: frame index must be >= 0, got {index}")
        try:
            return self._get_one(int(index)).to_image().convert("RGB")
        except av.error.FFmpegError as e:
            self._reset()
            raise DataError(f"{self.path}: cannot decode frame {index} ({e})") from None


def extract_frames(
    path: str | os.PathLike,
    indices: Sequence[int],
    *,
    fps: Fraction | int | float | None = None,
) -> list[Image.Image]:
    """Open ``path`` once and return the frames at ``indices`` (in the given order)."""
    with VideoReader(path, fps=fps) as r:
        return r.get_frames(indices)


def extract_frame(path: str | os.PathLike, index: int, *, fps: Fraction | int | float | None = None) -> Image.Image:
    """Return the single frame ``index`` of ``path``."""
    return extract_frames(path, [index], fps=fps)[0]
