"""One finished frame: scene, illumination, camera jitter, blur, sensor noise, JPEG."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .actions import ACTIONS
from .geometry import F32, rgb
from .paint import Canvas
from .plan import seed_of
from .style import Style

HEIGHT = 256
WIDTH = {"ego4d": 341, "epickitchen": 456}

JPEG_QUALITY = 90
NOISE_LUM = 0.005  # sensor noise (fraction of full scale)
NOISE_CHROMA = 0.002


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
