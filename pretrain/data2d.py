"""The 2D pretraining data: hand crops of the rendered complement shards with 2D labels only.

`Pose2DSamples` reads samples of one or more `synth.reader.ComplementDataset`s
(only the RGB image and the JSON annotation are decoded; depth and mask are
not needed) and returns

    image (3, S, S) float in [0, 1]   the crop around the hand, S = input_size
    keypoints_2d (21, 2) float        crop pixels (pixel centres: top-left pixel at (0, 0))
    visibility (21,) bool             the render's own per-keypoint visibility
    key, hdri_id (str), pose_id (int)

The crop is the square box around the 2D keypoints enlarged `crop_scale` times
(1.5, the rule of every benchmark loader in finetune/datasets/base.py), mapped
to S x S. Training crops are augmented in the same single affine warp: zoom,
rotation about the crop centre, translation, then the colour steps, drawn by
pretrain/augmentation.py (the released MobRecon code's ranges), which
finetune/augment.py uses too: pretrain sits below finetune in the dependency
order (hdri <- synth <- pretrain <- finetune). The random draw of item i in epoch e
comes from SeedSequence([seed, e, i]): the same whatever the DataLoader worker
layout, and the same after a resume.

Splits (`load_splits`): a deterministic share of the pose ids is held out
(`heldout_poses`: a fraction or a list of ids), and the HDRI catalog of the
dataset (hdris.json, 'split' of each entry) says which environments are held
out. Then

    train           training poses x training HDRIs
    heldout_poses   held-out poses x training HDRIs
    heldout_hdris   training poses x held-out HDRIs
    heldout_both    held-out poses x held-out HDRIs

Shards rendered with `hands render --hdri-split heldout` into another folder
can be added as `eval_data` (their samples join the held-out HDRI splits).
An empty split is left out (e.g. a dataset rendered with training HDRIs only
has no held-out HDRI split), and `Splits.info` says so.

`write_sketch_dataset` (tests/sketch_data.py, a test fixture) writes a Blender-free
stand-in in the real shard format (hands drawn as coloured bones and joint blobs on
textured backgrounds), for tests and the loader benchmark.
"""
from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .augmentation import AugmentConfig, crop_warp, draw_params, photometric
from .image_ops import camera_augment, camera_settings, warp_image

NUM_JOINTS = 21
CROP_SCALE = 1.5
# parents of the 21 keypoints in FreiHAND order (bones for drawing)
PARENTS = [-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19]


# One augmentation for pretraining and fine-tuning: the released MobRecon code's ranges (pretrain/augmentation.py)
Augment2D = AugmentConfig


def crop_transform(keypoints_2d: np.ndarray, out_size: int, scale: float = CROP_SCALE) -> np.ndarray:
    """3x3 map from image pixels to crop pixels: the keypoints' square box x `scale` onto out_size."""
    lo, hi = keypoints_2d.min(axis=0), keypoints_2d.max(axis=0)
    side = max(float((hi - lo).max()) * scale, 1.0)
    s = out_size / side
    c = (lo + hi) / 2.0
    return np.array([[s, 0.0, (out_size - 1) / 2.0 - s * c[0]],
                     [0.0, s, (out_size - 1) / 2.0 - s * c[1]],
                     [0.0, 0.0, 1.0]])


def augment_transform(aug: Augment2D, rng: np.random.Generator, size: int) -> tuple:
    """(A, colour): the crop-pixel affine map of one draw and its ColourParams."""
    params = draw_params(aug, rng, size)
    return crop_warp(params, size), params.colour


def augmented_crop(img, A: np.ndarray, size: int, augment: Augment2D | None, camera, key: tuple) -> tuple:
    """(image (3, S, S) in [0, 1], A): the crop of `img` under A, augmented by one draw of `augment` (and of
    the camera effects `camera`, a CameraEffectsConfig or None) from SeedSequence(key), key = (seed, epoch,
    index); A includes the augmentation's warp."""
    rng = None
    if augment is not None:
        rng = np.random.default_rng(np.random.SeedSequence(list(key)))
        A_aug, colour = augment_transform(augment, rng, size)
        A = A_aug @ A
    image = torch.from_numpy(warp_image(img, A, size).transpose(2, 0, 1).astype(np.float32) / 255.0)
    if rng is not None:
        image = photometric(image, colour)
        if camera is not None:  # drawn after the geometry and colour: their draws stay as they were
            image = camera_augment(image, camera, rng)
    return image, A


class CropSet(Dataset):
    """What the 2D crop datasets share (render crops here, COCO crops in pretrain/coco_hand.py): the crop's
    size and scale, the augmentation and its per-item, per-epoch stream."""

    def __init__(self, input_size: int, crop_scale: float, augment: Augment2D | None, seed: int, name: str):
        self.input_size, self.crop_scale = int(input_size), float(crop_scale)
        self.augment, self.seed, self.epoch, self.name = augment, int(seed), 0, name
        self._camera = camera_settings(augment.camera) if augment is not None else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def crop(self, img, keypoints: np.ndarray, index: int, stream: tuple = ()) -> tuple:
        """(image, A) of item `index`: the keypoints' box x crop_scale, augmented from SeedSequence([seed,
        epoch, index, *stream])."""
        return augmented_crop(img, crop_transform(keypoints, self.input_size, self.crop_scale), self.input_size,
                              self.augment, self._camera, (self.seed, self.epoch, int(index), *stream))


class Pose2DSamples(CropSet):
    """Crops with 2D labels from ComplementDataset reader(s); see the module doc."""

    def __init__(self, readers, input_size: int = 128, crop_scale: float = CROP_SCALE,
                 augment: Augment2D | None = None, seed: int = 0, name: str = ""):
        super().__init__(input_size, crop_scale, augment, seed, name)
        self.readers = list(readers) if isinstance(readers, (list, tuple)) else [readers]
        self.index = [(r, i) for r, reader in enumerate(self.readers) for i in range(len(reader))]

    def __len__(self) -> int:
        return len(self.index)

    def pose_ids(self) -> np.ndarray:
        return np.array([self.readers[r].samples[i].pose_id for r, i in self.index], dtype=np.int64)

    def read(self, index: int) -> tuple:
        """(PIL RGB image, annotation dict, reader sample ref) of one sample, decoding only rgb and json."""
        r, i = self.index[index]
        reader = self.readers[r]
        ref = reader.samples[i]
        raw = reader.read_raw(i)
        where = f"{reader.root}/shards/{ref.pose_id:04d}.tar:{ref.key}"
        try:
            ann = json.loads(raw["json"])
        except ValueError as err:
            raise ValueError(f"{where}.json: not valid JSON ({err})") from None
        try:
            img = Image.open(io.BytesIO(raw["rgb"])).convert("RGB")
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"{where}: cannot decode the rgb image ({err})") from None
        return img, ann, ref, where

    def __getitem__(self, index: int) -> dict:
        img, ann, ref, where = self.read(index)
        kp = np.asarray(ann.get("keypoints_2d"), dtype=np.float64)
        if kp.shape != (NUM_JOINTS, 2):
            raise ValueError(f"{where}.json: keypoints_2d has shape {kp.shape}, expected (21, 2)")
        vis = np.asarray(ann.get("visibility", [True] * NUM_JOINTS), dtype=bool).reshape(-1)
        if vis.shape != (NUM_JOINTS,):
            vis = np.ones(NUM_JOINTS, bool)
        image, A = self.crop(img, kp, index)
        kp_crop = kp @ A[:2, :2].T + A[:2, 2]
        hdri = ann.get("hdri")
        return {"image": image, "keypoints_2d": torch.as_tensor(kp_crop, dtype=torch.float32),
                "visibility": torch.from_numpy(vis), "key": ref.key, "pose_id": int(ref.pose_id),
                "hdri_id": str(hdri.get("id", "")) if isinstance(hdri, dict) else ""}


# ---------------------------------------------------------------- splits

@dataclass
class Splits:
    train: Pose2DSamples
    evals: dict                  # {name: Pose2DSamples}, non-empty splits only
    info: dict = field(default_factory=dict)


def choose_heldout_poses(pose_ids, heldout, seed: int = 0) -> list:
    """The held-out pose ids: a list as given (checked), or round(fraction x P) poses (at least one when
    there are 2 or more poses, never all) drawn with default_rng(seed)."""
    pose_ids = sorted(int(p) for p in pose_ids)
    if isinstance(heldout, (list, tuple)):
        bad = sorted(set(int(h) for h in heldout) - set(pose_ids))
        if bad:
            raise ValueError(f"held-out pose id(s) {bad[:10]} are not in the dataset "
                             f"({len(pose_ids)} poses, {pose_ids[0]}..{pose_ids[-1]})")
        chosen = sorted(set(int(h) for h in heldout))
        if len(chosen) == len(pose_ids):
            raise ValueError("every pose is held out: nothing is left to train on")
        return chosen
    frac = float(heldout)
    if not 0.0 <= frac < 1.0:
        raise ValueError(f"heldout_poses must be a fraction in [0, 1) or a list of pose ids, got {heldout!r}")
    if frac == 0.0 or len(pose_ids) < 2:
        return []
    n = min(len(pose_ids) - 1, max(1, round(frac * len(pose_ids))))
    return sorted(np.random.default_rng(seed).choice(pose_ids, n, replace=False).tolist())


def _reader(root, poses, hdri_split):
    """A ComplementDataset, or None when the filter selects nothing."""
    from synth.reader import ComplementDataset

    if poses is not None and not len(poses):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing / incomplete shards were reported by the first, unfiltered read
        try:
            return ComplementDataset(root, poses=poses, hdri_split=hdri_split)
        except ValueError as err:
            if "no samples match" in str(err):
                return None
            raise


def load_splits(data, eval_data=(), heldout_poses=0.1, split_seed: int = 0, input_size: int = 128,
                crop_scale: float = CROP_SCALE, augment: Augment2D | None = None, seed: int = 0,
                poses=None) -> Splits:
    """Train and held-out splits of the dataset folder(s) `data` (+ held-out-HDRI folders `eval_data`);
    `poses` (ids) keeps only those poses of `data` (None: all)."""
    from synth.reader import ComplementDataset

    roots = [Path(d) for d in ([data] if isinstance(data, (str, Path)) else data)]
    extra = [Path(d) for d in ([eval_data] if isinstance(eval_data, (str, Path)) else (eval_data or ()))]
    if not roots:
        raise ValueError("no training data folder given")
    alls = {r: ComplementDataset(r) for r in roots + extra}  # warns about missing / incomplete shards once
    all_poses = sorted({int(p) for r in roots for p in alls[r].sample_pose_ids})
    if poses is not None:
        missing = sorted({int(p) for p in poses} - set(all_poses))
        if missing:
            raise ValueError(f"pose id(s) {missing[:10]} are not in {', '.join(map(str, roots))}")
        all_poses = sorted({int(p) for p in poses})
    held = set(choose_heldout_poses(all_poses, heldout_poses, split_seed))
    train_poses = [p for p in all_poses if p not in held]
    parts: dict = {"train": [], "heldout_poses": [], "heldout_hdris": [], "heldout_both": []}
    for r in roots:
        present = {int(p) for p in alls[r].sample_pose_ids} & set(all_poses)
        tp, hp = sorted(present - held), sorted(present & held)
        parts["train"].append(_reader(r, tp, "train"))
        parts["heldout_poses"].append(_reader(r, hp, "train"))
        parts["heldout_hdris"].append(_reader(r, tp, "heldout"))
        parts["heldout_both"].append(_reader(r, hp, "heldout"))
    for r in extra:  # evaluation shards: every sample counts as a held-out-HDRI sample
        present = {int(p) for p in alls[r].sample_pose_ids}
        parts["heldout_hdris"].append(_reader(r, sorted(present - held), "heldout"))
        parts["heldout_both"].append(_reader(r, sorted(present & held), "heldout"))
    parts = {k: [x for x in v if x is not None] for k, v in parts.items()}
    if not parts["train"]:
        raise ValueError(f"{', '.join(map(str, roots))}: no training samples (training poses {train_poses[:10]} "
                         "with training HDRIs)")
    make = lambda name, readers, aug: Pose2DSamples(readers, input_size, crop_scale, aug, seed, name)  # noqa: E731
    train = make("train", parts["train"], augment)
    evals = {k: make(k, v, None) for k, v in parts.items() if k != "train" and v}
    info = {"poses": len(all_poses), "heldout_pose_ids": sorted(held), "train_pose_ids": train_poses,
            "samples": {"train": len(train), **{k: len(v) for k, v in evals.items()}},
            "empty_splits": [k for k in parts if k != "train" and not parts[k]],
            "data": [str(r) for r in roots], "eval_data": [str(r) for r in extra]}
    return Splits(train, evals, info)
