"""Per-clip scene styles (palette, counter, skin, light) and their memoised textures."""

from __future__ import annotations

from .geometry import F32, rgb

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


def forget_textures() -> None:
    """Drop the memoised textures (a finished build frees them)."""
    _FIELDS.clear()


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
