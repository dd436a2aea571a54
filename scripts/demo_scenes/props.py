"""Kitchen objects: cups, plates, bottles, knives, pots, food and distractors."""

from __future__ import annotations

import math

import numpy as np

from .geometry import Capsule, Circle, Ellipse, Inter, Poly, Ring, RRect, Union, rgb
from .paint import fill, sh_cyl, sh_round, sh_vgrad, shadow


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
