"""Decoding and encoding images, with one-line errors naming the file."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DataError
from .io import atomic_write_bytes


class BadImageError(DataError):
    """An image file is missing, truncated, too large or not an image."""


#: Most pixels an image egobench reads may declare (8192 x 8192). Frames of
#: this task are about 256 x 456 and generated frames at most a few megapixels;
#: a file declaring more is treated as a bad image (a decompression bomb: a
#: small file that would decode to gigabytes), checked from the header before
#: any pixel is decoded.
MAX_PIXELS = 8192 * 8192

# PIL's own guard warns at MAX_IMAGE_PIXELS and raises at twice that; ours is
# checked first from the header, and PIL's raises as a second line of defence.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def _check_header(im: Image.Image, path: Path) -> None:
    w, h = im.size
    if w <= 0 or h <= 0:
        raise BadImageError(f"{path}: image declares an empty size {w}x{h}")
    if w * h > MAX_PIXELS:
        raise BadImageError(
            f"{path}: image declares {w}x{h} pixels, over egobench's limit of "
            f"{MAX_PIXELS:,} (8192x8192); not decoded (possible decompression bomb)"
        )
    n_frames = getattr(im, "n_frames", 1)
    if n_frames > 1 and im.format != "MPO":  # MPO: a camera JPEG whose first frame is the photo
        raise BadImageError(
            f"{path}: {im.format} file with {n_frames} frames (animated or multi-page); "
            "save one still image per sample"
        )


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB with correct scaling for high-bit-depth modes and EXIF orientation applied.

    PIL's ``convert("RGB")`` clips 16-bit grayscale values at 255 (an almost
    white image); those are rescaled instead. EXIF orientation is applied so
    what is scored is what a viewer sees (video frames carry none).
    """
    im = ImageOps.exif_transpose(im) or im
    if im.mode.startswith("I;16") or im.mode == "I":
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if im.mode == "F":
        arr8 = np.clip(np.round(np.asarray(im, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    # other modes (L, P, RGBA, CMYK, YCbCr, ...): PIL's conversion; alpha is dropped
    return im.convert("RGB")


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """Fully decode ``path`` to an RGB PIL image."""
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size == 0:
            raise BadImageError(f"{path}: empty file (0 bytes)")
        with Image.open(path) as im:
            _check_header(im, path)
            im.load()
            return _to_rgb(im)
    except FileNotFoundError:
        raise BadImageError(f"{path}: image file not found") from None
    except IsADirectoryError:
        raise BadImageError(f"{path}: is a folder, not an image file") from None
    except Image.DecompressionBombError as e:
        raise BadImageError(_bomb_message(path, e)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise BadImageError(f"{path}: cannot decode image ({e})") from None


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` to a uint8 (H, W, 3) array."""
    return np.asarray(open_rgb(path), dtype=np.uint8)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the header, without decoding pixels."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            _check_header(im, path)
            return im.size
    except Image.DecompressionBombError as e:
        raise BadImageError(_bomb_message(path, e)) from None
    except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
        raise BadImageError(f"{path}: cannot read image header ({e})") from None


def _bomb_message(path: Path, e: Exception) -> str:
    import re

    m = re.search(r"\((\d+) pixels\)", str(e))
    n = f"{int(m.group(1)):,} pixels" if m else "too many pixels"
    return (f"{path}: image declares {n}, over egobench's limit of {MAX_PIXELS:,} (8192x8192); "
            "not decoded (possible decompression bomb)")


def image_info(path: str | os.PathLike) -> tuple[int, int, str]:
    """(width, height, PIL mode) from the header, without decoding pixels."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            _check_header(im, path)
            return im.size[0], im.size[1], im.mode
    except Image.DecompressionBombError as e:
        raise BadImageError(_bomb_message(path, e)) from None
    except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
        raise BadImageError(f"{path}: cannot read image header ({e})") from None


def encode(img: Image.Image, fmt: str, jpeg_quality: int = 75) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.save(buf, format="JPEG", quality=jpeg_quality)
    elif fmt == "png":
        img.save(buf, format="PNG")
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return buf.getvalue()


def save_atomic(img: Image.Image, path: str | os.PathLike, fmt: str, jpeg_quality: int = 75) -> None:
    atomic_write_bytes(path, encode(img, fmt, jpeg_quality))
