"""The figures of benchmarks/realism.py: how far a real-photo detector's landmarks are from our labels.

All points are (21, 2) pixel arrays of one image in FreiHAND order, with an optional (21,) mask of the
labelled keypoints (COCO files leave some unlabelled; they count nowhere). The scale of a sample is the
diagonal of its labelled keypoints' axis-aligned box, so the figures are the same at any crop size:

- `keypoint_errors`: |detected - label| / diagonal, per keypoint;
- `signed_along_finger`: the part of (detected - label) along the bone that ends at the keypoint
  (parent -> keypoint; for the wrist, middle MCP -> wrist), / diagonal: positive when the detector
  puts the keypoint further out along its finger than we do (beyond a tip, nearer the tip for a
  joint), negative when nearer the wrist;
- `summary`: detection rate, median and 90th percentile of the per-sample mean error (over its labelled
  keypoints), over the detected samples.
"""
from __future__ import annotations

import numpy as np

from synth.hand_model import FREIHAND_PARENTS

# parents of the 21 keypoints in FreiHAND order, the wrist's being the middle MCP: its bone points out of the
# hand through the wrist
PARENTS = [9] + FREIHAND_PARENTS[1:]
NAMES = ["wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "index_mcp", "index_pip", "index_dip",
         "index_tip", "middle_mcp", "middle_pip", "middle_dip", "middle_tip", "ring_mcp", "ring_pip", "ring_dip",
         "ring_tip", "little_mcp", "little_pip", "little_dip", "little_tip"]


def _mask(labelled, n: int) -> np.ndarray:
    return np.ones(n, bool) if labelled is None else np.asarray(labelled, bool)


def box_diagonal(labels: np.ndarray, labelled=None) -> float:
    labels = np.asarray(labels, dtype=np.float64)[_mask(labelled, len(labels))]
    return float(np.linalg.norm(labels.max(axis=0) - labels.min(axis=0)))


def keypoint_errors(detected: np.ndarray, labels: np.ndarray, labelled=None) -> np.ndarray:
    """(21,) distances between detected and labelled keypoints as shares of the labels' box diagonal; NaN
    where a keypoint is not labelled (`labelled`: a (21,) mask, None: all are)."""
    detected, labels = np.asarray(detected, np.float64), np.asarray(labels, np.float64)
    lab = _mask(labelled, len(labels))
    e = np.linalg.norm(detected - labels, axis=1) / max(box_diagonal(labels, lab), 1e-9)
    return np.where(lab, e, np.nan)


def signed_along_finger(detected: np.ndarray, labels: np.ndarray, labelled=None) -> np.ndarray:
    """(21,) (detected - label) projected on the unit bone parent -> keypoint, as shares of the diagonal; NaN
    where the keypoint or its parent is not labelled."""
    detected, labels = np.asarray(detected, np.float64), np.asarray(labels, np.float64)
    lab = _mask(labelled, len(labels))
    bones = labels - labels[PARENTS]
    length = np.linalg.norm(bones, axis=1, keepdims=True)
    unit = np.divide(bones, length, out=np.zeros_like(bones), where=length > 1e-9)
    s = ((detected - labels) * unit).sum(axis=1) / max(box_diagonal(labels, lab), 1e-9)
    return np.where(lab & lab[PARENTS], s, np.nan)


def summary(detected: list, errors: list) -> dict:
    """Detection rate and the per-sample mean error's median / 90th percentile over detected samples.

    `detected`: one bool per sample; `errors`: one (21,) array per detected sample (keypoint_errors)."""
    n = len(detected)
    per_sample = np.array([float(np.nanmean(e)) for e in errors]) if errors else np.zeros(0)
    return {"samples": n, "detected": int(sum(bool(d) for d in detected)),
            "detection_rate": float(np.mean(detected)) if n else float("nan"),
            "median": float(np.median(per_sample)) if len(per_sample) else float("nan"),
            "p90": float(np.percentile(per_sample, 90)) if len(per_sample) else float("nan")}


def per_keypoint(errors: list, signed: list) -> list:
    """Per keypoint: median error and median signed offset along the finger, over detected samples."""
    if not errors:
        return []
    e, s = np.stack(errors), np.stack(signed)
    with np.errstate(all="ignore"):  # a keypoint labelled nowhere stays NaN
        return [{"keypoint": NAMES[k], "median": float(np.nanmedian(e[:, k])) if np.isfinite(e[:, k]).any()
                 else float("nan"), "signed": float(np.nanmedian(s[:, k])) if np.isfinite(s[:, k]).any()
                 else float("nan")} for k in range(len(NAMES))]
