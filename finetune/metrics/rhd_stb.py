"""RHD and STB: root-relative 3D PCK/AUC over 20-50 mm, 2D AUC over 0-30 px, Acc.

The usual protocol (Zimmermann & Brox's hand3d `eval3d.py`/`eval2d.py`, and
MobRecon's `runner.py`, the code of this project's seed) uses the same EvalUtil
as FreiHAND (per keypoint PCK with `<=`, AUC = trapezoid / range, averaged over
keypoints):
  - 3D: both skeletons relative to their own root (keypoint 0, the wrist, in
    the project's order; STB's loader synthesises it from the palm), in mm;
    thresholds np.linspace(20, 50, 20) mm, i.e. 20 thresholds as MobRecon's
    `get_measures(20, 50, 20)` (hand3d also uses 20, over 0-50 mm; SAR's code
    uses np.linspace(20, 50, 100): `steps` changes it); all keypoints count;
  - 2D: pixels of the image the ground truth is given in (RHD: 320x320),
    thresholds np.linspace(0, 30, 20) px as hand3d's `get_measures(0.0, 30.0, 20)`
    and MobRecon's; keypoints count only where visible (RHD's uv_vis) when a
    visibility is given;
  - PA: the root-relative figures after FreiHAND's align_w_scale (in mm).
MobRecon's Acc for sequences is in temporal.py (`acceleration_figures`).
"""
from __future__ import annotations

import numpy as np

from .align import align_w_scale, root_relative
from .pck import as_keypoints, keypoint_distances, pck_measures
from .result import BenchmarkResult, Curve

AUC3D_MM = (20.0, 50.0)
AUC2D_PX = (0.0, 30.0)
STEPS = 20


def evaluate_rhd_stb(xyz_gt, xyz_pred, uv_gt=None, uv_pred=None, visible=None, benchmark: str = "rhd",
                     steps: int = STEPS, root: int = 0) -> BenchmarkResult:
    """RHD/STB figures for (N, 21, 3) keypoints in metres and optional (N, 21, 2) pixels.

    visible (N, 21) selects the keypoints the 2D figures count.
    """
    if benchmark not in ("rhd", "stb"):
        raise ValueError(f"benchmark must be 'rhd' or 'stb', got {benchmark!r}")
    gt = root_relative(as_keypoints(xyz_gt, "ground-truth keypoints"), root) * 1000.0
    pred = root_relative(as_keypoints(xyz_pred, "predicted keypoints"), root) * 1000.0
    if len(gt) != len(pred):
        raise ValueError(f"{len(pred)} predictions for {len(gt)} ground-truth samples")
    res = BenchmarkResult(benchmark, len(gt))
    aligned = np.stack([align_w_scale(g, p) for g, p in zip(gt, pred)])
    for name, p in (("rel", pred), ("pa", aligned)):
        m = pck_measures(keypoint_distances(gt, p), *AUC3D_MM, steps)
        res.add(f"{name}_mean3d", m.mean, "mm")
        res.add(f"{name}_auc3d_20_50", m.auc)
        label = "3D root-relative" if name == "rel" else "3D Procrustes"
        res.curves[f"{name}_3d"] = Curve(m.thresholds, m.pck, "mm", label)
        res.per_keypoint[f"{name}_mean3d"] = m.per_keypoint_mean.tolist()
    if uv_gt is not None and uv_pred is not None:
        ug = as_keypoints(uv_gt, "ground-truth 2D keypoints", 2)
        up = as_keypoints(uv_pred, "predicted 2D keypoints", 2)
        if len(ug) != len(gt) or len(up) != len(gt):
            raise ValueError(f"2D keypoints for {len(ug)} / {len(up)} samples, 3D for {len(gt)}")
        m = pck_measures(keypoint_distances(ug, up), *AUC2D_PX, steps, visible)
        res.add("mean2d", m.mean, "px")
        res.add("auc2d_0_30", m.auc)
        res.curves["2d"] = Curve(m.thresholds, m.pck, "px", "2D")
        res.per_keypoint["mean2d"] = m.per_keypoint_mean.tolist()
    res.notes.append(f"{benchmark.upper()}: root-relative (keypoint {root}) 3D errors in mm, AUC over 20-50 mm; "
                     f"2D errors in px, AUC over 0-30 px ({steps} thresholds each); PA = align_w_scale")
    return res
