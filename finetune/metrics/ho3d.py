"""HO3D's official evaluation (`eval.py` of shreyashampali/ho3d, v2 and v3 challenges).

It is FreiHAND's eval.py (see `freihand.py`) with one more keypoint variant,
the scale-translation alignment `align_sc_tr`: the prediction is scaled to the
ground truth's wrist -> middle-MCP bone length and moved onto its wrist. That
bone is joints 0 -> 4 of **HO3D's joint order** (MANO order + tips, see
`conventions.py`), so the evaluation runs in HO3D's order; and in HO3D's
**OpenGL** camera frame, as the challenge server does (the y/z flip changes no
distance, it is applied so the arithmetic is the server's).

Figures, in the units of the official scores.txt: xyz_mean3d,
xyz_procrustes_al_mean3d, xyz_scale_trans_al_mean3d, mesh_mean3d,
mesh_al_mean3d in **cm**, the matching *_auc3d over 0-5 cm (100 thresholds), and
f_score_5/15, f_al_score_5/15 (shares). Per-keypoint figures are listed in HO3D
order.
"""
from __future__ import annotations

import numpy as np

from .conventions import freihand_to_ho3d, opencv_to_opengl
from .freihand import add_challenge_figures, challenge_eval, mesh_note
from .result import BenchmarkResult


def to_ho3d_convention(xyz, verts=None):
    """Project convention (FreiHAND order, OpenCV) -> HO3D's (HO3D order, OpenGL)."""
    xyz = opencv_to_opengl(freihand_to_ho3d(np.asarray(xyz, dtype=np.float64)))
    return xyz, None if verts is None else [opencv_to_opengl(v) for v in verts]


def evaluate_ho3d(xyz_gt, verts_gt, xyz_pred, verts_pred, mesh_is_mano=None,
                  input_convention: str = "project") -> BenchmarkResult:
    """HO3D eval.py figures.

    input_convention 'project': arrays in FreiHAND order and OpenCV frame (what
    the toolkit's loaders and models produce); 'ho3d': already in HO3D order and
    OpenGL frame (HO3D's pred.json / evaluation_xyz.json).
    """
    if input_convention == "project":
        xyz_gt, verts_gt = to_ho3d_convention(xyz_gt, verts_gt)
        xyz_pred, verts_pred = to_ho3d_convention(xyz_pred, verts_pred)
    elif input_convention != "ho3d":
        raise ValueError(f"input_convention must be 'project' or 'ho3d', got {input_convention!r}")
    raw = challenge_eval(xyz_gt, verts_gt, xyz_pred, verts_pred, mesh_is_mano, sc_tr=True)
    res = BenchmarkResult("ho3d", raw["num_samples"])
    add_challenge_figures(res, raw, {"xyz": "xyz", "xyz_al": "xyz_procrustes_al", "xyz_sc_tr": "xyz_scale_trans_al",
                                     "mesh": "mesh", "mesh_al": "mesh_al"})
    res.notes += ["HO3D eval.py: *_mean3d in cm, AUC over 0-5 cm (100 thresholds), F-scores at 5 and 15 mm; "
                  "evaluated in HO3D joint order and OpenGL frame; per-keypoint lists in HO3D order",
                  mesh_note(raw["shape_is_mano"])]
    return res
