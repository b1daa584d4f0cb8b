"""PCK curves drawn with PIL (no plotting library): one panel per threshold unit."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75)]
PANEL = (560, 420)
MARGIN = dict(left=64, right=16, top=40, bottom=52)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)  # scalable with FreeType (Pillow >= 10.1)
    except TypeError:
        return ImageFont.load_default()


def nice_ticks(lo: float, hi: float, target: int = 6) -> np.ndarray:
    """Round tick positions covering [lo, hi]: the finest step of 1, 2, 2.5 or 5 x 10^k giving at most
    `target` intervals."""
    span = hi - lo if hi > lo else 1.0
    mag = 10.0 ** math.floor(math.log10(span / target))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if span / (m * mag) <= target + 1e-9)
    first = math.ceil(lo / step - 1e-9) * step
    return np.arange(first, hi + step * 1e-6, step)


def _label(v: float) -> str:
    return f"{v:g}" if abs(v) < 1e4 else f"{v:.0e}"


def _panel(curves, unit: str, title: str) -> Image.Image:
    img = Image.new("RGB", PANEL, "white")
    d = ImageDraw.Draw(img)
    small, big = _font(12), _font(14)
    x0, y0 = MARGIN["left"], MARGIN["top"]
    x1, y1 = PANEL[0] - MARGIN["right"], PANEL[1] - MARGIN["bottom"]
    lo = min(float(np.min(c.thresholds)) for c in curves)
    hi = max(float(np.max(c.thresholds)) for c in curves)
    hi = hi if hi > lo else lo + 1.0

    def px(x, y):  # data (threshold, share 0..1) -> pixel
        return x0 + (x - lo) / (hi - lo) * (x1 - x0), y1 - y * (y1 - y0)

    for t in nice_ticks(lo, hi):
        X = px(t, 0)[0]
        d.line([(X, y0), (X, y1)], fill=(230, 230, 230))
        d.line([(X, y1), (X, y1 + 5)], fill="black")
        d.text((X, y1 + 8), _label(t), fill="black", font=small, anchor="mt")
    for v in range(0, 101, 20):
        Y = px(lo, v / 100)[1]
        d.line([(x0, Y), (x1, Y)], fill=(230, 230, 230))
        d.line([(x0 - 5, Y), (x0, Y)], fill="black")
        d.text((x0 - 8, Y), str(v), fill="black", font=small, anchor="rm")
    d.rectangle([x0, y0, x1, y1], outline="black")
    d.text(((x0 + x1) / 2, PANEL[1] - 8), f"error threshold ({unit})", fill="black", font=big, anchor="md")
    d.text((8, (y0 + y1) / 2), "PCK %", fill="black", font=big, anchor="lm")
    d.text(((x0 + x1) / 2, 12), title, fill="black", font=big, anchor="mt")
    for i, c in enumerate(curves):
        pts = [px(float(x), float(y)) for x, y in zip(c.thresholds, c.pck)]
        d.line(pts, fill=COLOURS[i % len(COLOURS)], width=2)
    # legend, bottom right (where PCK curves leave room)
    rows = [(c.label, COLOURS[i % len(COLOURS)]) for i, c in enumerate(curves)]
    w = max(d.textlength(r[0], font=small) for r in rows) + 40
    lx, ly = x1 - w - 8, y1 - 18 * len(rows) - 12
    d.rectangle([lx, ly, x1 - 8, y1 - 8], fill="white", outline=(120, 120, 120))
    for j, (text, colour) in enumerate(rows):
        y = ly + 12 + 18 * j
        d.line([(lx + 6, y), (lx + 28, y)], fill=colour, width=3)
        d.text((lx + 34, y), text, fill="black", font=small, anchor="lm")
    return img


def plot_pck(curves, path, title: str = "PCK") -> Image.Image:
    """Draw Curve objects into a PNG at `path`: one panel per unit, side by side."""
    curves = list(curves.values()) if isinstance(curves, dict) else list(curves)
    if not curves:
        raise ValueError("no PCK curves to plot")
    units = list(dict.fromkeys(c.unit for c in curves))
    panels = [_panel([c for c in curves if c.unit == u], u, title) for u in units]
    sheet = Image.new("RGB", (PANEL[0] * len(panels), PANEL[1]), "white")
    for i, p in enumerate(panels):
        sheet.paste(p, (PANEL[0] * i, 0))
    sheet.save(path)
    return sheet
