"""Running a reconstruction model over a loader: predictions, quick metrics, files for `hands evaluate`.

`predict_loader` collects, per sample, the model's root-relative keypoints and vertices, its 2D
keypoints, the camera-space keypoints and vertices from root recovery (finetune/models/root.py)
and the ground truth. `evaluate_loader` adds the figures the trainer logs:

| figure | meaning |
| --- | --- |
| pa_mpjpe_mm | keypoint error after FreiHAND's Procrustes alignment (align_w_scale) |
| pa_mpvpe_mm | the same for the vertices (samples with meshes of the model's topology) |
| mpjpe_mm | root-relative keypoint error, no alignment |
| root_mm | error of the recovered root (camera-space wrist) |
| cs_mpjpe_mm | camera-space keypoint error (CJ of seed 002's Table 1; the model's root, or the recovered one) |
| cs_mpvpe_mm | camera-space vertex error (CV of seed 002's Table 1) |
| px_2d | mean 2D keypoint error in crop pixels (labelled keypoints: keypoints_2d_valid) |

The 3D figures cover only samples with 3D labels (`keypoints_3d_valid`): for a 2D-only evaluation set
(`coco_hand`) the figures are `samples` and `px_2d`, and its gt_<split>.npz holds uv and vis, no xyz.

`write_prediction_files` writes pred_<split>.npz / gt_<split>.npz in the format of
finetune/evaluate.py (xyz and verts in the camera frame, uv, K, ids; names: dataset/sample id).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


@torch.no_grad()
def predict_loader(model, loader, device) -> dict:
    from .models.base import run_model
    from .models.root import camera_space

    parts: dict = {}
    for batch in loader:
        K = batch["K"].to(device).float()
        pred = run_model(model, batch["image"].to(device), K)
        cam = camera_space(pred, K)
        gt_root = batch["keypoints_3d"][:, :1].float()
        arrays = {
            "pred_rel": pred["keypoints_3d"], "pred_verts_rel": pred["vertices"], "pred_uv": pred["keypoints_2d"],
            "pred_xyz": cam["keypoints_cam"], "pred_verts": cam["vertices_cam"],
            "gt_rel": batch["keypoints_3d_rel"], "gt_xyz": batch["keypoints_3d"],
            "gt_verts_rel": batch["vertices_rel"], "gt_verts": batch["vertices_rel"] + gt_root,
            "gt_uv": batch["keypoints_2d"], "K": batch["K"], "mesh_valid": batch["mesh_valid"],
            "uv_valid": batch["keypoints_2d_valid"], "kp3_valid": batch["keypoints_3d_valid"]}
        for k, v in arrays.items():
            parts.setdefault(k, []).append(v.detach().cpu().double().numpy())
        parts.setdefault("ids", []).extend(f"{d}/{i}" for d, i in zip(batch["dataset"], batch["sample_id"]))
    return {k: (np.concatenate(v) if k != "ids" else np.asarray(v)) for k, v in parts.items()}


def pa_errors(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(N,) mean per-point error after Procrustes alignment of each prediction to its ground truth."""
    from .metrics.align import align_w_scale

    return np.array([np.linalg.norm(align_w_scale(g, p) - g, axis=-1).mean() for g, p in zip(gt, pred)])


def metrics_of(a: dict) -> dict:
    """The figures of the module doc. The 3D ones cover the samples with 3D labels (kp3_valid; a
    2D-only set such as coco_hand has none, and then only samples and px_2d are reported)."""
    mm = 1000.0
    n = int(len(a["ids"]))
    out = {"samples": n}
    has3d = np.asarray(a.get("kp3_valid", np.ones(n)), dtype=bool)
    if has3d.any():
        s = lambda k: a[k][has3d]  # noqa: E731
        out.update({"pa_mpjpe_mm": float(pa_errors(s("gt_rel"), s("pred_rel")).mean() * mm),
                    "mpjpe_mm": float(np.linalg.norm(s("pred_rel") - s("gt_rel"), axis=-1).mean() * mm),
                    "root_mm": float(np.linalg.norm(s("pred_xyz")[:, 0] - s("gt_xyz")[:, 0], axis=-1).mean() * mm),
                    "cs_mpjpe_mm": float(np.linalg.norm(s("pred_xyz") - s("gt_xyz"), axis=-1).mean() * mm)})
        if not has3d.all():
            out["samples_3d"] = int(has3d.sum())
    uv_err = np.linalg.norm(a["pred_uv"] - a["gt_uv"], axis=-1)
    out["px_2d"] = float((uv_err * a["uv_valid"]).sum() / max(a["uv_valid"].sum(), 1))
    valid = a["mesh_valid"].astype(bool) & has3d
    if valid.any():
        out["pa_mpvpe_mm"] = float(pa_errors(a["gt_verts_rel"][valid], a["pred_verts_rel"][valid]).mean() * mm)
        out["mpvpe_mm"] = float(np.linalg.norm(a["pred_verts_rel"][valid] - a["gt_verts_rel"][valid],
                                               axis=-1).mean() * mm)
        out["cs_mpvpe_mm"] = float(np.linalg.norm(a["pred_verts"][valid] - a["gt_verts"][valid], axis=-1).mean() * mm)
    return out


def evaluate_loader(model, loader, device) -> tuple:
    """(metrics, arrays) of a model over an evaluation loader."""
    arrays = predict_loader(model, loader, device)
    return metrics_of(arrays), arrays


def write_prediction_files(out: Path, split: str, a: dict) -> tuple:
    """OUT/pred_<split>.npz and OUT/gt_<split>.npz, readable by `hands evaluate`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pred, gt = out / f"pred_{split}.npz", out / f"gt_{split}.npz"
    ids = np.arange(len(a["ids"]))    # evaluate matches samples by integer ids; names says which sample
    np.savez(pred, xyz=a["pred_xyz"], verts=a["pred_verts"], uv=a["pred_uv"], K=a["K"], ids=ids, names=a["ids"])
    gt_arrays = {"xyz": a["gt_xyz"], "uv": a["gt_uv"], "K": a["K"], "ids": ids, "names": a["ids"]}
    if not np.asarray(a.get("kp3_valid", True), dtype=bool).all():
        # 2D labels only (coco_hand): no 'xyz', so `hands evaluate` refuses the file rather than scoring zeros
        gt_arrays = {"uv": a["gt_uv"], "vis": a["uv_valid"].astype(bool), "ids": ids, "names": a["ids"]}
    elif a["mesh_valid"].all():
        gt_arrays["verts"] = a["gt_verts"]
    np.savez(gt, **gt_arrays)
    return pred, gt
