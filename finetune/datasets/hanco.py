"""HanCo (Zimmermann, Argus & Brox 2021), the multi-view extension of FreiHAND, read as published.

On-disk layout (ROOT = the unpacked HanCo folder; its parts are separate downloads)
-----------------------------------------------------------------------------------

    ROOT/meta.json                       {"is_train", "subject_id", "is_valid", "object_id", "has_fit"}:
                                         each a list over the 1518 sequences of lists over their frames
    ROOT/rgb/%04d/cam%d/%08d.jpg         sequence id, camera 0..7, frame id; 224x224 JPEG
                                         (rgb_merged, rgb_homogenized, rgb_color_auto, rgb_color_sample
                                         are the same frames with other backgrounds / colours: `image_dir`)
    ROOT/calib/%04d/%08d.json            {"K": 8 x (3x3), "M": 8 x (4x4)}; M maps world -> camera
    ROOT/xyz/%04d/%08d.json              21 x 3 keypoints, world frame, metres
    ROOT/shape/%04d/%08d.json            {"poses": (1, 48), "shapes": (1, 10), "global_t": (1, 1, 3)}
                                         MANO fit in the world frame (frames with has_fit)
    ROOT/mask_hand/%04d/cam%d/%08d.jpg   hand masks (optional here: read when present, `mask_dir`)

This is what the example script of HanCo's repository (lmb-freiburg/HanCo,
"Iterate HanCo dataset and show how to work with data") reads: camera points
are `xyz @ M[:3, :3].T + M[:3, 3]`, pixels `K @ (X / z)`. Keypoints are taken
to be in FreiHAND's order (the example draws them with FreiHAND's skeleton, and
the MANO fits' joints come out of manopth, whose output order is FreiHAND's). The MANO vector is that of
manopth's `ManoLayer(use_pca=False, flat_hand_mean=False)` as the example uses
it: `poses` are axis-angle relative to the model's mean hand pose (like
FreiHAND), so the flat pose adds `hands_mean` to poses[3:]; world vertices are
MANO(pose, shapes) + global_t, in metres like the xyz files. (The unit of
global_t could not be confirmed from the example, which renders through
manopth; metres is what agrees with xyz and M.) In the samples, vertices are
moved to the camera frame with M, and the MANO global rotation is expressed in
the camera frame (R_M @ R_global), so mano_pose describes the hand as the
camera sees it; vertices_rel are then exactly MANO(mano_pose, betas) minus
its wrist.

meta.json flags per frame: is_train (recorded in front of the green screen;
HanCo's training set), is_valid (the MANO fit was validated), has_fit (a MANO
fit exists), subject_id, object_id (None without an object). split 'train'
takes is_train frames, 'test' the others, 'all' both; valid_only keeps
is_valid frames only (as public conversion scripts for HanCo do).

Multi-view access for SiMA: `frame(sequence, frame_id)` returns the samples
of all (selected) cameras of one frame, each with the extra keys 'R', 't'
(world -> camera) and 'camera'; with `multiview=True` the Dataset's items are
frames and return those views stacked along a leading view axis
(`stack_views`). All HanCo hands are right hands (nothing is mirrored).

MANO parameters and vertices need `hand_model` (for hands_mean and the
skinning); without one has_mano and has_vertices are False. `visibility` is True
for keypoints projecting inside the image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from synth.hand_model import resolve_hand_model

from .base import CROP_SCALE, CROP_SIZE, DatasetFormatError, box_crop, project
from .multiview import stack_views, with_camera
from .registry import as_array, check_image, make_sample, read_image, read_json

NUM_CAMERAS = 8
META_KEYS = ("is_train", "subject_id", "is_valid", "object_id", "has_fit")
SPLITS = ("train", "test", "all")


def rotvec_to_matrix(r) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.asarray(r, dtype=np.float64)).as_matrix()


def matrix_to_rotvec(R) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(np.asarray(R, dtype=np.float64)).as_rotvec()


def read_meta(root) -> dict:
    path = Path(root) / "meta.json"
    meta = read_json(path, f"HanCo meta data, a JSON object with {list(META_KEYS)}")
    if not isinstance(meta, dict):
        raise DatasetFormatError(f"{path}: expected a JSON object with {list(META_KEYS)}")
    missing = [k for k in ("is_train", "is_valid", "has_fit") if k not in meta]
    if missing:
        raise DatasetFormatError(f"{path}: no key(s) {missing} (found {sorted(meta)}); expected {list(META_KEYS)}")
    n = len(meta["is_train"])
    for k in ("is_valid", "has_fit"):
        if not isinstance(meta[k], list) or len(meta[k]) != n or \
                any(len(a) != len(b) for a, b in zip(meta[k], meta["is_train"])):
            raise DatasetFormatError(f"{path}: '{k}' does not have one entry per frame of 'is_train' "
                                     f"({n} sequences)")
    return meta


def read_calib(root, sequence: int, frame: int) -> tuple:
    """(K (C, 3, 3), M (C, 4, 4)) of one frame."""
    path = Path(root) / "calib" / f"{sequence:04d}" / f"{frame:08d}.json"
    calib = read_json(path, 'HanCo calibration {"K": 8 x 3x3, "M": 8 x 4x4}')
    if not isinstance(calib, dict) or "K" not in calib or "M" not in calib:
        found = sorted(calib) if isinstance(calib, dict) else type(calib).__name__
        raise DatasetFormatError(f"{path}: expected keys 'K' and 'M' (found {found})")
    K = as_array(calib["K"], (-1, 3, 3), str(path), "K")
    M = as_array(calib["M"], (len(K), 4, 4), str(path), "M")
    return K, M


def read_xyz(root, sequence: int, frame: int) -> np.ndarray:
    path = Path(root) / "xyz" / f"{sequence:04d}" / f"{frame:08d}.json"
    return as_array(read_json(path, "HanCo keypoints, 21 x 3 world coordinates in metres"), (21, 3), str(path),
                    "xyz")


def read_shape(root, sequence: int, frame: int) -> tuple:
    """(poses (48,) relative to the mean pose, shapes (10,), global_t (3,)) of a MANO fit."""
    path = Path(root) / "shape" / f"{sequence:04d}" / f"{frame:08d}.json"
    data = read_json(path, 'a HanCo MANO fit {"poses", "shapes", "global_t"}')
    if not isinstance(data, dict):
        raise DatasetFormatError(f"{path}: expected a JSON object with poses, shapes, global_t")
    out = []
    for key, n in (("poses", 48), ("shapes", 10), ("global_t", 3)):
        if key not in data:
            raise DatasetFormatError(f"{path}: no key {key!r} (found {sorted(data)}); expected poses (1, 48), "
                                     "shapes (1, 10), global_t (1, 1, 3)")
        arr = as_array(data[key], tuple(-1 for _ in np.shape(data[key])), str(path), key)
        if arr.size != n:
            raise DatasetFormatError(f"{path}: '{key}' has shape {arr.shape}, expected {n} values")
        out.append(arr.reshape(n))
    return tuple(out)


class HanCoDataset(Dataset):
    """HanCo samples in base.py's dictionary, one camera view per item, or all views of a frame.

    HanCoDataset(root, split='train', crop_size=128, crop_scale=1.5, cameras=range(8), image_dir='rgb',
                 mask_dir='mask_hand', valid_only=False, sequences=None, hand_model=None, multiview=False)
    """

    name = "hanco"

    def __init__(self, root, split: str = "train", crop_size: int = CROP_SIZE, crop_scale: float = CROP_SCALE,
                 cameras=tuple(range(NUM_CAMERAS)), image_dir: str = "rgb", mask_dir: str | None = "mask_hand",
                 valid_only: bool = False, sequences=None, hand_model=None, multiview: bool = False):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetFormatError(f"{self.root}: HanCo root directory not found (expected meta.json, rgb/, ...)")
        if split not in SPLITS:
            raise ValueError(f"HanCo split must be one of {SPLITS}, got {split!r}")
        self.cameras = [int(c) for c in cameras]
        if not self.cameras or any(not 0 <= c < NUM_CAMERAS for c in self.cameras):
            raise ValueError(f"HanCo cameras must be in 0..{NUM_CAMERAS - 1}, got {self.cameras}")
        if not (self.root / image_dir).is_dir():
            raise DatasetFormatError(f"{self.root / image_dir}: image folder not found "
                                     f"(expected {image_dir}/%04d/cam%d/%08d.jpg)")
        self.split, self.image_dir, self.mask_dir = split, image_dir, mask_dir
        self.crop_size, self.crop_scale = int(crop_size), float(crop_scale)
        self.multiview = bool(multiview)
        self.hand_model = resolve_hand_model(hand_model)
        self.topology = self.hand_model.topology if self.hand_model is not None else "mano"
        self.meta = read_meta(self.root)
        wanted = range(len(self.meta["is_train"])) if sequences is None else [int(s) for s in sequences]
        frames = []
        for sid in wanted:
            if not 0 <= sid < len(self.meta["is_train"]):
                raise ValueError(f"HanCo sequence {sid} is not in meta.json (0..{len(self.meta['is_train']) - 1})")
            for fid, is_train in enumerate(self.meta["is_train"][sid]):
                if split != "all" and bool(is_train) != (split == "train"):
                    continue
                if valid_only and not self.meta["is_valid"][sid][fid]:
                    continue
                frames.append((sid, fid))
        self.frames = frames
        self.samples = frames if self.multiview else [(s, f, c) for s, f in frames for c in self.cameras]
        self.min_views = len(self.cameras)

    def __len__(self) -> int:
        return len(self.samples)

    def image_path(self, sequence: int, camera: int, frame: int, folder: str | None = None) -> Path:
        return self.root / (folder or self.image_dir) / f"{sequence:04d}" / f"cam{camera}" / f"{frame:08d}.jpg"

    def _mano_world(self, sequence: int, frame: int):
        if self.hand_model is None or not self.meta["has_fit"][sequence][frame]:
            return None
        poses, shapes, global_t = read_shape(self.root, sequence, frame)
        flat = np.concatenate([poses[:3], poses[3:] + np.asarray(self.hand_model.hands_mean).reshape(45)])
        with torch.no_grad():
            verts, _ = self.hand_model(torch.as_tensor(flat[None]), torch.as_tensor(shapes[None]))
        return flat, shapes, verts[0].double().numpy() + global_t

    def _view(self, sequence: int, frame: int, camera: int, K, M, xyz, mano, extras: bool) -> dict:
        image = read_image(self.image_path(sequence, camera, frame), "a HanCo colour JPEG")
        if camera >= len(K):
            raise DatasetFormatError(f"{self.root / 'calib' / f'{sequence:04d}' / f'{frame:08d}.json'}: "
                                     f"{len(K)} cameras, camera {camera} requested")
        Kc, R, t = K[camera], M[camera][:3, :3], M[camera][:3, 3]
        kp3 = xyz @ R.T + t
        h, w = image.shape[:2]
        uv = project(kp3, Kc)
        visible = (kp3[:, 2] > 0) & np.all((uv >= -0.5) & (uv <= np.array([w, h]) - 0.5), axis=1)
        mask = None
        if self.mask_dir is not None:
            mpath = self.image_path(sequence, camera, frame, self.mask_dir)
            if mpath.exists():
                m = read_image(mpath, "a HanCo hand mask JPEG", mode="L")
                if m.shape != (h, w):
                    raise DatasetFormatError(f"{mpath}: mask is {m.shape}, image is {(h, w)}")
                mask = m > 127
        pose = betas = verts = None
        if mano is not None:
            flat, betas, verts_world = mano
            pose = flat.copy()
            pose[:3] = matrix_to_rotvec(R @ rotvec_to_matrix(flat[:3]))
            verts = verts_world @ R.T + t
        A = box_crop(uv, self.crop_size, self.crop_scale)
        sample = make_sample(image, A, Kc, kp3, out_size=self.crop_size, mask=mask, vertices=verts, mano_pose=pose,
                             mano_betas=betas, visibility=visible, mirrored=False, dataset=self.name,
                             sample_id=f"{sequence:04d}/cam{camera}/{frame:08d}", topology=self.topology)
        return with_camera(sample, R, t, camera) if extras else sample

    def frame(self, sequence: int, frame: int) -> list:
        """The samples of every selected camera of one frame (each with 'R', 't' world->camera, 'camera')."""
        K, M = read_calib(self.root, sequence, frame)
        xyz = read_xyz(self.root, sequence, frame)
        mano = self._mano_world(sequence, frame)
        return [self._view(sequence, frame, c, K, M, xyz, mano, extras=True) for c in self.cameras]

    def __getitem__(self, index: int) -> dict:
        if self.multiview:
            return stack_views(self.frame(*self.samples[index]))
        sequence, frame, camera = self.samples[index]
        K, M = read_calib(self.root, sequence, frame)
        xyz = read_xyz(self.root, sequence, frame)
        return self._view(sequence, frame, camera, K, M, xyz, self._mano_world(sequence, frame), extras=False)

    @classmethod
    def check(cls, root, limit: int | None = None, image_dir: str = "rgb") -> list:
        """Counts of sequences / frames / images per split and problems for missing or broken files.
        `limit` checks the first N frames of each sequence."""
        root = Path(root)
        try:
            meta = read_meta(root)
        except DatasetFormatError as err:
            return [f"problem: {err}"]
        lines, problems = [], []
        n_train = sum(bool(v) for seq in meta["is_train"] for v in seq)
        n_all = sum(len(seq) for seq in meta["is_train"])
        lines.append(f"count: meta.json: {len(meta['is_train'])} sequences, {n_all} frames "
                     f"({n_train} train, {n_all - n_train} test)")
        images = fits = checked = 0
        for sid, seq in enumerate(meta["is_train"]):
            if not (root / image_dir / f"{sid:04d}").is_dir():
                problems.append(f"problem: missing folder {root / image_dir / f'{sid:04d}'} "
                                f"(expected {image_dir}/{sid:04d}/cam0..7/%08d.jpg)")
                continue
            for fid in range(len(seq) if limit is None else min(len(seq), int(limit))):
                checked += 1
                try:
                    K, _ = read_calib(root, sid, fid)
                    if len(K) < NUM_CAMERAS:
                        problems.append(f"problem: {root / 'calib' / f'{sid:04d}' / f'{fid:08d}.json'}: "
                                        f"{len(K)} cameras, expected {NUM_CAMERAS}")
                    read_xyz(root, sid, fid)
                    if meta["has_fit"][sid][fid]:
                        read_shape(root, sid, fid)
                        fits += 1
                except DatasetFormatError as err:
                    problems.append(f"problem: {err}")
                for cid in range(NUM_CAMERAS):
                    images += check_image(root / image_dir / f"{sid:04d}" / f"cam{cid}" / f"{fid:08d}.jpg",
                                          "a HanCo colour JPEG", problems)
        lines.append(f"count: {checked} checked frames, {images} readable images, {fits} MANO fits")
        return lines + problems
