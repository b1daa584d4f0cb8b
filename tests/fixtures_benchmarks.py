"""Tiny benchmark datasets in their official on-disk layouts, generated from the hand model.

Each writer poses the hand model with random poses, shapes and cameras (fixed seed), writes the
files exactly as the benchmark publishes them, and returns the truth in the project's
conventions (OpenCV camera frame, metres, FreiHAND keypoint order) so tests know what a loader
must return. Images are dark noise with the projected keypoints drawn as bright disks
(DOT_RADIUS px) over grey vertex dots, so a test can check crop geometry from the pixels.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synth.hand_model import MANO_TO_FREIHAND

DOT_RADIUS = 4.0
DOT_VALUE = 255
VERTEX_VALUE = 90
BACKGROUND_MAX = 40
FREIHAND_OFFSET = 32560
FREIHAND_VERSIONS = ("gs", "hom", "sample", "auto")
RHD_TO_FREIHAND = [0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17]
FREIHAND_TO_MANO = np.argsort(MANO_TO_FREIHAND)  # mano[j] = freihand[FREIHAND_TO_MANO[j]]
OPENGL = np.diag([1.0, -1.0, -1.0])
MIRROR = np.diag([-1.0, 1.0, 1.0])


# ----------------------------------------------------------------------------- helpers

def random_rotation(rng) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def rotvec(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(R).as_rotvec()


def pose_hands(hm, rng, n: int, finger_sigma: float = 0.25):
    """n random flat poses (48: uniform random global orientation, fingers ~ N(0, finger_sigma)),
    betas ~ N(0, 0.5), and the model's vertices / keypoints (float64, model frame)."""
    poses = np.zeros((n, 48))
    for i in range(n):
        poses[i, :3] = rotvec(random_rotation(rng))
        poses[i, 3:] = rng.normal(0.0, finger_sigma, 45)
    betas = rng.normal(0.0, 0.5, (n, 10))
    with torch.no_grad():
        v, k = hm(torch.as_tensor(poses), torch.as_tensor(betas))
    return poses, betas, v.double().numpy(), k.double().numpy()


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    p = points @ K.T
    return p[:, :2] / p[:, 2:3]


def background(rng, h: int, w: int) -> np.ndarray:
    return rng.integers(0, BACKGROUND_MAX, (h, w, 3), dtype=np.uint8)


def draw_disks(img: np.ndarray, points_2d: np.ndarray, radius: float, value) -> None:
    """Set every pixel whose centre is within `radius` of a point (pixel centres at integers)."""
    h, w = img.shape[:2]
    for u, v in np.asarray(points_2d):
        x0, x1 = max(int(np.floor(u - radius)), 0), min(int(np.ceil(u + radius)), w - 1)
        y0, y1 = max(int(np.floor(v - radius)), 0), min(int(np.ceil(v + radius)), h - 1)
        if x0 > x1 or y0 > y1:
            continue
        yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1]
        inside = (xx - u) ** 2 + (yy - v) ** 2 <= radius ** 2
        img[y0:y1 + 1, x0:x1 + 1][inside] = value


def hand_image(rng, h: int, w: int, hands: list) -> np.ndarray:
    """Dark noise, each hand's projected vertices as grey dots, its keypoints as bright disks."""
    img = background(rng, h, w)
    for verts_2d, kps_2d in hands:
        draw_disks(img, verts_2d, 1.5, VERTEX_VALUE)
    for _, kps_2d in hands:
        draw_disks(img, kps_2d, DOT_RADIUS, DOT_VALUE)
    return img


def hand_mask(h: int, w: int, verts_2d: np.ndarray, radius: float = 3.0) -> np.ndarray:
    m = np.zeros((h, w), dtype=np.uint8)
    draw_disks(m, verts_2d, radius, 1)
    return m.astype(bool)


def place(verts, kps, target, anchor: int = 9):
    """Translate model-frame points so keypoint `anchor` lands on `target`; returns (verts, kps, t)."""
    t = np.asarray(target, dtype=np.float64) - kps[anchor]
    return verts + t, kps + t, t


def intrinsics(rng, size, f_range, equal_f: bool = False) -> np.ndarray:
    w, h = size
    fx = rng.uniform(*f_range)
    fy = fx if equal_f else fx * rng.uniform(0.98, 1.02)
    return np.array([[fx, 0.0, (w - 1) / 2 + rng.uniform(-4, 4)],
                     [0.0, fy, (h - 1) / 2 + rng.uniform(-4, 4)],
                     [0.0, 0.0, 1.0]])


def save(img: np.ndarray, path: Path, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, **kwargs)


# ----------------------------------------------------------------------------- FreiHAND

def write_freihand(root, hm, n: int = 3, n_eval: int = 2, seed: int = 0, size: int = 224,
                   eval_labels: bool = True) -> dict:
    """FreiHAND layout under root; returns {'training': {...}, 'evaluation': {...}} truth arrays.

    Sample 0 of each split has fx == fy (so the toolbox's weak-perspective root recovery is exact).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth = {}
    for split, count in (("training", n), ("evaluation", n_eval)):
        poses, betas, v, k = pose_hands(hm, rng, count)
        K = np.stack([intrinsics(rng, (size, size), (480.0, 560.0), equal_f=(i == 0)) for i in range(count)])
        xyz, verts, mano, trans = [], [], [], []
        for i in range(count):
            target = [rng.uniform(-0.01, 0.01), rng.uniform(-0.01, 0.01), rng.uniform(0.6, 0.7)]
            vi, ki, t = place(v[i], k[i], target)
            xyz.append(ki)
            verts.append(vi)
            trans.append(t)
            focal = 0.5 * (K[i, 0, 0] + K[i, 1, 1])
            uv_root = project(ki[9:10], K[i])[0]
            rel = poses[i].copy()
            rel[3:] -= hm.hands_mean  # FreiHAND stores the pose relative to the mean hand pose
            mano.append([list(rel) + list(betas[i]) + list(uv_root) + [focal / ki[9, 2]]])
        xyz, verts = np.array(xyz), np.array(verts)
        # JSON holds what json.dump writes of float64: exact round trip
        files = {"K": K.tolist(), "scale": [float(np.linalg.norm(x[10] - x[9])) for x in xyz]}
        if split == "training" or eval_labels:
            files.update({"xyz": xyz.tolist(), "verts": verts.tolist(), "mano": mano})
        for kind, data in files.items():
            (root / f"{split}_{kind}.json").write_text(json.dumps(data))
        versions = FREIHAND_VERSIONS if split == "training" else ("gs",)
        masks = []
        for i in range(count):
            vert2d, kp2d = project(verts[i], K[i]), project(xyz[i], K[i])
            for vi_, version in enumerate(versions):
                img = hand_image(rng, size, size, [(vert2d, kp2d)])
                save(img, root / split / "rgb" / f"{i + FREIHAND_OFFSET * vi_:08d}.jpg", quality=95)
            if split == "training":
                m = hand_mask(size, size, vert2d)
                masks.append(m)
                save((m * 255).astype(np.uint8), root / "training" / "mask" / f"{i:08d}.jpg", quality=95)
        truth[split] = {"xyz": xyz, "verts": verts, "K": K, "pose_flat": poses, "betas": betas,
                        "mano": np.array(mano).reshape(count, 61), "trans": np.array(trans),
                        "scale": np.array(files["scale"]), "masks": masks}
    return truth


# ----------------------------------------------------------------------------- RHD

RHD_SIZE = 320


def write_rhd(root, hm, n: int = 4, n_eval: int = 2, seed: int = 1) -> dict:
    """RHD_published_v2 under root; truth per split: lists of per-image dicts.

    Each image shows a right hand and a left hand (a mirrored copy of another right hand). Even
    images have the left hand nearer (dominant), odd ones the right; image 3 has its left hand
    outside the picture (no visible keypoint). Truth per image: 'right' / 'left' keypoints
    (21, 3) FreiHAND order camera frame, 'right_as_right' / 'left_as_right' (the left hand
    mirrored), visibility per hand, 'dominant' side, K, depth (decoded metres).
    """
    from finetune.datasets.rhd import decode_depth, encode_depth

    root = Path(root) / "RHD_published_v2"
    rng = np.random.default_rng(seed)
    truth = {}
    for split, count in (("training", n), ("evaluation", n_eval)):
        anno = {}
        items = []
        _, _, v, k = pose_hands(hm, rng, 2 * count)
        for i in range(count):
            K = intrinsics(rng, (RHD_SIZE, RHD_SIZE), (280.0, 320.0)).astype(np.float32).astype(np.float64)
            left_near = i % 2 == 0
            z_right, z_left = (0.75, 0.55) if left_near else (0.55, 0.75)
            vr, kr, _ = place(v[2 * i], k[2 * i], [0.09, rng.uniform(-0.03, 0.03), z_right])
            off = 3.0 if i == 3 else 0.0  # image 3: the left hand far outside the picture
            vl0, kl0, _ = place(v[2 * i + 1], k[2 * i + 1], [0.09 + off, rng.uniform(-0.03, 0.03), z_left])
            vl, kl = vl0 @ MIRROR, kl0 @ MIRROR  # a left hand: a mirrored right hand
            kr, kl = kr.astype(np.float32).astype(np.float64), kl.astype(np.float32).astype(np.float64)
            xyz = np.concatenate([kl[RHD_TO_FREIHAND], kr[RHD_TO_FREIHAND]])  # RHD order, left first
            uv = project(xyz, K)
            inside = np.all((uv > 0) & (uv < RHD_SIZE - 1), axis=1)
            vis = inside & (rng.uniform(size=42) < 0.8)
            vis[21] = inside[21]  # keep the right wrist visible when inside
            anno[i] = {"xyz": xyz.astype(np.float32),
                       "uv_vis": np.concatenate([uv, vis[:, None]], 1).astype(np.float32),
                       "K": K.astype(np.float32)}
            # mask: far hand first, near hand over it; person label 1 in a bottom band
            labels = np.zeros((RHD_SIZE, RHD_SIZE), dtype=np.uint8)
            labels[-20:] = 1
            depth = np.full((RHD_SIZE, RHD_SIZE), 3.0)
            order = [("right", vr, 18), ("left", vl, 2)] if left_near else [("left", vl, 2), ("right", vr, 18)]
            for _, verts, base in order:
                v2 = project(verts, K)
                for part in range(16):
                    m = hand_mask(RHD_SIZE, RHD_SIZE, v2[part::16])
                    labels[m] = base + part
                    depth[m] = float(np.median(verts[:, 2]))
            img = hand_image(rng, RHD_SIZE, RHD_SIZE, [(project(vr, K), project(kr, K)),
                                                       (project(vl, K), project(kl, K))])
            d = root / split
            save(img, d / "color" / f"{i:05d}.png")
            save(labels, d / "mask" / f"{i:05d}.png")
            enc = encode_depth(depth)
            save(enc, d / "depth" / f"{i:05d}.png")
            left_px = int(np.count_nonzero((labels >= 2) & (labels <= 17)))
            right_px = int(np.count_nonzero((labels >= 18) & (labels <= 33)))
            items.append({"right": kr, "left": kl, "right_as_right": kr, "left_as_right": kl @ MIRROR,
                          "vis_right": vis[21:][RHD_TO_FREIHAND], "vis_left": vis[:21][RHD_TO_FREIHAND],
                          "dominant": "left" if left_px > right_px else "right", "K": K,
                          "depth": decode_depth(enc), "labels": labels})
        (root / split).mkdir(parents=True, exist_ok=True)
        with open(root / split / f"anno_{split}.pickle", "wb") as f:
            pickle.dump(anno, f, protocol=2)
        truth[split] = items
    return truth


# ----------------------------------------------------------------------------- HO-3D

HO3D_W, HO3D_H = 640, 480
HO3D_SEQS = ("ABF10", "MC1")


def write_ho3d(root, hm, version: str = "v2", frames: int = 2, seed: int = 2, unannotated: bool = False) -> dict:
    """HO-3D layout under root (2 sequences x `frames` frames per split).

    Returns {'train': [...], 'evaluation': [...]} in list order, each with the OpenCV-frame
    keypoints (FreiHAND order), the stored meta values, and (evaluation) the root.
    unannotated=True appends one train frame whose hand values are None (as in version 3).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ext = {"v2": "png", "v3": "jpg"}[version]
    truth = {}
    for split in ("train", "evaluation"):
        names = [f"{s}/{f:04d}" for s in HO3D_SEQS for f in range(frames)]
        poses, betas, v, k = pose_hands(hm, rng, len(names))
        items = []
        for i, name in enumerate(names):
            seq, frame = name.split("/")
            K = np.array([[614.0 + rng.uniform(-5, 5), 0, 320 + rng.uniform(-5, 5)],
                          [0, 614.0 + rng.uniform(-5, 5), 240 + rng.uniform(-5, 5)], [0, 0, 1]])
            target_cv = np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), rng.uniform(0.55, 0.7)])
            # model output + handTrans is in OpenGL: put keypoint 9 at the OpenGL image of target_cv
            _, _, trans = place(v[i], k[i], OPENGL @ target_cv)
            pose32, beta32, trans32 = (a.astype(np.float32) for a in (poses[i], betas[i], trans))
            with torch.no_grad():  # the stored parameters give the stored joints, as in HO-3D
                vv, kk = hm(torch.as_tensor(pose32[None].astype(np.float64)),
                            torch.as_tensor(beta32[None].astype(np.float64)))
            verts_gl = vv[0].double().numpy() + trans32
            kps_gl = (kk[0].double().numpy() + trans32).astype(np.float32)
            kps_cv = kps_gl.astype(np.float64) @ OPENGL
            verts_cv = verts_gl @ OPENGL
            d = root / split / seq
            img = hand_image(rng, HO3D_H, HO3D_W, [(project(verts_cv, K), project(kps_cv, K))])
            save(img, d / "rgb" / f"{frame}.{ext}", **({"quality": 95} if ext == "jpg" else {}))
            from finetune.datasets.ho3d import encode_depth

            depth = np.full((HO3D_H, HO3D_W), 1.5)
            m = hand_mask(HO3D_H, HO3D_W, project(verts_cv, K))
            depth[m] = float(np.median(verts_cv[:, 2]))
            save(encode_depth(depth), d / "depth" / f"{frame}.png")
            if split == "train":
                meta = {"handPose": pose32, "handBeta": beta32, "handTrans": trans32,
                        "handJoints3D": kps_gl[FREIHAND_TO_MANO], "camMat": K.astype(np.float32),
                        "objRot": np.zeros((3, 1), np.float32), "objTrans": np.zeros(3, np.float32),
                        "objName": "003_cracker_box", "objLabel": 1,
                        "objCorners3D": np.zeros((8, 3), np.float32), "objCorners3DRest": np.zeros((8, 3), np.float32)}
            else:
                uv = project(verts_cv, K)
                bb = np.array([*uv.min(0), *uv.max(0)], dtype=np.float32)
                meta = {"handBoundingBox": bb, "handJoints3D": kps_gl[0], "camMat": K.astype(np.float32),
                        "objRot": np.zeros((3, 1), np.float32), "objTrans": np.zeros(3, np.float32),
                        "objName": "003_cracker_box", "objCorners3D": np.zeros((8, 3), np.float32)}
            (d / "meta").mkdir(parents=True, exist_ok=True)
            with open(d / "meta" / f"{frame}.pkl", "wb") as f:
                pickle.dump(meta, f, protocol=2)
            items.append({"name": name, "kps_cv": kps_cv, "verts_cv_model": verts_cv, "K": K.astype(np.float32)
                          .astype(np.float64), "pose": pose32.astype(np.float64), "betas": beta32.astype(np.float64),
                          "trans": trans32.astype(np.float64), "root_cv": kps_cv[0],
                          "bbox": meta.get("handBoundingBox"), "depth_m": depth})
        if split == "train" and unannotated:
            seq, frame = HO3D_SEQS[0], f"{frames:04d}"
            d = root / split / seq
            save(background(rng, HO3D_H, HO3D_W), d / "rgb" / f"{frame}.{ext}")
            save(encode_depth(np.full((HO3D_H, HO3D_W), 1.5)), d / "depth" / f"{frame}.png")
            meta = {k_: None for k_ in ("handPose", "handBeta", "handTrans", "handJoints3D", "objRot", "objTrans",
                                        "objCorners3D", "objCorners3DRest")}
            meta.update({"camMat": np.eye(3, dtype=np.float32), "objName": "003_cracker_box"})
            with open(d / "meta" / f"{frame}.pkl", "wb") as f:
                pickle.dump(meta, f, protocol=2)
            names.append(f"{seq}/{frame}")
            items.append({"name": f"{seq}/{frame}", "unannotated": True})
        (root / ("train.txt" if split == "train" else "evaluation.txt")).write_text("\n".join(names) + "\n")
        truth[split] = items
    return truth
