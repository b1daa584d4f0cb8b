"""FreiHAND (v1/v2 layout, read as published): ROOT holds

    training_K.json      [N][3][3]   intrinsics of the 224x224 images
    training_xyz.json    [N][21][3]  keypoints, metres, camera frame (OpenCV), FreiHAND order, right hands
    training_verts.json  [N][778][3] MANO vertices, metres, camera frame (optional for us: has_vertices)
    training_mano.json   [N][1][61]  MANO fit (optional: has_mano), see below
    training_scale.json  [N]         metric length of a reference bone (used by the benchmark, not the sample)
    training/rgb/%08d.jpg            4 versions of each sample: image id = idx + 32560 * k,
                                     k = 0 'gs' (green screen), 1 'hom', 2 'sample', 3 'auto'
    training/mask/%08d.jpg           JPEG hand mask of sample idx (shared by its 4 versions)
    evaluation_K.json, evaluation_scale.json, evaluation/rgb/%08d.jpg
    evaluation_xyz.json, evaluation_verts.json, evaluation_mano.json   (released later; used when present)

N = 32560 training and 3960 evaluation samples in the real data.

Re-derived from the official toolbox (lmb-freiburg/freihand):
- `utils/fh_utils.py`: `db_size('training') = 32560`; `sample_version.map_id(id, v) = id + 32560 *
  ['gs', 'hom', 'sample', 'auto'].index(v)`; images `'%s/rgb/%08d.jpg' % (set_name, map_id)`;
  masks `training/mask/%08d.jpg % idx` (the unique id); evaluation images only in version 'gs';
  `projectPoints(xyz, K) = (K @ xyz.T).T[:, :2] / z`. The offset is the official constant 32560,
  not len(training_K.json) (constructor argument `version_offset`).
- `utils/model.py`: `split_theta(theta)`: theta[:, :48] pose, [:, 48:58] shape, [:, 58:60] uv_root,
  [:, 60:] scale; the hand model is MANO loaded with `flat_hand_mean=not use_mean_pose` and
  `use_mean_pose=True` in `view_samples.py`, i.e. the 48 pose values are global orientation (3) and
  15x3 finger axis-angles RELATIVE TO MANO's mean hand pose (`hands_mean`): flat pose =
  pose + [0,0,0, hands_mean]; this loader does that with `HandModel.pose_from_mean_relative`.
  `recover_root(uv_root, scale, focal, pp)` with `focal = (fx + fy) / 2`, `pp = K[:2, 2]` gives
  xyz_root = [(u - px), (v - py), focal] / scale (a weak-perspective back-projection: scale is
  focal / z_root, exact when fx == fy), and `pose_by_root(xyz_root, ...)` translates the MANO
  output so that keypoint 9 (FreiHAND order: middle-finger MCP) lands on xyz_root.
  So the 61 values are: 48 mean-relative pose, 10 betas, 2 uv of keypoint 9 in pixels,
  1 scale = focal / z of keypoint 9. See `split_theta` and `root_from_mano` below.
- `pred.py`: `scale` of `*_scale.json` is "scalar metric length of the reference bone" (metres).
  Which bone the toolbox does not say; it is passed through (`FreiHANDDataset.scale(i)`).
- FreiHAND's own keypoints (`mano_utils.get_keypoints_from_mesh_ch`) are MANO's 16 joints plus
  fingertip vertices 744, 320, 443, 555, 672, in the same FreiHAND order as the project's.

Crop (`crop`): 'release' (default) is the authors' released MobRecon / SAR loaders: evaluation
images crop a fixed 100 px box at the image centre, enlarged 1.3 x (130 px of the 224), onto the
crop size (mobrecon/datasets/freihand.py get_eval_sample; SAR's data/dataset.py the same);
training images crop the mask's square bounding box x 1.3 (get_training_sample; the augmentation
then varies it by +-0.2 of the box, finetune/augment.py). 'full' resizes the whole 224 px image
(the hand is then about 0.58 x the size the released models see); 'keypoints' uses base.box_crop
around the projected keypoints (it needs labels).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from synth.hand_model import resolve_hand_model

from .base import (CROP_SIZE, RELEASE_BOX_SCALE, DatasetFormatError, box_crop, crop_transform, project,
                   release_mask_crop, release_patch_transform)
from .registry import as_array, check_image, make_sample, read_image, read_json

UNIQUE_TRAINING = 32560  # official db_size('training'): the image-id offset between versions
UNIQUE_EVALUATION = 3960
VERSIONS = ("gs", "hom", "sample", "auto")
SPLITS = ("training", "evaluation")
ROOT_KEYPOINT = 9  # pose_by_root(..., root_id=9): FreiHAND's middle-finger MCP
CROPS = ("release", "full", "keypoints")
RELEASE_EVAL_BOX = 100  # release get_eval_sample: bbox = [w // 2 - 50, h // 2 - 50, 100, 100]


def split_theta(theta) -> tuple:
    """The official split of the 61-value MANO vector: pose (48, mean-relative), betas (10), uv_root (2), scale (1)."""
    t = np.asarray(theta, dtype=np.float64).reshape(-1, 61)
    return t[:, :48], t[:, 48:58], t[:, 58:60], t[:, 60:]


def root_from_mano(theta, K) -> np.ndarray:
    """xyz of keypoint 9 from the MANO vector's uv_root and scale, as the toolbox's recover_root does."""
    _, _, uv_root, scale = split_theta(theta)
    K = np.asarray(K, dtype=np.float64)
    focal = 0.5 * (K[0, 0] + K[1, 1])
    uv = uv_root[0] - K[:2, 2]
    return np.array([uv[0], uv[1], focal]) / scale[0, 0]


class FreiHANDDataset(Dataset):
    """FreiHAND as a torch Dataset of base.py samples.

    split: 'training' or 'evaluation'. versions: the training image versions to include
    (subset of 'gs', 'hom', 'sample', 'auto'; len = N * len(versions), version-major).
    hand_model: a MANO-format HandModel (or 'mano' / a path) whose hands_mean turns the
    mean-relative MANO pose into the flat pose of the sample; None -> has_mano False
    (the raw values stay available through `mano_params`).
    """

    name = "freihand"

    def __init__(self, root, split: str = "training", versions=VERSIONS, crop_size: int = CROP_SIZE,
                 crop: str = "release", hand_model=None, load_vertices: bool = True,
                 version_offset: int = UNIQUE_TRAINING):
        if split not in SPLITS:
            raise ValueError(f"FreiHAND split must be one of {SPLITS}, got {split!r}")
        if crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
        self.root = Path(root)
        self.split = split
        self.crop_size = int(crop_size)
        self.crop = crop
        self.version_offset = int(version_offset)
        if split == "evaluation":
            versions = ("gs",)  # the only version the evaluation split has
        bad = [v for v in versions if v not in VERSIONS]
        if bad or not versions:
            raise ValueError(f"versions must be a non-empty subset of {VERSIONS}, got {versions!r}")
        self.versions = tuple(versions)
        self.hand_model = resolve_hand_model(hand_model)
        self._load_annotations(load_vertices)
        if self.xyz is None and crop == "keypoints":
            raise ValueError(f"{self.root}: crop='keypoints' needs {split}_xyz.json (not present)")

    # ------------------------------------------------------------------ annotations
    def _json(self, kind: str) -> Path:
        return self.root / f"{self.split}_{kind}.json"

    def _load_annotations(self, load_vertices: bool) -> None:
        s = self.split
        K = read_json(self._json("K"), f"the {s} intrinsics, a list of 3x3 matrices")
        n = len(K)
        self.K = as_array(K, (n, 3, 3), str(self._json("K")), "K")
        scale_path = self._json("scale")
        self._scale = None
        if scale_path.is_file() or s == "evaluation":
            sc = read_json(scale_path, f"the {s} reference-bone lengths, a list of numbers")
            self._scale = as_array(sc, (-1,), str(scale_path), "scale")
            self._same_length(scale_path, len(self._scale), n)
        optional = {"xyz": ((n, 21, 3), "21x3 keypoints per sample, metres"),
                    "verts": ((n, 778, 3), "778x3 MANO vertices per sample, metres"),
                    "mano": ((n, -1, 61), "61 MANO values per sample ([[...61...]])")}
        self.xyz = self.verts = self.mano = None
        for kind, (shape, what) in optional.items():
            path = self._json(kind)
            if kind == "verts" and not load_vertices:
                continue
            if not path.is_file():
                if s == "training" and kind == "xyz":
                    raise DatasetFormatError(f"missing file {path} (expected {what})")
                continue
            data = read_json(path, what)
            self._same_length(path, len(data), n)
            if kind == "mano":  # published as [[61 values]] per sample; accept a flat [61 values] too
                for i, m in enumerate(data):
                    if np.size(m) != 61:
                        raise DatasetFormatError(f"{path}: entry {i} has {np.size(m)} values, expected 61 "
                                                 "(48 pose, 10 shape, 2 uv_root, 1 scale)")
                arr = as_array([np.ravel(m) for m in data], (n, 61), str(path), kind)
            else:
                arr = as_array(data, shape, str(path), kind)
            setattr(self, kind, arr.astype(np.float32) if kind == "verts" else arr)
        self.num_unique = n

    def _same_length(self, path, got: int, n: int) -> None:
        if got != n:
            raise DatasetFormatError(f"{path}: {got} entries, expected {n} (as many as {self._json('K').name})")

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return self.num_unique * len(self.versions)

    def locate(self, index: int) -> tuple:
        """(unique sample idx, version name, image id) of a dataset index."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        k, idx = divmod(int(index), self.num_unique)
        version = self.versions[k]
        return idx, version, idx + self.version_offset * VERSIONS.index(version)

    def image_path(self, image_id: int) -> Path:
        return self.root / self.split / "rgb" / f"{image_id:08d}.jpg"

    def mask_path(self, idx: int) -> Path:
        return self.root / "training" / "mask" / f"{idx:08d}.jpg"

    def scale(self, idx: int) -> float | None:
        """The reference-bone length of unique sample idx (metres), None without *_scale.json."""
        return None if self._scale is None else float(self._scale[idx])

    def mano_params(self, idx: int) -> dict | None:
        """The raw 61 values of unique sample idx, split the official way, plus the recovered root."""
        if self.mano is None:
            return None
        pose, betas, uv_root, scale = split_theta(self.mano[idx])
        return {"pose_mean_relative": pose[0], "betas": betas[0], "uv_root": uv_root[0], "scale": float(scale[0, 0]),
                "xyz_root": root_from_mano(self.mano[idx], self.K[idx])}

    def __getitem__(self, index: int) -> dict:
        idx, version, image_id = self.locate(index)
        path = self.image_path(image_id)
        image = read_image(path, f"FreiHAND {self.split} image {idx} (version '{version}')")
        mask = None
        if self.split == "training":
            m = read_image(self.mask_path(idx), f"FreiHAND mask of sample {idx}", mode="L")
            mask = m > 127  # JPEG: threshold the compressed 0/255 mask
            if mask.shape != image.shape[:2]:
                raise DatasetFormatError(f"{self.mask_path(idx)}: mask is {mask.shape}, image {path} is "
                                         f"{image.shape[:2]}")
        K = self.K[idx]
        xyz = None if self.xyz is None else self.xyz[idx]
        h, w = image.shape[:2]
        A = self.crop_map(w, h, mask, xyz, K)
        pose = betas = None
        if self.mano is not None:
            p, b, _, _ = split_theta(self.mano[idx])
            betas = b[0]
            if self.hand_model is not None:
                pose = self.hand_model.pose_from_mean_relative(p[0])
        verts = None if self.verts is None else self.verts[idx].astype(np.float64)
        return make_sample(image, A, K, xyz, out_size=self.crop_size, mask=mask, vertices=verts,
                           mano_pose=pose, mano_betas=betas if pose is not None else None,
                           dataset=self.name, sample_id=f"{self.split}/{image_id:08d}", topology="mano")

    def crop_map(self, w: int, h: int, mask, xyz, K) -> np.ndarray:
        """The 3x3 image -> crop map of one sample under `crop` (see the module doc)."""
        if self.crop == "full":
            return crop_transform(((w - 1) / 2.0, (h - 1) / 2.0), float(max(w, h)), self.crop_size)
        if self.crop == "keypoints":
            return box_crop(project(xyz, K), self.crop_size)
        if mask is not None:
            A = release_mask_crop(mask, self.crop_size)
            if A is not None:
                return A
        # the release's fixed box: corner (w // 2 - 50, h // 2 - 50), so its centre is (w // 2, h // 2)
        return release_patch_transform((w // 2, h // 2), RELEASE_EVAL_BOX * RELEASE_BOX_SCALE, self.crop_size)

    # ------------------------------------------------------------------ check
    @classmethod
    def check(cls, root, limit: int | None = None) -> list:
        root = Path(root)
        lines = []
        found = [s for s in SPLITS if (root / f"{s}_K.json").is_file()]
        if not found:
            return [f"problem: {root}: neither training_K.json nor evaluation_K.json (expected FreiHAND's layout: "
                    "training_{K,mano,xyz,verts,scale}.json, training/rgb, training/mask, evaluation_{K,scale}.json, "
                    "evaluation/rgb)"]
        for split in found:
            try:
                ds = cls(root, split=split, load_vertices=True)
            except (DatasetFormatError, ValueError) as err:
                lines.append(f"problem: {err}")
                continue
            n = ds.num_unique
            extras = [k for k in ("xyz", "verts", "mano") if getattr(ds, k) is not None]
            lines.append(f"count: {split}: {n} annotated samples ({', '.join(['K'] + extras)}"
                         f"{', scale' if ds._scale is not None else ''})")
            todo = range(n if limit is None else min(n, int(limit)))
            bad = 0
            for v in ds.versions:
                ok = 0
                for idx in todo:
                    image_id = idx + ds.version_offset * VERSIONS.index(v)
                    if check_image(ds.image_path(image_id), f"FreiHAND {split} image {idx} (version '{v}')", lines):
                        ok += 1
                    else:
                        bad += 1
                lines.append(f"count: {split}/rgb version '{v}': {ok} of {len(todo)} images readable")
            if split == "training":
                ok = sum(check_image(ds.mask_path(i), f"FreiHAND mask of sample {i}", lines) for i in todo)
                lines.append(f"count: training/mask: {ok} of {len(todo)} masks readable")
            if ds.xyz is not None:
                z = ds.xyz[..., 2]
                if np.any(z <= 0):
                    lines.append(f"problem: {ds._json('xyz')}: {int(np.sum(np.any(z <= 0, axis=1)))} samples have "
                                 "keypoints at z <= 0 (expected metres in front of the camera)")
        return lines
