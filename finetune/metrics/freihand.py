"""FreiHAND's official evaluation (`eval.py` of lmb-freiburg/freihand), re-derived.

Per sample, in the order of the official loop (metres, OpenCV camera frame,
FreiHAND joint order, 778 MANO vertices):
  1. unaligned keypoint errors (EvalUtil, all keypoints visible);
  2. `shape_is_mano` is decided once, on the first sample: the predicted mesh
     has as many vertices as the ground-truth mesh (778); only then are
     per-vertex mesh errors computed;
  3. Procrustes alignment of the keypoints with `align_w_scale(xyz, xyz_pred)`;
     the mesh is aligned with `align_w_scale(verts, verts_pred)` when it is
     MANO, else with the keypoints' transformation (`align_by_trafo`);
  4. F-scores at 5 mm and 15 mm of the unaligned and the aligned mesh.
Then `get_measures(0.0, 0.05, 100)`: thresholds linspace(0, 0.05, 100) m, AUC by
trapezoid / 0.05 per keypoint (or vertex), averaged; mean EPE = mean over
keypoints of the per-keypoint mean.

Reported in the official units of `scores.txt`: `*_mean3d` in **cm** (as the
official prints "mean_kp3d_avg=%.2f cm"), AUCs and F-scores as shares (0..1).
The PCK curves are in cm, as the official plots. A mesh of another vertex count
leaves the mesh figures undefined (the official file writes -1; here None).

Vertex count is how the official code decides "MANO". The project's OpenHand
model also has 778 vertices but not MANO's vertex order, so its per-vertex
errors against MANO ground truth are meaningless: pass mesh_is_mano=False to
take the keypoint-transform path (F-scores only) for such meshes.
"""
from __future__ import annotations

import numpy as np

from .align import align_by_trafo, align_sc_tr, align_w_scale
from .fscore import FSCORE_THRESHOLDS, fscore
from .pck import as_keypoints, keypoint_distances, pck_measures
from .result import BenchmarkResult, Curve

AUC_RANGE = (0.0, 0.05, 100)  # metres: get_measures(0.0, 0.05, 100)


def _meshes(verts, n: int, name: str):
    if verts is None:
        return None
    out = [np.asarray(v, dtype=np.float64) for v in verts]
    if len(out) != n:
        raise ValueError(f"{name}: {len(out)} meshes for {n} keypoint sets")
    for i, v in enumerate(out):
        if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
            raise ValueError(f"{name}: mesh of sample {i} has shape {v.shape}, expected (V, 3) with V > 0")
    return out


def challenge_eval(xyz_gt, verts_gt, xyz_pred, verts_pred, mesh_is_mano=None, sc_tr: bool = False) -> dict:
    """The per-sample loop shared by FreiHAND's and HO3D's eval.py.

    Returns the raw measures: 'xyz', 'xyz_al' (and 'xyz_sc_tr' when sc_tr),
    'mesh', 'mesh_al' (PCKMeasures or None), 'f' and 'f_al' ({threshold: mean F}),
    'shape_is_mano'. Inputs must already be in the benchmark's convention
    (align_sc_tr assumes HO3D joint order).
    """
    xyz_gt, xyz_pred = as_keypoints(xyz_gt, "ground-truth keypoints"), as_keypoints(xyz_pred, "predicted keypoints")
    n = len(xyz_gt)
    if len(xyz_pred) != n:
        raise ValueError(f"{len(xyz_pred)} predictions for {n} ground-truth samples")
    verts_gt, verts_pred = _meshes(verts_gt, n, "ground-truth meshes"), _meshes(verts_pred, n, "predicted meshes")
    with_mesh = verts_gt is not None and verts_pred is not None
    if with_mesh and mesh_is_mano is None:
        mesh_is_mano = verts_pred[0].shape[0] == verts_gt[0].shape[0]  # the official rule, on the first sample
    xyz_al, xyz_sc = np.empty_like(xyz_pred), np.empty_like(xyz_pred)
    mesh_d, mesh_al_d = [], []
    f, f_al = {t: [] for t in FSCORE_THRESHOLDS}, {t: [] for t in FSCORE_THRESHOLDS}
    for i in range(n):
        if sc_tr:
            xyz_sc[i] = align_sc_tr(xyz_gt[i], xyz_pred[i])
        xyz_al[i] = align_w_scale(xyz_gt[i], xyz_pred[i])
        if not with_mesh:
            continue
        verts, vp = verts_gt[i], verts_pred[i]
        if mesh_is_mano:
            if vp.shape != verts.shape:
                raise ValueError(f"predicted mesh of sample {i} has shape {vp.shape}, the ground truth {verts.shape}")
            mesh_d.append(np.sqrt(np.sum(np.square(verts - vp), axis=1)))
            vp_al = align_w_scale(verts, vp)
            mesh_al_d.append(np.sqrt(np.sum(np.square(verts - vp_al), axis=1)))
        else:
            vp_al = align_by_trafo(vp, align_w_scale(xyz_gt[i], xyz_pred[i], return_trafo=True))
        for t in FSCORE_THRESHOLDS:
            f[t].append(fscore(verts, vp, t)[0])
            f_al[t].append(fscore(verts, vp_al, t)[0])
    out = {"xyz": pck_measures(keypoint_distances(xyz_gt, xyz_pred), *AUC_RANGE),
           "xyz_al": pck_measures(keypoint_distances(xyz_gt, xyz_al), *AUC_RANGE),
           "shape_is_mano": bool(mesh_is_mano) if with_mesh else None, "mesh": None, "mesh_al": None,
           "f": None, "f_al": None, "num_samples": n}
    if sc_tr:
        out["xyz_sc_tr"] = pck_measures(keypoint_distances(xyz_gt, xyz_sc), *AUC_RANGE)
    if with_mesh:
        out["f"] = {t: float(np.array(v).mean()) for t, v in f.items()}
        out["f_al"] = {t: float(np.array(v).mean()) for t, v in f_al.items()}
        if mesh_is_mano:
            out["mesh"] = pck_measures(np.array(mesh_d), *AUC_RANGE)
            out["mesh_al"] = pck_measures(np.array(mesh_al_d), *AUC_RANGE)
    return out


CURVE_LABELS = {"xyz": "keypoints", "xyz_al": "keypoints, Procrustes", "xyz_sc_tr": "keypoints, scale-translation",
                "mesh": "mesh", "mesh_al": "mesh, Procrustes"}


def add_challenge_figures(res: BenchmarkResult, raw: dict, names: dict) -> None:
    """Figures of the scores.txt of the official script; `names` maps raw keys to official prefixes."""
    for key, prefix in names.items():
        m = raw.get(key)
        res.add(f"{prefix}_mean3d", None if m is None else m.mean * 100.0, "cm")
        res.add(f"{prefix}_auc3d", None if m is None else m.auc)
        if m is not None:
            res.curves[prefix] = Curve(m.thresholds * 100.0, m.pck, "cm", CURVE_LABELS[key])
            if key.startswith("xyz"):
                res.per_keypoint[f"{prefix}_mean3d"] = (m.per_keypoint_mean * 100.0).tolist()
    for t in FSCORE_THRESHOLDS:
        mm = round(t * 1000)
        res.add(f"f_score_{mm}", None if raw["f"] is None else raw["f"][t])
        res.add(f"f_al_score_{mm}", None if raw["f_al"] is None else raw["f_al"][t])


def evaluate_freihand(xyz_gt, verts_gt, xyz_pred, verts_pred, mesh_is_mano=None) -> BenchmarkResult:
    """FreiHAND eval.py figures for (N, 21, 3) keypoints and (N, V, 3) meshes (metres; meshes may be None)."""
    raw = challenge_eval(xyz_gt, verts_gt, xyz_pred, verts_pred, mesh_is_mano)
    res = BenchmarkResult("freihand", raw["num_samples"])
    add_challenge_figures(res, raw, {"xyz": "xyz", "xyz_al": "xyz_al", "mesh": "mesh", "mesh_al": "mesh_al"})
    res.notes += ["FreiHAND eval.py: *_mean3d in cm (mean over keypoints of the per-keypoint mean EPE), AUC over "
                  "0-5 cm (100 thresholds), F-scores at 5 and 15 mm; 'al' = Procrustes-aligned (align_w_scale)",
                  "camera-space figures of seed 002's Table 1: CJ = xyz_mean3d, CV = mesh_mean3d, PJ = "
                  "xyz_al_mean3d, PV = mesh_al_mean3d",
                  mesh_note(raw["shape_is_mano"])]
    return res


def mesh_note(shape_is_mano) -> str:
    if shape_is_mano is None:
        return "mesh: none given, mesh figures and F-scores undefined"
    if shape_is_mano:
        return "mesh: MANO topology, per-vertex errors and F-scores"
    return "mesh: not MANO topology, F-scores only (aligned with the keypoints' transformation)"
