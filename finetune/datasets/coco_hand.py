"""COCO-format 2D hand keypoints (`coco_hand`): any COCO keypoint file with a 21-keypoint hand category,
or COCO-WholeBody's lefthand_kpts / righthand_kpts, as base.py samples with 2D labels only.

ROOT is the JSON file, or a folder holding it (one .json, or of several the one named *coco*);
images are read relative to the JSON's folder unless `image_root` is given. Parsing, keypoint
order, visibility, the `min_keypoints` rule and the mirroring of left hands are
pretrain/coco_hand.py's (one parser for pretraining and fine-tuning).

A sample is base.py's dictionary for an image without a camera or 3D labels:

| key | value |
| --- | --- |
| image | the crop: the labelled keypoints' square box x 1.5 (base.box_crop), mirrored for a left hand |
| keypoints_2d | labelled keypoints in crop pixels; unlabelled ones (v == 0) are (0, 0) |
| visibility | labelled (v > 0) |
| keypoints_3d, keypoints_3d_rel, vertices, mano_* | zeros; has_vertices and has_mano False |
| K | the identity: a placeholder, no camera is known |
| has_keypoints_3d | False: there is no 3D label (other loaders' samples lack the key, meaning True) |

How fine-tuning uses them (finetune/training_data.py, finetune/model_eval.py): `keypoints_2d_valid`
comes from the visibility, `keypoints_3d_valid` is False, augmentation moves the 2D labels with
the image, the evaluation reports px_2d and leaves out every 3D figure, and only models whose
loss reads no 3D keypoint (MobRecon, the CMR baseline, SMR with supervision '2d') may train on it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from pretrain.coco_hand import MIN_KEYPOINTS, find_coco_json, load_hand, parse_coco_hand

from .base import CROP_SCALE, CROP_SIZE, apply_affine, box_crop
from .registry import check_image, make_sample


class CocoHandDataset(Dataset):
    """A COCO keypoint file's hands as base.py samples with 2D labels only (see the module doc)."""

    name = "coco_hand"
    has_keypoints_3d = False

    def __init__(self, root, crop_size: int = CROP_SIZE, crop_scale: float = CROP_SCALE,
                 min_keypoints: int = MIN_KEYPOINTS, image_root=None):
        self.root = Path(root).expanduser()
        self.file = parse_coco_hand(find_coco_json(self.root), min_keypoints, image_root)
        self.records = self.file.records
        self.crop_size, self.crop_scale = int(crop_size), float(crop_scale)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        rec = self.records[index]
        image, kp = load_hand(rec)
        A = box_crop(kp[rec.labelled], self.crop_size, self.crop_scale)
        sample = make_sample(image, A, np.eye(3), None, out_size=self.crop_size, visibility=rec.labelled,
                             mirrored=rec.is_left, dataset=self.name, sample_id=rec.key, topology="none")
        kp2 = np.zeros((len(kp), 2))
        kp2[rec.labelled] = apply_affine(kp[rec.labelled], A)
        sample["keypoints_2d"] = torch.as_tensor(kp2, dtype=torch.float32)
        sample["K"] = torch.eye(3)
        sample["has_keypoints_3d"] = False
        return sample

    @classmethod
    def check(cls, root, limit: int | None = None) -> list:
        try:
            ds = cls(root)
        except ValueError as err:
            return [f"problem: {err}"]
        f = ds.file
        lines = [f"info: {f.path} (categories: {', '.join(f.categories)}; keypoint order: {f.order})",
                 f"count: {len(ds)} hands ({sum(r.is_left for r in ds.records)} left hands, mirrored on load)"]
        why = {"too_few_keypoints": f"fewer than the minimum of labelled keypoints ({MIN_KEYPOINTS} by default)",
               "not_valid": "COCO-WholeBody hands marked not valid"}
        for reason, n in sorted(f.skipped.items()):
            lines.append(f"count: {n} hands skipped: {why.get(reason, reason)}")
        todo = ds.records if limit is None else ds.records[:int(limit)]
        sizes = {r.image: r.size for r in todo}
        ok = 0
        for path, size in sizes.items():
            if not check_image(path, "a hand image of the COCO file", lines):
                continue
            with Image.open(path) as img:
                if size is not None and tuple(img.size) != tuple(size):
                    lines.append(f"problem: {path}: the image is {img.size[0]}x{img.size[1]} but its COCO entry "
                                 f"says {size[0]}x{size[1]}")
                    continue
            ok += 1
        lines.append(f"count: {ok} of {len(sizes)} images readable, of the size their entry gives")
        outside = 0
        for rec in todo:
            if rec.size is not None:
                lab, (w, h) = rec.keypoints[rec.labelled], rec.size
                outside += bool(np.any(lab < -0.5) or np.any(lab[:, 0] > w - 0.5) or np.any(lab[:, 1] > h - 0.5))
        if outside:
            lines.append(f"info: {outside} hands have labelled keypoints outside their image")
        return lines
