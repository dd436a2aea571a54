"""Layouts and action renderers: each draws the whole frame for state 0 (input) or 1 (target)."""

from __future__ import annotations

import numpy as np

from .geometry import Capsule, Ellipse, Poly, Ring, RRect, rgb
from .hands import hand_at
from .paint import fbm, fill, sample_noise, sh_cyl, sh_round, sh_vgrad, shadow
from .props import bottle, cup, distractors, foam, glass, knife, pan, plate, pot, sponge, stream, tomato
from .room import counter, counter_texture, paint_region, upper_cabinets, wall
from .style import OBJ

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
