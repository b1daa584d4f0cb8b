"""MobRecon's temporal-coherence figure Acc: the acceleration of 2D / 3D joints.

MobRecon (seed 001, "Evaluation metrics"): "Acc captures the acceleration of
2D/3D joint landmarks in pixel/s^2 or mm/s^2 to reflect temporal coherence",
measured on HO3Dv2's evaluation sequences, whose ground truth is not public:
so it is the acceleration of the *predictions* themselves, with no ground
truth (their supplement keeps camera and hand static so that a good method
shows low acceleration). Per sequence of T frames in temporal order, with the
second-order central difference

    a_t = x_{t-1} - 2 x_t + x_{t+1},   t = 1 .. T-2,

Acc = mean over all (t, joint) of ||a_t|| (over all sequences pooled). The
paper's numbers (2D ~2, 3D ~5 on HO3Dv2) fit per-frame differences (per second^2
they would be fps^2, hundreds of times, larger), so the default unit is
px/frame^2 and mm/frame^2; pass fps to scale by fps^2 to per-second^2 units.
MobRecon's released runner computes no Acc; the definition here follows the
paper's text. 3D acceleration is taken of root-relative joints by default
(MobRecon predicts a root-relative mesh; the root is recovered separately).

`acceleration_error` is the related figure of human-mesh work (HMR / VIBE):
||a_pred - a_gt|| when the ground truth of the sequence is known.
"""
from __future__ import annotations

import numpy as np


def _sequence(points, name: str) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 3:
        raise ValueError(f"{name}: expected (frames, joints, dims), got shape {p.shape}")
    if len(p) < 3:
        raise ValueError(f"{name}: acceleration needs at least 3 frames, got {len(p)}")
    return p


def acceleration(points, fps: float | None = None) -> np.ndarray:
    """(T-2, J) acceleration magnitudes of one (T, J, D) sequence."""
    p = _sequence(points, "sequence")
    a = p[:-2] - 2.0 * p[1:-1] + p[2:]
    return np.linalg.norm(a, axis=-1) * (1.0 if fps is None else float(fps) ** 2)


def acceleration_error(pred, gt, fps: float | None = None) -> np.ndarray:
    """(T-2, J) ||a_pred - a_gt|| of one sequence (HMR/VIBE's acceleration error)."""
    p, g = _sequence(pred, "prediction"), _sequence(gt, "ground truth")
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} differ in shape")
    a = (p[:-2] - 2.0 * p[1:-1] + p[2:]) - (g[:-2] - 2.0 * g[1:-1] + g[2:])
    return np.linalg.norm(a, axis=-1) * (1.0 if fps is None else float(fps) ** 2)


def split_sequences(sequence_ids) -> list[np.ndarray]:
    """Index arrays of each sequence, in order of first appearance; frames keep the given order."""
    ids = np.asarray(sequence_ids)
    if ids.ndim != 1:
        raise ValueError(f"sequence ids must be one per frame, got shape {ids.shape}")
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    return [np.flatnonzero(inverse == u) for u in np.argsort(first)]


def sequence_acceleration(points, sequence_ids=None, fps: float | None = None, gt=None) -> float:
    """Acc over several sequences: the mean of all per-frame, per-joint terms pooled.

    points (N, J, D) frames in temporal order within each sequence; sequence_ids
    (N,) says which sequence a frame belongs to (None: one sequence). Sequences
    shorter than 3 frames have no acceleration and are skipped. With gt, the
    acceleration *error* is returned instead.
    """
    p = np.asarray(points, dtype=np.float64)
    groups = [np.arange(len(p))] if sequence_ids is None else split_sequences(sequence_ids)
    if sequence_ids is not None and len(sequence_ids) != len(p):
        raise ValueError(f"{len(sequence_ids)} sequence ids for {len(p)} frames")
    terms = [acceleration(p[g], fps) if gt is None else acceleration_error(p[g], np.asarray(gt)[g], fps)
             for g in groups if len(g) >= 3]
    if not terms:
        raise ValueError("no sequence has 3 or more frames: acceleration is undefined")
    return float(np.concatenate([t.ravel() for t in terms]).mean())


def acceleration_figures(xyz_pred, sequence_ids, uv_pred=None, fps: float | None = None,
                         root: int | None = 0) -> dict:
    """MobRecon's Acc of predicted sequences: {'acc3d': (value, unit), 'acc2d': ...}.

    3D in mm of joints relative to keypoint `root` (None: camera frame), 2D in px.
    """
    xyz = np.asarray(xyz_pred, dtype=np.float64) * 1000.0
    if root is not None:
        xyz = xyz - xyz[:, root:root + 1]
    per = "frame^2" if fps is None else "s^2"
    out = {"acc3d": (sequence_acceleration(xyz, sequence_ids, fps), f"mm/{per}")}
    if uv_pred is not None:
        out["acc2d"] = (sequence_acceleration(uv_pred, sequence_ids, fps), f"px/{per}")
    return out
