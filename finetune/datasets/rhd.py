"""RHD, the Rendered Hand pose Dataset (RHD_published_v2), read as published:

    RHD_published_v2/{training,evaluation}/anno_{training,evaluation}.pickle
        {sample_id (int): {'xyz': (42, 3) metres camera frame, 'uv_vis': (42, 3) u, v, visible (1/0),
                           'K': (3, 3)}}
    RHD_published_v2/{training,evaluation}/color/%05d.png   320x320 RGB
    RHD_published_v2/{training,evaluation}/mask/%05d.png    labels: 0 background, 1 person,
                                                             2-17 left hand, 18-33 right hand
    RHD_published_v2/{training,evaluation}/depth/%05d.png   RGB-coded depth (see read_depth)

`root` may be the RHD_published_v2 folder or the folder that holds it.

Re-derived from the official `view_samples.py` of RHD (its text is reproduced in many repositories):
- `anno_all = pickle.load(...)` then `for sample_id, anno in anno_all.items()`; images
  `'%.5d.png' % sample_id` in color/, mask/, depth/;
  `kp_coord_uv = anno['uv_vis'][:, :2]`, `kp_visible = (anno['uv_vis'][:, 2] == 1)`,
  `kp_coord_xyz = anno['xyz']` "in meters", `camera_intrinsic_matrix = anno['K']`, and
  `uv_proj = (xyz @ K.T)[:, :2] / z`.
- depth: "top bits are stored in red, bottom in green channel":
  `depth = (R * 2**8 + G) / (2**16 - 1) * 5.0` metres (note 2**16 - 1, not 2**16).
- keypoints 0-20 are the left hand, 21-41 the right; per hand: 0 wrist, 1-4 thumb tip..MCP,
  5-8 index tip..MCP, 9-12 middle, 13-16 ring, 17-20 little (tip first), hence the per-hand
  reorder to FreiHAND order `[0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17]`
  (its own inverse). The pickle was written by Python 2: it is read with encoding='latin1'.
- mask labels 2-17 left hand, 18-33 right hand, from the dataset's README.

Which hands become samples (`hands=`):
- 'dominant' (default): one sample per image, the hand with more mask pixels (left iff strictly
  more left-hand pixels than right-hand pixels), as Zimmermann & Brox's hand3d reader picks the
  "more prominent hand" for training and evaluation. Decided when the sample is read (from its
  mask), so building the index reads no image.
- 'visible': one sample per hand with at least `min_visible` visible keypoints (uv_vis flag 1).
Left hands are mirrored into right ones (image, mask, K's principal point, camera x).

2D keypoints are `project(xyz, K)` of the crop (so they agree with the 3D keypoints exactly);
RHD's own uv agree with that projection (the check reports the largest difference).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from .base import CROP_SIZE, DatasetFormatError, box_crop, mirror_sample, project
from .registry import as_array, check_image, make_sample, read_image, read_pickle

RHD_TO_FREIHAND = [0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17]
SPLITS = ("training", "evaluation")
SIDES = ("left", "right")
LEFT_LABELS = (2, 17)    # inclusive label ranges in mask/%05d.png
RIGHT_LABELS = (18, 33)
DEPTH_MAX_M = 5.0


def decode_depth(rgb: np.ndarray) -> np.ndarray:
    """RHD's RGB-coded depth -> metres: (R * 256 + G) / 65535 * 5."""
    rgb = np.asarray(rgb)
    return (rgb[..., 0].astype(np.float64) * 256.0 + rgb[..., 1]) / float(2 ** 16 - 1) * DEPTH_MAX_M


def encode_depth(depth_m: np.ndarray) -> np.ndarray:
    """The inverse of decode_depth (for fixtures and tools): metres -> HxWx3 uint8 (B = 0)."""
    q = np.clip(np.round(np.asarray(depth_m, dtype=np.float64) / DEPTH_MAX_M * (2 ** 16 - 1)), 0, 2 ** 16 - 1)
    q = q.astype(np.uint16)
    out = np.zeros(q.shape + (3,), dtype=np.uint8)
    out[..., 0] = q >> 8
    out[..., 1] = q & 255
    return out


def hand_pixels(labels: np.ndarray) -> tuple:
    """(left, right) hand pixel counts of an RHD mask."""
    left = int(np.count_nonzero((labels >= LEFT_LABELS[0]) & (labels <= LEFT_LABELS[1])))
    right = int(np.count_nonzero((labels >= RIGHT_LABELS[0]) & (labels <= RIGHT_LABELS[1])))
    return left, right


def _split_dir(root: Path, split: str) -> Path:
    return root / split


def resolve_root(root) -> Path:
    root = Path(root)
    if (root / "RHD_published_v2").is_dir() and not any((root / s).is_dir() for s in SPLITS):
        return root / "RHD_published_v2"
    return root


class RHDDataset(Dataset):
    """RHD as a torch Dataset of base.py samples (see the module docstring for `hands`)."""

    name = "rhd"

    def __init__(self, root, split: str = "training", crop_size: int = CROP_SIZE, hands: str = "dominant",
                 min_visible: int = 1):
        if split not in SPLITS:
            raise ValueError(f"RHD split must be one of {SPLITS}, got {split!r}")
        if hands not in ("dominant", "visible"):
            raise ValueError(f"hands must be 'dominant' or 'visible', got {hands!r}")
        self.root = resolve_root(root)
        self.split = split
        self.crop_size = int(crop_size)
        self.hands = hands
        self.anno_path = _split_dir(self.root, split) / f"anno_{split}.pickle"
        anno = read_pickle(self.anno_path, f"RHD's {split} annotations: a dict sample_id -> "
                                           "{'xyz', 'uv_vis', 'K'}")
        if not isinstance(anno, dict):
            raise DatasetFormatError(f"{self.anno_path}: a {type(anno).__name__}, expected a dict sample_id -> "
                                     "{'xyz', 'uv_vis', 'K'}")
        self.anno = anno
        self.sample_ids = sorted(anno)
        if hands == "dominant":
            self.index = [(sid, None) for sid in self.sample_ids]
        else:
            self.index = []
            for sid in self.sample_ids:
                uv_vis = self.annotation(sid)["uv_vis"]
                for h, side in enumerate(SIDES):
                    if np.count_nonzero(uv_vis[21 * h:21 * h + 21, 2] == 1) >= min_visible:
                        self.index.append((sid, side))

    # ------------------------------------------------------------------ access
    def annotation(self, sample_id) -> dict:
        """The checked annotation of one image: xyz (42, 3), uv_vis (42, 3), K (3, 3) as float64."""
        entry = self.anno[sample_id]
        where = f"{self.anno_path} [sample {sample_id}]"
        if not isinstance(entry, dict):
            raise DatasetFormatError(f"{where}: a {type(entry).__name__}, expected a dict with xyz, uv_vis, K")
        missing = [k for k in ("xyz", "uv_vis", "K") if k not in entry]
        if missing:
            raise DatasetFormatError(f"{where}: missing key(s) {missing} (has {sorted(entry)}; "
                                     "expected xyz, uv_vis, K)")
        return {"xyz": as_array(entry["xyz"], (42, 3), where, "xyz"),
                "uv_vis": as_array(entry["uv_vis"], (42, 3), where, "uv_vis"),
                "K": as_array(entry["K"], (3, 3), where, "K")}

    def path(self, kind: str, sample_id: int) -> Path:
        return _split_dir(self.root, self.split) / kind / f"{int(sample_id):05d}.png"

    def read_depth(self, sample_id: int) -> np.ndarray:
        """The full-image depth map of one image, metres (planar z)."""
        return decode_depth(read_image(self.path("depth", sample_id), f"RHD depth of sample {sample_id}"))

    def read_labels(self, sample_id: int) -> np.ndarray:
        labels = read_image(self.path("mask", sample_id), f"RHD mask of sample {sample_id}", mode=None)
        if labels.ndim == 3:  # some tools write the labels into every channel
            labels = labels[..., 0]
        return labels

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict:
        sid, side = self.index[index]
        anno = self.annotation(sid)
        image = read_image(self.path("color", sid), f"RHD colour image of sample {sid}")
        labels = self.read_labels(sid)
        if labels.shape != image.shape[:2]:
            raise DatasetFormatError(f"{self.path('mask', sid)}: mask is {labels.shape}, image is {image.shape[:2]}")
        if side is None:
            left_px, right_px = hand_pixels(labels)
            side = "left" if left_px > right_px else "right"
        h = SIDES.index(side)
        rows = slice(21 * h, 21 * h + 21)
        xyz = anno["xyz"][rows][RHD_TO_FREIHAND]
        vis = anno["uv_vis"][rows, 2][RHD_TO_FREIHAND] == 1
        lo, hi = RIGHT_LABELS if side == "right" else LEFT_LABELS
        mask = (labels >= lo) & (labels <= hi)
        K = anno["K"]
        if side == "left":
            image, K, (xyz,) = mirror_sample(image, K, [xyz])
            mask = mask[:, ::-1]
        A = box_crop(project(xyz, K), self.crop_size)
        return make_sample(image, A, K, xyz, out_size=self.crop_size, mask=np.ascontiguousarray(mask),
                           visibility=vis, mirrored=side == "left", dataset=self.name,
                           sample_id=f"{self.split}/{int(sid):05d}/{side}", topology="mano")

    # ------------------------------------------------------------------ check
    @classmethod
    def check(cls, root, limit: int | None = None) -> list:
        root = resolve_root(root)
        found = [s for s in SPLITS if (root / s / f"anno_{s}.pickle").is_file()]
        if not found:
            return [f"problem: {root}: no training/anno_training.pickle or evaluation/anno_evaluation.pickle "
                    "(expected RHD_published_v2's layout: SPLIT/anno_SPLIT.pickle, SPLIT/color, SPLIT/mask, "
                    "SPLIT/depth)"]
        lines = []
        for split in found:
            try:
                ds = cls(root, split=split)
            except (DatasetFormatError, ValueError) as err:
                lines.append(f"problem: {err}")
                continue
            ids = ds.sample_ids if limit is None else ds.sample_ids[:int(limit)]
            lines.append(f"count: {split}: {len(ds.sample_ids)} annotated images")
            ok = {"color": 0, "mask": 0, "depth": 0}
            hands = {"left": 0, "right": 0}
            worst = 0.0
            for sid in ids:
                try:
                    anno = ds.annotation(sid)
                except DatasetFormatError as err:
                    lines.append(f"problem: {err}")
                    continue
                for h, side in enumerate(SIDES):
                    rows = slice(21 * h, 21 * h + 21)
                    vis = anno["uv_vis"][rows, 2] == 1
                    hands[side] += int(vis.any())
                    if vis.any():
                        z = anno["xyz"][rows, 2:3]
                        if np.any(z <= 0):
                            lines.append(f"problem: {ds.anno_path} [sample {sid}]: {side} hand has z <= 0")
                            continue
                        uv = project(anno["xyz"][rows], anno["K"])
                        worst = max(worst, float(np.abs(uv - anno["uv_vis"][rows, :2])[vis].max()))
                for kind in ok:
                    ok[kind] += check_image(ds.path(kind, sid), f"RHD {kind} image of sample {sid}", lines)
            for kind, n in ok.items():
                lines.append(f"count: {split}/{kind}: {n} of {len(ids)} images readable")
            lines.append(f"count: {split}: {hands['left']} left and {hands['right']} right hands with a visible "
                         "keypoint")
            lines.append(f"info: {split}: largest |uv - project(xyz, K)| over visible keypoints: {worst:.3f} px")
        return lines
