"""Photo backdrops: the hand, lit by an HDRI, composited over a random photo from the user's folders.

The standard trick of synthetic hand sets: an HDRI gives the light, a photo gives
a sharp, real background at any resolution (a 2k HDRI behind a 30-degree camera
has only about 170 pixels across the frame). With `backdrop_folders` set,
Blender renders with a transparent film, and every sample's premultiplied
colour C with alpha a is put over the photo P in linear light: C + (1 - a) P.
The mask and depth stay what the render saw (0 where the photo shows).

Photos (.jpg, .jpeg, .png; any size) are split like HDRIs (hdri.catalog.assign_splits:
`backdrop_heldout` names held-out photo ids, otherwise a stable 25 % by hash), and a
sample draws from the split of its HDRIs (`hdri_split`), so held-out shards have
held-out photos too. Per sample (recorded as `backdrop` in the annotation): the
photo, a zoom U(1, 1.6) of the largest centred square, its offset and a left-right flip.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Backdrop:
    id: str        # path relative to its folder
    path: str
    split: str     # 'train' | 'heldout'


def backdrop_catalog(folders, heldout=None) -> list:
    from hdri.catalog import HdriError, assign_splits

    found = {}
    for folder in folders:
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise ValueError(f"backdrop folder {root} does not exist")
        photos = sorted(p for p in root.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
        if not photos:
            raise ValueError(f"backdrop folder {root} holds no photos ({', '.join(PHOTO_SUFFIXES)})")
        for p in photos:
            found.setdefault(str(p.relative_to(root)), str(p))
    try:
        splits = assign_splits(sorted(found), list(heldout) if heldout is not None else None)
    except HdriError as err:   # an unknown held-out id: say it is about backdrops
        raise ValueError(f"backdrop_heldout: {err}") from None
    return [Backdrop(i, found[i], splits[i]) for i in sorted(found)]


def draw_backdrop(rng: np.random.Generator, backdrops: list, split: str) -> dict:
    usable = [b for b in backdrops if b.split == split]
    if not usable:
        raise ValueError(f"no backdrop photo in the '{split}' split (all {len(backdrops)} in the other)")
    b = usable[int(rng.integers(len(usable)))]
    return {"id": b.id, "zoom": round(float(rng.uniform(1.0, 1.6)), 6), "x": round(float(rng.uniform()), 6),
            "y": round(float(rng.uniform()), 6), "flip": bool(rng.uniform() < 0.5)}


def backdrop_image(backdrops: list, record: dict, size: int) -> np.ndarray:
    """The drawn square of the photo at `size` x `size`, linear RGB float32 in [0, 1]."""
    from PIL import Image

    from .skin import srgb_to_linear

    path = next(b.path for b in backdrops if b.id == record["id"])
    try:
        with Image.open(path) as im:
            photo = im.convert("RGB")
    except Exception as err:   # noqa: BLE001 - any decoding failure names the file
        raise ValueError(f"backdrop photo {path} cannot be read ({err})") from None
    w, h = photo.size
    side = min(w, h) / record["zoom"]
    x0, y0 = record["x"] * (w - side), record["y"] * (h - side)
    crop = photo.resize((size, size), Image.BICUBIC, box=(x0, y0, x0 + side, y0 + side))
    if record["flip"]:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return srgb_to_linear(np.asarray(crop, dtype=np.float64) / 255.0).astype(np.float32)


def composite(premultiplied: np.ndarray, alpha: np.ndarray, backdrop: np.ndarray) -> np.ndarray:
    """Linear 'over': the render's premultiplied colour over the photo."""
    return premultiplied + (1.0 - alpha[..., None]) * backdrop
