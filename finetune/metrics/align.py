"""The alignments of the official evaluation scripts, reproduced line by line.

`align_w_scale` and `align_by_trafo` are FreiHAND's `eval.py` (copied unchanged
into HO3D's `eval.py` and called by Dex-YCB's `hpe_eval.py`); `align_sc_tr` is
HO3D's. They are kept bug-for-bug: a number computed here must equal the number
the benchmark's server prints for the same predictions.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import orthogonal_procrustes


def _points(a, name: str) -> np.ndarray:
    a = np.array(a, dtype=np.float64)  # a copy: the official code divides in place
    if a.ndim != 2 or a.shape[1] != 3 or len(a) == 0:
        raise ValueError(f"{name}: expected a non-empty (N, 3) array of points, got shape {a.shape}")
    return a


def align_w_scale(mtx1, mtx2, return_trafo: bool = False):
    """Align `mtx2` (prediction) to `mtx1` (ground truth) by a similarity, FreiHAND's way.

    Algorithm (FreiHAND eval.py `align_w_scale`):
      1. centre both: t1 = mean(mtx1), t2 = mean(mtx2);
      2. normalise each by its Frobenius norm plus 1e-8: s1 = ||mtx1 - t1|| + 1e-8,
         s2 = ||mtx2 - t2|| + 1e-8;
      3. R, s = scipy.linalg.orthogonal_procrustes(A, B) with A, B the normalised
         point sets: R is the orthogonal matrix minimising ||A R - B||_F and s the
         sum of the singular values of A^T B (the optimal scale of B R^T onto A);
      4. aligned = (B R^T) s s1 + t1.
    R is only *orthogonal*, not a rotation: the official code has no reflection
    fix (no det(R) = +1 correction as in Kabsch/Umeyama), and neither has this
    one. So when a reflection fits better, R has det -1, and a mirrored
    prediction (e.g. a left hand not mirrored back) aligns onto the ground truth
    with zero error (up to the 1e-8 terms): the aligned metrics cannot see
    handedness mistakes; the unaligned ones can.

    With return_trafo, returns (R, s, s1, t1 - t2) as the official code does.
    """
    mtx1, mtx2 = _points(mtx1, "ground truth"), _points(mtx2, "prediction")
    if mtx1.shape != mtx2.shape:
        raise ValueError(f"align_w_scale: ground truth {mtx1.shape} and prediction {mtx2.shape} differ in shape")
    t1 = mtx1.mean(0)
    t2 = mtx2.mean(0)
    mtx1_t = mtx1 - t1
    mtx2_t = mtx2 - t2
    s1 = np.linalg.norm(mtx1_t) + 1e-8
    mtx1_t /= s1
    s2 = np.linalg.norm(mtx2_t) + 1e-8
    mtx2_t /= s2
    R, s = orthogonal_procrustes(mtx1_t, mtx2_t)
    mtx2_t = np.dot(mtx2_t, R.T) * s
    mtx2_t = mtx2_t * s1 + t1
    if return_trafo:
        return R, s, s1, t1 - t2
    return mtx2_t


def align_by_trafo(mtx, trafo) -> np.ndarray:
    """Apply a keypoint alignment (from align_w_scale(..., return_trafo=True)) to a mesh.

    FreiHAND's path for meshes that are not MANO-topology ("use trafo estimated
    from keypoints"): aligned = (mtx - mean(mtx)) R^T s s1 + (t1 - t2) + mean(mtx).
    Kept exactly as the official code: note that it rotates about the *mesh's*
    centroid and omits the keypoints' 1/s2 normalisation, so it is not the same
    similarity that aligned the keypoints (it only agrees when s2 = 1 and the
    mesh centroid equals the keypoint centroid).
    """
    mtx = _points(mtx, "mesh")
    t2 = mtx.mean(0)
    mtx_t = mtx - t2
    R, s, s1, t1 = trafo
    return np.dot(mtx_t, R.T) * s * s1 + t1 + t2


def align_sc_tr(mtx1, mtx2) -> np.ndarray:
    """Scale-translation alignment of HO3D's eval.py, on 21 joints in **HO3D order**.

    The prediction is scaled so that its bone from joint 0 (wrist) to joint 4
    (middle MCP in HO3D order; FreiHAND index 9) has the ground truth's length
    (no rescale when the predicted bone has length 0, as the official code), then
    translated so that its wrist coincides with the ground-truth wrist.
    """
    mtx1, mtx2 = _points(mtx1, "ground truth"), _points(mtx2, "prediction")
    if mtx1.shape != (21, 3) or mtx2.shape != (21, 3):
        raise ValueError(f"align_sc_tr needs 21 HO3D-order joints, got {mtx1.shape} and {mtx2.shape}")
    pred = mtx2.copy()
    s = np.sqrt(np.sum(np.square(pred[4] - pred[0])))
    if s > 0:
        pred = pred / s
    s_gt = np.sqrt(np.sum(np.square(mtx1[4] - mtx1[0])))
    pred = pred * s_gt
    return pred - pred[0:1, :] + mtx1[0:1, :]


def root_relative(xyz, root: int = 0) -> np.ndarray:
    """(..., K, D) points minus their keypoint `root` (default the wrist)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    return xyz - xyz[..., root:root + 1, :]
