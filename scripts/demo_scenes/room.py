"""Backgrounds: wall, tiles, counters and upper cabinets."""

from __future__ import annotations

import numpy as np

from .geometry import F32, RRect
from .paint import fbm, fill, sample_noise


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
