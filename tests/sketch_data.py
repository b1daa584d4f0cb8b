"""A Blender-free stand-in dataset in the real shard format: a test fixture (and benchmarks/train_throughput.py's
stand-in data), kept out of the product packages.

Hands are drawn as coloured keypoint sketches over noisy backgrounds, with
known K, R, t and 2D/3D keypoints, written through synth.shards.ShardWriter
and synth.tables.write_tables, so the pretraining task is learnable without
rendering. Importers put tests/ on sys.path (pytest does so for test modules).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from pretrain.data2d import NUM_JOINTS, PARENTS

# Named random streams: each draw family seeds default_rng([id, STREAM]) with its own tag, so the pose
# and view draws are independent. The values are those the fixture was first written with: changing
# one changes every fixture's bytes (and the tests' trained margins).
POSE_STREAM = 12345   # finger curls and spreads of a sketch pose: default_rng([pose_id, POSE_STREAM])
VIEW_STREAM = 777     # rotation, tilt, offset and distance of a sketch view: default_rng([view_id, VIEW_STREAM])

SKETCH_COLOURS = [(230, 60, 60), (60, 200, 60), (70, 110, 240), (240, 190, 40), (190, 70, 230)]


def sketch_keypoints(pose_id: int) -> np.ndarray:
    """(21, 3) model-frame keypoints (metres) of a drawn 'hand': five chains whose curl depends on the pose."""
    rng = np.random.default_rng([pose_id, POSE_STREAM])
    curls = rng.uniform(0.0, 1.0, 5)
    spread = rng.uniform(-0.15, 0.15, 5)
    base_angles = np.radians([-60, -20, 0, 18, 36]) + spread
    lengths = [[0.035, 0.03, 0.025, 0.02], [0.06, 0.035, 0.022, 0.018], [0.062, 0.04, 0.025, 0.02],
               [0.058, 0.036, 0.023, 0.019], [0.052, 0.028, 0.018, 0.016]]
    kp = np.zeros((NUM_JOINTS, 3))
    for f in range(5):
        ang = base_angles[f]
        pos = np.zeros(3)
        for j in range(4):
            if j > 0:
                ang += curls[f] * np.radians(55) * (1 if f else -0.6)
            step = lengths[f][j] * (1.0 - 0.35 * curls[f] * (j > 0))
            pos = pos + step * np.array([math.sin(ang), -math.cos(ang), 0.012 * j * curls[f] / step])
            kp[1 + 4 * f + j] = pos
    return kp


def _rot(axis: str, a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
            "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])}[axis]


def sketch_view(view_id: int, size: int) -> tuple:
    """(K, R, t) of a sketch view: in-plane rotation, some tilt, distance and offset from the view id."""
    rng = np.random.default_rng([view_id, VIEW_STREAM])
    f = 1.8 * size
    K = np.array([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1.0]])
    R = _rot("z", rng.uniform(-math.pi, math.pi)) @ _rot("x", rng.uniform(-0.5, 0.5)) @ _rot("y", rng.uniform(-0.5, 0.5))
    t = np.array([rng.uniform(-0.015, 0.015), rng.uniform(-0.015, 0.015) + 0.03, rng.uniform(0.42, 0.55)])
    return K, R, t


def _background(hdri: str, size: int, rng: np.random.Generator) -> np.ndarray:
    base = np.random.default_rng([sum(map(ord, hdri)), len(hdri)])   # the background's colours: from its name
    c0, c1 = base.uniform(20, 235, 3), base.uniform(20, 235, 3)
    g = np.linspace(0, 1, size)[:, None, None]
    img = c0 * (1 - g) + c1 * g
    img = img + rng.normal(0, 18, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def draw_sketch(uv: np.ndarray, hdri: str, size: int, rng: np.random.Generator) -> tuple:
    """(rgb uint8, mask bool) of a sketch hand with 2D keypoints `uv` on `hdri`'s background."""
    from PIL import ImageDraw

    img = Image.fromarray(_background(hdri, size, rng))
    mask = Image.new("L", (size, size), 0)
    d, dm = ImageDraw.Draw(img), ImageDraw.Draw(mask)
    width = max(2, size // 28)
    palm = [tuple(uv[i] + 0.5) for i in (0, 1, 5, 9, 13, 17)]
    d.polygon(palm, fill=(235, 200, 170))
    dm.polygon(palm, fill=255)
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        colour = SKETCH_COLOURS[(j - 1) // 4]
        a, b = tuple(uv[p] + 0.5), tuple(uv[j] + 0.5)
        d.line([a, b], fill=colour, width=width)
        dm.line([a, b], fill=255, width=width)
    for j in range(NUM_JOINTS):
        r = width * (0.9 if j else 1.4)
        x, y = uv[j] + 0.5
        shade = tuple(int(c * 0.6) for c in SKETCH_COLOURS[max(j - 1, 0) // 4]) if j else (40, 40, 40)
        d.ellipse([x - r, y - r, x + r, y + r], fill=shade)
        dm.ellipse([x - r, y - r, x + r, y + r], fill=255)
    return np.asarray(img), np.asarray(mask) > 127


SKETCH_HDRIS = [{"id": "sketch/studio", "split": "train"}, {"id": "sketch/forest", "split": "train"},
                {"id": "sketch/sunset", "split": "train"}, {"id": "sketch/night", "split": "heldout"}]


def write_sketch_dataset(root, poses=range(8), views=range(12), size: int = 96, hdris=None,
                         heldout_every: int = 4, seed: int = 0) -> Path:
    """A complement-format dataset without Blender: one shard per pose, sketch hands as images.

    Keypoints follow the pose (finger curls) and the view (rotation, tilt, distance); every
    `heldout_every`-th view of a pose uses a held-out background ('HDRI'), the others cycle
    through the training ones. The annotations are consistent: keypoints_2d = project(K,
    keypoints_3d), keypoints_3d = R @ X_model + t. The tables stand in a 21-'vertex' hand model.
    """
    import scipy.sparse as sp

    from synth.shards import ShardWriter, config_hash
    from synth.tables import write_tables

    root = Path(root)
    poses, views = [int(p) for p in poses], [int(v) for v in views]
    hdris = list(hdris or SKETCH_HDRIS)
    train_h = [h["id"] for h in hdris if h.get("split") == "train"]
    held_h = [h["id"] for h in hdris if h.get("split") == "heldout"] or train_h
    model = np.stack([sketch_keypoints(p) for p in poses])
    cams = {v: sketch_view(v, size) for v in views}
    cfg = {"seed": seed, "image_size": size, "kind": "sketch"}
    eye = sp.identity(NUM_JOINTS, format="csr")
    write_tables(root, {"config": cfg, "versions": {}, "config_hash": config_hash(cfg),
                        "hand_model": {"name": "sketch", "template_hash": "sketch", "num_vertices": NUM_JOINTS}},
                 poses={"pose_ids": np.array(poses), "params": np.zeros((len(poses), 48)), "vertices": model,
                        "keypoints": model, "dense": model},
                 views={"view_ids": np.array(views), "K": np.stack([cams[v][0] for v in views]),
                        "R": np.stack([cams[v][1] for v in views]), "t": np.stack([cams[v][2] for v in views]),
                        "longitude": np.zeros(len(views)), "latitude": np.zeros(len(views))},
                 mapping={"M": eye, "S": eye, "faces": np.zeros((0, 3), np.int64),
                          "dense_faces": np.zeros((0, 3), np.int64)},
                 hdris=hdris)
    for row, pid in enumerate(poses):
        with ShardWriter(root, pid, config_hash(cfg)) as w:
            for k, vid in enumerate(views):
                K, R, t = cams[vid]
                cam = model[row] @ R.T + t
                uv = (cam @ K.T)[:, :2] / cam[:, 2:]
                hdri = held_h[(pid + k) % len(held_h)] if heldout_every and k % heldout_every == heldout_every - 1 \
                    else train_h[(pid + k) % len(train_h)]
                rng = np.random.default_rng([seed, pid, vid])   # the sample's pixel noise
                rgb, mask = draw_sketch(uv, hdri, size, rng)
                ann = {"pose_id": pid, "view_id": vid, "K": K, "R": R, "t": t, "image_size": [size, size],
                       "keypoints_2d": uv, "keypoints_3d": cam, "visibility": [True] * NUM_JOINTS,
                       "hdri": {"id": hdri, "rotation_deg": 0.0, "strength": 1.0}, "seed": seed}
                w.add(f"{pid:04d}_{vid:03d}", rgb=rgb, depth_m=np.where(mask, cam[:, 2].mean(), 0.0), mask=mask,
                      annotation=ann)
    return root
