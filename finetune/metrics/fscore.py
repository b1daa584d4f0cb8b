"""F-score of two point sets, as FreiHAND's and HO3D's `calculate_fscore`.

Official algorithm (eval.py): with open3d's compute_point_cloud_distance,
d1 = for every ground-truth point the distance to the nearest predicted point,
d2 = for every predicted point the distance to the nearest ground-truth point;
  recall    = count(d2 < th) / len(d2)   (strict `<`)
  precision = count(d1 < th) / len(d1)
  F = 2 recall precision / (recall + precision), 0 when both are 0.
The official names are swapped against the textbook (there, precision is the
share of *predicted* points near the truth); F is symmetric, so it does not
matter for the reported figure, and the names are kept as the official code has
them. Nearest neighbours come from scipy's cKDTree (exact Euclidean search, as
open3d's). The thresholds of the benchmarks are 5 mm and 15 mm.

The official function returns F = 0 for an empty point set; here an empty set
is an error, because it can only come from a broken prediction file.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

FSCORE_THRESHOLDS = (0.005, 0.015)  # metres


def _cloud(points, name: str) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"{name}: expected an (N, 3) point set, got shape {p.shape}")
    if len(p) == 0:
        raise ValueError(f"{name}: the point set is empty, an F-score needs points on both sides")
    return p


def nearest_distances(src, dst) -> np.ndarray:
    """For every point of src, the Euclidean distance to its nearest point of dst."""
    return cKDTree(_cloud(dst, "target")).query(_cloud(src, "source"), k=1)[0]


def fscore(gt, pred, threshold: float) -> tuple[float, float, float]:
    """(F, precision, recall) of the official calculate_fscore(gt, pr, th)."""
    gt, pred = _cloud(gt, "ground truth"), _cloud(pred, "prediction")
    d1 = nearest_distances(gt, pred)  # closest distance for each gt point
    d2 = nearest_distances(pred, gt)  # closest distance for each predicted point
    recall = float(np.count_nonzero(d2 < threshold)) / float(len(d2))
    precision = float(np.count_nonzero(d1 < threshold)) / float(len(d1))
    f = 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0
    return f, precision, recall
