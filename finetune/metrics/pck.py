"""Per-keypoint end-point errors, PCK curves and AUC, as the benchmarks' `EvalUtil`.

FreiHAND's `utils/eval_util.py` (`EvalUtil`, also used by HO3D's and Dex-YCB's
evaluations, and in Zimmermann & Brox's hand3d and MobRecon's code for RHD/STB):

  - `feed` stores, per keypoint, the Euclidean distance of every sample where
    the keypoint is visible (FreiHAND, HO3D, Dex-YCB: all visible);
  - PCK of keypoint k at threshold t: mean(d_k <= t) (note: `<=`, while the
    F-score uses a strict `<`);
  - thresholds = np.linspace(val_min, val_max, steps);
  - AUC of keypoint k: np.trapz(pck_k, thresholds) / np.trapz(ones, thresholds)
    (the normaliser is val_max - val_min: 0.05 for FreiHAND's 0-50 mm in metres);
  - the reported figures average over keypoints that have data: mean EPE is the
    mean over keypoints of the per-keypoint mean (not the mean over all
    distances, which differs when visibility differs per keypoint), the median
    is the mean of per-keypoint medians, AUC the mean of per-keypoint AUCs and
    the PCK curve the mean of per-keypoint curves.

Keypoints without a single visible sample are skipped as the official code
does; when no keypoint has data there is nothing to report, which is an error
here (the official code would print nan).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PCKMeasures:
    mean: float               # mean over keypoints of the per-keypoint mean error
    median: float             # mean over keypoints of the per-keypoint median error
    auc: float                # mean over keypoints of the normalised per-keypoint AUC
    pck: np.ndarray           # (steps,) mean over keypoints of the per-keypoint PCK curves
    thresholds: np.ndarray    # (steps,)
    per_keypoint_mean: np.ndarray  # (K,) nan where a keypoint has no visible sample
    per_keypoint_auc: np.ndarray   # (K,)
    counts: np.ndarray        # (K,) visible samples per keypoint


def as_keypoints(points, name: str, dims: int = 3) -> np.ndarray:
    """Check and convert (N, 21, dims) keypoints to float64; the error names the array."""
    a = np.asarray(points, dtype=np.float64)
    if a.ndim != 3 or a.shape[1:] != (21, dims):
        raise ValueError(f"{name}: expected (N, 21, {dims}) keypoints, got shape {a.shape}")
    if len(a) == 0:
        raise ValueError(f"{name}: no samples")
    return a


def keypoint_distances(gt, pred) -> np.ndarray:
    """(N, K) Euclidean distances of (N, K, D) ground truth and prediction."""
    gt, pred = np.asarray(gt, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    if gt.ndim != 3:
        raise ValueError(f"expected (samples, keypoints, dims) arrays, got shape {gt.shape}")
    if gt.shape[0] == 0 or gt.shape[1] == 0:
        raise ValueError(f"no samples to evaluate (shape {gt.shape})")
    return np.sqrt(np.sum(np.square(gt - pred), axis=2))


def pck_measures(distances, val_min: float, val_max: float, steps: int, visible=None) -> PCKMeasures:
    """EvalUtil.get_measures(val_min, val_max, steps) over (N, K) distances.

    `visible` (N, K) bool selects the samples each keypoint is scored on.
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"expected a non-empty (samples, keypoints) array of distances, got shape {d.shape}")
    if not val_max > val_min or steps < 2:
        raise ValueError(f"thresholds need val_min < val_max and steps >= 2, got {val_min}, {val_max}, {steps}")
    vis = np.ones(d.shape, bool) if visible is None else np.asarray(visible).astype(bool)
    if vis.shape != d.shape:
        raise ValueError(f"visibility {vis.shape} does not match the distances {d.shape}")
    thresholds = np.array(np.linspace(val_min, val_max, steps))
    norm_factor = np.trapz(np.ones_like(thresholds), thresholds)
    K = d.shape[1]
    means, medians, aucs = np.full(K, np.nan), np.full(K, np.nan), np.full(K, np.nan)
    curves = []
    for k in range(K):
        data = np.ascontiguousarray(d[vis[:, k], k])  # contiguous: np.mean sums as the official list does
        if len(data) == 0:
            continue
        means[k], medians[k] = np.mean(data), np.median(data)
        # count(data <= t) for every t at once; counts are integers, so the mean is exact
        curve = np.searchsorted(np.sort(data), thresholds, side="right") / float(len(data))
        curves.append(curve)
        aucs[k] = np.trapz(curve, thresholds) / norm_factor
    if not curves:
        raise ValueError("no keypoint has a visible sample: nothing to evaluate")
    have = ~np.isnan(means)
    return PCKMeasures(mean=float(np.mean(means[have])), median=float(np.mean(medians[have])),
                       auc=float(np.mean(aucs[have])), pck=np.mean(np.array(curves), 0), thresholds=thresholds,
                       per_keypoint_mean=means, per_keypoint_auc=aucs, counts=vis.sum(0))


def evaluate_keypoints(gt, pred, val_min: float, val_max: float, steps: int, visible=None) -> PCKMeasures:
    """EvalUtil fed with every sample of (N, K, D) gt / pred, then get_measures."""
    return pck_measures(keypoint_distances(gt, pred), val_min, val_max, steps, visible)
