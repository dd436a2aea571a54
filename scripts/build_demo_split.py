#!/usr/bin/env python3
"""Build the embedded synthetic ``demo`` split of egobench.

The demo split is a miniature LEGO release (same folder layout and JSON
schema as ``EgoGen`` from the LEGO dataset) whose frames are *procedurally
drawn* first-person kitchen scenes: an input frame before an action and a
target frame showing the action being done in the same scene (a drawer pulled
out, a tap running, a tomato cut in half, ...). No real footage is involved.

The build is deterministic: every random choice comes from
``numpy.random.RandomState`` (whose streams NumPy keeps stable) seeded from
fixed constants and the clip/action ids, the JSON is written with sorted keys,
and the images are written with PIL at JPEG quality 90.  Only numpy and PIL
are used.

    python scripts/build_demo_split.py [--out egobench/data/demo]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import shutil
import sys
import time
import uuid
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HEIGHT = 256
WIDTH = {"ego4d": 341, "epickitchen": 456}
FPS = {"ego4d": 30.0, "epickitchen": 60.0}
SUBDIR = {"ego4d": "ego4d.fho", "epickitchen": "epickitchen"}
MARGIN = 8
JPEG_QUALITY = 90
NOISE_LUM = 0.005  # sensor noise (fraction of full scale)
NOISE_CHROMA = 0.002
BASE_SEED = 2312_03849
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "egobench" / "data" / "demo"

F32 = np.float32


def seed_of(*parts: object) -> int:
    """A stable 31-bit seed from strings (crc32 does not depend on PYTHONHASHSEED)."""
    text = "/".join(str(p) for p in (BASE_SEED,) + parts)
    return zlib.crc32(text.encode("utf-8")) & 0x7FFFFFFF


def rgb(*c: float) -> np.ndarray:
    return np.array(c, dtype=F32)


# --------------------------------------------------------------------------
# Signed-distance shapes (pixels; negative inside).  Drawing evaluates a shape
# only inside its bounding box and converts the distance to anti-aliased
# coverage.
# --------------------------------------------------------------------------


def _local(X, Y, cx, cy, ang):
    c, s = math.cos(ang), math.sin(ang)
    dx, dy = X - cx, Y - cy
    return dx * c + dy * s, -dx * s + dy * c


class Shape:
    def bbox(self):
        raise NotImplementedError

    def sdf(self, X, Y):
        raise NotImplementedError


class Ellipse(Shape):
    def __init__(self, cx, cy, rx, ry, ang=0.0):
        self.cx, self.cy, self.rx, self.ry, self.ang = cx, cy, max(rx, 0.5), max(ry, 0.5), ang

    def bbox(self):
        r = max(self.rx, self.ry)
        return self.cx - r, self.cy - r, self.cx + r, self.cy + r

    def sdf(self, X, Y):
        u, v = _local(X, Y, self.cx, self.cy, self.ang)
        k = np.sqrt((u / self.rx) ** 2 + (v / self.ry) ** 2)
        g = np.sqrt((u / self.rx**2) ** 2 + (v / self.ry**2) ** 2)
        ratio = np.where(g > 1e-6, k / np.maximum(g, 1e-6), min(self.rx, self.ry))
        return (k - 1.0) * ratio


def Circle(cx, cy, r):
    return Ellipse(cx, cy, r, r)


class RRect(Shape):
    """Rounded rectangle; ``hw`` is the half size along ``ang``."""

    def __init__(self, cx, cy, hw, hh, r=0.0, ang=0.0):
        self.cx, self.cy, self.hw, self.hh, self.ang = cx, cy, hw, hh, ang
        self.r = min(r, hw, hh)

    @classmethod
    def box(cls, x0, y0, x1, y1, r=0.0):
        return cls((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2, r)

    def bbox(self):
        e = math.hypot(self.hw, self.hh)
        return self.cx - e, self.cy - e, self.cx + e, self.cy + e

    def sdf(self, X, Y):
        u, v = _local(X, Y, self.cx, self.cy, self.ang)
        qx = np.abs(u) - (self.hw - self.r)
        qy = np.abs(v) - (self.hh - self.r)
        out = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
        return out + np.minimum(np.maximum(qx, qy), 0) - self.r


class Capsule(Shape):
    """Segment a-b with radius ra at a and rb at b (a tapered capsule)."""

    def __init__(self, a, b, ra, rb=None):
        self.a, self.b, self.ra = a, b, ra
        self.rb = ra if rb is None else rb

    def bbox(self):
        r = max(self.ra, self.rb)
        return (min(self.a[0], self.b[0]) - r, min(self.a[1], self.b[1]) - r,
                max(self.a[0], self.b[0]) + r, max(self.a[1], self.b[1]) + r)

    def sdf(self, X, Y):
        ax, ay = self.a
        bx, by = self.b
        dx, dy = bx - ax, by - ay
        ll = max(dx * dx + dy * dy, 1e-6)
        t = np.clip(((X - ax) * dx + (Y - ay) * dy) / ll, 0.0, 1.0)
        px, py = X - (ax + t * dx), Y - (ay + t * dy)
        return np.sqrt(px * px + py * py) - (self.ra + t * (self.rb - self.ra))


class Poly(Shape):
    """Convex polygon (vertices in either winding)."""

    def __init__(self, pts):
        self.pts = [(float(x), float(y)) for x, y in pts]
        area = 0.0
        n = len(self.pts)
        for i in range(n):
            x0, y0 = self.pts[i]
            x1, y1 = self.pts[(i + 1) % n]
            area += x0 * y1 - x1 * y0
        self.sign = 1.0 if area > 0 else -1.0

    def bbox(self):
        xs = [p[0] for p in self.pts]
        ys = [p[1] for p in self.pts]
        return min(xs), min(ys), max(xs), max(ys)

    def sdf(self, X, Y):
        d = None
        n = len(self.pts)
        for i in range(n):
            x0, y0 = self.pts[i]
            x1, y1 = self.pts[(i + 1) % n]
            ex, ey = x1 - x0, y1 - y0
            ln = math.hypot(ex, ey) or 1.0
            nx, ny = self.sign * ey / ln, -self.sign * ex / ln
            di = (X - x0) * nx + (Y - y0) * ny
            d = di if d is None else np.maximum(d, di)
        return d


class Union(Shape):
    def __init__(self, *shapes):
        self.shapes = shapes

    def bbox(self):
        bs = [s.bbox() for s in self.shapes]
        return (min(b[0] for b in bs), min(b[1] for b in bs),
                max(b[2] for b in bs), max(b[3] for b in bs))

    def sdf(self, X, Y):
        d = self.shapes[0].sdf(X, Y)
        for s in self.shapes[1:]:
            d = np.minimum(d, s.sdf(X, Y))
        return d


class Inter(Shape):
    def __init__(self, a, b):
        self.a, self.b = a, b

    def bbox(self):
        return self.a.bbox()

    def sdf(self, X, Y):
        return np.maximum(self.a.sdf(X, Y), self.b.sdf(X, Y))


class Sub(Shape):
    def __init__(self, a, b):
        self.a, self.b = a, b

    def bbox(self):
        return self.a.bbox()

    def sdf(self, X, Y):
        return np.maximum(self.a.sdf(X, Y), -self.b.sdf(X, Y))


class Ring(Shape):
    def __init__(self, shape, t):
        self.shape, self.t = shape, t

    def bbox(self):
        x0, y0, x1, y1 = self.shape.bbox()
        return x0 - self.t, y0 - self.t, x1 + self.t, y1 + self.t

    def sdf(self, X, Y):
        return np.abs(self.shape.sdf(X, Y)) - self.t


class Shift(Shape):
    def __init__(self, shape, dx, dy, grow=0.0):
        self.shape, self.dx, self.dy, self.grow = shape, dx, dy, grow

    def bbox(self):
        x0, y0, x1, y1 = self.shape.bbox()
        g = self.grow
        return x0 + self.dx - g, y0 + self.dy - g, x1 + self.dx + g, y1 + self.dy + g

    def sdf(self, X, Y):
        return self.shape.sdf(X - self.dx, Y - self.dy) - self.grow


# --------------------------------------------------------------------------
# Canvas and painting
# --------------------------------------------------------------------------


class Canvas:
    """Float RGB canvas with a margin around the frame (for camera jitter)."""

    def __init__(self, w, h, margin=MARGIN):
        self.w, self.h, self.m = w, h, margin
        self.W, self.H = w + 2 * margin, h + 2 * margin
        self.cx = w / 2.0
        self.img = np.zeros((self.H, self.W, 3), F32)
        self.X = (np.arange(self.W, dtype=F32) - margin)[None, :]
        self.Y = (np.arange(self.H, dtype=F32) - margin)[:, None]
        self.Xf = np.broadcast_to(self.X, (self.H, self.W))
        self.Yf = np.broadcast_to(self.Y, (self.H, self.W))

    def window(self, x0, y0, x1, y1):
        m = self.m
        c0 = max(int(math.floor(x0)) + m - 2, 0)
        c1 = min(int(math.ceil(x1)) + m + 3, self.W)
        r0 = max(int(math.floor(y0)) + m - 2, 0)
        r1 = min(int(math.ceil(y1)) + m + 3, self.H)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1), self.X[:, c0:c1], self.Y[r0:r1, :]


def fill(cv, shape, color, alpha=1.0, soft=1.0, shade=None):
    """Paint ``shape`` with ``color`` (RGB or f(X, Y, d) -> HxWx3)."""
    x0, y0, x1, y1 = shape.bbox()
    pad = 2.0 * soft + 1.0
    win = cv.window(x0 - pad, y0 - pad, x1 + pad, y1 + pad)
    if win is None:
        return
    sy, sx, X, Y = win
    d = shape.sdf(X, Y)
    hw = (sy.stop - sy.start, sx.stop - sx.start)
    a = np.clip(0.5 - d / soft, 0.0, 1.0)
    if callable(alpha):
        a = a * alpha(X, Y, d)
    else:
        a = a * alpha
    a = np.broadcast_to(a, hw).astype(F32)
    if not a.any():
        return
    col = color(X, Y, d) if callable(color) else np.asarray(color, F32)
    if shade is not None:
        col = col * np.broadcast_to(shade(X, Y, d), hw)[..., None]
    sub = cv.img[sy, sx]
    sub += a[..., None] * (np.broadcast_to(col, sub.shape) - sub)


def shadow(cv, shape, strength=0.35, soft=6.0, dx=0.0, dy=0.0):
    fill(cv, Shift(shape, dx, dy), (0.0, 0.0, 0.0), alpha=strength, soft=soft)


def sh_round(r, lo=0.65, gamma=0.5):
    def f(X, Y, d):
        return lo + (1.0 - lo) * np.clip(-d / r, 0.0, 1.0) ** gamma
    return f


def sh_cyl(cx, hw, lo=0.55, spec=0.25):
    def f(X, Y, d):
        u = np.clip((X - cx) / hw, -1.0, 1.0)
        s = lo + (1.0 - lo) * np.sqrt(np.clip(1.0 - (u - 0.15) ** 2, 0.0, 1.0))
        return s + spec * np.exp(-((u + 0.45) / 0.13) ** 2)
    return f


def sh_vgrad(y0, y1, a, b):
    def f(X, Y, d):
        t = np.clip((Y - y0) / max(y1 - y0, 1e-3), 0.0, 1.0)
        return a + (b - a) * t
    return f


def sh_mul(*fs):
    def f(X, Y, d):
        out = 1.0
        for g in fs:
            out = out * g(X, Y, d)
        return out
    return f


# --------------------------------------------------------------------------
# Noise
# --------------------------------------------------------------------------


def sample_noise(grid, u, v):
    """Smooth value noise: bilinear (smoothstep) lookup in a wrapped 2**k grid."""
    n = grid.shape[0]
    mask = n - 1
    assert grid.shape == (n, n) and n & mask == 0
    u, v = np.broadcast_arrays(np.asarray(u, F32), np.asarray(v, F32))
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    fu = fu * fu * (3 - 2 * fu)
    fv = fv * fv * (3 - 2 * fv)
    i0 = iu.astype(np.int32) & mask
    j0 = (iv.astype(np.int32) & mask) * n
    i1 = (i0 + 1) & mask
    j1 = (j0 + n) & (n * n - 1)
    flat = grid.ravel()
    g00, g01 = flat[j0 + i0], flat[j0 + i1]
    g10, g11 = flat[j1 + i0], flat[j1 + i1]
    a = g00 + (g01 - g00) * fu
    b = g10 + (g11 - g10) * fu
    return a + (b - a) * fv


def fbm(grid, u, v, octaves=3):
    tot, amp, norm = 0.0, 1.0, 0.0
    for k in range(octaves):
        f = 2.0**k
        tot = tot + amp * sample_noise(grid, u * f + 17.3 * k, v * f + 31.7 * k)
        norm += amp
        amp *= 0.5
    return tot / norm


# --------------------------------------------------------------------------
# Scene style (per clip)
# --------------------------------------------------------------------------

SKIN = [rgb(0.86, 0.66, 0.53), rgb(0.72, 0.52, 0.38), rgb(0.52, 0.35, 0.24),
        rgb(0.93, 0.76, 0.65), rgb(0.42, 0.28, 0.19), rgb(0.80, 0.60, 0.46)]

OBJ = {
    "red": rgb(0.78, 0.13, 0.11), "blue": rgb(0.17, 0.36, 0.70), "green": rgb(0.20, 0.55, 0.32),
    "yellow": rgb(0.93, 0.76, 0.20), "white": rgb(0.93, 0.92, 0.89), "orange": rgb(0.92, 0.50, 0.14),
    "teal": rgb(0.12, 0.55, 0.58), "black": rgb(0.12, 0.12, 0.13), "cream": rgb(0.94, 0.89, 0.76),
    "steel": rgb(0.74, 0.76, 0.78), "grey": rgb(0.55, 0.56, 0.58),
}

# wall, tiles (None or (w, h, brick)), counter kind, counter colour, cabinet colour,
# skin index, sleeve colour (None = bare forearm), light direction, warmth
STYLES = {
    "demo4d_0001": dict(wall=rgb(0.90, 0.86, 0.76), tiles=None, counter="wood", ccol=rgb(0.62, 0.42, 0.25),
                        cab=rgb(0.55, 0.36, 0.20), skin=0, sleeve=rgb(0.13, 0.17, 0.32), ldir=-1.0, warm=1.0),
    "demo4d_0002": dict(wall=rgb(0.93, 0.93, 0.91), tiles=(26, 13, True), counter="stone", ccol=rgb(0.47, 0.47, 0.48),
                        cab=rgb(0.30, 0.33, 0.38), skin=2, sleeve=rgb(0.55, 0.56, 0.58), ldir=1.0, warm=0.0),
    "demo4d_0003": dict(wall=rgb(0.60, 0.74, 0.64), tiles=(22, 22, False), counter="wood", ccol=rgb(0.70, 0.52, 0.33),
                        cab=rgb(0.82, 0.80, 0.74), skin=1, sleeve=None, ldir=0.5, warm=0.6),
    "demo4d_0004": dict(wall=rgb(0.62, 0.68, 0.76), tiles=None, counter="laminate", ccol=rgb(0.88, 0.87, 0.84),
                        cab=rgb(0.92, 0.92, 0.90), skin=3, sleeve=rgb(0.50, 0.12, 0.16), ldir=-0.6, warm=0.3),
    "demo4d_0005": dict(wall=rgb(0.92, 0.82, 0.52), tiles=None, counter="wood", ccol=rgb(0.50, 0.33, 0.20),
                        cab=rgb(0.40, 0.48, 0.36), skin=4, sleeve=rgb(0.20, 0.42, 0.30), ldir=0.8, warm=0.8),
    "demo4d_0006": dict(wall=rgb(0.88, 0.88, 0.90), tiles=(30, 15, True), counter="stone", ccol=rgb(0.22, 0.22, 0.24),
                        cab=rgb(0.20, 0.22, 0.26), skin=5, sleeve=rgb(0.10, 0.10, 0.11), ldir=-0.3, warm=0.2),
    "P90_01": dict(wall=rgb(0.85, 0.80, 0.72), tiles=(20, 20, False), counter="wood", ccol=rgb(0.58, 0.40, 0.24),
                   cab=rgb(0.86, 0.84, 0.78), skin=3, sleeve=rgb(0.25, 0.30, 0.45), ldir=1.0, warm=0.9),
    "P90_02": dict(wall=rgb(0.78, 0.86, 0.88), tiles=(28, 14, True), counter="laminate", ccol=rgb(0.80, 0.76, 0.68),
                   cab=rgb(0.62, 0.44, 0.28), skin=0, sleeve=None, ldir=-0.7, warm=0.4),
    "P90_03": dict(wall=rgb(0.95, 0.93, 0.88), tiles=None, counter="stone", ccol=rgb(0.36, 0.34, 0.33),
                   cab=rgb(0.22, 0.30, 0.42), skin=5, sleeve=rgb(0.62, 0.20, 0.16), ldir=0.4, warm=0.5),
    "P90_04": dict(wall=rgb(0.74, 0.78, 0.70), tiles=(24, 12, True), counter="wood", ccol=rgb(0.74, 0.58, 0.38),
                   cab=rgb(0.90, 0.90, 0.88), skin=2, sleeve=rgb(0.85, 0.83, 0.78), ldir=-1.0, warm=0.7),
    "P91_01": dict(wall=rgb(0.90, 0.90, 0.88), tiles=None, counter="laminate", ccol=rgb(0.92, 0.92, 0.90),
                   cab=rgb(0.55, 0.58, 0.62), skin=1, sleeve=rgb(0.30, 0.30, 0.32), ldir=0.6, warm=0.1),
    "P91_02": dict(wall=rgb(0.80, 0.62, 0.50), tiles=(18, 18, False), counter="wood", ccol=rgb(0.56, 0.38, 0.22),
                   cab=rgb(0.48, 0.30, 0.18), skin=4, sleeve=rgb(0.75, 0.68, 0.30), ldir=0.0, warm=1.0),
}


_FIELDS: dict = {}


class Style:
    def __init__(self, clip, rng):
        d = STYLES[clip]
        self.clip = clip
        self.wall = d["wall"]
        self.tiles = d["tiles"]
        self.counter = d["counter"]
        self.ccol = d["ccol"]
        self.cab = d["cab"]
        self.skin = SKIN[d["skin"]]
        self.sleeve = d["sleeve"]
        self.ldir = d["ldir"]
        self.warm = d["warm"]
        self.noise = rng.rand(64, 64).astype(F32)
        self.noise2 = rng.rand(64, 64).astype(F32)
        self.table = rng.rand(64, 64).astype(F32)

    def field(self, cv, key, fn):
        """Memoise a full-canvas texture (a pure function of the clip style and canvas)."""
        k = (self.clip, cv.W, cv.H, cv.m) + key
        if k not in _FIELDS:
            _FIELDS[k] = fn()
        return _FIELDS[k]


# --------------------------------------------------------------------------
# Backgrounds
# --------------------------------------------------------------------------


def paint_region(cv, mask, color):
    a = mask[..., None]
    cv.img += a * (color - cv.img)


def wall(cv, st, y_end=None):
    X, Y = cv.Xf, cv.Yf
    n = st.field(cv, ("wall",), lambda: fbm(st.noise, X / 37.0, Y / 37.0))[..., None]
    col = st.wall * (0.93 + 0.10 * n)
    if st.tiles is not None:
        tw, th, brick = st.tiles
        row = np.floor(Y / th)
        off = (row % 2) * (tw / 2.0) if brick else 0.0
        xx = X + off
        col_i = np.floor(xx / tw)
        fx = xx - col_i * tw
        fy = Y - row * th
        gx = np.minimum(fx, tw - fx)
        gy = np.minimum(fy, th - fy)
        grout = np.clip(1.6 - np.minimum(gx, gy), 0.0, 1.0)[..., None]
        jit = st.table[(row.astype(np.int64) % 64), (col_i.astype(np.int64) % 64)][..., None]
        gloss = np.exp(-((fy / th - 0.3) / 0.25) ** 2)[..., None]
        tile = st.wall * (0.95 + 0.08 * jit) + 0.05 * gloss
        bevel = np.clip(1.0 - np.minimum(gx, gy) / 3.0, 0, 1)[..., None]
        tile = tile * (1.0 - 0.08 * bevel)
        col = tile * (1 - grout) + (st.wall * 0.72 + 0.12) * grout
    mask = np.ones((cv.H, cv.W), F32) if y_end is None else np.clip(y_end - Y + 0.5, 0, 1)
    paint_region(cv, mask, col)


def counter_texture(st, X, Y, y0, yv, cx):
    den = np.maximum(Y - yv, 1.0)
    Xw = (X - cx) / den * 100.0
    Zw = 10000.0 / den
    if st.counter == "wood":
        plank = np.floor(Zw / 9.0)
        fz = Zw / 9.0 - plank
        pj = st.table[(plank.astype(np.int64) % 64), 7][..., None]
        warp = fbm(st.noise, Xw * 0.012 + plank * 3.1, Zw * 0.25)
        grain = 0.5 + 0.5 * np.sin((Zw * 2.2 + 6.0 * warp) * 2.0)
        fine = fbm(st.noise2, Xw * 0.05, Zw * 3.0, 2)
        col = st.ccol * (0.86 + 0.12 * pj + 0.08 * grain[..., None] + 0.10 * (fine[..., None] - 0.5))
        joint = np.clip(1.0 - np.minimum(fz, 1 - fz) * 9.0 / 0.12 * (den / 150.0), 0, 1)[..., None]
        col = col * (1 - 0.35 * joint)
    elif st.counter == "stone":
        n1 = fbm(st.noise, Xw * 0.06, Zw * 0.22)
        n2 = sample_noise(st.noise2, Xw * 0.9, Zw * 3.5)
        speck = np.clip((n2 - 0.78) * 6.0, 0, 1)
        dark = np.clip((0.22 - n2) * 6.0, 0, 1)
        col = st.ccol * (0.88 + 0.22 * n1[..., None]) + 0.20 * speck[..., None] - 0.10 * dark[..., None]
    else:
        n1 = fbm(st.noise, Xw * 0.04, Zw * 0.15)
        col = st.ccol * (0.95 + 0.07 * n1[..., None])
    # soft reflection of the window light near the back of the counter
    sheen = np.exp(-((Y - y0 - 25.0) / 40.0) ** 2)[..., None]
    return col + 0.04 * sheen


def counter(cv, st, y0, yv_off=140.0):
    X, Y = cv.Xf, cv.Yf
    col = st.field(cv, ("counter", y0, yv_off), lambda: counter_texture(st, X, Y, y0, y0 - yv_off, cv.cx))
    mask = np.clip(Y - y0 + 0.5, 0, 1)
    paint_region(cv, mask, col)
    # contact shadow where the wall meets the counter
    sh = np.exp(-np.maximum(Y - y0, 0) / 4.0) * (Y >= y0 - 0.5)
    cv.img *= (1.0 - 0.30 * sh)[..., None]


def upper_cabinets(cv, st, y1):
    X, Y = cv.Xf, cv.Yf
    col = st.cab * st.field(cv, ("upper",), lambda: 0.92 + 0.08 * fbm(st.noise2, X / 20.0, Y / 60.0))[..., None]
    mask = np.clip(y1 - Y + 0.5, 0, 1)
    paint_region(cv, mask, col)
    fill(cv, RRect.box(-50, y1 - 3, cv.w + 50, y1 + 0.5), st.cab * 0.55)
    # soft shadow on the wall under the cabinets
    sh = np.exp(-np.maximum(Y - y1, 0) / 10.0) * (Y > y1)
    cv.img *= (1.0 - 0.25 * sh)[..., None]
    # door gaps
    for k in range(-4, 5):
        x = cv.cx + 95.0 * k + 30.0
        fill(cv, RRect.box(x - 1, -20, x + 1, y1 - 3), st.cab * 0.45)


# --------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------


def cup(cv, x, yb, r, h, color, handle=1, contents=None, shadow_on=True):
    top = yb - h
    if shadow_on:
        shadow(cv, Ellipse(x + 5, yb + 1, r * 1.25, r * 0.42), 0.35, 5.0)
    hx = x + handle * (r + r * 0.28)
    fill(cv, Ring(Ellipse(hx, top + h * 0.45, r * 0.40, h * 0.27), r * 0.12), color, shade=sh_round(r * 0.12, 0.6))
    body = Union(RRect.box(x - r, top, x + r, yb - r * 0.2), Ellipse(x, yb - r * 0.22, r, r * 0.3))
    fill(cv, body, color, shade=sh_cyl(x, r))
    fill(cv, Ellipse(x, top, r, r * 0.32), color * 1.08 + 0.05)
    inner = Ellipse(x, top + 0.6, r * 0.86, r * 0.25)
    fill(cv, inner, color * 0.42 if contents is None else contents,
         shade=sh_vgrad(top - r * 0.25, top + r * 0.25, 0.6, 1.0))


def plate(cv, x, y, rx, color, ang=0.0, tilt=0.42, shadow_on=True):
    ry = rx * tilt
    if shadow_on:
        shadow(cv, Ellipse(x + 4, y + 4, rx * 1.02, ry * 1.05, ang), 0.35, 4.0)
    fill(cv, Ellipse(x, y + 2.5, rx, ry, ang), color * 0.70)
    fill(cv, Ellipse(x, y, rx, ry, ang), color, shade=sh_vgrad(y - ry, y + ry, 1.03, 0.88))
    fill(cv, Ring(Ellipse(x, y + 0.5, rx * 0.66, ry * 0.66, ang), 0.8), color * 0.80)
    fill(cv, Ellipse(x, y + 0.8, rx * 0.64, ry * 0.62, ang), color * 0.95)
    fill(cv, Ring(Ellipse(x - rx * 0.2, y - ry * 0.35, rx * 0.5, ry * 0.35, ang), 1.0), (1.0, 1.0, 1.0), alpha=0.25, soft=2.0)


def glass(cv, x, yb, w_top, w_bot, h, level):
    top = yb - h
    body = Union(Poly([(x - w_top, top), (x + w_top, top), (x + w_bot, yb - 3), (x - w_bot, yb - 3)]),
                 Ellipse(x, yb - 3, w_bot, w_bot * 0.3))
    shadow(cv, Ellipse(x + 4, yb, w_bot * 1.3, w_bot * 0.4), 0.25, 4.0)
    fill(cv, body, (0.92, 0.96, 1.0), alpha=0.18)
    if level > 0:
        ly = yb - 3 - level * (h - 6)
        wl = w_bot + (w_top - w_bot) * level
        water = Inter(body, RRect.box(x - 100, ly, x + 100, yb + 20))
        fill(cv, water, (0.45, 0.66, 0.80), alpha=0.55)
        fill(cv, Ellipse(x, ly, wl, wl * 0.28), (0.72, 0.86, 0.95), alpha=0.75)
        fill(cv, Ring(Ellipse(x, ly, wl, wl * 0.28), 0.6), (0.95, 0.98, 1.0), alpha=0.7)
    fill(cv, Ring(body, 0.9), (0.97, 0.99, 1.0), alpha=0.65)
    fill(cv, Ring(Ellipse(x, top, w_top, w_top * 0.3), 0.9), (0.97, 0.99, 1.0), alpha=0.8)
    fill(cv, Capsule((x - w_top * 0.6, top + 8), (x - w_bot * 0.6, yb - 10), 1.6), (1.0, 1.0, 1.0), alpha=0.55)
    fill(cv, Ellipse(x, yb - 4, w_bot * 0.9, w_bot * 0.26), (0.9, 0.95, 1.0), alpha=0.35)


def bottle(cv, tip, ang_deg, length, radius, color, label=(0.95, 0.95, 0.92)):
    """Plastic bottle whose mouth is at ``tip``; body extends opposite to ang."""
    a = math.radians(ang_deg)
    d = (math.cos(a), math.sin(a))
    neck_end = (tip[0] - d[0] * 14, tip[1] - d[1] * 14)
    cxb = tip[0] - d[0] * (14 + length / 2 + 4)
    cyb = tip[1] - d[1] * (14 + length / 2 + 4)
    body = RRect(cxb, cyb, length / 2, radius, radius * 0.6, a)
    fill(cv, Capsule(neck_end, tip, radius * 0.45), color * 0.95, shade=sh_round(radius * 0.45, 0.6))
    fill(cv, Capsule((neck_end[0] - d[0] * 6, neck_end[1] - d[1] * 6), neck_end, radius * 0.9, radius * 0.5),
         color, shade=sh_round(radius * 0.5, 0.6))
    fill(cv, body, color, shade=sh_round(radius, 0.55))
    lab = RRect(cxb - d[0] * 4, cyb - d[1] * 4, length * 0.22, radius * 0.98, 1.0, a)
    fill(cv, lab, label, shade=sh_round(radius, 0.6))
    fill(cv, Ring(Ellipse(tip[0], tip[1], radius * 0.45, radius * 0.3, a + math.pi / 2), 0.8), color * 0.6)
    # specular streak along the body
    px, py = -d[1], d[0]
    s0 = (cxb - d[0] * length * 0.4 - px * radius * 0.45, cyb - d[1] * length * 0.4 - py * radius * 0.45)
    s1 = (cxb + d[0] * length * 0.4 - px * radius * 0.45, cyb + d[1] * length * 0.4 - py * radius * 0.45)
    fill(cv, Capsule(s0, s1, 1.5), (1, 1, 1), alpha=0.45, soft=1.5)


def stream(cv, a, b, width, rng, alpha=0.8):
    fill(cv, Capsule(a, b, width, width * 1.1), (0.80, 0.90, 0.97), alpha=alpha * 0.75)
    fill(cv, Capsule((a[0] - width * 0.3, a[1]), (b[0] - width * 0.3, b[1]), width * 0.35), (1.0, 1.0, 1.0),
         alpha=alpha * 0.7, soft=1.2)
    fill(cv, Ellipse(b[0], b[1] + 1, width * 3.2, width * 1.1), (0.92, 0.96, 1.0), alpha=alpha * 0.8, soft=1.5)
    for _i in range(6):
        ox = (rng.rand() - 0.5) * width * 7
        oy = (rng.rand() - 0.5) * width * 2.2
        fill(cv, Circle(b[0] + ox, b[1] + oy, 0.8 + rng.rand() * 1.2), (1, 1, 1), alpha=0.8)


def knife(cv, hx, hy, ang_deg, scale=1.0, handle_col=(0.12, 0.10, 0.09)):
    """Knife with handle end at (hx, hy), blade pointing along ang."""
    a = math.radians(ang_deg)
    d = (math.cos(a), math.sin(a))
    p = (-d[1], d[0])
    hl, bl, bw = 34 * scale, 70 * scale, 9 * scale
    bx, by = hx + d[0] * hl, hy + d[1] * hl
    tipx, tipy = bx + d[0] * bl, by + d[1] * bl
    spine0 = (bx - p[0] * 2, by - p[1] * 2)
    edge0 = (bx + p[0] * bw, by + p[1] * bw)
    edge_mid = (bx + d[0] * bl * 0.6 + p[0] * bw * 0.8, by + d[1] * bl * 0.6 + p[1] * bw * 0.8)
    blade = Poly([spine0, (tipx - p[0] * 2, tipy - p[1] * 2), edge_mid, edge0])
    fill(cv, blade, (0.78, 0.80, 0.82), shade=lambda X, Y, dd: 0.82 + 0.25 * np.clip(-dd / 3.0, 0, 1))
    fill(cv, Capsule(spine0, (tipx - p[0] * 2, tipy - p[1] * 2), 0.8), (0.95, 0.96, 0.97), alpha=0.8)
    fill(cv, Capsule((bx + p[0] * 3, by + p[1] * 3), (bx - d[0] * 3 + p[0] * 3, by - d[1] * 3 + p[1] * 3), 4.5 * scale),
         (0.55, 0.56, 0.58))
    hcx, hcy = hx + d[0] * hl / 2, hy + d[1] * hl / 2
    fill(cv, RRect(hcx, hcy + p[1] * 3, hl / 2, 4.5 * scale, 3.5 * scale, a), handle_col, shade=sh_round(4.5 * scale, 0.6))
    for t in (0.3, 0.7):
        fill(cv, Circle(hx + d[0] * hl * t + p[0] * 3, hy + d[1] * hl * t + p[1] * 3, 1.2 * scale), (0.8, 0.8, 0.8))


def tomato(cv, x, y, r, cut=False, gap=0.0):
    red = rgb(0.80, 0.12, 0.08)
    if not cut:
        shadow(cv, Ellipse(x + 4, y + r * 0.7, r * 1.05, r * 0.45), 0.4, 4.0)
        fill(cv, Ellipse(x, y, r * 1.05, r), red, shade=sh_round(r, 0.45, 0.6))
        fill(cv, Ellipse(x - r * 0.35, y - r * 0.4, r * 0.3, r * 0.18, -0.5), (1, 1, 1), alpha=0.45, soft=2.5)
        for k in range(5):
            a = -math.pi / 2 + k * 2 * math.pi / 5
            fill(cv, Ellipse(x + math.cos(a) * r * 0.22, y - r * 0.25 + math.sin(a) * r * 0.12, r * 0.25, r * 0.08, a),
                 (0.22, 0.45, 0.15))
        fill(cv, Circle(x, y - r * 0.26, r * 0.09), (0.28, 0.40, 0.15))
        return
    for side in (-1, 1):
        hx = x + side * (r * 0.55 + gap / 2)
        shadow(cv, Ellipse(hx + 4, y + r * 0.5, r * 0.62, r * 0.5), 0.35, 4.0)
        fill(cv, Ellipse(hx, y + 2.5, r * 0.6, r * 0.95), red * 0.75)
        fill(cv, Ellipse(hx, y, r * 0.58, r * 0.93), red)
        fill(cv, Ellipse(hx, y, r * 0.5, r * 0.84), (0.93, 0.35, 0.25))
        for k in (-1, 0, 1):
            cy2 = y + k * r * 0.42
            fill(cv, Ellipse(hx, cy2, r * 0.26, r * 0.17), (0.95, 0.72, 0.35))
            for j in (-1, 1):
                fill(cv, Circle(hx + j * r * 0.1, cy2, 1.2), (0.98, 0.92, 0.70))
        fill(cv, Capsule((hx, y - r * 0.7), (hx, y + r * 0.7), r * 0.07), (0.97, 0.55, 0.45))


def pot(cv, x, y, rx, ry, h, color, lid=True, lid_pos=None, contents=(0.86, 0.47, 0.16), rng=None):
    shadow(cv, Ellipse(x + 6, y + h + 2, rx * 1.05, ry * 1.1), 0.4, 6.0)
    for s in (-1, 1):
        fill(cv, Capsule((x + s * rx * 0.9, y + 8), (x + s * (rx + 14), y + 6), 5.0), (0.15, 0.15, 0.16),
             shade=sh_round(5, 0.6))
    body = Union(RRect.box(x - rx, y, x + rx, y + h), Ellipse(x, y + h, rx, ry))
    fill(cv, body, color, shade=sh_cyl(x, rx, 0.45, 0.2))
    fill(cv, Ellipse(x, y, rx, ry), color * 1.1 + 0.04)
    if lid and lid_pos is None:
        pot_lid(cv, x, y - 2, rx * 1.02, ry * 1.05, 0.0)
        return
    fill(cv, Ellipse(x, y + 1, rx * 0.93, ry * 0.85), color * 0.35)
    fill(cv, Ellipse(x, y + 4, rx * 0.90, ry * 0.74), contents,
         shade=lambda X, Y, d: 0.8 + 0.25 * np.clip(-d / 10, 0, 1))
    if rng is not None:
        for i in range(26):
            u = (rng.rand() * 2 - 1) * 0.8
            v = (rng.rand() * 2 - 1) * 0.6
            col = (0.25, 0.55, 0.18) if i % 3 == 0 else (0.95, 0.62, 0.25) if i % 3 == 1 else (0.95, 0.85, 0.65)
            fill(cv, Ellipse(x + u * rx * 0.85, y + 4 + v * ry * 0.7, 3.2, 2.0, rng.rand() * 3.0), col)
        for i in range(3):
            sx = x - rx * 0.4 + i * rx * 0.4
            fill(cv, Ellipse(sx, y - 22 - i * 4, 10, 22, 0.2 * (i - 1)), (1, 1, 1), alpha=0.18, soft=8.0)
    if lid_pos is not None:
        lx, ly, ang, tilt = lid_pos
        pot_lid(cv, lx, ly, rx * 1.02, ry * 1.05 * tilt, ang)


def pot_lid(cv, x, y, rx, ry, ang):
    fill(cv, Ellipse(x, y + 2, rx, ry, ang), (0.35, 0.36, 0.38))
    fill(cv, Ellipse(x, y, rx, ry, ang), (0.70, 0.72, 0.74),
         shade=lambda X, Y, d: 0.78 + 0.3 * np.clip(-d / (ry * 0.9), 0, 1))
    fill(cv, Ring(Ellipse(x, y, rx * 0.96, ry * 0.93, ang), 0.7), (0.9, 0.92, 0.94), alpha=0.6)
    fill(cv, Ellipse(x - rx * 0.3, y - ry * 0.3, rx * 0.3, ry * 0.2, ang), (1, 1, 1), alpha=0.25, soft=4)
    kx, ky = x, y - 4
    fill(cv, Ellipse(kx, ky + 2, 9, 5, ang), (0.12, 0.12, 0.13))
    fill(cv, Ellipse(kx, ky, 8, 4.5, ang), (0.22, 0.22, 0.24), shade=sh_round(4, 0.7))


def pan(cv, x, y, rx, ry, handle_to, wet=0.0):
    shadow(cv, Ellipse(x + 5, y + 5, rx, ry), 0.35, 5.0)
    fill(cv, Capsule((x, y), handle_to, 5.0, 6.0), (0.10, 0.10, 0.11), shade=sh_round(6, 0.6))
    fill(cv, Ellipse(x, y + 3, rx, ry), (0.13, 0.13, 0.14))
    fill(cv, Ellipse(x, y, rx, ry), (0.30, 0.30, 0.32))
    fill(cv, Ellipse(x, y + 2, rx * 0.88, ry * 0.84), (0.17, 0.17, 0.18),
         shade=lambda X, Y, d: 0.9 + 0.3 * np.clip(-d / 12, 0, 1))
    fill(cv, Ring(Ellipse(x - rx * 0.1, y - ry * 0.1, rx * 0.6, ry * 0.5), 1.5), (1, 1, 1), alpha=0.10 + 0.15 * wet, soft=3)


def sponge(cv, x, y, ang):
    fill(cv, RRect(x, y, 16, 10, 4, ang), (0.93, 0.80, 0.22), shade=sh_round(6, 0.7))
    fill(cv, RRect(x + math.sin(ang) * 7, y - 7 * math.cos(ang), 16, 4, 2, ang), (0.20, 0.52, 0.22))


def foam(cv, x, y, rx, ry, rng, n=40):
    for _ in range(n):
        u, v = rng.rand() * 2 - 1, rng.rand() * 2 - 1
        if u * u + v * v > 1:
            continue
        r = 1.5 + rng.rand() * 3.5
        fill(cv, Circle(x + u * rx, y + v * ry, r), (0.97, 0.98, 1.0), alpha=0.85,
             shade=lambda X, Y, d: 0.85 + 0.15 * np.clip(-d / 2, 0, 1))


def distractor(cv, kind, x, yb, rng, s=1.0):
    if kind == "bottle":
        col = [rgb(0.55, 0.35, 0.08), rgb(0.15, 0.40, 0.20), rgb(0.70, 0.60, 0.10)][rng.randint(3)]
        shadow(cv, Ellipse(x + 4, yb, 9 * s, 3 * s), 0.3, 3)
        fill(cv, RRect.box(x - 8 * s, yb - 44 * s, x + 8 * s, yb, 3 * s), col, shade=sh_cyl(x, 8 * s))
        fill(cv, Capsule((x, yb - 44 * s), (x, yb - 58 * s), 3.5 * s), col, shade=sh_cyl(x, 3.5 * s))
        fill(cv, RRect.box(x - 4 * s, yb - 64 * s, x + 4 * s, yb - 57 * s, 1), (0.85, 0.15, 0.10))
        fill(cv, RRect.box(x - 8 * s, yb - 30 * s, x + 8 * s, yb - 14 * s), (0.92, 0.88, 0.78), shade=sh_cyl(x, 8 * s))
    elif kind == "canister":
        col = [rgb(0.90, 0.90, 0.88), rgb(0.72, 0.74, 0.76), rgb(0.80, 0.30, 0.20)][rng.randint(3)]
        shadow(cv, Ellipse(x + 4, yb, 14 * s, 4 * s), 0.3, 3)
        fill(cv, RRect.box(x - 13 * s, yb - 30 * s, x + 13 * s, yb, 2), col, shade=sh_cyl(x, 13 * s))
        fill(cv, Ellipse(x, yb - 30 * s, 13 * s, 3.5 * s), col * 0.8)
        fill(cv, Circle(x, yb - 32 * s, 3 * s), (0.3, 0.3, 0.3))
    elif kind == "plant":
        shadow(cv, Ellipse(x + 4, yb, 12 * s, 4 * s), 0.3, 3)
        fill(cv, Poly([(x - 12 * s, yb - 20 * s), (x + 12 * s, yb - 20 * s), (x + 8 * s, yb), (x - 8 * s, yb)]),
             (0.72, 0.38, 0.22), shade=sh_cyl(x, 12 * s))
        for k in range(9):
            a = -math.pi / 2 + (k - 4) * 0.32
            ln = (14 + rng.rand() * 10) * s
            fill(cv, Ellipse(x + math.cos(a) * ln * 0.6, yb - 20 * s + math.sin(a) * ln * 0.7, ln * 0.55, 3.2 * s, a),
                 (0.18 + 0.1 * rng.rand(), 0.48, 0.18), shade=sh_round(3, 0.6))
    elif kind == "roll":
        shadow(cv, Ellipse(x + 4, yb, 13 * s, 4 * s), 0.3, 3)
        fill(cv, RRect.box(x - 12 * s, yb - 42 * s, x + 12 * s, yb - 2, 2), (0.96, 0.96, 0.94), shade=sh_cyl(x, 12 * s))
        fill(cv, Ellipse(x, yb - 42 * s, 12 * s, 3.5 * s), (0.85, 0.85, 0.82))
        fill(cv, Ellipse(x, yb - 42 * s, 4 * s, 1.6 * s), (0.55, 0.45, 0.35))
    elif kind == "bowl":
        col = [rgb(0.30, 0.45, 0.70), rgb(0.95, 0.95, 0.92), rgb(0.85, 0.55, 0.25)][rng.randint(3)]
        shadow(cv, Ellipse(x + 4, yb, 20 * s, 6 * s), 0.3, 3)
        fill(cv, Inter(Ellipse(x, yb - 12 * s, 22 * s, 14 * s), RRect.box(x - 30 * s, yb - 12 * s, x + 30 * s, yb + 5)),
             col, shade=sh_cyl(x, 22 * s))
        fill(cv, Ellipse(x, yb - 12 * s, 22 * s, 6 * s), col * 1.05)
        fill(cv, Ellipse(x, yb - 11.5 * s, 19 * s, 4.8 * s), col * 0.6)
    elif kind == "board":
        fill(cv, RRect.box(x - 20 * s, yb - 62 * s, x + 20 * s, yb, 6 * s), (0.76, 0.58, 0.38),
             shade=sh_cyl(x, 20 * s, 0.75, 0.1))
        fill(cv, Circle(x, yb - 52 * s, 3.5 * s), (0.35, 0.28, 0.2))


def distractors(cv, rng, yb, ranges, kinds=("bottle", "canister", "plant", "roll", "bowl", "board"), n=4):
    """Place a few items along the back of the counter inside the free x ranges."""
    slots = []
    for x0, x1 in ranges:
        x0, x1 = max(x0, -10), min(x1, cv.w + 10)
        k = int((x1 - x0) // 45)
        for i in range(k):
            slots.append(x0 + 22 + 45 * i)
    order = rng.permutation(len(slots))[:n]
    for idx in sorted(order.tolist()):
        kind = kinds[rng.randint(len(kinds))]
        distractor(cv, kind, slots[idx] + rng.randint(-6, 7), yb + rng.randint(0, 5), rng, 0.9 + 0.2 * rng.rand())


# --------------------------------------------------------------------------
# Hands (seen from a head-mounted camera: back of the hand, forearm from the
# bottom edge)
# --------------------------------------------------------------------------


def hand(cv, st, wx, wy, ang_deg, side="R", pose="open", s=1.0, arm_len=260.0, bend=0.0, cast=True):
    a = math.radians(ang_deg)
    d = (math.cos(a), math.sin(a))
    p = (-d[1], d[0])
    ts = -1.0 if side == "R" else 1.0  # thumb on the -p side for a right hand
    skin = st.skin
    ab = math.radians(ang_deg + bend * (1 if side == "R" else -1))
    anchor = (wx - math.cos(ab) * arm_len * s, wy - math.sin(ab) * arm_len * s)
    parts = []
    arm = Capsule(anchor, (wx, wy), 27 * s, 14.5 * s)
    palm_c = (wx + d[0] * 17 * s, wy + d[1] * 17 * s)
    palm = RRect(palm_c[0], palm_c[1], 18 * s, 15.5 * s, 10 * s, a)
    fingers = []
    base = (wx + d[0] * 28 * s, wy + d[1] * 28 * s)
    offs = [10.5, 3.5, -3.5, -10.5]
    lens = [21.0, 24.0, 22.0, 17.0]
    spread = [-7.0, -2.0, 3.0, 8.0]
    for i in range(4):
        off = offs[i] * ts * s
        if pose == "grip":
            ln, sp = lens[i] * 0.55, spread[i] * 0.3
        elif pose == "point":
            ln, sp = (lens[i] * 1.05, -2.0) if i == 0 else (lens[i] * 0.45, spread[i] * 0.3)
        elif pose == "pinch":
            ln, sp = lens[i] * 0.62, -spread[i] * 0.6
        elif pose == "flat":
            ln, sp = lens[i], spread[i] * 0.4
        else:
            ln, sp = lens[i], spread[i]
        fa = a + math.radians(sp) * ts * -1.0
        fd = (math.cos(fa), math.sin(fa))
        b0 = (base[0] + p[0] * off, base[1] + p[1] * off)
        b1 = (b0[0] + fd[0] * ln * s, b0[1] + fd[1] * ln * s)
        rr = (4.9 if i < 3 else 4.3) * s * (1.12 if pose == "grip" else 1.0)
        fingers.append((Capsule(b0, b1, rr, rr * 0.88), b1, fd, rr))
    ta = a + math.radians(40 if pose == "open" else 22 if pose in ("grip", "flat") else 30) * ts
    td = (math.cos(ta), math.sin(ta))
    t0 = (wx + d[0] * 10 * s + p[0] * ts * 10 * s, wy + d[1] * 10 * s + p[1] * ts * 10 * s)
    tl = 24.0 if pose in ("open", "flat") else 19.0
    t1 = (t0[0] + td[0] * tl * s, t0[1] + td[1] * tl * s)
    thumb = Capsule(t0, t1, 7.0 * s, 5.0 * s)
    parts = [arm, palm, thumb] + [f[0] for f in fingers]
    if cast:
        shadow(cv, Union(*parts), 0.22, 9.0, 7.0, 9.0)
    fill(cv, arm, skin * 0.97, shade=sh_round(20 * s, 0.62))
    if st.sleeve is not None:
        sl_end = (anchor[0] + (wx - anchor[0]) * 0.58, anchor[1] + (wy - anchor[1]) * 0.58)
        sleeve = Capsule(anchor, sl_end, 31 * s, 22 * s)
        fill(cv, sleeve, st.sleeve, shade=sh_round(22 * s, 0.55))
        fill(cv, Ring(Capsule(anchor, sl_end, 29 * s, 20.5 * s), 1.0), st.sleeve * 0.7, alpha=0.6)
    fill(cv, palm, skin, shade=sh_round(13 * s, 0.72))
    for f in reversed(fingers):
        fill(cv, f[0], skin, shade=sh_round(f[3], 0.68))
        tip, fd, rr = f[1], f[2], f[3]
        if pose != "grip":
            fill(cv, Ellipse(tip[0] - fd[0] * rr * 0.5, tip[1] - fd[1] * rr * 0.5, rr * 0.55, rr * 0.7,
                             math.atan2(fd[1], fd[0])), skin * 1.08 + 0.06, alpha=0.6)
    fill(cv, thumb, skin, shade=sh_round(6 * s, 0.66))
    # knuckle creases
    for i in range(3):
        off = (offs[i] + offs[i + 1]) / 2 * ts * s
        k0 = (base[0] + p[0] * off - d[0] * 4 * s, base[1] + p[1] * off - d[1] * 4 * s)
        fill(cv, Capsule(k0, (k0[0] + d[0] * 5 * s, k0[1] + d[1] * 5 * s), 0.7 * s), skin * 0.6, alpha=0.5)


def hand_at(cv, st, tip, ang_deg, pose, side="R", s=1.0, **kw):
    """Place a hand so that its working point (fingertips / grip centre) is at ``tip``."""
    reach = {"open": 48.0, "flat": 46.0, "point": 52.0, "grip": 34.0, "pinch": 38.0}[pose]
    a = math.radians(ang_deg)
    hand(cv, st, tip[0] - math.cos(a) * reach * s, tip[1] - math.sin(a) * reach * s, ang_deg, side, pose, s, **kw)


# --------------------------------------------------------------------------
# Layouts and actions.  Each action renderer draws the whole frame for
# state 0 (input) or 1 (target).
# --------------------------------------------------------------------------

HZ = 92.0  # wall/counter line in the counter layout


def counter_scene(cv, st, rng, free, upper=True, items=4):
    wall(cv, st)
    if upper:
        upper_cabinets(cv, st, 24.0)
    counter(cv, st, HZ)
    distractors(cv, rng, HZ + 6, free, n=items)


def cabinet_scene(cv, st, rng):
    """Standing in front of the lower cabinets: counter strip, drawers, doors."""
    wall(cv, st, 36.0)
    X, Y = cv.Xf, cv.Yf
    col = st.field(cv, ("counter", 36.0, 96.0), lambda: counter_texture(st, X, Y, 36.0, -60.0, cv.cx))
    paint_region(cv, np.clip(Y - 36.0 + 0.5, 0, 1) * np.clip(70.0 - Y + 0.5, 0, 1), col)
    sh = np.exp(-np.maximum(Y - 36.0, 0) / 3.0) * (Y >= 35.5)
    cv.img *= (1.0 - 0.3 * sh)[..., None]
    distractors(cv, rng, 52.0, [(-20, cv.w + 20)], kinds=("bottle", "canister", "bowl", "plant"), n=3)
    fill(cv, RRect.box(-30, 66, cv.w + 30, 78), st.ccol * 1.05, shade=sh_vgrad(66, 78, 1.1, 0.8))
    body = st.cab * st.field(cv, ("body",), lambda: 0.93 + 0.07 * fbm(st.noise2, X / 30.0, Y / 90.0))[..., None]
    paint_region(cv, np.clip(Y - 78.0 + 0.5, 0, 1) * np.clip(238.0 - Y + 0.5, 0, 1), body * 0.8)
    cv.img *= (1.0 - 0.35 * np.exp(-np.maximum(Y - 78.0, 0) / 5.0) * (Y >= 77.5))[..., None]
    # floor
    fl = rgb(0.55, 0.50, 0.45) * st.field(cv, ("floor",), lambda: 0.9 + 0.15 * fbm(st.noise, X / 25.0, Y / 8.0))[..., None]
    paint_region(cv, np.clip(Y - 238.0 + 0.5, 0, 1), fl)
    cols = []
    for k in range(-3, 4):
        x0, x1 = cv.cx + 112 * k - 54, cv.cx + 112 * k + 54
        cols.append((x0, x1))
        if k != 0:
            cabinet_front(cv, st, (x0, 84, x1, 134), "drawer")
        cabinet_front(cv, st, (x0, 140, x1, 232), "door_l" if k % 2 == 0 else "door_r")
    return cols


def cabinet_front(cv, st, box, kind, shade_k=1.0):
    x0, y0, x1, y1 = box
    fill(cv, RRect.box(x0 - 1, y0 - 1, x1 + 1, y1 + 2, 2), st.cab * 0.35, alpha=0.6, soft=2)
    fill(cv, RRect.box(x0, y0, x1, y1, 2), st.cab * shade_k, shade=sh_vgrad(y0, y1, 1.02, 0.92))
    fill(cv, Ring(RRect.box(x0 + 7, y0 + 7, x1 - 7, y1 - 7, 2), 0.8), st.cab * 0.78 * shade_k, alpha=0.9)
    fill(cv, Ring(RRect.box(x0 + 8.5, y0 + 8.5, x1 - 5.5, y1 - 5.5, 2), 0.6), st.cab * 1.1 * shade_k + 0.04, alpha=0.6)
    handle_col = rgb(0.72, 0.73, 0.75)
    if kind == "drawer":
        cx, cy = (x0 + x1) / 2, y0 + (y1 - y0) * 0.38
        shadow(cv, Capsule((cx - 20, cy), (cx + 20, cy), 2.6), 0.3, 2.0, 1.5, 2.5)
        fill(cv, Capsule((cx - 20, cy), (cx + 20, cy), 2.6), handle_col, shade=sh_round(2.6, 0.55))
    elif kind in ("door_l", "door_r"):
        hx = x1 - 10 if kind == "door_l" else x0 + 10
        shadow(cv, Capsule((hx, y0 + 12), (hx, y0 + 40), 2.6), 0.3, 2.0, 2.0, 1.5)
        fill(cv, Capsule((hx, y0 + 12), (hx, y0 + 40), 2.6), handle_col, shade=sh_round(2.6, 0.55))


def utensils(cv, rng, quad_top, quad_bot, x0, x1):
    n = 6
    for i in range(n):
        x = x0 + (i + 0.5) * (x1 - x0) / n + rng.randint(-3, 4)
        ya, yb = quad_top + 4, quad_bot - 4
        col = rgb(0.80, 0.81, 0.83) if i % 3 else rgb(0.45, 0.30, 0.18)
        fill(cv, Capsule((x, ya + 8), (x + rng.randint(-3, 4), yb), 1.6), col, shade=sh_round(1.6, 0.6))
        if i % 2 == 0:
            fill(cv, Ellipse(x, ya + 5, 3.2, 5.5), col, shade=sh_round(3, 0.6))
        else:
            for j in (-1.5, 0, 1.5):
                fill(cv, Capsule((x + j * 1.2, ya), (x + j * 0.8, ya + 9), 0.7), col)


def act_drawer(cv, st, rng, state, opening):
    cabinet_scene(cv, st, rng)
    is_open = (state == 1) == opening
    x0, y0, x1, y1 = cv.cx - 54, 84.0, cv.cx + 54, 134.0
    if is_open:
        g, dy = 1.14, 40.0
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + dy
        hw, hh = (x1 - x0) / 2 * g, (y1 - y0) / 2 * g
        fx0, fy0, fx1, fy1 = cx - hw, cy - hh, cx + hw, cy + hh
        fill(cv, RRect.box(x0, y0, x1, y1), (0.06, 0.05, 0.05))
        floor = Poly([(x0 + 5, y0 + 3), (x1 - 5, y0 + 3), (fx1 - 6, fy0), (fx0 + 6, fy0)])
        fill(cv, floor, rgb(0.80, 0.70, 0.55), shade=sh_vgrad(y0, fy0, 0.45, 1.0))
        for sgn in (-1, 1):
            xa, xb = (x0 + 3, fx0 + 3) if sgn < 0 else (x1 - 3, fx1 - 3)
            fill(cv, Poly([(xa, y0 + 3), (xa + 4 * -sgn, y0 + 3), (xb + 5 * -sgn, fy0), (xb, fy0)]),
                 st.cab * 0.9, shade=sh_vgrad(y0, fy0, 0.6, 1.0))
        utensils(cv, rng, y0 + 5, fy0, x0 + 12, x1 - 12)
        shadow(cv, RRect.box(fx0, fy0, fx1, fy1), 0.45, 6.0, 3.0, 8.0)
        cabinet_front(cv, st, (fx0, fy0, fx1, fy1), "drawer", 1.06)
        hy = fy0 + (fy1 - fy0) * 0.38
    else:
        cabinet_front(cv, st, (x0, y0, x1, y1), "drawer")
        hy = y0 + (y1 - y0) * 0.38
    hx = cv.cx
    if state == 1 and opening:
        hand_at(cv, st, (hx + 4, hy + 2), -100, "grip", s=1.05)
    elif state == 1:
        hand_at(cv, st, (hx + 2, hy + 10), -96, "flat", s=1.0)
    elif opening:
        hand_at(cv, st, (hx + 36, 210), -112, "open", s=1.05)
    else:
        hand_at(cv, st, (hx + 6, hy + 14), -98, "flat", s=1.08)


def jar(cv, x, yb, w, h, col, lid_col):
    fill(cv, RRect.box(x - w, yb - h, x + w, yb, 3), col, shade=sh_cyl(x, w))
    fill(cv, RRect.box(x - w * 0.9, yb - h - 6, x + w * 0.9, yb - h + 1, 2), lid_col, shade=sh_cyl(x, w))
    fill(cv, RRect.box(x - w, yb - h * 0.65, x + w, yb - h * 0.3), (0.95, 0.93, 0.85), shade=sh_cyl(x, w))


def act_door(cv, st, rng, state, opening):
    cabinet_scene(cv, st, rng)
    is_open = (state == 1) == opening
    x0, y0, x1, y1 = cv.cx - 54, 140.0, cv.cx + 54, 232.0
    cabinet_front(cv, st, (x0, 84, x1, 134), "drawer")
    if is_open:
        fill(cv, RRect.box(x0, y0, x1, y1), (0.10, 0.09, 0.08), shade=sh_vgrad(y0, y1, 0.6, 1.4))
        fill(cv, RRect.box(x0 + 4, y0 + 4, x1 - 4, y1 - 3), st.cab * 0.35, shade=sh_vgrad(y0, y1, 0.5, 1.0))
        fill(cv, RRect.box(x0 + 2, 184, x1 - 2, 188), st.cab * 0.9)
        fill(cv, RRect.box(x0 + 2, 188, x1 - 2, 190), st.cab * 0.4)
        cols = [rgb(0.85, 0.30, 0.15), rgb(0.25, 0.45, 0.70), rgb(0.90, 0.75, 0.25), rgb(0.35, 0.60, 0.30)]
        for i, xx in enumerate((x0 + 18, x0 + 44, x0 + 70, x0 + 92)):
            jar(cv, xx, 184, 9, 26 + (i % 2) * 8, cols[i], (0.85, 0.85, 0.85) if i % 2 else (0.25, 0.25, 0.25))
        for i, xx in enumerate((x0 + 24, x0 + 58, x0 + 86)):
            fill(cv, RRect.box(xx - 13, 200, xx + 13, 229, 2), cols[(i + 2) % 4] * 0.9, shade=sh_cyl(xx, 13))
        # the door swung towards the camera: we see its inner face on the hinge side
        fx = x0 - 44
        door = Poly([(x0, y0), (fx, y0 - 10), (fx, y1 + 16), (x0, y1)])
        shadow(cv, door, 0.35, 6.0, 5.0, 4.0)
        fill(cv, door, st.cab * 0.82, shade=lambda X, Y, d: 0.85 + 0.2 * np.clip((X - fx) / 44.0, 0, 1))
        fill(cv, Ring(Poly([(x0 - 5, y0 + 7), (fx + 6, y0 - 2), (fx + 6, y1 + 8), (x0 - 5, y1 - 6)]), 0.7),
             st.cab * 0.65, alpha=0.8)
        fill(cv, Capsule((fx, y0 - 10), (fx, y1 + 16), 1.5), st.cab * 1.15)
        grip = (fx - 2, y0 + 30)
    else:
        cabinet_front(cv, st, (x0, y0, x1, y1), "door_l")
        grip = (x1 - 10, y0 + 26)
    if state == 1 and opening:
        hand_at(cv, st, grip, -70, "grip", s=1.05, bend=-15)
    elif state == 1:
        hand_at(cv, st, (cv.cx + 10, 190), -95, "flat", s=1.05)
    elif opening:
        hand_at(cv, st, (grip[0] + 30, 222), -105, "open", s=1.05)
    else:
        hand_at(cv, st, grip, -70, "grip", s=1.05, bend=-15)


def fridge_items(cv, rng, x0, x1, shelves):
    cols = [rgb(0.85, 0.25, 0.15), rgb(0.95, 0.95, 0.93), rgb(0.30, 0.60, 0.25), rgb(0.95, 0.75, 0.20),
            rgb(0.30, 0.45, 0.80), rgb(0.60, 0.30, 0.50)]
    for _si, sy in enumerate(shelves):
        x = x0 + 10
        while x < x1 - 20:
            kind = rng.randint(4)
            c = cols[rng.randint(len(cols))]
            if kind == 0:
                w, h = 9, 30
                fill(cv, RRect.box(x, sy - h, x + 2 * w, sy, 4), c, shade=sh_cyl(x + w, w))
                fill(cv, Capsule((x + w, sy - h), (x + w, sy - h - 10), 3.5), c * 0.9)
            elif kind == 1:
                w, h = 14, 20
                fill(cv, RRect.box(x, sy - h, x + 2 * w, sy, 3), c, shade=sh_cyl(x + w, w))
                fill(cv, RRect.box(x, sy - h - 4, x + 2 * w, sy - h + 1, 2), c * 0.7)
            elif kind == 2:
                w, h = 12, 14
                fill(cv, Ellipse(x + w, sy - h / 2, w, h / 2), c, shade=sh_round(6, 0.55))
            else:
                w, h = 11, 26
                fill(cv, Poly([(x, sy - h), (x + 2 * w, sy - h), (x + 2 * w, sy), (x, sy)]), c,
                     shade=sh_cyl(x + w, w, 0.7, 0.1))
                fill(cv, Poly([(x, sy - h), (x + w, sy - h - 8), (x + 2 * w, sy - h)]), c * 0.85)
            x += 2 * w + 6 + rng.randint(0, 6)


def act_fridge(cv, st, rng, state, opening):
    counter_scene(cv, st, rng, [(-20, cv.cx - 125), (cv.cx + 125, cv.w + 20)], upper=False, items=2)
    is_open = (state == 1) == opening
    x0, x1 = cv.cx - 118, cv.cx + 118
    steel = rgb(0.84, 0.85, 0.86)

    def brushed(X, Y, d):
        n = sample_noise(st.noise2, X * 0.7, Y * 0.02)
        return steel * (0.92 + 0.08 * n)[..., None] * (0.92 + 0.1 * np.clip((X - x0) / (x1 - x0), 0, 1))[..., None]

    shadow(cv, RRect.box(x0, -20, x1, 280), 0.4, 10.0, 6.0, 0.0)
    fill(cv, RRect.box(x0, -20, x1, 280, 3), brushed)
    fill(cv, RRect.box(x0 - 1, 70, x1 + 1, 74), steel * 0.35)
    fill(cv, Capsule((x0 + 20, 50), (x0 + 90, 50), 2.5), steel * 0.6, shade=sh_round(2.5, 0.6))
    if is_open:
        fill(cv, RRect.box(x0 + 2, 74, x1 - 2, 280), (0.07, 0.07, 0.08))
        def lit(X, Y, d):
            return rgb(0.93, 0.95, 0.96) * (0.78 + 0.25 * np.exp(-((Y - 90.0) / 90.0) ** 2))[..., None]
        fill(cv, RRect.box(x0 + 9, 80, x1 - 9, 280), lit)
        shelves = [126.0, 178.0, 228.0]
        fridge_items(cv, rng, x0 + 9, x1 - 9, shelves)
        for sy in shelves:
            fill(cv, RRect.box(x0 + 9, sy, x1 - 9, sy + 4), (0.82, 0.90, 0.94), alpha=0.85)
            fill(cv, RRect.box(x0 + 9, sy + 4, x1 - 9, sy + 6), (0.55, 0.62, 0.66), alpha=0.8)
        fill(cv, RRect.box(x0 + 9, 80, x1 - 9, 86), (1.0, 1.0, 0.95), alpha=0.8, soft=3.0)
        # the door swung out to the right (hinge on the right edge): its inner side
        fx = x1 + 78
        door = Poly([(x1, 74), (fx, 52), (fx, 300), (x1, 280)])
        fill(cv, door, rgb(0.88, 0.89, 0.90), shade=lambda X, Y, d: 0.8 + 0.2 * np.clip((X - x1) / 78.0, 0, 1))
        for k, yy in enumerate((130.0, 190.0)):
            fill(cv, Poly([(x1 + 6, yy - 6), (fx - 6, yy - 14), (fx - 6, yy + 10), (x1 + 6, yy + 6)]),
                 (0.70, 0.80, 0.86), alpha=0.8)
            for j in range(3):
                bx = x1 + 14 + j * 20
                fill(cv, RRect.box(bx, yy - 30 - j * 2, bx + 12, yy - j * 2, 3),
                     [rgb(0.25, 0.55, 0.30), rgb(0.95, 0.95, 0.92), rgb(0.85, 0.55, 0.15)][(j + k) % 3],
                     shade=sh_cyl(bx + 6, 6))
        grip = (min(fx - 6, cv.w - 12), 150.0)
    else:
        fill(cv, RRect.box(x1 - 2, 74, x1 + 1, 280), steel * 0.5)
        fill(cv, Capsule((x0 + 14, 96), (x0 + 14, 196), 4.0), steel * 0.75, shade=sh_round(4, 0.5))
        grip = (x0 + 14, 150.0)
    if state == 1 and opening:
        hand_at(cv, st, grip, -80, "grip", s=1.1, bend=5)
    elif state == 1:
        hand_at(cv, st, (cv.cx + 40, 150), -95, "flat", s=1.1)
    elif opening:
        hand_at(cv, st, (grip[0] + 4, grip[1]), -60, "grip", s=1.1, bend=-10)
    else:
        hand_at(cv, st, grip, -80, "flat", s=1.1, bend=5)


def act_cup(cv, st, rng, state, picking, color):
    counter_scene(cv, st, rng, [(-20, cv.cx - 70), (cv.cx + 110, cv.w + 20)])
    on_table = (state == 0) == picking
    x, yb = cv.cx - 10, 196.0
    if on_table:
        cup(cv, x, yb, 24, 40, color, handle=1, contents=rgb(0.30, 0.17, 0.08))
        if state == 0:
            hand_at(cv, st, (x + 64, 220), -115, "open", s=1.1)
        else:
            hand_at(cv, st, (x + 44, yb - 16), -150, "open", s=1.1, bend=30)
    else:
        lx, lyb = x + 30, 148.0
        shadow(cv, Ellipse(x + 34, yb + 6, 30, 10), 0.18, 10.0)
        cup(cv, lx, lyb, 27, 44, color, handle=1, contents=rgb(0.30, 0.17, 0.08), shadow_on=False)
        hand_at(cv, st, (lx + 18, lyb - 20), -168, "grip", s=1.1, bend=40)


def act_plate(cv, st, rng, state, color):
    counter_scene(cv, st, rng, [(-20, cv.cx - 80), (cv.cx + 80, cv.w + 20)])
    x, y = cv.cx - 10, 184.0
    n = 3 if state == 0 else 2
    for i in range(n):
        plate(cv, x, y - i * 4.5, 56, color, shadow_on=(i == 0))
    if state == 0:
        hand_at(cv, st, (x + 70, 228), -115, "open", s=1.1)
    else:
        px, py = x + 34, 112.0
        shadow(cv, Ellipse(px + 10, py + 80, 50, 18), 0.15, 12.0)
        plate(cv, px, py, 56, color, ang=-0.22, tilt=0.62, shadow_on=False)
        hand_at(cv, st, (px + 50, py + 8), -170, "grip", s=1.1, bend=40)


def sink_scene(cv, st, rng):
    counter_scene(cv, st, rng, [(-20, cv.cx - 130), (cv.cx + 130, cv.w + 20)], items=3)
    sx, sy = cv.cx - 10, 170.0
    fill(cv, RRect(sx, sy, 112, 58, 18), (0.80, 0.81, 0.82), shade=sh_vgrad(sy - 58, sy + 58, 1.0, 0.9))
    inner = RRect(sx, sy + 2, 100, 48, 14)
    fill(cv, inner, lambda X, Y, d: rgb(0.58, 0.60, 0.62) * (0.93 + 0.07 * sample_noise(st.noise2, X * 0.05, Y * 1.0))[..., None],
         shade=sh_vgrad(sy - 48, sy + 50, 0.55, 1.0))
    fill(cv, Ring(inner, 1.2), (0.35, 0.36, 0.38), alpha=0.6)
    fill(cv, Ellipse(sx + 10, sy + 22, 9, 4), (0.2, 0.2, 0.22))
    fill(cv, Ring(Ellipse(sx + 10, sy + 22, 9, 4), 0.8), (0.8, 0.8, 0.82))
    return sx, sy


def tap(cv, cx, on):
    bx, by = cx + 60, 112.0
    chrome = rgb(0.78, 0.80, 0.83)
    fill(cv, Ellipse(bx, by, 13, 6), chrome * 0.7)
    fill(cv, Capsule((bx, by - 2), (bx, by - 56), 6.0, 5.0), chrome, shade=sh_cyl(bx, 6, 0.5, 0.35))
    pts = [(bx, by - 56), (bx - 6, by - 66), (bx - 20, by - 70), (bx - 32, by - 62), (bx - 36, by - 40)]
    for a, b in zip(pts[:-1], pts[1:], strict=False):
        fill(cv, Capsule(a, b, 5.0), chrome, shade=sh_round(5, 0.55))
    fill(cv, Ellipse(bx - 36, by - 38, 5, 2.5), (0.3, 0.3, 0.32))
    if on:
        lever = ((bx + 2, by - 20), (bx + 14, by - 40))
    else:
        lever = ((bx + 2, by - 20), (bx + 24, by - 24))
    fill(cv, Ellipse(bx + 3, by - 20, 6, 6), chrome * 0.9, shade=sh_round(6, 0.5))
    fill(cv, Capsule(lever[0], lever[1], 3.2, 2.6), chrome, shade=sh_round(3, 0.5))
    return (bx - 36, by - 37), lever[1]


def act_tap(cv, st, rng, state, turning_on):
    sx, sy = sink_scene(cv, st, rng)
    on = (state == 1) == turning_on
    spout, lever_end = tap(cv, cv.cx, on)
    if on:
        stream(cv, spout, (spout[0], sy + 14), 3.0, rng)
    if state == 1:
        hand_at(cv, st, (lever_end[0] + 3, lever_end[1] + 2), -115, "pinch", s=1.0, bend=10)
    elif turning_on:
        hand_at(cv, st, (lever_end[0] + 40, 230), -105, "open", s=1.0)
    else:
        hand_at(cv, st, (lever_end[0] + 3, lever_end[1] + 2), -115, "pinch", s=1.0, bend=10)


def act_wash(cv, st, rng, state):
    sx, sy = sink_scene(cv, st, rng)
    spout, lever_end = tap(cv, cv.cx, state == 1)
    px, py = sx - 12, sy + 6
    handle = (px - 120, sy + 74)
    pan(cv, px, py, 56, 32, handle, wet=float(state))
    if state == 0:
        for _i in range(9):
            fill(cv, Ellipse(px + (rng.rand() - 0.5) * 70, py + (rng.rand() - 0.5) * 36, 4 + rng.rand() * 4, 3,
                             rng.rand() * 3), (0.45, 0.28, 0.12), alpha=0.8)
        hand_at(cv, st, (px + 70, 232), -110, "open", s=1.05)
        hand_at(cv, st, (handle[0] + 30, handle[1] - 6), -30, "grip", side="L", s=1.05)
    else:
        stream(cv, spout, (spout[0] - 2, py - 4), 3.0, rng)
        foam(cv, px + 4, py + 2, 40, 20, rng, 60)
        sponge(cv, px + 18, py + 4, -0.4)
        hand_at(cv, st, (px + 22, py + 4), -120, "grip", s=1.05, bend=10)
        hand_at(cv, st, (handle[0] + 30, handle[1] - 6), -30, "grip", side="L", s=1.05)


def board(cv, st, x, y, hw, hh):
    fill(cv, RRect(x + 3, y + 6, hw, hh, 10), (0.0, 0.0, 0.0), alpha=0.35, soft=5)
    fill(cv, RRect(x, y + 4, hw, hh, 10), rgb(0.55, 0.40, 0.26))
    def wood(X, Y, d):
        return rgb(0.80, 0.63, 0.44) * (
            0.92 + 0.08 * np.sin(Y * 0.9 + 4 * fbm(st.noise, X * 0.02, Y * 0.1))
            + 0.06 * sample_noise(st.noise2, X * 0.05, Y * 0.8))[..., None]
    fill(cv, RRect(x, y, hw, hh, 10), wood)
    fill(cv, Ellipse(x + hw - 14, y, 5, 4), rgb(0.40, 0.30, 0.20))


def act_cut(cv, st, rng, state):
    counter_scene(cv, st, rng, [(-20, cv.cx - 110), (cv.cx + 110, cv.w + 20)])
    bx, by = cv.cx - 4, 174.0
    board(cv, st, bx, by, 100, 44)
    tx, ty = bx - 18, by - 4
    if state == 0:
        tomato(cv, tx, ty, 19)
        hand_at(cv, st, (tx - 14, ty + 4), -40, "grip", side="L", s=1.05)
        knife(cv, tx + 95, ty - 32, 185)
        hand_at(cv, st, (tx + 110, ty - 30), -120, "grip", s=1.05, bend=15)
    else:
        tomato(cv, tx, ty, 19, cut=True, gap=8)
        hand_at(cv, st, (tx - 24, ty + 6), -40, "grip", side="L", s=1.05)
        knife(cv, tx + 64, ty + 34, 250, scale=1.0)
        hand_at(cv, st, (tx + 62, ty + 42), -130, "grip", s=1.05, bend=15)


def act_knife_put(cv, st, rng, state):
    counter_scene(cv, st, rng, [(-20, cv.cx - 110), (cv.cx + 110, cv.w + 20)])
    bx, by = cv.cx - 4, 174.0
    board(cv, st, bx, by, 100, 44)
    tomato(cv, bx - 40, by - 6, 17, cut=True, gap=6)
    if state == 0:
        knife(cv, bx + 70, by - 40, 200, scale=1.05)
        hand_at(cv, st, (bx + 78, by - 38), -120, "grip", s=1.1, bend=15)
    else:
        knife(cv, bx + 78, by + 26, 190, scale=1.0)
        hand_at(cv, st, (bx + 124, by + 64), -100, "open", s=1.1)


def stove(cv, st, x, y):
    fill(cv, RRect(x, y, 135, 62, 6), (0.08, 0.08, 0.09), shade=sh_vgrad(y - 60, y + 60, 1.5, 1.0))
    for dx in (-70, 70):
        for dy in (-22, 26):
            fill(cv, Ring(Ellipse(x + dx, y + dy, 30 + dy * 0.2, 13 + dy * 0.08), 1.0), (0.28, 0.28, 0.30), alpha=0.9)
    fill(cv, Ellipse(x - 60, y - 50, 60, 8), (1, 1, 1), alpha=0.08, soft=6)


def act_lid(cv, st, rng, state, color):
    counter_scene(cv, st, rng, [(-20, cv.cx - 140), (cv.cx + 140, cv.w + 20)], items=3)
    stove(cv, st, cv.cx, 170)
    px, py = cv.cx - 12, 150.0
    if state == 0:
        pot(cv, px, py, 58, 22, 40, color, lid=True)
        hand_at(cv, st, (px + 80, 236), -110, "open", s=1.05)
    else:
        pot(cv, px, py, 58, 22, 40, color, lid=False, lid_pos=(px + 64, py - 62, -0.35, 1.7), rng=rng)
        hand_at(cv, st, (px + 64, py - 68), -110, "pinch", s=1.05, bend=10)


def act_pour(cv, st, rng, state, color):
    counter_scene(cv, st, rng, [(-20, cv.cx - 80), (cv.cx + 120, cv.w + 20)])
    gx, gyb = cv.cx - 36, 206.0
    if state == 0:
        glass(cv, gx, gyb, 20, 15, 72, 0.18)
        tip = (gx + 28, gyb - 96)
        bottle(cv, tip, 160, 70, 15, color)
        hand_at(cv, st, (tip[0] + 52, tip[1] - 14), -160, "grip", s=1.05, bend=40)
    else:
        glass(cv, gx, gyb, 20, 15, 72, 0.78)
        tip = (gx + 8, gyb - 100)
        stream(cv, tip, (gx + 2, gyb - 3 - 0.78 * 66), 2.2, rng)
        bottle(cv, tip, 140, 70, 15, color)
        hand_at(cv, st, (tip[0] + 46, tip[1] - 40), -150, "grip", s=1.05, bend=40)


def act_light(cv, st, rng, state):
    counter_scene(cv, st, rng, [(-20, cv.cx + 40), (cv.cx + 110, cv.w + 20)], items=4)
    fill(cv, RRect.box(-40, 24, cv.w + 40, 28), (0.25, 0.25, 0.25))
    swx, swy = cv.cx + 74, 56.0
    fill(cv, RRect(swx + 1.5, swy + 2, 10, 14, 2), (0, 0, 0), alpha=0.25, soft=2.5)
    fill(cv, RRect(swx, swy, 10, 14, 2), (0.95, 0.94, 0.90), shade=sh_round(4, 0.85))
    on = state == 1
    ty = swy - 4 if on else swy + 4
    fill(cv, RRect(swx, swy, 4, 8, 1), (0.70, 0.70, 0.68))
    fill(cv, RRect(swx, ty, 3.5, 4, 1.5), (0.99, 0.99, 0.97), shade=sh_vgrad(ty - 4, ty + 4, 1.0 if on else 0.8, 0.8 if on else 1.0))
    if on:
        _X, Y = cv.Xf, cv.Yf
        glow = np.exp(-np.maximum(Y - 28.0, 0) / 45.0) * (Y > 26) * 0.35
        cv.img += (glow[..., None] * rgb(1.0, 0.85, 0.55))
        fill(cv, RRect.box(-40, 26, cv.w + 40, 29), (1.0, 0.97, 0.85))
        hand_at(cv, st, (swx + 2, swy - 2), -105, "point", s=1.0)
    else:
        hand_at(cv, st, (swx + 14, swy + 30), -108, "point", s=1.0)


def act_wipe(cv, st, rng, state):
    counter_scene(cv, st, rng, [(-20, cv.cx - 120), (cv.cx + 120, cv.w + 20)])
    dark_counter = float(st.ccol.mean()) < 0.45
    stain = rgb(0.86, 0.80, 0.66) if dark_counter else rgb(0.32, 0.18, 0.08)
    crumb = [rgb(0.93, 0.85, 0.62), rgb(0.80, 0.62, 0.38)] if dark_counter else [rgb(0.30, 0.20, 0.12), rgb(0.95, 0.9, 0.8)]
    spots = []
    for _i in range(30):
        spots.append((cv.cx - 110 + rng.rand() * 230, 128 + rng.rand() * 100, rng.rand(), rng.randint(3)))
    for x, y, r, kind in spots:
        if state == 1 and x > cv.cx - 55:
            continue
        if kind == 0:
            fill(cv, Ellipse(x, y, 8 + 12 * r, 4 + 6 * r, r * 3), stain, alpha=0.55, soft=2.5)
            fill(cv, Ellipse(x + 2, y + 1, 4 + 6 * r, 2 + 3 * r, r * 3), stain, alpha=0.35, soft=2.0)
        else:
            fill(cv, Ellipse(x, y, 2.0 + r, 1.5 + r * 0.6, r * 3), crumb[kind - 1], shade=sh_round(1.5, 0.6))
    if state == 1:
        fill(cv, RRect.box(cv.cx - 45, 125, cv.cx + 150, 225, 20), (1, 1, 1), alpha=0.07, soft=12)
        cx, cy = cv.cx - 30, 175.0
    else:
        cx, cy = cv.cx + 95, 205.0
    rag = Poly([(cx - 30, cy - 16), (cx + 8, cy - 24), (cx + 34, cy - 6), (cx + 30, cy + 20), (cx - 8, cy + 26),
                (cx - 34, cy + 10)])
    shadow(cv, rag, 0.35, 4, 3, 4)
    fill(cv, rag, (0.25, 0.50, 0.80), shade=lambda X, Y, d: (0.85 + 0.12 * np.sin(X * 0.5 + Y * 0.3))
         * (0.75 + 0.25 * np.clip(-d / 6, 0, 1)))
    for k in range(3):
        fill(cv, Capsule((cx - 24 + k * 18, cy - 14), (cx - 14 + k * 18, cy + 18), 1.5), (0.15, 0.35, 0.60), alpha=0.6,
             soft=2)
    hand_at(cv, st, (cx + 6, cy - 6), -112, "flat", s=1.05)


# --------------------------------------------------------------------------
# The pairs
# --------------------------------------------------------------------------

ACTIONS = {
    "drawer_open": lambda cv, st, rng, s, p: act_drawer(cv, st, rng, s, True),
    "drawer_close": lambda cv, st, rng, s, p: act_drawer(cv, st, rng, s, False),
    "door_open": lambda cv, st, rng, s, p: act_door(cv, st, rng, s, True),
    "fridge_open": lambda cv, st, rng, s, p: act_fridge(cv, st, rng, s, True),
    "fridge_close": lambda cv, st, rng, s, p: act_fridge(cv, st, rng, s, False),
    "cup_pick": lambda cv, st, rng, s, p: act_cup(cv, st, rng, s, True, OBJ[p]),
    "cup_put": lambda cv, st, rng, s, p: act_cup(cv, st, rng, s, False, OBJ[p]),
    "plate_take": lambda cv, st, rng, s, p: act_plate(cv, st, rng, s, OBJ[p]),
    "tap_on": lambda cv, st, rng, s, p: act_tap(cv, st, rng, s, True),
    "tap_off": lambda cv, st, rng, s, p: act_tap(cv, st, rng, s, False),
    "wash_pan": lambda cv, st, rng, s, p: act_wash(cv, st, rng, s),
    "cut_tomato": lambda cv, st, rng, s, p: act_cut(cv, st, rng, s),
    "put_knife": lambda cv, st, rng, s, p: act_knife_put(cv, st, rng, s),
    "remove_lid": lambda cv, st, rng, s, p: act_lid(cv, st, rng, s, OBJ[p]),
    "pour": lambda cv, st, rng, s, p: act_pour(cv, st, rng, s, OBJ[p]),
    "light_on": lambda cv, st, rng, s, p: act_light(cv, st, rng, s),
    "wipe": lambda cv, st, rng, s, p: act_wipe(cv, st, rng, s),
}

# (clip, [(label, kind, param, enriched description), ...]); order is the build order.
EGO4D_CLIPS = [
    ("demo4d_0001", [
        ("#C C opens the drawer", "drawer_open", None,
         "The person reaches the right hand to the handle of the wooden drawer below the counter and pulls it "
         "outward, revealing the cutlery inside."),
        ("#C C picks up the cup", "cup_pick", "red",
         "The person wraps the right hand around the red mug on the wooden counter and lifts it up off the surface."),
        ("#C C pours water into the glass", "pour", "blue",
         "The person tilts the blue bottle held in the right hand over the glass on the counter, and water flows in "
         "until the glass is nearly full."),
    ]),
    ("demo4d_0002", [
        ("#C C turns on the tap", "tap_on", None,
         "The person lifts the lever of the kitchen tap with the right hand, and a stream of water starts running "
         "into the steel sink."),
        ("#C C washes the pan", "wash_pan", None,
         "The person holds the frying pan by its handle with the left hand under the running water and scrubs it "
         "with a yellow sponge in the right hand, covering it in soap foam."),
    ]),
    ("demo4d_0003", [
        ("#C C cuts the tomato with the knife", "cut_tomato", None,
         "The person holds the tomato on the cutting board with the left hand and slices through it with the knife "
         "in the right hand, splitting it into two halves."),
        ("#C C puts down the knife", "put_knife", None,
         "The person lowers the knife held in the right hand, lays it flat on the cutting board next to the tomato "
         "halves and lets go of the handle."),
        ("#C C removes the lid from the pot", "remove_lid", "red",
         "The person grasps the knob of the lid on the red pot with the right hand and lifts the lid off, exposing "
         "the steaming soup inside."),
    ]),
    ("demo4d_0004", [
        ("#C C opens the cabinet", "door_open", None,
         "The person grips the handle of the white cabinet door under the counter with the right hand and swings it "
         "open, showing the jars on the shelf inside."),
        ("#C C picks up a plate", "plate_take", "white",
         "The person grabs the rim of the top plate on the stack with the right hand and lifts it up off the "
         "counter."),
    ]),
    ("demo4d_0005", [
        ("#C C switches on the light", "light_on", None,
         "The person presses the light switch on the wall with the right index finger, and the lights under the "
         "cabinets come on and brighten the kitchen."),
        ("#C C closes the drawer", "drawer_close", None,
         "The person pushes the open drawer with the right hand until it slides shut into the cabinet."),
    ]),
    ("demo4d_0006", [
        ("#C C opens the fridge", "fridge_open", None,
         "The person pulls the handle of the steel fridge door with the right hand and swings the door open, "
         "revealing the lit shelves with bottles and food inside."),
        ("#C C wipes the counter with the cloth", "wipe", None,
         "The person presses a blue cloth on the dark countertop with the right hand and wipes it across, clearing "
         "away the crumbs and stains."),
    ]),
]

EPIC_CLIPS = [
    ("P90_01", [
        ("open cupboard", "door_open", None,
         "The person takes hold of the cupboard door handle with the right hand and pulls the door open, exposing "
         "the jars and tins stored on the shelf."),
        ("take plate", "plate_take", "cream",
         "The person reaches out with the right hand, grips the rim of the top plate on the stack and raises it "
         "from the worktop."),
        ("put down cup", "cup_put", "green",
         "The person lowers the green mug held in the right hand and sets it down on the worktop, then opens the "
         "hand to let go of it."),
    ]),
    ("P90_02", [
        ("turn on tap", "tap_on", None,
         "The person lifts the tap lever with the right hand and water begins to pour from the spout into the sink."),
        ("wash pan", "wash_pan", None,
         "The person scrubs the frying pan with a sponge under the running tap while holding its handle with the "
         "left hand, and soapy foam spreads over the pan."),
    ]),
    ("P90_03", [
        ("cut tomato", "cut_tomato", None,
         "The person steadies the tomato on the chopping board with the left hand and cuts through it with the "
         "knife in the right hand, leaving two halves."),
        ("put down knife", "put_knife", None,
         "The person places the knife from the right hand down onto the chopping board and moves the hand away."),
        ("remove lid", "remove_lid", "steel",
         "The person lifts the lid off the saucepan by its knob with the right hand, revealing the food cooking "
         "inside."),
    ]),
    ("P90_04", [
        ("pour water", "pour", "teal",
         "The person tips the bottle in the right hand over the glass so that water pours in and the level in the "
         "glass rises."),
        ("turn off tap", "tap_off", None,
         "The person pushes the tap lever down with the right hand and the running water stops."),
    ]),
    ("P91_01", [
        ("open fridge", "fridge_open", None,
         "The person grabs the fridge handle with the right hand and pulls the door open, so the lit shelves and "
         "food inside come into view."),
        ("close fridge", "fridge_close", None,
         "The person pushes the open fridge door with the right hand and swings it shut, hiding the shelves inside."),
    ]),
    ("P91_02", [
        ("open drawer", "drawer_open", None,
         "The person hooks the right hand around the drawer handle and pulls the drawer out toward the body, "
         "showing the utensils inside."),
        ("turn on light", "light_on", None,
         "The person flicks the wall switch up with the right index finger and the kitchen lights come on."),
    ]),
]


def ego4d_action_id(clip, idx):
    h = hashlib.sha256(f"egobench-demo/{clip}/{idx}".encode()).digest()
    return str(uuid.UUID(bytes=h[:16], version=4))


def pair_plan(domain):
    """Yield (clip, action_id, label, kind, param, description, in_frame, out_frame)."""
    clips = EGO4D_CLIPS if domain == "ego4d" else EPIC_CLIPS
    for clip, actions in clips:
        rng = np.random.RandomState(seed_of(domain, clip, "frames"))
        frame = 200 + int(rng.randint(0, 400))
        narration = 3 + int(rng.randint(0, 10))
        for idx, (label, kind, param, desc) in enumerate(actions):
            if domain == "ego4d":
                aid = ego4d_action_id(clip, idx)
                pnr = frame + 45 + int(rng.randint(0, 60))
                f_in, f_out = pnr - 15, pnr          # input at PRE-15, target at PNR
                frame = pnr + 120 + int(rng.randint(0, 600))
            else:
                aid = f"{clip}_{narration}"
                start = frame + int(rng.randint(30, 300))
                stop = start + 60 + int(rng.randint(0, 240))
                f_in = start - 15                     # 0.25 s before the start at 60 fps
                f_out = start + int(0.6 * (stop - start))
                frame = stop
                narration += 1 + int(rng.randint(0, 12))
            yield clip, aid, label, kind, param, desc, f_in, f_out


# --------------------------------------------------------------------------
# Rendering one frame
# --------------------------------------------------------------------------


def blur3(img):
    k = (0.25, 0.5, 0.25)
    out = img.copy()
    out[1:-1] = k[0] * img[:-2] + k[1] * img[1:-1] + k[2] * img[2:]
    tmp = out.copy()
    tmp[:, 1:-1] = k[0] * out[:, :-2] + k[1] * out[:, 1:-1] + k[2] * out[:, 2:]
    return tmp


def render(domain, clip, aid, kind, param, state):
    w = WIDTH[domain]
    cv = Canvas(w, HEIGHT)
    st = Style(clip, np.random.RandomState(seed_of(domain, clip, "style")))
    scene_rng = np.random.RandomState(seed_of(domain, clip, aid, "scene"))
    ACTIONS[kind](cv, st, scene_rng, state, param)
    # illumination: directional falloff, vignette, colour temperature
    X, Y = cv.Xf, cv.Yf
    u = (X - cv.cx) / w
    v = (Y - HEIGHT / 2) / HEIGHT
    light = (1.0 + 0.22 * st.ldir * u - 0.10 * v) * (1.0 - 0.45 * (u * u + 0.8 * v * v))
    if kind == "light_on" and state == 0:
        light = light * 0.5
    tint = rgb(1.0 + 0.04 * st.warm, 1.0, 1.0 - 0.06 * st.warm)
    if kind == "light_on" and state == 0:
        tint = rgb(0.88, 0.95, 1.08)
    img = cv.img * light[..., None] * tint
    # head-camera jitter: crop the frame at a slightly different offset per state
    jr = np.random.RandomState(seed_of(domain, clip, aid, "jitter", state))
    dx, dy = int(jr.randint(-4, 5)), int(jr.randint(-3, 4))
    m = cv.m
    img = img[m + dy:m + dy + HEIGHT, m + dx:m + dx + w]
    img = blur3(blur3(img))
    nr = np.random.RandomState(seed_of(domain, clip, aid, "noise", state))
    lum = nr.standard_normal((HEIGHT, w, 1)).astype(F32) * NOISE_LUM
    chroma = nr.standard_normal((HEIGHT, w, 3)).astype(F32) * NOISE_CHROMA
    img = img + lum + chroma
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def jpeg_bytes(arr):
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()


README = """\
# egobench `demo` split (synthetic)

This folder is a miniature LEGO-style release used by egobench's tests and
its `demo` split. It has the same layout and JSON schema as `EgoGen` from the
LEGO dataset, with {n_ego4d} Ego4D-like pairs ({w_ego4d}x256 frames, raw Ego4D
narrations such as "#C C opens the drawer") and {n_epic} EPIC-KITCHENS-like pairs
({w_epic}x256 frames, plain narrations such as "open drawer").

- Every frame is **synthetic**: a procedurally drawn first-person kitchen scene
  (walls, counters, cabinets, objects, hands) produced by
  `scripts/build_demo_split.py` from fixed seeds. None of it is real footage,
  and nothing here is taken from Ego4D, EPIC-KITCHENS or the LEGO dataset.
- Clip ids, action ids, frame numbers and metadata are made up; the
  metadata marks every clip `"synthetic": true`.
- There is no license encumbrance: the images and text were generated by the
  project's own script and are distributed with egobench under its license.
- Use it to exercise the pipeline end to end. Scores on it are **not**
  comparable with any published number.

Rebuild (byte-identical JSON, pixel-identical images up to libjpeg
differences) with:

    python scripts/build_demo_split.py --out egobench/data/demo
"""


def dump_json(path, obj):
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def build(out: Path, verbose=False):
    out = Path(out)
    tmp = out.parent / (out.name + ".tmp-build")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    counts = {}
    for domain in ("ego4d", "epickitchen"):
        sub = tmp / "EgoGen" / SUBDIR[domain]
        split, meta = {}, {}
        n = 0
        for clip, aid, label, kind, param, desc, f_in, f_out in pair_plan(domain):
            names = [f"{clip}_{f_in:010d}.jpg", f"{clip}_{f_out:010d}.jpg"]
            assert names[0] < names[1]
            folder = sub / "val" / clip / aid
            gt = sub / "val_gt_for_metric" / clip / aid
            folder.mkdir(parents=True, exist_ok=True)
            gt.mkdir(parents=True, exist_ok=True)
            for state, name in enumerate(names):
                data = jpeg_bytes(render(domain, clip, aid, kind, param, state))
                (folder / name).write_bytes(data)
                if state == 1:
                    (gt / name).write_bytes(data)
            split.setdefault(clip, {})[aid] = {
                "image_0": f"{clip}/{aid}/{names[0]}",
                "image_1": f"{clip}/{aid}/{names[1]}",
                "action": label,
                "llava_forecast_finetune": desc,
            }
            meta[clip] = {"height": HEIGHT, "width": WIDTH[domain], "fps": FPS[domain], "synthetic": True}
            n += 1
            if verbose:
                print(f"  {domain} {clip}/{aid}: {label}", file=sys.stderr)
        dump_json(tmp / f"{domain}_val.json", split)
        dump_json(tmp / f"{domain}_metadata.json", meta)
        counts[domain] = n
    (tmp / "README.md").write_text(README.format(n_ego4d=counts["ego4d"], n_epic=counts["epickitchen"],
                                                 w_ego4d=WIDTH["ego4d"], w_epic=WIDTH["epickitchen"]),
                                   encoding="utf-8")
    _FIELDS.clear()
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return counts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: egobench/data/demo)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    counts = build(Path(args.out), args.verbose)
    size = sum(p.stat().st_size for p in Path(args.out).rglob("*") if p.is_file())
    print(f"wrote {args.out}: {counts['ego4d']} ego4d + {counts['epickitchen']} epickitchen pairs, "
          f"{size / 1e6:.2f} MB in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
