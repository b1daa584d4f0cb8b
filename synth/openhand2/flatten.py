"""Straighten a hand of the body's rest pose into MANO's pose 0 (a flat hand), with its own skinning.

MakeHuman's hand hangs relaxed at the body's side, fingers gently curled and the thumb opposed (about 42
degrees out of the palm's plane). MANO's template, which every pose here is relative to, is flat: each long
finger straight and in the palm's plane, the thumb's metacarpal turned back to THUMB_OUT_OF_PLANE_DEG from
the palm's plane (keeping its direction within the plane) and its two distal bones in line with it. Each
chain bone is turned, proximal to distal, about its head by the smallest rotation that takes its (already
carried) direction to the target; the skin follows by linear blend skinning with the rig's weights, so this
is a pose of the same model, not a re-sculpt.
"""
from __future__ import annotations

import numpy as np

# long fingers: (proximal, middle, distal) bone labels; the thumb: the two bones after its metacarpal
LONG_FINGERS = {f"finger{k}": [f"finger{k}-{j}.R" for j in (1, 2, 3)] for k in (2, 3, 4, 5)}
THUMB = ["finger1-1.R", "finger1-2.R", "finger1-3.R"]
THUMB_OUT_OF_PLANE_DEG = 15.0     # the flat thumb's metacarpal, towards the palm side


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector a to unit vector b."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    axis, c = np.cross(a, b), float(a @ b)
    s = np.linalg.norm(axis)
    if s < 1e-12:
        return np.eye(3)
    k = axis / s
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * K + (1 - c) * K @ K


def palm_normal(heads: np.ndarray, labels: list) -> np.ndarray:
    at = {lab: heads[i] for i, lab in enumerate(labels)}
    n = np.cross(at["finger2-1.R"] - at["wrist.R"], at["finger5-1.R"] - at["wrist.R"])
    return n / np.linalg.norm(n)


def flat_targets(heads: np.ndarray, directions: np.ndarray, labels: list) -> dict:
    """Bone label -> its target direction in the flat hand."""
    idx = {lab: i for i, lab in enumerate(labels)}
    n = palm_normal(heads, labels)
    targets = {}
    for chain in LONG_FINGERS.values():
        d = directions[idx[chain[0]]]
        d = d - n * (d @ n)                    # the proximal bone laid into the palm's plane
        for lab in chain:
            targets[lab] = d / np.linalg.norm(d)
    d = directions[idx[THUMB[0]]]
    out = d @ n
    inplane = d - n * out
    inplane /= np.linalg.norm(inplane)
    a = np.radians(THUMB_OUT_OF_PLANE_DEG)
    thumb = np.cos(a) * inplane + np.sin(a) * np.sign(out) * n
    for lab in THUMB:
        targets[lab] = thumb
    return targets


def bone_transforms(heads, directions, labels, parents, targets: dict) -> np.ndarray:
    """(B, 4, 4) world transforms of the bones that take the rest pose to the targets."""
    G = np.tile(np.eye(4), (len(labels), 1, 1))
    for b, lab in enumerate(labels):          # anny lists parents before children
        p = parents[b]
        parent = G[p] if p >= 0 else np.eye(4)
        if lab not in targets:
            G[b] = parent
            continue
        R = rotation_between(parent[:3, :3] @ directions[b], targets[lab])
        h = parent[:3, :3] @ heads[b] + parent[:3, 3]
        local = np.eye(4)
        local[:3, :3], local[:3, 3] = R, h - R @ h
        G[b] = local @ parent
    return G


def flatten(vertices, heads, directions, labels, parents, weights) -> tuple:
    """(flat vertices (V, 3), flat bone heads (B, 3), flat bone directions (B, 3)) of one hand."""
    G = bone_transforms(heads, directions, labels, parents, flat_targets(heads, directions, labels))
    hom = np.column_stack([vertices, np.ones(len(vertices))])
    per_bone = np.einsum("bij,vj->bvi", G[:, :3], hom)          # (B, V, 3)
    flat = np.einsum("vb,bvi->vi", weights, per_bone)
    new_heads = np.einsum("bij,bj->bi", G[:, :3, :3], heads) + G[:, :3, 3]
    new_dirs = np.einsum("bij,bj->bi", G[:, :3, :3], directions)
    return flat, new_heads, new_dirs
