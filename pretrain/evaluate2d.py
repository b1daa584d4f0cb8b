"""2D keypoint accuracy: PCK curve and AUC over 0-30 px, mean and median pixel error.

The conventions are those of the benchmarks' `EvalUtil` (finetune/metrics/pck.py
follows it for 3D): per keypoint, PCK(t) = mean(d <= t) over the samples where
the keypoint counts, thresholds = linspace(0, 30, steps) pixels, AUC = trapezoid
integral / 30; the reported curve, AUC, mean and median average the per-keypoint
figures. Distances are in pixels of the network input (the S x S crop, S = 128
by default). `visible=None` scores every keypoint (the synthetic labels are
exact even for occluded keypoints); pass the visibility to score visible ones only.
"""
from __future__ import annotations

import numpy as np
import torch

MAX_PX = 30.0
STEPS = 100


def pck_2d(pred, gt, visible=None, max_px: float = MAX_PX, steps: int = STEPS) -> dict:
    """{'mean_px', 'median_px', 'auc', 'pck@5px', 'pck@10px', 'pck' (list), 'thresholds' (list),
    'per_keypoint_mean_px' (list), 'samples'} of (N, 21, 2) predictions and labels in pixels."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"expected (N, K, 2) predictions and labels of one shape, got {pred.shape} and {gt.shape}")
    if len(gt) == 0:
        raise ValueError("no samples to evaluate")
    d = np.sqrt(((pred - gt) ** 2).sum(-1))
    vis = np.ones(d.shape, bool) if visible is None else np.asarray(visible, bool)
    if vis.shape != d.shape:
        raise ValueError(f"visibility {vis.shape} does not match the keypoints {d.shape}")
    thresholds = np.linspace(0.0, max_px, steps)
    norm = np.trapz(np.ones_like(thresholds), thresholds)
    means, medians, aucs, curves = [], [], [], []
    per_kp = np.full(d.shape[1], np.nan)
    for k in range(d.shape[1]):
        data = d[vis[:, k], k]
        if not len(data):
            continue
        curve = np.searchsorted(np.sort(data), thresholds, side="right") / len(data)
        per_kp[k] = data.mean()
        means.append(data.mean())
        medians.append(np.median(data))
        aucs.append(np.trapz(curve, thresholds) / norm)
        curves.append(curve)
    if not curves:
        raise ValueError("no keypoint has a sample to score")
    curve = np.mean(curves, 0)
    at = lambda t: float(np.mean([(d[vis[:, k], k] <= t).mean() for k in range(d.shape[1]) if vis[:, k].any()]))  # noqa: E731
    return {"mean_px": float(np.mean(means)), "median_px": float(np.mean(medians)), "auc": float(np.mean(aucs)),
            "pck@5px": at(5.0), "pck@10px": at(10.0), "pck": curve.round(6).tolist(),
            "thresholds": thresholds.round(6).tolist(), "per_keypoint_mean_px": per_kp.round(4).tolist(),
            "samples": int(len(gt))}


@torch.no_grad()
def predict_2d(model, loader, device) -> dict:
    """Run a Pose2DNet over a loader: {'position', 'heatmap' (decoded peaks), 'gt' (N, 21, 2) pixels,
    'visibility' (N, 21), 'keys'}."""
    out = {"position": [], "heatmap": [], "gt": [], "visibility": [], "keys": []}
    was = model.training
    model.eval()
    for batch in loader:
        images = batch["image"].to(device)
        pred = model(images)
        S = images.shape[-1]
        out["position"].append(model.positions_px(pred, S).float().cpu())
        out["heatmap"].append(model.heatmap_px(pred, S).float().cpu())
        out["gt"].append(batch["keypoints_2d"].float())
        out["visibility"].append(batch["visibility"])
        out["keys"] += list(batch["key"])
    model.train(was)
    res = {k: torch.cat(v).numpy() for k, v in out.items() if k != "keys"}
    res["keys"] = out["keys"]
    return res


def evaluate_split(model, loader, device, max_px: float = MAX_PX, labelled_only: bool = False) -> dict:
    """Metrics of the MapReg positions (the headline figures) and of the heatmap peaks (prefixed hm_).

    labelled_only: score only the keypoints whose `visibility` is True, for sets where it marks the
    labelled keypoints (COCO files, pretrain/coco_hand.py); renders score every keypoint (the default)."""
    p = predict_2d(model, loader, device)
    vis = p["visibility"].astype(bool) if labelled_only else None
    pos = pck_2d(p["position"], p["gt"], vis, max_px=max_px)
    hm = pck_2d(p["heatmap"], p["gt"], vis, max_px=max_px)
    out = dict(pos)
    out.update({f"hm_{k}": v for k, v in hm.items() if k in ("mean_px", "median_px", "auc", "pck")})
    return out
