"""Hands and forearms seen from a head-mounted camera."""

from __future__ import annotations

import math

from .geometry import Capsule, Ellipse, Ring, RRect, Union
from .paint import fill, sh_round, shadow


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
