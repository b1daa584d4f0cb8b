"""Dex-YCB's official hand pose evaluation (`dex_ycb_toolkit/hpe_eval.py`).

Per sample with a hand, in **millimetres** (the toolkit multiplies its metre
labels by 1000, and result files are in mm), FreiHAND joint order (Dex-YCB's
`_MANO_JOINTS` order is the same), all joints visible:
  - absolute: the camera-frame joints as they are;
  - root-relative: both minus their own joint 0 (wrist);
  - Procrustes: FreiHAND's `align_w_scale(gt, pred)` (no reflection fix);
each fed to EvalUtil and measured with get_measures(0.0, 50.0, 100): MPJPE =
mean over joints of the per-joint mean error (mm), AUC over 0-50 mm.

One difference that cannot matter at 1e-4 mm: the toolkit caches its ground
truth as float32 x 1000 before converting to float64; here the scaling is in
float64.
"""
from __future__ import annotations

import numpy as np

from .align import align_w_scale
from .pck import as_keypoints, keypoint_distances, pck_measures
from .result import BenchmarkResult, Curve

AUC_RANGE_MM = (0.0, 50.0, 100)


def evaluate_dexycb(xyz_gt, xyz_pred) -> BenchmarkResult:
    """Dex-YCB HPE figures for (N, 21, 3) keypoints in metres."""
    gt = as_keypoints(xyz_gt, "ground-truth keypoints") * 1000.0
    pred = as_keypoints(xyz_pred, "predicted keypoints") * 1000.0
    if len(gt) != len(pred):
        raise ValueError(f"{len(pred)} predictions for {len(gt)} ground-truth samples")
    aligned = np.stack([align_w_scale(g, p) for g, p in zip(gt, pred)])
    variants = {"absolute": (gt, pred),
                "root_relative": (gt - gt[:, :1], pred - pred[:, :1]),
                "procrustes": (gt, aligned)}
    res = BenchmarkResult("dexycb", len(gt))
    for name, (g, p) in variants.items():
        m = pck_measures(keypoint_distances(g, p), *AUC_RANGE_MM)
        res.add(f"{name}_mpjpe", m.mean, "mm")
        res.add(f"{name}_auc", m.auc)
        res.curves[name] = Curve(m.thresholds, m.pck, "mm", name.replace("_", "-"))
        res.per_keypoint[f"{name}_mpjpe"] = m.per_keypoint_mean.tolist()
    res.notes.append("Dex-YCB hpe_eval.py: MPJPE in mm (mean over joints of the per-joint mean), "
                     "AUC over 0-50 mm (100 thresholds); absolute, root-relative (wrist) and Procrustes")
    return res
