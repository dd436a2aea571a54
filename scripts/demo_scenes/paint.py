"""The float RGB canvas, anti-aliased filling, shadows, shading functions and value noise."""

from __future__ import annotations

import math

import numpy as np

from .geometry import F32, MARGIN, Shift


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
