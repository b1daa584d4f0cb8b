"""The figures of benchmarks/realism.py: how far a real-photo detector's landmarks are from our labels.

All points are (21, 2) pixel arrays of one image in FreiHAND order. The scale of a sample is the
diagonal of its labels' box (the 21 labelled keypoints' axis-aligned bounding box), so the figures
are the same at any crop size:

- `keypoint_errors`: |detected - label| / diagonal, per keypoint;
- `signed_along_finger`: the part of (detected - label) along the bone that ends at the keypoint
  (parent -> keypoint; for the wrist, middle MCP -> wrist), / diagonal: positive when the detector
  puts the keypoint further out along its finger than we do (beyond a tip, nearer the tip for a
  joint), negative when nearer the wrist;
- `summary`: detection rate, median and 90th percentile of the per-sample mean error, over the
  detected samples.
"""
from __future__ import annotations

import numpy as np

# parents of the 21 keypoints in FreiHAND order (the wrist's 'parent' is the middle MCP: its bone
# points out of the hand through the wrist)
PARENTS = [9, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19]
NAMES = ["wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "index_mcp", "index_pip", "index_dip",
         "index_tip", "middle_mcp", "middle_pip", "middle_dip", "middle_tip", "ring_mcp", "ring_pip", "ring_dip",
         "ring_tip", "little_mcp", "little_pip", "little_dip", "little_tip"]


def box_diagonal(labels: np.ndarray) -> float:
    labels = np.asarray(labels, dtype=np.float64)
    return float(np.linalg.norm(labels.max(axis=0) - labels.min(axis=0)))


def keypoint_errors(detected: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(21,) distances between detected and labelled keypoints as shares of the labels' box diagonal."""
    detected, labels = np.asarray(detected, np.float64), np.asarray(labels, np.float64)
    return np.linalg.norm(detected - labels, axis=1) / max(box_diagonal(labels), 1e-9)


def signed_along_finger(detected: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(21,) (detected - label) projected on the unit bone parent -> keypoint, as shares of the diagonal."""
    detected, labels = np.asarray(detected, np.float64), np.asarray(labels, np.float64)
    bones = labels - labels[PARENTS]
    length = np.linalg.norm(bones, axis=1, keepdims=True)
    unit = np.divide(bones, length, out=np.zeros_like(bones), where=length > 1e-9)
    return ((detected - labels) * unit).sum(axis=1) / max(box_diagonal(labels), 1e-9)


def summary(detected: list, errors: list) -> dict:
    """Detection rate and the per-sample mean error's median / 90th percentile over detected samples.

    `detected`: one bool per sample; `errors`: one (21,) array per detected sample (keypoint_errors)."""
    n = len(detected)
    per_sample = np.array([float(np.mean(e)) for e in errors]) if errors else np.zeros(0)
    return {"samples": n, "detected": int(sum(bool(d) for d in detected)),
            "detection_rate": float(np.mean(detected)) if n else float("nan"),
            "median": float(np.median(per_sample)) if len(per_sample) else float("nan"),
            "p90": float(np.percentile(per_sample, 90)) if len(per_sample) else float("nan")}


def per_keypoint(errors: list, signed: list) -> list:
    """Per keypoint: median error and median signed offset along the finger, over detected samples."""
    if not errors:
        return []
    e, s = np.stack(errors), np.stack(signed)
    return [{"keypoint": NAMES[k], "median": float(np.median(e[:, k])), "signed": float(np.median(s[:, k]))}
            for k in range(len(NAMES))]
