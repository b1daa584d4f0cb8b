"""STB, the Stereo Tracking Benchmark (Zhang et al., ICIP 2017), read from its published files.

On-disk layout (as downloaded; nothing converted)
-------------------------------------------------

    ROOT/labels/<SEQ>_BB.mat     'handPara' (3, 21, N) float, millimetres, Bumblebee2 LEFT camera frame
    ROOT/labels/<SEQ>_SK.mat     'handPara' (3, 21, N) float, millimetres, RealSense F200 DEPTH camera frame
    ROOT/images/<SEQ>/BB_left_<i>.png, BB_right_<i>.png, SK_color_<i>.png, SK_depth_<i>.png
                                 640x480, frame index i = 0..N-1 without zero padding (N = 1500)

SEQ is one of B1Counting, B1Random, ..., B6Counting, B6Random (12 sequences). The
usual split (Zimmermann & Brox 2017, followed by every later paper) tests on B1*
and trains on B2*-B6*; `split` selects it ('train', 'test', 'all') or `sequences`
names them. If ROOT/images does not exist the sequence folders are looked for
directly in ROOT (some copies are unpacked that way).

Cameras and calibration (the values published with the dataset, in pixels / mm)
-----------------------------------------------------------------------------

- SK colour camera: fx 607.92271, fy 607.88192, cx 314.78337, cy 236.42484.
  The SK labels are in the *depth* camera's frame. The README gives a rotation
  vector r = (0.00531, -0.01196, 0.00301) and a translation T = (-24.0381,
  -0.4563, -1.2326) mm that "transform coordinates relative to the colour camera
  to those relative to the depth camera": X_depth = R X_colour + T with
  R = Rodrigues(r). The loader inverts it, X_colour = R^T (X_depth - T), which is
  what the public STB loaders of Ge et al. (hand-graph-cnn) and Yang et al.
  (BiHand) compute as `(X - T) @ R`. (A third variant seen in the wild,
  projecting with rvec = -r and tvec = -T, differs from it by (I - R^T) T,
  about 0.3 mm.)
- BB (Bumblebee2) left camera: fx = fy = 822.79041, cx 318.47345, cy 250.31296;
  the BB labels are in this camera's frame. The right camera is the left one
  shifted by the baseline 120.054 mm along +x: X_right = X_left - (120.054, 0, 0)
  (same intrinsics, rectified pair).

Keypoints
---------

handPara[:, j, i] is joint j of frame i. STB's 21 joints are: 0 palm centre
(not the wrist), then per finger from the base (MCP) to the tip, fingers in the
order little, ring, middle, index, thumb:

    0 palm, 1-4 little MCP..tip, 5-8 ring, 9-12 middle, 13-16 index, 17-20 thumb

so FreiHAND order is `xyz[STB_TO_FREIHAND]` with
STB_TO_FREIHAND = [0, 17, 18, 19, 20, 13, 14, 15, 16, 9, 10, 11, 12, 5, 6, 7, 8, 1, 2, 3, 4].
This is the order every public STB loader uses (Ge et al.'s joint names
loc_bn_<finger>_L_01..04 with _01 the MCP, Hasson et al.'s and Spurra et al.'s
reorder index, which is this array). Note that it is base-to-tip, not
tip-to-base as RHD's order is; the palm-to-wrist rules below only make sense
with _01 = MCP.

STB has no wrist keypoint. `wrist` chooses how keypoint 0 is made:

- 'middle_mcp_2.2' (default): wrist = MCP_middle + 2.2 (palm - MCP_middle),
  i.e. the palm centre moved 1.2x the MCP-to-palm distance further along the
  middle metacarpal. This is the rule of the BiHand / Yang et al. STB loader
  (`_stb_palm2wrist`) that later mesh papers evaluating on STB reuse; it lands
  near the wrist because STB's palm centre lies roughly midway between the
  MCPs and the wrist. (Not "palm + 2.2 (palm - MCP)", which would place the
  wrist ~3 palm-half-lengths below the knuckles.)
- 'ring_mcp_2.0': wrist = MCP_ring + 2.0 (palm - MCP_ring), Ge et al.,
  CVPR 2019 (hand-graph-cnn).
- 'palm': keep the palm centre as keypoint 0 (STB's own root; root-relative
  metrics then differ from the wrist-rooted ones).

The synthesis happens in the camera frame after the colour transform and
before mirroring (it is linear, so the order does not matter).

Hand side: STB films the subject's LEFT hand (its joint names end in _L); every
sample is mirrored into a right hand (image flipped, camera x negated, K's
principal point mirrored, `mirrored` True), as the public loaders do.

STB has no masks, MANO parameters or meshes (has_mask / has_vertices / has_mano
False). `visibility` is True for keypoints that project inside the image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from .base import CROP_SCALE, CROP_SIZE, DatasetFormatError, box_crop, mirror_sample, project

SEQUENCES = tuple(f"B{b}{kind}" for b in range(1, 7) for kind in ("Counting", "Random"))
SPLITS = {
    "train": tuple(s for s in SEQUENCES if not s.startswith("B1")),
    "test": ("B1Counting", "B1Random"),
    "all": SEQUENCES,
}
STB_TO_FREIHAND = [0, 17, 18, 19, 20, 13, 14, 15, 16, 9, 10, 11, 12, 5, 6, 7, 8, 1, 2, 3, 4]

K_SK_COLOR = np.array([[607.92271, 0.0, 314.78337], [0.0, 607.88192, 236.42484], [0.0, 0.0, 1.0]])
K_BB = np.array([[822.79041, 0.0, 318.47345], [0.0, 822.79041, 250.31296], [0.0, 0.0, 1.0]])
BB_BASELINE_MM = 120.054
SK_ROT_VEC = np.array([0.00531, -0.01196, 0.00301])
SK_TRANS_MM = np.array([-24.0381, -0.4563, -1.2326])

# camera name -> (label file suffix, image prefix, intrinsics)
CAMERAS = {"SK": ("SK", "SK_color", K_SK_COLOR), "BB_left": ("BB", "BB_left", K_BB),
           "BB_right": ("BB", "BB_right", K_BB)}
WRIST_RULES = ("middle_mcp_2.2", "ring_mcp_2.0", "palm")


def rodrigues(rot_vec) -> np.ndarray:
    """Rotation matrix of a rotation vector (OpenCV's Rodrigues)."""
    r = np.asarray(rot_vec, dtype=np.float64)
    theta = np.linalg.norm(r)
    if theta < 1e-15:
        return np.eye(3)
    k = r / theta
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(theta) * kx + (1.0 - np.cos(theta)) * kx @ kx


SK_R = rodrigues(SK_ROT_VEC)


def sk_depth_to_color(xyz_depth: np.ndarray) -> np.ndarray:
    """(..., 3) points in the SK depth camera frame -> SK colour camera frame (same unit as the input, mm)."""
    return (np.asarray(xyz_depth, dtype=np.float64) - SK_TRANS_MM) @ SK_R


def sk_color_to_depth(xyz_color: np.ndarray) -> np.ndarray:
    """The inverse of sk_depth_to_color (what the dataset's labels hold)."""
    return np.asarray(xyz_color, dtype=np.float64) @ SK_R.T + SK_TRANS_MM


def palm_to_wrist(xyz: np.ndarray, rule: str = "middle_mcp_2.2") -> np.ndarray:
    """Replace keypoint 0 (STB's palm centre, FreiHAND order) by a synthesised wrist."""
    xyz = np.array(xyz, dtype=np.float64, copy=True)
    if rule == "palm":
        return xyz
    if rule == "middle_mcp_2.2":
        mcp, f = xyz[..., 9, :], 2.2
    elif rule == "ring_mcp_2.0":
        mcp, f = xyz[..., 13, :], 2.0
    else:
        raise ValueError(f"unknown STB wrist rule {rule!r}; expected one of {WRIST_RULES}")
    xyz[..., 0, :] = mcp + f * (xyz[..., 0, :] - mcp)
    return xyz


def wrist_to_palm(xyz: np.ndarray, rule: str = "middle_mcp_2.2") -> np.ndarray:
    """The inverse of palm_to_wrist (used to write fixtures)."""
    xyz = np.array(xyz, dtype=np.float64, copy=True)
    if rule == "palm":
        return xyz
    j, f = {"middle_mcp_2.2": (9, 2.2), "ring_mcp_2.0": (13, 2.0)}[rule]
    mcp = xyz[..., j, :]
    xyz[..., 0, :] = mcp + (xyz[..., 0, :] - mcp) / f
    return xyz


def _image_dir(root: Path) -> Path:
    return root / "images" if (root / "images").is_dir() else root


def load_hand_para(path: Path) -> np.ndarray:
    """handPara of one label file as (N, 21, 3) millimetres, STB's joint order."""
    import scipy.io

    from .registry import require_file

    require_file(path, "an STB label file (MATLAB .mat with 'handPara' (3, 21, N) in mm)")
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as err:  # noqa: BLE001 - scipy raises many kinds for a broken file
        raise DatasetFormatError(f"{path}: cannot read as a MATLAB file (expected 'handPara' (3, 21, N)): {err}") \
            from err
    if "handPara" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetFormatError(f"{path}: no 'handPara' variable (found {keys}); expected (3, 21, N) in mm")
    para = np.asarray(mat["handPara"])
    if para.ndim != 3 or para.shape[:2] != (3, 21) or not np.issubdtype(para.dtype, np.number):
        raise DatasetFormatError(f"{path}: 'handPara' has shape {para.shape} ({para.dtype}), expected (3, 21, N)")
    para = para.astype(np.float64).transpose(2, 1, 0)
    if not np.all(np.isfinite(para)):
        raise DatasetFormatError(f"{path}: 'handPara' holds non-finite values")
    return para


class STBDataset(Dataset):
    """STB samples in base.py's dictionary (right hands, metres, FreiHAND order).

    STBDataset(root, split='train' | 'test' | 'all', cameras=('SK',), sequences=None,
               wrist='middle_mcp_2.2', crop_size=128, crop_scale=1.5)

    `cameras` is any of 'SK' (SK_color images), 'BB_left', 'BB_right'. Samples
    are ordered by sequence, camera, frame.
    """

    name = "stb"

    def __init__(self, root, split: str = "train", cameras=("SK",), sequences=None,
                 wrist: str = "middle_mcp_2.2", crop_size: int = CROP_SIZE, crop_scale: float = CROP_SCALE):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetFormatError(f"{self.root}: STB root directory not found (expected labels/ and images/)")
        if sequences is None:
            if split not in SPLITS:
                raise ValueError(f"STB split must be one of {sorted(SPLITS)}, got {split!r}")
            sequences = SPLITS[split]
        if isinstance(cameras, str):
            cameras = (cameras,)
        bad = [c for c in cameras if c not in CAMERAS]
        if bad:
            raise ValueError(f"unknown STB camera(s) {bad}; expected any of {sorted(CAMERAS)}")
        if wrist not in WRIST_RULES:
            raise ValueError(f"unknown STB wrist rule {wrist!r}; expected one of {WRIST_RULES}")
        self.split, self.sequences, self.cameras = split, tuple(sequences), tuple(cameras)
        self.wrist, self.crop_size, self.crop_scale = wrist, int(crop_size), float(crop_scale)
        self.image_dir = _image_dir(self.root)
        self._xyz = {}      # (sequence, camera) -> (N, 21, 3) metres, colour camera, FreiHAND order, wrist
        self.samples = []   # (sequence, camera, frame)
        for seq in self.sequences:
            for cam in self.cameras:
                xyz = self.keypoints_of(self.root, seq, cam, wrist)
                self._xyz[seq, cam] = xyz
                self.samples += [(seq, cam, i) for i in range(len(xyz))]

    @staticmethod
    def label_path(root, sequence: str, camera: str) -> Path:
        return Path(root) / "labels" / f"{sequence}_{CAMERAS[camera][0]}.mat"

    def image_path(self, sequence: str, camera: str, frame: int) -> Path:
        return self.image_dir / sequence / f"{CAMERAS[camera][1]}_{frame}.png"

    @classmethod
    def keypoints_of(cls, root, sequence: str, camera: str, wrist: str = "middle_mcp_2.2") -> np.ndarray:
        """(N, 21, 3) keypoints of one sequence in the camera's frame, metres, FreiHAND order, wrist
        synthesised; left hands as recorded (not mirrored)."""
        para = load_hand_para(cls.label_path(root, sequence, camera))
        if camera == "SK":
            para = sk_depth_to_color(para)
        elif camera == "BB_right":
            para = para - np.array([BB_BASELINE_MM, 0.0, 0.0])
        return palm_to_wrist(para[:, STB_TO_FREIHAND] / 1000.0, wrist)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        from .registry import make_sample, read_image

        seq, cam, frame = self.samples[index]
        path = self.image_path(seq, cam, frame)
        image = read_image(path, f"an STB {CAMERAS[cam][1]} PNG (640x480)")
        kp3 = self._xyz[seq, cam][frame]
        K = CAMERAS[cam][2]
        h, w = image.shape[:2]
        uv = project(kp3, K)
        visible = (kp3[:, 2] > 0) & np.all((uv >= -0.5) & (uv <= np.array([w, h]) - 0.5), axis=1)
        image, K, (kp3,) = mirror_sample(image, K, [kp3])   # STB hands are left hands
        A = box_crop(project(kp3, K), self.crop_size, self.crop_scale)
        return make_sample(image, A, K, kp3, out_size=self.crop_size, visibility=visible, mirrored=True,
                           dataset=self.name, sample_id=f"{seq}/{CAMERAS[cam][1]}_{frame}")

    @classmethod
    def check(cls, root, limit: int | None = None, cameras=("SK", "BB_left", "BB_right")) -> list:
        """Report lines ('count: ...', 'info: ...', 'problem: ...') for every sequence found or expected."""
        from .registry import check_image

        root = Path(root)
        if not root.is_dir():
            return [f"problem: {root}: STB root directory not found (expected labels/ and images/)"]
        lines, problems = [], []
        image_dir = _image_dir(root)
        found = [s for s in SEQUENCES if any(cls.label_path(root, s, c).exists() for c in CAMERAS)]
        if not found:
            return [f"problem: {root / 'labels'}: no STB label files (expected <SEQ>_SK.mat / <SEQ>_BB.mat "
                    f"for SEQ in {SEQUENCES[0]}..{SEQUENCES[-1]})"]
        missing_seq = [s for s in SEQUENCES if s not in found]
        if missing_seq:
            lines.append(f"info: {len(missing_seq)} of 12 sequences have no labels: {', '.join(missing_seq)}")
        total = 0
        for seq in found:
            for cam in cameras:
                label = cls.label_path(root, seq, cam)
                if not label.exists():
                    problems.append(f"problem: missing file {label} (expected the {CAMERAS[cam][0]} labels of {seq})")
                    continue
                try:
                    n = len(load_hand_para(label))
                except DatasetFormatError as err:
                    problems.append(f"problem: {err}")
                    continue
                frames = range(n) if limit is None else range(min(n, int(limit)))
                ok = sum(check_image(image_dir / seq / f"{CAMERAS[cam][1]}_{i}.png",
                                     f"an STB {CAMERAS[cam][1]} PNG", problems) for i in frames)
                total += n
                lines.append(f"count: {seq} {cam}: {n} labelled frames, {ok} of {len(frames)} checked images readable")
        lines.append(f"count: total {total} labelled images")
        return lines + list(dict.fromkeys(problems))
