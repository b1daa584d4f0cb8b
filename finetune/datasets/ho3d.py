"""HO-3D v2 and v3, read as published:

    ROOT/train.txt, ROOT/evaluation.txt          lines "SEQ/FRAME" (e.g. "ABF10/0000")
    ROOT/{train,evaluation}/SEQ/rgb/FRAME.png    (v2) or FRAME.jpg (v3), 640x480
    ROOT/{train,evaluation}/SEQ/depth/FRAME.png  RGB-coded depth (see read_depth)
    ROOT/{train,evaluation}/SEQ/meta/FRAME.pkl   Python 2 pickle (read with encoding='latin1'):
        train:      handPose (48,) flat axis-angle (NOT relative to the mean pose), handBeta (10,),
                    handTrans (3,), handJoints3D (21, 3), camMat (3, 3), obj* ...
        evaluation: handBoundingBox (4,) [x0, y0, x1, y1] px, handJoints3D (3,) the root joint only,
                    camMat (3, 3), obj* ...

Re-derived from the official scripts (shreyashampali/ho3d, `vis_HO3D.py`, `utils/vis_utils.py`):
- `read_RGB_img`: `SPLIT/SEQ/rgb/ID.png`; the README says version 3 changed only the rgb images to
  'jpg'. `read_depth_img`: `cv2.imread` (BGR) then `depth = (img[:, :, 2] + img[:, :, 1] * 256) *
  0.00012498664727900177` metres, i.e. red = low byte, green = high byte (see decode_depth).
  `read_annotation`: `SPLIT/SEQ/meta/ID.pkl`, `pickle.load(f, encoding='latin1')`.
- `forwardKinematics(handPose, handTrans, handBeta)` loads MANO with `flat_hand_mean=True`
  (so handPose is flat, not mean-relative) and returns `J_transformed`: 21 joints, MANO's 16
  joints followed by the 5 fingertips (thumb, index, middle, ring, little); `handJoints3D` holds
  the same points. `jointsMapManoToSimple = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11,
  12, 19, 7, 8, 9, 20]` takes them to the thumb-to-little ("simple", FreiHAND) order: the same list
  as synth.hand_model.MANO_TO_FREIHAND.
- `project_3D_points(camMat, pts, is_OpenGL_coords=True)` first applies `coord_change_mat =
  diag(1, -1, -1)`: the annotations are in OpenGL camera coordinates (hand along -z). This loader
  returns OpenCV camera coordinates: X_cv = X_gl @ diag(1, -1, -1). The flip is a rotation (by pi
  about x), so the MANO global orientation in the sample is R_cv = diag(1, -1, -1) @ R_gl
  (`mano_pose[:3]`); the finger poses are unchanged. Vertices from the sample's mano_pose differ
  from the sample's vertices by a translation only.
- version 3 frames without annotation have None values (`vis_HO3D.py` tests `anno['objRot'] is
  None`); such a frame raises DatasetFormatError when read, `skip_unannotated=True` drops them
  when the index is built (reads every meta file once), and `check` counts them.
- Every HO-3D sequence shows a right hand: nothing is mirrored.

Vertices: HO-3D publishes MANO parameters, not vertices. With `hand_model` (a MANO-format
HandModel, normally the licensed MANO_RIGHT.pkl, or 'mano' / a path) the loader poses it with
handPose / handBeta, adds handTrans and flips to OpenCV; the sample's 'topology' is 'mano' for
MANO and the model's template hash otherwise (tests use OpenHand as a stand-in on the same code
path). Without a hand model, has_vertices is False. Keypoints always come from handJoints3D.

Evaluation samples carry only the root keypoint (keypoints_3d[0], the wrist; visibility marks it)
and are cropped around handBoundingBox; training samples around the projected keypoints.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from synth.hand_model import MANO_TO_FREIHAND, resolve_hand_model

from .base import CROP_SIZE, DatasetFormatError, box_crop, project
from .registry import as_array, check_image, make_sample, read_image, read_pickle, require_file

SPLITS = {"train": "train.txt", "evaluation": "evaluation.txt"}
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])
DEPTH_SCALE = 0.00012498664727900177  # metres per unit of (R + 256 G)
RGB_EXT = {"v2": "png", "v3": "jpg"}
TRAIN_KEYS = ("handPose", "handBeta", "handTrans", "handJoints3D", "camMat")
EVAL_KEYS = ("handBoundingBox", "handJoints3D", "camMat")


def decode_depth(rgb: np.ndarray) -> np.ndarray:
    """HO-3D's RGB-coded depth -> metres: (R + 256 G) * DEPTH_SCALE."""
    rgb = np.asarray(rgb)
    return (rgb[..., 0].astype(np.float64) + rgb[..., 1].astype(np.float64) * 256.0) * DEPTH_SCALE


def encode_depth(depth_m: np.ndarray) -> np.ndarray:
    """The inverse of decode_depth: metres -> HxWx3 uint8 (R low byte, G high byte, B = 0)."""
    q = np.clip(np.round(np.asarray(depth_m, dtype=np.float64) / DEPTH_SCALE), 0, 2 ** 16 - 1).astype(np.uint16)
    out = np.zeros(q.shape + (3,), dtype=np.uint8)
    out[..., 0] = q & 255
    out[..., 1] = q >> 8
    return out


def _rotvec_to_matrix(r):
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.asarray(r, dtype=np.float64)).as_matrix()


def _matrix_to_rotvec(R):
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(R).as_rotvec()


class HO3DDataset(Dataset):
    """HO-3D v2 / v3 as a torch Dataset of base.py samples.

    split: 'train' or 'evaluation'. version: 'v2' (png), 'v3' (jpg) or None (detected from the
    first listed frame's rgb file).
    """

    name = "ho3d"

    def __init__(self, root, split: str = "train", version: str | None = None, crop_size: int = CROP_SIZE,
                 hand_model=None, skip_unannotated: bool = False):
        if split not in SPLITS:
            raise ValueError(f"HO-3D split must be one of {tuple(SPLITS)}, got {split!r}")
        if version not in (None, "v2", "v3"):
            raise ValueError(f"version must be 'v2', 'v3' or None (detect), got {version!r}")
        self.root = Path(root)
        self.split = split
        self.crop_size = int(crop_size)
        self.hand_model = resolve_hand_model(hand_model)
        self.list_path = self.root / SPLITS[split]
        self.frames = self._read_list(self.list_path)
        self.version = version or self._detect_version()
        if skip_unannotated and split == "train":
            self.frames = [f for f in self.frames if self._annotated(self._meta(*f))]

    # ------------------------------------------------------------------ files
    @staticmethod
    def _read_list(path: Path) -> list:
        require_file(path, "the list of frames, one 'SEQ/FRAME' a line")
        frames = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            seq, sep, frame = line.partition("/")
            if not sep or not seq or not frame or "/" in frame:
                raise DatasetFormatError(f"{path}:{n}: {line!r} is not 'SEQ/FRAME'")
            frames.append((seq, frame))
        return frames

    def _detect_version(self) -> str:
        for seq, frame in self.frames[:1]:
            for version, ext in RGB_EXT.items():
                if (self.root / self.split / seq / "rgb" / f"{frame}.{ext}").is_file():
                    return version
        return "v2"

    def path(self, kind: str, seq: str, frame: str) -> Path:
        ext = {"rgb": RGB_EXT[self.version], "depth": "png", "meta": "pkl"}[kind]
        return self.root / self.split / seq / kind / f"{frame}.{ext}"

    def _meta(self, seq: str, frame: str) -> dict:
        path = self.path("meta", seq, frame)
        meta = read_pickle(path, f"HO-3D {self.split} annotation of {seq}/{frame}")
        if not isinstance(meta, dict):
            raise DatasetFormatError(f"{path}: a {type(meta).__name__}, expected a dict")
        return meta

    def _annotated(self, meta: dict) -> bool:
        keys = TRAIN_KEYS if self.split == "train" else EVAL_KEYS
        return all(meta.get(k) is not None for k in keys)

    def annotation(self, index: int) -> dict:
        """The checked meta values of one frame (float64 arrays)."""
        seq, frame = self.frames[index]
        where = str(self.path("meta", seq, frame))
        meta = self._meta(seq, frame)
        keys = TRAIN_KEYS if self.split == "train" else EVAL_KEYS
        missing = [k for k in keys if k not in meta]
        if missing:
            raise DatasetFormatError(f"{where}: missing key(s) {missing} (expected {list(keys)})")
        empty = [k for k in keys if meta[k] is None]
        if empty:
            raise DatasetFormatError(f"{where}: frame has no hand annotation ({', '.join(empty)} is None); "
                                     "use skip_unannotated=True to leave such frames out")
        if self.split == "train":
            shapes = {"handPose": (48,), "handBeta": (10,), "handTrans": (3,), "handJoints3D": (21, 3),
                      "camMat": (3, 3)}
        else:
            shapes = {"handBoundingBox": (4,), "handJoints3D": (3,), "camMat": (3, 3)}
        return {k: as_array(meta[k], s, where, k) for k, s in shapes.items()}

    def read_depth(self, index: int) -> np.ndarray:
        seq, frame = self.frames[index]
        return decode_depth(read_image(self.path("depth", seq, frame), f"HO-3D depth of {seq}/{frame}"))

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict:
        seq, frame = self.frames[index]
        anno = self.annotation(index)
        image = read_image(self.path("rgb", seq, frame), f"HO-3D rgb image of {seq}/{frame}")
        K = anno["camMat"]
        sample_id = f"{self.split}/{seq}/{frame}"
        if self.split == "evaluation":
            kp3 = np.zeros((21, 3))
            kp3[0] = anno["handJoints3D"] @ OPENGL_TO_OPENCV
            vis = np.zeros(21, dtype=bool)
            vis[0] = True
            A = box_crop(anno["handBoundingBox"].reshape(2, 2), self.crop_size)
            return make_sample(image, A, K, kp3, out_size=self.crop_size, visibility=vis, dataset=self.name,
                               sample_id=sample_id, topology="mano")
        kp3 = anno["handJoints3D"][MANO_TO_FREIHAND] @ OPENGL_TO_OPENCV
        verts, topology = None, "mano"
        if self.hand_model is not None:
            verts = self.mano_vertices(anno["handPose"], anno["handBeta"], anno["handTrans"])
            topology = self.hand_model.topology
        pose = anno["handPose"].copy()
        pose[:3] = _matrix_to_rotvec(OPENGL_TO_OPENCV @ _rotvec_to_matrix(pose[:3]))
        A = box_crop(project(kp3, K), self.crop_size)
        return make_sample(image, A, K, kp3, out_size=self.crop_size, vertices=verts, mano_pose=pose,
                           mano_betas=anno["handBeta"], dataset=self.name, sample_id=sample_id, topology=topology)

    def mano_vertices(self, pose, betas, trans) -> np.ndarray:
        """MANO layer vertices (OpenGL frame, + handTrans) flipped to OpenCV: (778, 3) metres."""
        import torch

        with torch.no_grad():
            v, _ = self.hand_model(torch.as_tensor(np.asarray(pose)[None]), torch.as_tensor(np.asarray(betas)[None]))
        return (v[0].double().numpy() + np.asarray(trans)) @ OPENGL_TO_OPENCV

    # ------------------------------------------------------------------ check
    @classmethod
    def check(cls, root, limit: int | None = None) -> list:
        root = Path(root)
        found = [s for s, f in SPLITS.items() if (root / f).is_file()]
        if not found:
            return [f"problem: {root}: neither train.txt nor evaluation.txt (expected HO-3D's layout: train.txt, "
                    "evaluation.txt, SPLIT/SEQ/{rgb,depth,meta}/FRAME.*)"]
        lines = []
        for split in found:
            try:
                ds = cls(root, split=split)
            except (DatasetFormatError, ValueError) as err:
                lines.append(f"problem: {err}")
                continue
            frames = ds.frames if limit is None else ds.frames[:int(limit)]
            seqs = sorted({s for s, _ in ds.frames})
            lines.append(f"count: {split}: {len(ds.frames)} frames in {len(seqs)} sequences ({ds.version}, rgb "
                         f".{RGB_EXT[ds.version]})")
            ok = {"rgb": 0, "depth": 0, "meta": 0}
            unannotated = 0
            for i, (seq, frame) in enumerate(frames):
                for kind in ("rgb", "depth"):
                    ok[kind] += check_image(ds.path(kind, seq, frame), f"HO-3D {kind} image of {seq}/{frame}", lines)
                try:
                    meta = ds._meta(seq, frame)
                    if not ds._annotated(meta) and all(k in meta for k in (TRAIN_KEYS if split == "train"
                                                                           else EVAL_KEYS)):
                        unannotated += 1
                        ok["meta"] += 1
                        continue
                    ds.annotation(i)
                    ok["meta"] += 1
                except DatasetFormatError as err:
                    lines.append(f"problem: {err}")
            for kind, n in ok.items():
                lines.append(f"count: {split}/{kind}: {n} of {len(frames)} files readable")
            if unannotated:
                lines.append(f"info: {split}: {unannotated} frames without hand annotation (None values; "
                             "skip_unannotated=True leaves them out)")
        return lines
