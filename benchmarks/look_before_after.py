"""The picture in the README: the same samples in the plain look and in the default look.

    .venv/bin/python benchmarks/look_before_after.py [--out docs/look_before_after.jpg] [--resolution 256]

Renders a few pose/view pairs twice in this process (plain: no forearm, skin detail, occluders or camera
effects; default: RenderConfig's defaults) and writes one JPEG: the plain row above the default row.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.render import PLAIN_LOOK  # noqa: E402
from synth.distribute import render_dataset  # noqa: E402
from synth.pictures import grid, labelled  # noqa: E402
from synth.reader import ComplementDataset  # noqa: E402
from synth.render_config import RenderConfig  # noqa: E402

SAMPLES = [(0, 5), (31, 60), (300, 100), (700, 150), (1100, 190), (1400, 205)]


def row(cfg: RenderConfig) -> list:
    tmp = Path(tempfile.mkdtemp())
    try:
        tiles = []
        for pose, view in SAMPLES:     # one dataset a sample: a dataset is a product of poses and views
            root = tmp / f"{pose}_{view}"
            render_dataset(cfg, root, [pose], [view], workers=0, progress=False, report=lambda *a, **k: None)
            s = ComplementDataset(root)[0]
            tiles.append(Image.fromarray((s["image"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)))
        return tiles
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/look_before_after.jpg")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--samples", type=int, default=32)
    args = ap.parse_args()
    cfg = RenderConfig(resolution=args.resolution, samples=args.samples)
    plain = [labelled(t, "plain") for t in row(replace(cfg, **PLAIN_LOOK))]
    default = [labelled(t, "default") for t in row(cfg)]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    grid(plain + default, columns=len(SAMPLES)).save(args.out, quality=88)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
