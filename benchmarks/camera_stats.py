"""Do the renders' camera statistics sit inside real photographs'? Noise, sharpness, JPEG, exposure.

    .venv/bin/python benchmarks/camera_stats.py NAME=DATASET_FOLDER [NAME=FOLDER ...]
        [--real ../shared/realhands/asl/coco_hand.json] [--out runs/camera_stats.md]

For every rendered dataset folder and for the real frames, prints the 5th, 50th and 95th percentile of
each statistic of benchmarks/image_stats.py, measured where a model sees it: on the training crop (the
square box around the keypoints x 1.5, resampled to 128 px, as pretrain/data2d.py cuts it); JPEG
blockiness on the image as stored (its 8 x 8 grid intact). Asserts nothing.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import image_stats as st  # noqa: E402
from benchmarks.realism import DEFAULT_REAL  # noqa: E402

CROP = 128
STATS = ("hand_luma", "crop_luma", "crop_contrast", "noise_sigma", "sharpness", "blockiness")


def measure(rgb: np.ndarray, keypoints: np.ndarray, labelled=None) -> dict:
    """Every statistic of one stored image with its keypoints (pixels of that image; `labelled`: the (21,)
    mask of labelled ones, None: all)."""
    from pretrain.data2d import crop_transform
    from pretrain.image_ops import warp_image

    kp = np.asarray(keypoints, np.float64)
    lab = np.ones(len(kp), bool) if labelled is None else np.asarray(labelled, bool)
    A = crop_transform(kp[lab], CROP)
    crop = warp_image(rgb, A, CROP)
    return {"hand_luma": st.hand_luma(crop, kp @ A[:2, :2].T + A[:2, 2], lab), "crop_luma": st.crop_luma(crop),
            "crop_contrast": st.crop_contrast(crop), "noise_sigma": st.noise_sigma(crop),
            "sharpness": st.sharpness(crop), "blockiness": st.blockiness(rgb)}


def rendered(folder: Path) -> list:
    from PIL import Image

    from synth.reader import ComplementDataset

    ds = ComplementDataset(folder)
    rows = []
    for i in range(len(ds)):
        raw = ds.read_raw(i)
        rgb = np.asarray(Image.open(io.BytesIO(raw["rgb"])).convert("RGB"))
        rows.append(measure(rgb, json.loads(raw["json"])["keypoints_2d"]))
    return rows


def real(coco: Path) -> list:
    from pretrain.coco_hand import find_coco_json, load_hand, parse_coco_hand

    rows = []
    for rec in parse_coco_hand(find_coco_json(coco)).records:
        rows.append(measure(*load_hand(rec), rec.labelled))
    return rows


def table(sources: dict) -> str:
    lines = ["| statistic | " + " | ".join(sources) + " |", "| --- |" + " --- |" * len(sources)]
    for stat in STATS:
        cells = []
        for rows in sources.values():
            v = np.array([r[stat] for r in rows if np.isfinite(r[stat])])
            cells.append(" / ".join(f"{x:.3g}" for x in np.percentile(v, [5, 50, 95])) if len(v) else "-")
        lines.append(f"| {stat} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n(5th / 50th / 95th percentile over the images)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="*", help="NAME=FOLDER of rendered shards")
    ap.add_argument("--real", type=Path, default=DEFAULT_REAL)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    sources = {}
    if args.real and args.real.exists():
        sources["real"] = real(args.real)
    for spec in args.datasets:
        name, _, folder = spec.partition("=")
        if not folder:
            raise SystemExit(f"{spec!r}: expected NAME=FOLDER")
        sources[name] = rendered(Path(folder))
    text = table(sources)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
