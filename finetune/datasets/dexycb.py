"""Dex-YCB (Chao et al., CVPR 2021) read from the layout of its toolkit (NVlabs/dex-ycb-toolkit).

On-disk layout (ROOT = the toolkit's $DEX_YCB_DIR)
-------------------------------------------------

    ROOT/calibration/intrinsics/<serial>_640x480.yml   color: {fx, fy, ppx, ppy} (and depth: ...)
    ROOT/calibration/mano_<mano_calib>/mano.yml         betas: [10 floats]
    ROOT/calibration/extrinsics_<extrinsics>/extrinsics.yml
                                                        extrinsics: {<serial>: [12 floats], apriltag: ...},
                                                        master: <serial> (read for multi-view access only)
    ROOT/<subject>/<sequence>/meta.yml                  serials, num_frames, ycb_ids, ycb_grasp_ind,
                                                        mano_sides ['right'|'left'], mano_calib [name],
                                                        extrinsics (a calibration name), ...
    ROOT/<subject>/<sequence>/<serial>/color_%06d.jpg   640x480 colour image
    ROOT/<subject>/<sequence>/<serial>/labels_%06d.npz  seg (480, 640), pose_y (O, 3, 4),
                                                        pose_m (1, 51), joint_3d (1, 21, 3), joint_2d (1, 21, 2)

Subjects are the toolkit's `_SUBJECTS` ('20200709-subject-01' ... '20201022-subject-10'),
serials its `_SERIALS` (8 RealSense cameras). A subject folder holds 100
sequence folders; the toolkit takes them in sorted order and refers to them by
position (0..99), 5 consecutive sequences per YCB object.

Labels (per camera, in that camera's frame)
-------------------------------------------

- joint_3d (1, 21, 3): metres, OpenCV camera frame of the serial's colour camera.
  Frames in which the hand is not annotated hold -1 everywhere; they are
  skipped (the toolkit's hand-pose evaluation skips them the same way).
- joint_2d (1, 21, 2): pixels, joint_3d projected with the colour intrinsics.
  The loader recomputes 2D keypoints from joint_3d and K (they agree).
- pose_m (1, 51): the MANO parameters of manopth's ManoLayer as the toolkit
  builds it (`use_pca=True, ncomps=45, flat_hand_mean=False`): [0:3] global
  axis-angle, [3:48] 45 PCA coefficients, [48:51] translation (metres). The
  flat axis-angle pose is `[g, hands_mean + coeffs @ hands_components]`
  (manopth: th_full_pose = cat(root, th_hands_mean + coeffs.mm(th_comps[:45]))),
  with the PCA basis and mean of the MANO model of the hand's side; vertices =
  MANO(flat pose, betas) + translation (manopth adds th_trans before its x1000,
  which the toolkit undoes). betas come from calibration/mano_<calib>/mano.yml.

Joint order: the toolkit's `_MANO_JOINTS` (wrist, thumb_mcp, thumb_pip,
thumb_dip, thumb_tip, index_mcp ... little_tip) is manopth's *output* order,
which manopth already reorders from MANO's internal order (16 skinned joints
wrist, index, middle, little, ring, thumb, then 5 tips) with
[0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20].
That is FreiHAND's order (the toolkit names the thumb joints mcp/pip/dip where
FreiHAND says CMC/MCP/IP; they are the same points), so DEXYCB_TO_FREIHAND is
the identity. The tips are manopth's vertices 745, 317, 444, 556, 673.

Splits: setups s0-s3 with train / val / test exactly as the toolkit's
`DexYCBDataset.__init__` defines them (see SETUPS): s0 the default split
(every subject and camera, sequences i % 5 != 4 for training, i % 5 == 4 for
val (subjects 0-1) and test (subjects 2-9)); s1 unseen subjects (train 0-5 and 9,
val 6, test 7-8); s2 unseen camera views (train serials 0-5, val 6, test 7);
s3 unseen grasped objects (sequence i in object group i // 5; val objects
{3, 19}, test {7, 11, 15}, train the rest). Samples are ordered as the toolkit's
mapping: sequence, then camera, then frame.

Left hands (mano_sides[0] == 'left') are mirrored into right ones. Their MANO
pose is mirrored per joint ((x, y, z) -> (x, -y, -z)); MANO_LEFT's PCA basis and
mean are MANO_RIGHT's mirrored the same way, so the mirrored flat pose is
[mirror(g), hands_mean_R + coeffs @ hands_components_R] and the mirrored
vertices are MANO_RIGHT(that pose, betas) + (-tx, ty, tz). This is exact to the
extent that MANO_LEFT is the mirror image of MANO_RIGHT (it is, up to the
known shapedirs sign glitch of the left pickle); keypoints come from joint_3d
and are exact.

MANO parameters and vertices need a hand model (`hand_model`: a HandModel,
'mano', 'openhand' or a path) for its PCA basis, mean and skinning; without
one, has_mano and has_vertices are False. Real Dex-YCB labels need the real
MANO model (MANO_MODEL_PATH); topology is 'mano' for it and the model's
template hash for any other model.

`visibility` is True for keypoints projecting inside the image (Dex-YCB has no
per-joint occlusion labels). No masks are read (has_mask False).

Multi-view access (SiMA-Hand)
-----------------------------

The 8 cameras record synchronously, and a frame's labels in every camera are
the same hand in that camera's frame. With `multiview=True` an item is one
(sequence, frame): the samples of the split's cameras that have that frame's
hand, stacked along a leading view axis (multiview.stack_views), in camera order.
Each view carries the extra keys 'R', 't' (master camera -> this camera, the
"world -> camera" of HanCo's loader) and 'camera' (index into SERIALS). The
extrinsics file holds per serial the row-major 3x4 [R_c | t_c] that takes a
point of camera c into the master camera's frame (the toolkit's
SequenceLoader projects master-frame points with K_c @ inverse([R_c | t_c])),
so R = R_c^T, t = -R_c^T t_c. A left hand's views are mirrored images of a
mirrored world: their extras are (M R M, M t) with M = diag(-1, 1, 1), so that
R^T (keypoints - t) is one right-hand world skeleton for every view.
`min_views` is the smallest number of views of an item (setup s2 has 6, 1, 1
cameras in train / val / test).
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from synth.hand_model import resolve_hand_model

from .base import CROP_SCALE, CROP_SIZE, DatasetFormatError, box_crop, mirror_sample, project
from .multiview import stack_views, with_camera
from .registry import as_array, check_image, make_sample, read_image, require_file

SUBJECTS = (
    "20200709-subject-01", "20200813-subject-02", "20200820-subject-03", "20200903-subject-04",
    "20200908-subject-05", "20200918-subject-06", "20200928-subject-07", "20201002-subject-08",
    "20201015-subject-09", "20201022-subject-10",
)
SERIALS = ("836212060125", "839512060362", "840412060917", "841412060263",
           "932122060857", "932122060861", "932122061900", "932122062010")
NUM_SEQUENCES = 100
IMAGE_W, IMAGE_H = 640, 480
DEXYCB_TO_FREIHAND = list(range(21))
MANO_JOINTS = ("wrist", "thumb_mcp", "thumb_pip", "thumb_dip", "thumb_tip", "index_mcp", "index_pip", "index_dip",
               "index_tip", "middle_mcp", "middle_pip", "middle_dip", "middle_tip", "ring_mcp", "ring_pip",
               "ring_dip", "ring_tip", "little_mcp", "little_pip", "little_dip", "little_tip")
LABEL_KEYS = ("pose_m", "joint_3d", "joint_2d")
_ALL10 = list(range(10))
_ALL8 = list(range(8))
# setup -> split -> (subject indices, serial indices, sequence indices), as dex_ycb.py of the toolkit
SETUPS = {
    "s0": {"train": (_ALL10, _ALL8, [i for i in range(100) if i % 5 != 4]),
           "val": ([0, 1], _ALL8, [i for i in range(100) if i % 5 == 4]),
           "test": ([2, 3, 4, 5, 6, 7, 8, 9], _ALL8, [i for i in range(100) if i % 5 == 4])},
    "s1": {"train": ([0, 1, 2, 3, 4, 5, 9], _ALL8, list(range(100))),
           "val": ([6], _ALL8, list(range(100))),
           "test": ([7, 8], _ALL8, list(range(100)))},
    "s2": {"train": (_ALL10, [0, 1, 2, 3, 4, 5], list(range(100))),
           "val": (_ALL10, [6], list(range(100))),
           "test": (_ALL10, [7], list(range(100)))},
    "s3": {"train": (_ALL10, _ALL8, [i for i in range(100) if i // 5 not in (3, 7, 11, 15, 19)]),
           "val": (_ALL10, _ALL8, [i for i in range(100) if i // 5 in (3, 19)]),
           "test": (_ALL10, _ALL8, [i for i in range(100) if i // 5 in (7, 11, 15)])},
}
MIRROR_POSE = np.tile([1.0, -1.0, -1.0], 16)


def split_rule(setup: str, split: str) -> tuple:
    """(subject indices, serial indices, sequence positions) of a setup's split."""
    if setup not in SETUPS:
        raise ValueError(f"Dex-YCB setup must be one of {sorted(SETUPS)}, got {setup!r}")
    if split not in SETUPS[setup]:
        raise ValueError(f"Dex-YCB split must be one of {sorted(SETUPS[setup])}, got {split!r}")
    return SETUPS[setup][split]


def _read_yaml(path: Path, what: str) -> dict:
    import yaml

    require_file(path, what)
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise DatasetFormatError(f"{path}: not valid YAML (expected {what}): {err}") from err
    if not isinstance(data, dict):
        raise DatasetFormatError(f"{path}: expected a YAML mapping ({what})")
    return data


def _need(data: dict, key: str, path: Path, what: str):
    if key not in data:
        raise DatasetFormatError(f"{path}: no key {key!r} (expected {what}); found {sorted(data)}")
    return data[key]


def read_intrinsics(root, serial: str) -> np.ndarray:
    """K of a serial's colour camera from calibration/intrinsics/<serial>_640x480.yml."""
    path = Path(root) / "calibration" / "intrinsics" / f"{serial}_{IMAGE_W}x{IMAGE_H}.yml"
    data = _read_yaml(path, "Dex-YCB intrinsics with color: {fx, fy, ppx, ppy}")
    color = _need(data, "color", path, "color: {fx, fy, ppx, ppy}")
    if not isinstance(color, dict):
        raise DatasetFormatError(f"{path}: 'color' is not a mapping (expected fx, fy, ppx, ppy)")
    try:
        fx, fy, ppx, ppy = (float(_need(color, k, path, "color: {fx, fy, ppx, ppy}"))
                            for k in ("fx", "fy", "ppx", "ppy"))
    except (TypeError, ValueError) as err:
        raise DatasetFormatError(f"{path}: color intrinsics are not numbers: {err}") from err
    return np.array([[fx, 0.0, ppx], [0.0, fy, ppy], [0.0, 0.0, 1.0]])


def read_meta(root, subject: str, sequence: str) -> dict:
    """meta.yml of a sequence, with the keys the loader needs checked."""
    path = Path(root) / subject / sequence / "meta.yml"
    what = "Dex-YCB sequence meta with num_frames, mano_sides, mano_calib"
    meta = _read_yaml(path, what)
    for key in ("num_frames", "mano_sides", "mano_calib"):
        _need(meta, key, path, what)
    if not isinstance(meta["num_frames"], int) or meta["num_frames"] < 0:
        raise DatasetFormatError(f"{path}: num_frames {meta['num_frames']!r} is not a non-negative integer")
    for key in ("mano_sides", "mano_calib"):
        if not isinstance(meta[key], list) or not meta[key]:
            raise DatasetFormatError(f"{path}: {key} must be a non-empty list, got {meta[key]!r}")
    if meta["mano_sides"][0] not in ("right", "left"):
        raise DatasetFormatError(f"{path}: mano_sides[0] is {meta['mano_sides'][0]!r}, expected 'right' or 'left'")
    return meta


def read_extrinsics(root, name: str, serials) -> dict:
    """serial -> (R, t) master camera -> that camera, from calibration/extrinsics_<name>/extrinsics.yml
    (which stores each camera -> master as a row-major 3x4 [R | t])."""
    path = Path(root) / "calibration" / f"extrinsics_{name}" / "extrinsics.yml"
    what = "Dex-YCB extrinsics with extrinsics: {<serial>: [12 floats]}"
    table = _need(_read_yaml(path, what), "extrinsics", path, what)
    if not isinstance(table, dict):
        raise DatasetFormatError(f"{path}: 'extrinsics' is not a mapping of serial -> 12 floats")
    out = {}
    for serial in serials:
        T = as_array(_need(table, serial, path, what), (12,), str(path), f"extrinsics of {serial}").reshape(3, 4)
        R, t = T[:, :3], T[:, 3]
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0:
            raise DatasetFormatError(f"{path}: the rotation of {serial} is not a proper rotation matrix")
        out[serial] = (R.T, -R.T @ t)
    return out


def read_betas(root, mano_calib: str) -> np.ndarray:
    path = Path(root) / "calibration" / f"mano_{mano_calib}" / "mano.yml"
    betas = _need(_read_yaml(path, "Dex-YCB MANO calibration with betas"), "betas", path, "betas: [10 floats]")
    return as_array(betas, (10,), str(path), "betas")


def read_label(path: Path) -> dict:
    """The arrays of a labels_%06d.npz the loader uses, with shapes checked."""
    import zipfile

    require_file(path, "a Dex-YCB label file (npz with pose_m, joint_3d, joint_2d)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in LABEL_KEYS if k not in z.files]
            if missing:
                raise DatasetFormatError(f"{path}: no {missing} (found {sorted(z.files)}); expected "
                                         "pose_m (1, 51), joint_3d (1, 21, 3), joint_2d (1, 21, 2)")
            out = {k: np.asarray(z[k], dtype=np.float64) for k in LABEL_KEYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DatasetFormatError(f"{path}: not a readable .npz (expected pose_m, joint_3d, joint_2d): {err}") \
            from err
    for k, shape in (("pose_m", (1, 51)), ("joint_3d", (1, 21, 3)), ("joint_2d", (1, 21, 2))):
        if out[k].shape != shape:
            raise DatasetFormatError(f"{path}: '{k}' has shape {out[k].shape}, expected {shape}")
    return out


def has_hand(joint_3d: np.ndarray) -> bool:
    """False for the frames the toolkit marks as unannotated (joint_3d all -1)."""
    return not np.all(np.asarray(joint_3d) == -1)


def pca_basis(hand_model) -> tuple:
    """(hands_components (45, 45), hands_mean (45,)) of a right-hand MANO-format model."""
    comps = getattr(hand_model, "hands_components", None)
    if comps is None:
        from synth.mano_io import load_mano_pickle

        comps = load_mano_pickle(hand_model.path)["hands_components"]
    comps = np.asarray(comps, dtype=np.float64)
    if comps.shape != (45, 45):
        raise ValueError(f"{getattr(hand_model, 'path', 'hand model')}: hands_components has shape {comps.shape}, "
                         "expected (45, 45)")
    return comps, np.asarray(hand_model.hands_mean, dtype=np.float64).reshape(45)


def pose_from_pca(pose_m, components, mean) -> np.ndarray:
    """Flat 48-value axis-angle pose from the first 48 values of pose_m (global + 45 PCA coefficients)."""
    pose_m = np.asarray(pose_m, dtype=np.float64).reshape(-1)
    return np.concatenate([pose_m[:3], mean + pose_m[3:48] @ components])


class DexYCBDataset(Dataset):
    """Dex-YCB samples in base.py's dictionary.

    DexYCBDataset(root, setup='s0', split='train', crop_size=128, crop_scale=1.5, hand_model=None,
                  strict=True, index_cache=None, multiview=False)

    strict: a missing subject folder, or one without exactly 100 sequences, is an
    error (the toolkit asserts both); with strict=False the subjects found are
    used and sequence positions beyond what exists are ignored (partial copies).
    Building the index reads every selected label file once to drop the frames
    without a hand; `index_cache` (a file path) stores the result for next time.
    """

    name = "dexycb"

    def __init__(self, root, setup: str = "s0", split: str = "train", crop_size: int = CROP_SIZE,
                 crop_scale: float = CROP_SCALE, hand_model=None, strict: bool = True, index_cache=None,
                 multiview: bool = False):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetFormatError(f"{self.root}: Dex-YCB root directory not found "
                                     "(expected calibration/ and the subject folders)")
        subject_ind, serial_ind, sequence_ind = split_rule(setup, split)
        self.setup, self.split = setup, split
        self.crop_size, self.crop_scale = int(crop_size), float(crop_scale)
        self.hand_model = resolve_hand_model(hand_model)
        if self.hand_model is not None:
            self._pca = pca_basis(self.hand_model)
            self.topology = self.hand_model.topology
        else:
            self._pca, self.topology = None, "mano"
        self.serials = [SERIALS[i] for i in serial_ind]
        self.intrinsics = [read_intrinsics(self.root, s) for s in self.serials]

        self.sequences, self.sides, self.betas, self.extrinsics_names = [], [], [], []
        candidates = []
        for si in subject_ind:
            subject = SUBJECTS[si]
            sdir = self.root / subject
            if not sdir.is_dir():
                if strict:
                    raise DatasetFormatError(f"{sdir}: subject folder not found (Dex-YCB {setup} {split} needs "
                                             f"subjects {[SUBJECTS[i] for i in subject_ind]})")
                warnings.warn(f"{sdir}: subject folder not found; skipped (strict=False)", stacklevel=2)
                continue
            seqs = sorted(p.name for p in sdir.iterdir() if p.is_dir())
            if len(seqs) != NUM_SEQUENCES and strict:
                raise DatasetFormatError(f"{sdir}: {len(seqs)} sequence folders, expected {NUM_SEQUENCES} "
                                         "(the toolkit selects sequences by their position in this sorted list)")
            for pos in sequence_ind:
                if pos >= len(seqs):
                    continue
                meta = read_meta(self.root, subject, seqs[pos])
                s = len(self.sequences)
                self.sequences.append(f"{subject}/{seqs[pos]}")
                self.sides.append(meta["mano_sides"][0])
                self.betas.append(read_betas(self.root, meta["mano_calib"][0]))
                self.extrinsics_names.append(meta.get("extrinsics"))
                frames = np.arange(meta["num_frames"])
                for c in range(len(self.serials)):   # the toolkit's order: sequence, camera, frame
                    candidates.append(np.stack([np.full_like(frames, s), np.full_like(frames, c), frames], 1))
        candidates = np.concatenate(candidates) if candidates else np.zeros((0, 3), dtype=np.int64)
        self.mapping = self._drop_empty(candidates, index_cache)
        self.num_skipped = len(candidates) - len(self.mapping)
        self.multiview = bool(multiview)
        if self.multiview:
            self._group_views()

    def _group_views(self) -> None:
        """Items of all cameras of one (sequence, frame), and the extrinsics of every sequence."""
        self._extrinsics = {}
        for s, name in enumerate(self.extrinsics_names):
            if name is None:
                raise DatasetFormatError(f"{self.root / self.sequences[s] / 'meta.yml'}: no key 'extrinsics' "
                                         "(multi-view access needs the sequence's camera calibration name)")
            if name not in self._extrinsics:
                self._extrinsics[name] = read_extrinsics(self.root, name, self.serials)
        order = np.lexsort((self.mapping[:, 1], self.mapping[:, 2], self.mapping[:, 0]))
        keys = self.mapping[order][:, [0, 2]]
        starts = np.flatnonzero(np.r_[True, np.any(keys[1:] != keys[:-1], axis=1)]) if len(keys) else []
        self.groups = np.split(order, starts[1:]) if len(keys) else []
        self.min_views = min((len(g) for g in self.groups), default=0)

    # -- index
    def _paths(self, s: int, c: int, f: int) -> tuple:
        d = self.root / self.sequences[s] / self.serials[c]
        return d / f"color_{f:06d}.jpg", d / f"labels_{f:06d}.npz"

    def _drop_empty(self, candidates: np.ndarray, index_cache) -> np.ndarray:
        signature = hashlib.sha256(repr((str(self.root.resolve()), self.setup, self.split, self.sequences,
                                         self.serials)).encode() + candidates.astype(np.int64).tobytes()
                                   ).hexdigest()[:16]
        if index_cache is not None and Path(index_cache).is_file():
            try:
                with np.load(index_cache, allow_pickle=False) as z:
                    if str(z["signature"]) == signature:
                        return z["mapping"].astype(np.int64)
            except Exception:  # noqa: BLE001 - a stale or broken cache is simply rebuilt
                pass
        keep = np.array([has_hand(read_label(self._paths(*m)[1])["joint_3d"]) for m in candidates], dtype=bool)
        mapping = candidates[keep].astype(np.int64) if len(candidates) else candidates.astype(np.int64)
        if index_cache is not None:
            Path(index_cache).parent.mkdir(parents=True, exist_ok=True)
            np.savez(index_cache, mapping=mapping, signature=np.array(signature))
        return mapping

    def __len__(self) -> int:
        return len(self.groups) if self.multiview else len(self.mapping)

    def sample_id(self, index: int) -> str:
        s, c, f = (int(v) for v in self.mapping[index])
        return f"{self.sequences[s]}/{self.serials[c]}/{f:06d}"

    # -- samples
    def mano(self, pose_m: np.ndarray, s: int) -> tuple:
        """(flat pose (48,), betas (10,), vertices (778, 3) camera frame) of a right or left hand, the
        left one already mirrored."""
        import torch

        comps, mean = self._pca
        pose_m = np.asarray(pose_m, dtype=np.float64).reshape(51)
        flat = pose_from_pca(pose_m, comps, mean)
        trans = pose_m[48:51].copy()
        if self.sides[s] == "left":
            flat[:3] *= MIRROR_POSE[:3]   # global (x, y, z) -> (x, -y, -z); hand part: see the module docstring
            trans[0] = -trans[0]
        betas = self.betas[s]
        with torch.no_grad():
            verts, _ = self.hand_model(torch.as_tensor(flat[None]), torch.as_tensor(betas[None]))
        return flat, betas, verts[0].double().numpy() + trans

    def __getitem__(self, index: int) -> dict:
        if self.multiview:

            return stack_views([self.view(int(i), extras=True) for i in self.groups[index]])
        return self.view(index)

    def camera_pose(self, index: int) -> tuple:
        """(R, t) master -> camera of a sample, mirrored like the sample for left hands."""
        s, c, _ = (int(v) for v in self.mapping[index])
        R, t = self._extrinsics[self.extrinsics_names[s]][self.serials[c]]
        if self.sides[s] == "left":
            M = np.diag([-1.0, 1.0, 1.0])
            R, t = M @ R @ M, M @ t
        return R, t

    def view(self, index: int, extras: bool = False) -> dict:
        """One sample of the single-view index; `extras` adds 'R', 't' (camera_pose) and 'camera'."""
        s, c, f = (int(v) for v in self.mapping[index])
        img_path, label_path = self._paths(s, c, f)
        label = read_label(label_path)
        kp3 = label["joint_3d"][0][DEXYCB_TO_FREIHAND]
        if not has_hand(kp3):
            raise DatasetFormatError(f"{label_path}: joint_3d is all -1 (no hand) but the index kept it; "
                                     "was the file replaced after indexing?")
        image = read_image(img_path, "a Dex-YCB colour JPEG (640x480)")
        K = self.intrinsics[c]
        h, w = image.shape[:2]
        uv = project(kp3, K)
        visible = (kp3[:, 2] > 0) & np.all((uv >= -0.5) & (uv <= np.array([w, h]) - 0.5), axis=1)
        left = self.sides[s] == "left"
        if left:
            image, K, (kp3,) = mirror_sample(image, K, [kp3])
        pose = betas = verts = None
        if self.hand_model is not None:
            pose, betas, verts = self.mano(label["pose_m"], s)
        A = box_crop(project(kp3, K), self.crop_size, self.crop_scale)
        sample = make_sample(image, A, K, kp3, out_size=self.crop_size, vertices=verts, mano_pose=pose,
                             mano_betas=betas, visibility=visible, mirrored=left, dataset=self.name,
                             sample_id=self.sample_id(index), topology=self.topology)
        if extras:

            return with_camera(sample, *self.camera_pose(index), SERIALS.index(self.serials[c]))
        return sample

    # -- check
    @classmethod
    def check(cls, root, limit: int | None = None) -> list:
        """Walk calibration, every subject, sequence and camera: counts of frames, hands, empty frames;
        problems for missing / unreadable files. `limit` checks the first N frames per sequence and camera."""
        root = Path(root)
        if not root.is_dir():
            return [f"problem: {root}: Dex-YCB root directory not found"]
        lines, problems = [], []
        for serial in SERIALS:
            try:
                read_intrinsics(root, serial)
            except DatasetFormatError as err:
                problems.append(f"problem: {err}")
        total = hands = empty = 0
        extrinsics_checked = set()
        for subject in SUBJECTS:
            sdir = root / subject
            if not sdir.is_dir():
                lines.append(f"info: subject folder {sdir} not found")
                continue
            seqs = sorted(p.name for p in sdir.iterdir() if p.is_dir())
            if len(seqs) != NUM_SEQUENCES:
                problems.append(f"problem: {sdir}: {len(seqs)} sequence folders, expected {NUM_SEQUENCES}")
            n_sub = 0
            for seq in seqs:
                try:
                    meta = read_meta(root, subject, seq)
                    read_betas(root, meta["mano_calib"][0])
                    name = meta.get("extrinsics")
                    if name is not None and name not in extrinsics_checked:
                        extrinsics_checked.add(name)
                        read_extrinsics(root, name, SERIALS)
                except DatasetFormatError as err:
                    problems.append(f"problem: {err}")
                    continue
                n = meta["num_frames"] if limit is None else min(meta["num_frames"], int(limit))
                for serial in SERIALS:
                    d = sdir / seq / serial
                    for f in range(n):
                        n_sub += 1
                        check_image(d / f"color_{f:06d}.jpg", "a Dex-YCB colour JPEG", problems)
                        try:
                            if has_hand(read_label(d / f"labels_{f:06d}.npz")["joint_3d"]):
                                hands += 1
                            else:
                                empty += 1
                        except DatasetFormatError as err:
                            problems.append(f"problem: {err}")
            total += n_sub
            lines.append(f"count: {subject}: {len(seqs)} sequences, {n_sub} checked frames x cameras")
        lines.append(f"count: {total} checked frames x cameras, {hands} with a hand, {empty} without (skipped)")
        for setup, splits in SETUPS.items():
            lines.append(f"info: {setup}: " + ", ".join(
                f"{sp} {len(sub)} subjects x {len(ser)} cameras x {len(seq)} sequence positions"
                for sp, (sub, ser, seq) in splits.items()))
        return lines + problems
