"""Training scalars as CSV and line charts as PNG, with nothing but PIL.

`ScalarLog` appends rows `step,epoch,tag,value` to OUT/scalars.csv (long
format: a new tag needs no new column). On resume the rows written after the
checkpoint's step are dropped (`truncate_after`), so a resumed run's file
equals an uninterrupted run's. `read_scalars` gives {tag: (steps, values)}.

`plot_curves` draws one small panel per tag group (train/..., eval/<split>/...)
and `line_chart` one panel of several named series (used for PCK curves).
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HEADER = ["step", "epoch", "tag", "value"]
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


class ScalarLog:
    """Append-only CSV of scalars; `path` is created with its header on first use."""

    def __init__(self, path):
        self.path = Path(path)

    def add(self, step: int, epoch: int, values: dict) -> None:
        if not values:
            return
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(HEADER)
            for tag, value in values.items():
                w.writerow([int(step), int(epoch), tag, repr(float(value))])

    def truncate_after(self, step: int) -> None:
        """Drop every row of a step > `step` (what a resumed run will write again)."""
        if not self.path.exists():
            return
        rows = _read_rows(self.path)
        keep = [r for r in rows if int(r[0]) <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(HEADER)
            w.writerows(keep)
        os.replace(tmp, self.path)


def _read_rows(path: Path) -> list:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != HEADER:
        raise ValueError(f"{path}: not a scalars file (expected the header {','.join(HEADER)})")
    return rows[1:]


def read_scalars(path) -> dict:
    """{tag: (steps array, values array)} in file order."""
    out: dict = {}
    for step, _epoch, tag, value in _read_rows(Path(path)):
        s, v = out.setdefault(tag, ([], []))
        s.append(int(step))
        v.append(float(value))
    return {k: (np.asarray(s), np.asarray(v)) for k, (s, v) in out.items()}


# ---------------------------------------------------------------- drawing

def _nice_ticks(lo: float, hi: float, n: int = 5) -> list:
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks, t = [], first
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e4 or a < 1e-3:
        return f"{v:.1e}"
    if a >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def line_chart(series: dict, title: str = "", xlabel: str = "", ylabel: str = "", size=(420, 280),
               log_y: bool = False, y_range=None) -> Image.Image:
    """One panel: `series` maps a label to (x, y) arrays; non-finite points are skipped."""
    W, H = size
    img = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    left, right, top, bottom = 52, 10, 22, 34
    pw, ph = W - left - right, H - top - bottom
    d.text((left, 5), title[:60], fill=(0, 0, 0))
    clean = {}
    for label, (x, y) in series.items():
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        if log_y:
            ok &= y > 0
        if ok.any():
            clean[label] = (x[ok], np.log10(y[ok]) if log_y else y[ok])
    d.rectangle([left, top, left + pw, top + ph], outline=(120, 120, 120))
    if not clean:
        d.text((left + 8, top + ph // 2), "no data", fill=(120, 120, 120))
        return img
    xs = np.concatenate([x for x, _ in clean.values()])
    ys = np.concatenate([y for _, y in clean.values()])
    x0, x1 = float(xs.min()), float(xs.max())
    y0, y1 = (float(ys.min()), float(ys.max())) if y_range is None else map(float, y_range)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 == y0:
        half = max(abs(y0) * 0.1, 1e-12) if not log_y else 0.5
        y0, y1 = y0 - half, y1 + half
    pad = 0.05 * (y1 - y0) if y_range is None else 0.0
    y0, y1 = y0 - pad, y1 + pad

    def px(x, y):
        return left + (x - x0) / (x1 - x0) * pw, top + ph - (y - y0) / (y1 - y0) * ph

    for t in _nice_ticks(y0, y1):
        _, yy = px(x0, t)
        d.line([left, yy, left + pw, yy], fill=(230, 230, 230))
        d.text((2, yy - 6), _fmt(10 ** t) if log_y else _fmt(t), fill=(60, 60, 60))
    for t in _nice_ticks(x0, x1):
        xx, _ = px(t, y0)
        d.line([xx, top, xx, top + ph], fill=(235, 235, 235))
        label = _fmt(t)
        width = d.textlength(label)                     # centred under its tick, kept inside the panel
        d.text((min(max(xx - width / 2, 0), W - width - 1), top + ph + 3), label, fill=(60, 60, 60))
    d.rectangle([left, top, left + pw, top + ph], outline=(120, 120, 120))
    for i, (label, (x, y)) in enumerate(clean.items()):
        colour = PALETTE[i % len(PALETTE)]
        pts = [px(a, b) for a, b in zip(x, y)]
        if len(pts) == 1:
            cx, cy = pts[0]
            d.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=colour)
        else:
            d.line(pts, fill=colour, width=2)
        d.text((left + 6, top + 4 + 12 * i), label[:40], fill=colour)
    if xlabel:
        d.text((left + pw // 2 - 3 * len(xlabel), H - 14), xlabel, fill=(0, 0, 0))
    if ylabel:
        d.text((left + pw - 6 * len(ylabel) - 4, top - 12), ylabel, fill=(90, 90, 90))
    return img


def _group(tag: str) -> tuple:
    """Panel key and series label of a tag: 'eval/heldout_poses/mean_px' -> ('eval mean_px', 'heldout_poses')."""
    parts = tag.split("/")
    if len(parts) >= 3:
        return f"{parts[0]} {'/'.join(parts[2:])}", parts[1]
    if len(parts) == 2:
        return f"{parts[0]} {parts[1]}", parts[0]
    return tag, tag


def plot_curves(scalars, path, tags=None, columns: int = 3, panel=(420, 280)) -> Path:
    """A PNG with one panel per metric: train tags on their own, eval splits overlaid.

    `scalars` is a scalars.csv path or read_scalars' dict; losses are drawn on a log axis.
    """
    data = read_scalars(scalars) if isinstance(scalars, (str, os.PathLike)) else dict(scalars)
    if tags is not None:
        data = {k: v for k, v in data.items() if k in tags}
    panels: dict = {}
    for tag, xy in data.items():
        key, label = _group(tag)
        panels.setdefault(key, {})[label] = xy
    charts = []
    for key, series in panels.items():
        log_y = any(w in key.split(" ")[-1] for w in ("loss", "heatmap", "position", "lr"))
        charts.append(line_chart(series, title=key + (" (log)" if log_y else ""), xlabel="step", size=panel,
                                 log_y=log_y))
    if not charts:
        charts = [line_chart({}, title="no scalars yet", size=panel)]
    columns = max(1, min(columns, len(charts)))
    rows = -(-len(charts) // columns)
    sheet = Image.new("RGB", (columns * panel[0], rows * panel[1]), (255, 255, 255))
    for i, c in enumerate(charts):
        sheet.paste(c, ((i % columns) * panel[0], (i // columns) * panel[1]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
