"""Tiny STB, Dex-YCB, HanCo, MobRecon-complement and complement-shard datasets in their on-disk formats.

Every writer poses the hand model with a fixed seed, places it in front of the
dataset's cameras, writes the annotation files exactly as the dataset ships
them (file names, numbering, keys, dtypes, units, frames, joint orders,
left hands where the dataset has them) and draws the projected keypoints as
bright dots into otherwise dark images, so crop geometry can be checked on the
pixels. Each returns `truth`: sample id -> what a loader must return (right
hand, camera frame, metres, FreiHAND order) and the full-image K after any
mirroring.

The format details are re-derived here independently of the loaders where it
matters (joint orders by joint name, the STB depth/colour transform through
scipy's Rotation, the Dex-YCB PCA with an explicit basis).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synth.camera import look_at

FREIHAND_NAMES = ["wrist"] + [f"{f}_{j}" for f in ("thumb", "index", "middle", "ring", "little")
                              for j in ("mcp", "pip", "dip", "tip")]
MIRROR = np.array([-1.0, 1.0, 1.0])
# camera-facing base rotation: the hand model's palm plane (x, z) -> camera (x, y), palm normal -> -z
FACING = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


# ---------------------------------------------------------------- hands, cameras, pictures

def rotation(rotvec) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.asarray(rotvec, dtype=np.float64)).as_matrix()


def rotvec(R) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(np.asarray(R, dtype=np.float64)).as_rotvec()


def random_pose(rng, facing: bool = True, finger_sd: float = 0.15, global_sd: float = 1.0) -> np.ndarray:
    """A flat 48-value pose: a camera-facing (or a random, spread global_sd) global rotation and mildly
    bent fingers."""
    pose = np.zeros(48)
    if facing:
        tilt = rotation(rng.normal(0, 0.25, 3))
        spin = rotation([0.0, 0.0, rng.uniform(-np.pi, np.pi)])
        pose[:3] = rotvec(spin @ tilt @ FACING)
    else:
        pose[:3] = rotvec(rotation(rng.normal(0, global_sd, 3)))
    pose[3:] = rng.normal(0, finger_sd, 45)
    return pose


def random_hand(hm, rng, facing: bool = True, finger_sd: float = 0.15, beta_sd: float = 0.5, betas=None,
                global_sd: float = 1.0) -> dict:
    """A posed hand in the model frame: flat pose (48,), betas, vertices (778, 3), keypoints (21, 3)."""
    pose = random_pose(rng, facing, finger_sd, global_sd)
    betas = rng.normal(0, beta_sd, 10) if betas is None else np.asarray(betas, dtype=np.float64)
    with torch.no_grad():
        v, k = hm(torch.as_tensor(pose[None]), torch.as_tensor(betas[None]))
    return {"pose": pose, "betas": betas, "verts": v[0].double().numpy(), "kps": k[0].double().numpy()}


def place(points: np.ndarray, K: np.ndarray, size: tuple, rng, depth: tuple, offset_x_m: float = 0.0) -> np.ndarray:
    """A translation putting the points' centre at a random pixel near the image centre at a random depth,
    with every point inside the image (offset_x_m shifts the centre along camera x after that)."""
    w, h = size
    for _ in range(200):
        z = rng.uniform(*depth)
        u = rng.uniform(0.42, 0.58) * (w - 1)
        v = rng.uniform(0.42, 0.58) * (h - 1)
        centre = z * np.linalg.solve(K, [u, v, 1.0]) + [offset_x_m, 0.0, 0.0]
        t = centre - points.mean(axis=0)
        uv = project(points + t, K)
        if np.all(uv > 12) and np.all(uv < np.array([w, h]) - 13):
            return t
    raise RuntimeError("could not place the hand inside the image")


def project(points, K) -> np.ndarray:
    p = np.asarray(points) @ np.asarray(K).T
    return p[:, :2] / p[:, 2:3]


def dot_image(uv: np.ndarray, size: tuple, radius: float, background: int = 10) -> np.ndarray:
    """A dark RGB image with a bright Gaussian spot (sigma = radius / 2) centred on every 2D point
    (pixel-centre convention); a spot's brightness centroid is its point, also after resampling."""
    w, h = size
    sigma = radius / 2.0
    level = np.zeros((h, w))
    r = int(np.ceil(3 * sigma)) + 1
    for u, v in np.asarray(uv, dtype=np.float64).reshape(-1, 2):
        x0, x1 = max(int(u) - r, 0), min(int(u) + r + 1, w)
        y0, y1 = max(int(v) - r, 0), min(int(v) + r + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1]
        spot = np.exp(-((xs - u) ** 2 + (ys - v) ** 2) / (2 * sigma ** 2))
        level[y0:y1, x0:x1] = np.maximum(level[y0:y1, x0:x1], spot)
    img = np.round(background + (255 - background) * level).astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=2)


def _discs(uv: np.ndarray, size: tuple, radius: float) -> np.ndarray:
    """Boolean (H, W) image of the discs of `radius` around the points (pixel centres inside)."""
    w, h = size
    out = np.zeros((h, w), dtype=bool)
    r = int(np.ceil(radius)) + 1
    for u, v in np.asarray(uv, dtype=np.float64).reshape(-1, 2):
        x0, x1 = max(int(u) - r, 0), min(int(u) + r + 1, w)
        y0, y1 = max(int(v) - r, 0), min(int(v) + r + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1]
        out[y0:y1, x0:x1] |= (xs - u) ** 2 + (ys - v) ** 2 <= radius ** 2
    return out


def blob_mask(uv: np.ndarray, size: tuple, radius: float) -> np.ndarray:
    return _discs(uv, size, radius)


def save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def save_jpg(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="JPEG", quality=95)


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def dot_errors(image_chw, kp2d, radius: float) -> np.ndarray:
    """Distances (crop px) between the brightness centroid of each isolated spot and its keypoint.

    `radius` is the spot radius of dot_image in crop pixels. Only keypoints at least 3 radii from
    every other one and 2 radii from the crop border are measured (overlapping spots have no
    single centre)."""
    img = np.asarray(image_chw, dtype=np.float64).mean(axis=0)
    kp2d = np.asarray(kp2d, dtype=np.float64)
    S = img.shape[0]
    ys, xs = np.mgrid[0:S, 0:S]
    errs = []
    for j in range(len(kp2d)):
        d = np.linalg.norm(kp2d - kp2d[j], axis=1)
        d[j] = np.inf
        u, v = kp2d[j]
        if d.min() < 3 * radius or not (2 * radius < u < S - 1 - 2 * radius and 2 * radius < v < S - 1 - 2 * radius):
            continue
        win = (xs - u) ** 2 + (ys - v) ** 2 <= (1.5 * radius) ** 2
        w = np.clip(img - 0.06, 0, None) * win
        if w.sum() == 0:
            errs.append(np.inf)
            continue
        errs.append(np.hypot((w * xs).sum() / w.sum() - u, (w * ys).sum() / w.sum() - v))
    return np.asarray(errs)


# ---------------------------------------------------------------- STB

STB_SK_K = np.array([[607.92271, 0.0, 314.78337], [0.0, 607.88192, 236.42484], [0.0, 0.0, 1.0]])
STB_BB_K = np.array([[822.79041, 0.0, 318.47345], [0.0, 822.79041, 250.31296], [0.0, 0.0, 1.0]])
STB_BASELINE_M = 0.120054
STB_SK_R = rotation([0.00531, -0.01196, 0.00301])      # X_depth = R X_colour + T (README)
STB_SK_T_M = np.array([-24.0381, -0.4563, -1.2326]) / 1000.0
# STB's joints: palm centre, then little, ring, middle, index, thumb, each MCP -> tip
STB_NAMES = ["palm"] + [f"{f}_{j}" for f in ("little", "ring", "middle", "index", "thumb")
                        for j in ("mcp", "pip", "dip", "tip")]


def freihand_to_stb(xyz_fh: np.ndarray) -> np.ndarray:
    """FreiHAND-ordered keypoints (wrist already replaced by the palm centre) -> STB's order, by name."""
    names = ["palm"] + FREIHAND_NAMES[1:]
    return np.stack([xyz_fh[names.index(n)] for n in STB_NAMES])


def write_stb(root, hm, seed: int = 0, sequences=("B1Counting", "B2Random"), frames: int = 3) -> dict:
    """labels/<SEQ>_{SK,BB}.mat and images/<SEQ>/{SK_color,BB_left,BB_right}_<i>.png of LEFT hands.

    The palm centre written is the one the default rule maps back to the wrist:
    palm = MCP_middle + (wrist - MCP_middle) / 2.2. truth[sample id] = keypoints (mirrored to a right
    hand, wrist) and K (mirrored)."""
    import scipy.io

    root = Path(root)
    rng = np.random.default_rng(seed)
    truth = {}
    for seq in sequences:
        for kind in ("SK", "BB"):
            para = np.zeros((3, 21, frames))
            for i in range(frames):
                hand = random_hand(hm, rng)
                kps_left = hand["kps"] * MIRROR                       # a left hand: the mirrored model
                if kind == "SK":
                    kps_left = kps_left + place(kps_left, STB_SK_K, (640, 480), rng, (0.45, 0.6))
                    views = {"SK_color": (kps_left, STB_SK_K)}
                    stored = kps_left @ STB_SK_R.T + STB_SK_T_M          # labels in the depth frame
                else:   # centred between the two cameras so both see it
                    kps_left = kps_left + place(kps_left, STB_BB_K, (640, 480), rng, (0.7, 0.8),
                                                offset_x_m=STB_BASELINE_M / 2)
                    right_cam = kps_left - [STB_BASELINE_M, 0.0, 0.0]
                    views = {"BB_left": (kps_left, STB_BB_K), "BB_right": (right_cam, STB_BB_K)}
                    stored = kps_left
                mcp = stored[9]
                stored = stored.copy()
                stored[0] = mcp + (stored[0] - mcp) / 2.2                 # the palm centre STB annotates
                para[:, :, i] = (freihand_to_stb(stored) * 1000.0).T
                for prefix, (cam_kps, K) in views.items():
                    save_png(root / "images" / seq / f"{prefix}_{i}.png", dot_image(project(cam_kps, K), (640, 480), 4))
                    Km = K.copy()
                    Km[0, 2] = 639 - K[0, 2]
                    truth[f"{seq}/{prefix}_{i}"] = {"keypoints_3d": cam_kps * MIRROR, "K": Km,
                                                    "dot_radius": 4.0}
            (root / "labels").mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(root / "labels" / f"{seq}_{kind}.mat", {"handPara": para})
    return truth


# ---------------------------------------------------------------- Dex-YCB

DEX_SUBJECTS = ["20200709-subject-01", "20200813-subject-02", "20200820-subject-03", "20200903-subject-04",
                "20200908-subject-05", "20200918-subject-06", "20200928-subject-07", "20201002-subject-08",
                "20201015-subject-09", "20201022-subject-10"]
DEX_SERIALS = ["836212060125", "839512060362", "840412060917", "841412060263",
               "932122060857", "932122060861", "932122061900", "932122062010"]


def random_pca_basis(rng) -> tuple:
    """An orthonormal (45, 45) 'hands_components' and a 'hands_mean' (45,), the shapes of MANO's."""
    q, _ = np.linalg.qr(rng.normal(size=(45, 45)))
    return q, rng.normal(0, 0.2, 45)


DEX_MASTER = 2                     # the toolkit's master camera is 840412060917
DEX_EXTRINSICS = "20200702_151821"
DEX_TARGET = np.array([0.0, 0.0, 0.58])   # the point every camera looks at (master frame, metres)


def dex_cameras(rng) -> dict:
    """serial -> master->camera (R, t): the master is the world frame; the others sit 0.5-0.65 m from
    DEX_TARGET in a ring 10-35 degrees off the master's axis, looking at it."""
    cams = {}
    for i, serial in enumerate(DEX_SERIALS):
        if i == DEX_MASTER:
            cams[serial] = (np.eye(3), np.zeros(3))
            continue
        azimuth, tilt = i * np.pi / 4 + rng.normal(0, 0.1), rng.uniform(0.17, 0.6)
        direction = np.array([np.sin(tilt) * np.cos(azimuth), np.sin(tilt) * np.sin(azimuth), -np.cos(tilt)])
        eye = DEX_TARGET + direction * rng.uniform(0.5, 0.65)
        cams[serial] = look_at(eye, DEX_TARGET + rng.normal(0, 0.01, 3), [0.0, -1.0, 0.0])
    return cams


def write_dex_extrinsics(root, cams: dict) -> None:
    """calibration/extrinsics_<name>/extrinsics.yml as the toolkit reads it: per serial a row-major 3x4
    [R | t] taking points of that camera's colour frame into the master camera's frame."""
    import yaml

    extr = {}
    for serial, (R, t) in cams.items():
        extr[serial] = [float(v) for v in np.hstack([R.T, (-R.T @ t)[:, None]]).reshape(-1)]
    extr["apriltag"] = [1.0, 0, 0, -0.3, 0, 0, 1.0, 0.2, 0, -1.0, 0, 0.9]
    path = root / "calibration" / f"extrinsics_{DEX_EXTRINSICS}" / "extrinsics.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"extrinsics": extr, "master": DEX_SERIALS[DEX_MASTER]}))


def dex_view(hm, hand: dict, world_kps, world_verts, R, t, left: bool, mean, comps_inv) -> dict:
    """One camera's label of one world hand. For a left hand, `hand` / world_* are its mirror image (a
    right hand) and (R, t) the real camera; the camera that sees the mirror image is (M R M, M t).
    Returns the label arrays and the right-hand truth in that (mirrored) camera."""
    if left:
        M = np.diag(MIRROR)
        R, t = M @ R @ M, M @ t
    pose = np.concatenate([rotvec(R @ rotation(hand["pose"][:3])), hand["pose"][3:]])
    with torch.no_grad():
        v0, k0 = (x[0].double().numpy() for x in hm(torch.as_tensor(pose[None]), torch.as_tensor(hand["betas"][None])))
    trans = R @ world_verts[0] + t - v0[0]          # MANO rotates about a pose-independent point
    verts, kps = v0 + trans, k0 + trans
    assert np.allclose(world_verts @ R.T + t, verts, atol=1e-6) and np.allclose(world_kps @ R.T + t, kps, atol=1e-6)
    coeffs = (hand["pose"][3:] - mean) @ comps_inv
    if left:   # the left hand's label is the mirror image; its PCA basis and mean are mirrored too
        label_pose = np.concatenate([pose[:3] * [1, -1, -1], coeffs, trans * MIRROR])
        label_kps = kps * MIRROR
    else:
        label_pose, label_kps = np.concatenate([pose[:3], coeffs, trans]), kps
    return {"pose_m": label_pose[None], "joint_3d": label_kps[None], "truth": {
        "keypoints_3d": kps, "vertices": verts, "mano_pose": pose, "R": R, "t": t, "xyz_world": world_kps}}


def write_dexycb(root, hm, seed: int = 0, subjects=(0, 6), filled=None, frames: int = 2, serials=tuple(range(8)),
                 pca=None) -> dict:
    """The toolkit's layout for `subjects` (indices into the toolkit's list), 100 sequence folders each.

    filled: {sequence position: side} gets `frames` frames (frame 1 of every filled sequence has no hand:
    joint_3d = -1); the other sequences have num_frames 0. Every frame holds one hand in the master
    camera's frame, seen by all 8 calibrated cameras (dex_cameras; labels per camera in its own frame,
    as the release). Only the serials in `serials` get image and label files (all 8 by default, as the
    toolkit expects). `pca`: (components, mean) of the right hand's PCA; the left hand's are the mirrored
    ones (identity / zeros by default).
    truth[sample id] = keypoints_3d, vertices, mano_pose (flat, mirrored for left hands), betas, K, and
    R, t (world -> that camera, mirrored for left hands) with xyz_world (the right-hand world keypoints)."""
    import yaml

    root = Path(root)
    rng = np.random.default_rng(seed)
    filled = {4: "right", 9: "left", 15: "right"} if filled is None else filled
    comps, mean = pca if pca is not None else (np.eye(45), np.zeros(45))
    comps_inv = np.linalg.inv(comps)
    flip = np.tile([1.0, -1.0, -1.0], 15)
    truth = {}
    Ks = {}
    for serial in DEX_SERIALS:
        fx = rng.uniform(600, 630)
        Ks[serial] = np.array([[fx, 0, rng.uniform(310, 330)], [0, fx + rng.uniform(-1, 1), rng.uniform(235, 250)],
                               [0, 0, 1.0]])
        path = root / "calibration" / "intrinsics" / f"{serial}_640x480.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({
            "color": {"fx": float(Ks[serial][0, 0]), "fy": float(Ks[serial][1, 1]),
                      "ppx": float(Ks[serial][0, 2]), "ppy": float(Ks[serial][1, 2])},
            "depth": {"fx": 385.0, "fy": 385.0, "ppx": 320.0, "ppy": 240.0}}))
    cams = dex_cameras(rng)
    write_dex_extrinsics(root, cams)
    for si in subjects:
        subject = DEX_SUBJECTS[si]
        for side in ("right", "left"):
            betas = rng.normal(0, 0.5, 10)
            path = root / "calibration" / f"mano_{subject}_{side}" / "mano.yml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump({"betas": [float(b) for b in betas]}))
        for pos in range(100):
            seq = f"{subject[:8]}_{140000 + pos * 37:06d}"
            side = filled.get(pos, "right")
            n = frames if pos in filled else 0
            d = root / subject / seq
            d.mkdir(parents=True, exist_ok=True)
            calib = f"{subject}_{side}"
            (d / "meta.yml").write_text(yaml.safe_dump({
                "serials": list(DEX_SERIALS), "num_frames": n, "ycb_ids": [1 + pos // 5, 21],
                "ycb_grasp_ind": 0, "mano_sides": [side], "mano_calib": [calib],
                "extrinsics": DEX_EXTRINSICS}))
            if n == 0:
                continue
            betas = np.array(yaml.safe_load((root / "calibration" / f"mano_{calib}" / "mano.yml").read_text())["betas"])
            for f in range(n):
                hand = random_hand(hm, rng, finger_sd=0.12, betas=betas)   # right hand; mirrored for a left one
                shift = DEX_TARGET + rng.normal(0, 0.015, 3) - hand["kps"].mean(axis=0)
                if side == "left":   # the PCA of the mirrored basis gives back the mirrored pose
                    coeffs = (hand["pose"][3:] - mean) @ comps_inv
                    assert np.allclose((mean * flip) + coeffs @ (comps * flip), hand["pose"][3:] * flip)
                for ci in serials:
                    serial = DEX_SERIALS[ci]
                    K = Ks[serial]
                    label = {"seg": np.zeros((480, 640), np.uint8), "pose_y": np.zeros((2, 3, 4), np.float32)}
                    if f == 1:   # no hand in this frame
                        label.update(pose_m=np.zeros((1, 51), np.float32),
                                     joint_3d=-np.ones((1, 21, 3), np.float32),
                                     joint_2d=-np.ones((1, 21, 2), np.float32))
                        image = dot_image(np.zeros((0, 2)), (640, 480), 4)
                    else:
                        view = dex_view(hm, hand, hand["kps"] + shift, hand["verts"] + shift, *cams[serial],
                                        side == "left", mean, comps_inv)
                        uv = project(view["joint_3d"][0], K)
                        assert np.all(uv > 12) and np.all(uv < np.array([640, 480]) - 13), "camera misses the hand"
                        # joint_3d / pose_m are float32 in the release; store float64 here so that the
                        # expected values are exact (the loader reads either)
                        label.update(pose_m=view["pose_m"], joint_3d=view["joint_3d"], joint_2d=uv[None])
                        image = dot_image(uv, (640, 480), 4)
                        Km = K.copy()
                        if side == "left":
                            Km[0, 2] = 639 - K[0, 2]
                        truth[f"{subject}/{seq}/{serial}/{f:06d}"] = {
                            **view["truth"], "betas": betas, "K": Km, "side": side, "dot_radius": 4.0}
                    (d / serial).mkdir(exist_ok=True)
                    np.savez_compressed(d / serial / f"labels_{f:06d}.npz", **label)
                    save_jpg(d / serial / f"color_{f:06d}.jpg", image)
    return truth


# ---------------------------------------------------------------- HanCo

def write_hanco(root, hm, seed: int = 0, layout=((True, 2), (False, 2), (True, 1))) -> dict:
    """meta.json, rgb/, calib/, xyz/, shape/ and (sequence 0) mask_hand/ for sequences of
    (is_train, number of frames). Frame 1 of every sequence is not valid and has no MANO fit.
    HanCo's MANO `poses` are written relative to `hm.hands_mean`.
    truth[(sid, cid, fid)] = keypoints_3d, vertices (camera), mano world data, K, R, t, world xyz."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    meta = {k: [] for k in ("is_train", "subject_id", "is_valid", "object_id", "has_fit")}
    truth = {}
    for sid, (is_train, n) in enumerate(layout):
        meta["is_train"].append([bool(is_train)] * n)
        meta["subject_id"].append([sid + 1] * n)
        meta["is_valid"].append([f != 1 for f in range(n)])
        meta["object_id"].append([None] * n)
        meta["has_fit"].append([f != 1 for f in range(n)])
        for fid in range(n):
            hand = random_hand(hm, rng, facing=False, finger_sd=0.12)
            global_t = rng.normal(0, 0.2, 3)
            xyz = hand["kps"] + global_t
            verts_world = hand["verts"] + global_t
            centre = xyz.mean(axis=0)
            normal = rotation(hand["pose"][:3]) @ [0.0, -1.0, 0.0]    # the hand plane's normal
            side = np.cross(normal, rng.normal(size=3))
            side /= np.linalg.norm(side)
            Ks, Ms = [], []
            for cid in range(8):   # 8 cameras in a ring around the normal, 10-40 degrees off it
                axis = rotation(normal * cid * np.pi / 4) @ side
                direction = rotation(axis * rng.uniform(0.17, 0.7)) @ normal
                eye = centre + direction * rng.uniform(0.85, 1.0)
                R, t = look_at(eye, centre + rng.normal(0, 0.01, 3), side)
                f = rng.uniform(450, 520)
                K = np.array([[f, 0, 111.5 + rng.normal(0, 2)], [0, f, 111.5 + rng.normal(0, 2)], [0, 0, 1.0]])
                Ks.append(K)
                M = np.eye(4)
                M[:3, :3], M[:3, 3] = R, t
                Ms.append(M)
                cam = xyz @ R.T + t
                uv = project(cam, K)
                assert np.all(uv > 0) and np.all(uv < 223), "fixture camera does not see the hand"
                save_jpg(root / "rgb" / f"{sid:04d}" / f"cam{cid}" / f"{fid:08d}.jpg", dot_image(uv, (224, 224), 2.5))
                if sid == 0:
                    m = blob_mask(uv, (224, 224), 6.0)
                    save_jpg(root / "mask_hand" / f"{sid:04d}" / f"cam{cid}" / f"{fid:08d}.jpg",
                             np.where(m, 255, 0).astype(np.uint8))
                truth[sid, cid, fid] = {"keypoints_3d": cam, "vertices": verts_world @ R.T + t, "K": K, "R": R,
                                        "t": t, "xyz": xyz, "dot_radius": 2.5, "has_fit": fid != 1,
                                        "pose_world": hand["pose"], "betas": hand["betas"]}
            write_json(root / "calib" / f"{sid:04d}" / f"{fid:08d}.json",
                       {"K": [k.tolist() for k in Ks], "M": [m.tolist() for m in Ms]})
            write_json(root / "xyz" / f"{sid:04d}" / f"{fid:08d}.json", xyz.tolist())
            if fid != 1:
                rel = hand["pose"].copy()
                rel[3:] -= np.asarray(hm.hands_mean).reshape(45)
                write_json(root / "shape" / f"{sid:04d}" / f"{fid:08d}.json",
                           {"poses": [rel.tolist()], "shapes": [hand["betas"].tolist()],
                            "global_t": [[global_t.tolist()]]})
    write_json(root / "meta.json", meta)
    return truth


# ---------------------------------------------------------------- MobRecon's complement data

def write_mobrecon_complement(root, hm, seed: int = 0, poses=("base_pose/0003", "trans_pose_batch1/0871"),
                              views=(0, 40, 215), variants=("0", "17")) -> dict:
    """K256.npy, j_reg.npy (MANO order + tips), t.npy and data/<pose>/{pic256/<variant>/<variant>.<view>.png,
    model_mano/<view>.obj, mask256/<view>.png} of LEFT hands (the renders are left hands; meshes in the
    camera frame). truth[sample id] = keypoints_3d and vertices (mirrored to right hands), K (mirrored)."""
    from synth.hand_model import MANO_TO_FREIHAND

    root = Path(root)
    rng = np.random.default_rng(seed)
    K = np.array([[390.0, 0.0, 126.3], [0.0, 390.0, 128.9], [0.0, 0.0, 1.0]])
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "K256.npy", K)
    j_reg = np.empty_like(hm.joint_regressor)
    j_reg[MANO_TO_FREIHAND] = hm.joint_regressor          # back to MANO order + tips
    np.save(root / "j_reg.npy", j_reg)
    np.save(root / "t.npy", np.zeros(3))
    Km = K.copy()
    Km[0, 2] = 255 - K[0, 2]
    truth = {}
    for pose in poses:
        base = root / "data" / pose
        hand = random_hand(hm, rng)
        for view in views:
            R = rotation(rng.normal(0, 0.3, 3))
            verts_right = hand["verts"] @ R.T
            kps_right = hand["kps"] @ R.T
            t = place(kps_right * MIRROR, K, (256, 256), rng, (0.5, 0.6))
            verts_left = verts_right * MIRROR + t
            # the dataset's keypoints are j_reg @ mesh (not the model's skinned joints)
            kps_left = hm.joint_regressor @ verts_left
            obj = base / "model_mano" / f"{view}.obj"
            obj.parent.mkdir(parents=True, exist_ok=True)
            obj.write_text("".join(f"v {x:.10f} {y:.10f} {z:.10f}\n" for x, y, z in verts_left)
                           + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in hm.faces))
            uv = project(kps_left, K)
            mask = np.where(blob_mask(uv, (256, 256), 7.0), 255, 0).astype(np.uint8)
            save_png(base / "mask256" / f"{view}.png", mask)
            for var in variants:
                rel = f"data/{pose}/pic256/{var}/{var}.{view:04d}.png"
                save_png(root / rel, dot_image(uv, (256, 256), 3))
                truth[rel] = {"keypoints_3d": kps_left * MIRROR, "vertices": verts_left * MIRROR, "K": Km,
                              "view": view, "dot_radius": 3.0, "uv_left": uv}
    return truth


# ---------------------------------------------------------------- our complement shards

def write_complement_shards(root, hm, seed: int = 0, poses=(3, 17), views=(0, 40, 101), size: int = 96) -> dict:
    """A rendered-dataset stand-in in synth/shards.py's format: tables (identity mapping matrices) and one
    shard per pose with dot images, masks, depth and annotations. truth[key] = keypoints_3d, vertices,
    K, R, t, pose params, keypoints in the model frame, visibility."""
    import scipy.sparse as sp

    from synth.shards import ShardWriter, config_hash
    from synth.tables import write_tables

    root = Path(root)
    rng = np.random.default_rng(seed)
    hands = [random_hand(hm, rng, facing=False, beta_sd=0.0, global_sd=0.15) for _ in poses]
    params = np.stack([h["pose"] for h in hands])
    verts = np.stack([h["verts"] for h in hands])
    kps = np.stack([h["kps"] for h in hands])
    centre = kps.reshape(-1, 3).mean(axis=0)
    f = 110.0
    K = np.array([[f, 0.0, (size - 1) / 2], [0.0, f, (size - 1) / 2], [0.0, 0.0, 1.0]])
    cams = []
    for v in views:   # around the normal of the model's palm plane (y), like most of the rig's views
        d = [0.0, -1.0, 0.0] + rng.normal(0, 0.3, 3)
        d /= np.linalg.norm(d)
        R, t = look_at(centre + 0.55 * d, centre, [1.0, 0.0, 0.0])
        cams.append((R, t))
    cfg = {"seed": seed, "image_size": size}
    eye = sp.identity(hm.num_vertices, format="csr")
    write_tables(
        root,
        {"config": cfg, "versions": {}, "config_hash": config_hash(cfg),
         "hand_model": {"name": hm.name, "template_hash": hm.template_hash, "num_vertices": hm.num_vertices}},
        poses={"pose_ids": np.array(poses), "params": params, "vertices": verts, "keypoints": kps, "dense": verts},
        views={"view_ids": np.array(views), "K": np.stack([K] * len(views)), "R": np.stack([c[0] for c in cams]),
               "t": np.stack([c[1] for c in cams]), "longitude": np.zeros(len(views)),
               "latitude": np.zeros(len(views))},
        mapping={"M": eye, "S": eye, "faces": hm.faces, "dense_faces": hm.faces},
        hdris=[{"id": "studio", "split": "train"}])
    truth = {}
    for row, pid in enumerate(poses):
        with ShardWriter(root, pid, config_hash(cfg)) as w:
            for (R, t), vid in zip(cams, views):
                key = f"{pid:04d}_{vid:03d}"
                cam = kps[row] @ R.T + t
                uv = project(cam, K)
                assert np.all(uv > 2) and np.all(uv < size - 3), "fixture view does not see the hand"
                mask = blob_mask(uv, (size, size), 4.0)
                vis = rng.random(21) > 0.2
                ann = {"pose_id": pid, "view_id": vid, "K": K.tolist(), "R": R.tolist(), "t": t.tolist(),
                       "image_size": [size, size], "keypoints_2d": uv.tolist(), "keypoints_3d": cam.tolist(),
                       "visibility": vis.tolist(), "hdri": {"id": "studio", "rotation_deg": 0.0, "strength": 1.0},
                       "skin": {"tone": 0.5}, "crop_box": None, "seed": seed}
                w.add(key, rgb=dot_image(uv, (size, size), 2.0), depth_m=np.where(mask, 0.5, 0.0), mask=mask,
                      annotation=ann)
                truth[key] = {"keypoints_3d": cam, "vertices": verts[row] @ R.T + t, "K": K, "R": R, "t": t,
                              "params": params[row], "model_kps": kps[row], "visibility": vis, "dot_radius": 2.0}
    return truth
