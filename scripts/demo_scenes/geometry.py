"""Signed-distance shapes in pixels (negative inside) and the colour helper every module uses."""

from __future__ import annotations

import math

import numpy as np

HEIGHT = 256

MARGIN = 8

F32 = np.float32


def rgb(*c: float) -> np.ndarray:
    return np.array(c, dtype=F32)


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
