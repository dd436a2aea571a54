"""Plots as hand-written SVG (no plotting dependency).

``bar_chart_svg`` draws vertical bars with optional 95% interval whiskers, like
the paper's user-study figure (Fig. 4: win rate per method). Every label is
XML-escaped. Here in the harness because ``egobench import-amt`` writes
``winrate.svg`` itself; ``egobench report`` (the ``reports`` package) draws its
figures with it too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape

PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974",
           "#64b5cd")


def _nice_max(v: float) -> float:
    if not math.isfinite(v) or v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * e >= v:
            return m * e
    return 10 * e


def _fmt(v: float) -> str:
    return f"{v:.2f}" if math.isfinite(v) else "inf"


def bar_chart_svg(
    labels: Sequence[str],
    values: Sequence[float],
    lows: Sequence[float | None] | None = None,
    highs: Sequence[float | None] | None = None,
    *,
    title: str = "",
    unit: str = "",
    vmax: float | None = None,
    width: int = 520,
    height: int = 300,
) -> str:
    """An SVG bar chart; ``lows``/``highs`` draw interval whiskers where given."""
    n = len(labels)
    lows = list(lows) if lows is not None else [None] * n
    highs = list(highs) if highs is not None else [None] * n
    finite = [v for v in list(values) + [h for h in highs if h is not None] if v is not None and math.isfinite(v)]
    top = vmax if vmax is not None else _nice_max(max(finite, default=1.0) * 1.05)
    bottom = min(0.0, min(finite, default=0.0))
    left, right, head, foot = 48, 12, 28 if title else 10, 62
    pw, ph = width - left - right, height - head - foot
    span = (top - bottom) or 1.0

    def y(v: float) -> float:
        v = min(max(v, bottom), top)
        return head + ph * (1 - (v - bottom) / span)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" role="img">']
    if title:
        out.append(f'<title>{escape(title)}</title>')
        out.append(f'<text x="{width / 2:.1f}" y="17" text-anchor="middle" font-size="13">{escape(title)}</text>')
    for i in range(6):  # grid + axis labels
        v = bottom + span * i / 5
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 5}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}{escape(unit)}</text>')
    out.append(f'<line x1="{left}" x2="{left}" y1="{head}" y2="{head + ph}" stroke="#333"/>')
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#333"/>')
    slot = pw / max(n, 1)
    bw = slot * 0.6
    for i, (lab, v) in enumerate(zip(labels, values)):
        x = left + slot * i + (slot - bw) / 2
        cx = x + bw / 2
        color = PALETTE[i % len(PALETTE)]
        if v is not None and math.isfinite(v):
            y0, y1 = sorted((y(0), y(v)))
            out.append(f'<rect class="bar" x="{x:.1f}" y="{y0:.1f}" width="{bw:.1f}" height="{max(y1 - y0, 0.5):.1f}" '
                       f'fill="{color}"><title>{escape(str(lab))}: {_fmt(v)}{escape(unit)}</title></rect>')
        lo, hi = lows[i], highs[i]
        if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
            out.append(f'<line class="ci" x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(lo):.1f}" y2="{y(hi):.1f}" stroke="#111"/>')
            for vv in (lo, hi):
                out.append(f'<line x1="{cx - bw / 6:.1f}" x2="{cx + bw / 6:.1f}" y1="{y(vv):.1f}" y2="{y(vv):.1f}" '
                           'stroke="#111"/>')
        label_y = y(v) - 4 if v is not None and math.isfinite(v) else head + ph - 4
        if hi is not None and math.isfinite(hi):
            label_y = min(label_y, y(hi) - 4)
        shown = _fmt(v) if v is not None else "n/a"
        out.append(f'<text x="{cx:.1f}" y="{max(label_y, head + 9):.1f}" text-anchor="middle">{escape(shown)}</text>')
        out.append(f'<text x="{cx:.1f}" y="{head + ph + 14}" text-anchor="end" '
                   f'transform="rotate(-30 {cx:.1f} {head + ph + 14})">{escape(str(lab))}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
