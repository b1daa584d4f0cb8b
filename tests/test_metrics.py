"""finetune.metrics: the official algorithms against hand-computed cases and independent re-derivations.

The re-derivations here share no code with finetune.metrics: Procrustes is a
closed-form SVD similarity (modelling only the official 1e-8 terms), nearest
neighbours are brute force, EvalUtil is the official class written out with
its Python lists and loops.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.distance import cdist

from finetune import metrics
from finetune.metrics import plot
from finetune.metrics import (FREIHAND_TO_HO3D, HO3D_TO_FREIHAND, acceleration, acceleration_error, align_by_trafo,
                              align_sc_tr, align_w_scale, evaluate_dexycb, evaluate_freihand, evaluate_ho3d,
                              evaluate_rhd_stb, fscore, pck_measures, sequence_acceleration)

TOL = 1e-9


# ---------------------------------------------------------------- independent re-derivations

def ref_similarity(gt, pred, fix_reflection=False):
    """Closed-form similarity of pred onto gt: SVD of P^T G, scale trace(S) / ||P||^2.

    The official normalisation adds 1e-8 to both Frobenius norms, which leaves
    the rotation alone and makes the scale trace(S) / (||P|| + 1e-8)^2.
    """
    mu_g, mu_p = gt.mean(0), pred.mean(0)
    G, P = gt - mu_g, pred - mu_p
    U, S, Vt = np.linalg.svd(P.T @ G)
    if fix_reflection and np.linalg.det(U @ Vt) < 0:
        U[:, -1] *= -1
        S[-1] *= -1
    Q = U @ Vt
    scale = S.sum() / (np.linalg.norm(P) + 1e-8) ** 2
    return scale * P @ Q + mu_g, (Q, scale, mu_g, mu_p)


class RefEvalUtil:
    """FreiHAND's utils/eval_util.py EvalUtil, as published (lists, loops)."""

    def __init__(self, num_kp=21):
        self.data = [list() for _ in range(num_kp)]
        self.num_kp = num_kp

    def feed(self, keypoint_gt, keypoint_vis, keypoint_pred):
        keypoint_vis = np.squeeze(keypoint_vis).astype("bool")
        euclidean_dist = np.sqrt(np.sum(np.square(keypoint_gt - keypoint_pred), axis=1))
        for i in range(keypoint_gt.shape[0]):
            if keypoint_vis[i]:
                self.data[i].append(euclidean_dist[i])

    def get_measures(self, val_min, val_max, steps):
        thresholds = np.array(np.linspace(val_min, val_max, steps))
        norm_factor = np.trapz(np.ones_like(thresholds), thresholds)
        means, medians, aucs, curves = [], [], [], []
        for part_id in range(self.num_kp):
            if len(self.data[part_id]) == 0:
                continue
            data = np.array(self.data[part_id])
            means.append(np.mean(data))
            medians.append(np.median(data))
            curve = np.array([np.mean((data <= t).astype("float")) for t in thresholds])
            curves.append(curve)
            aucs.append(np.trapz(curve, thresholds) / norm_factor)
        return np.mean(means), np.mean(medians), np.mean(aucs), np.mean(np.array(curves), 0), thresholds


def ref_fscore(gt, pred, th):
    d = cdist(gt, pred)  # brute force: every pair
    d1, d2 = d.min(1), d.min(0)  # gt -> nearest pred, pred -> nearest gt
    recall, precision = np.mean(d2 < th), np.mean(d1 < th)
    return 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)


def ref_challenge(xyz, verts, xyz_p, verts_p, sc_tr=False, mano=True):
    """The FreiHAND/HO3D eval.py loop built from the reference pieces; values in scores.txt units."""
    ev = {k: RefEvalUtil() for k in ("xyz", "al", "sc")}
    mesh, mesh_al = RefEvalUtil(verts.shape[1]), RefEvalUtil(verts.shape[1])
    f = {t: ([], []) for t in (0.005, 0.015)}
    for g, p, v, vp in zip(xyz, xyz_p, verts, verts_p):
        ones = np.ones(21)
        ev["xyz"].feed(g, ones, p)
        al, (Q, scale, mu_g, mu_p) = ref_similarity(g, p)
        ev["al"].feed(g, ones, al)
        if sc_tr:  # HO3D order: wrist 0, middle MCP 4
            s = np.linalg.norm(p[4] - p[0])
            q = p / s * np.linalg.norm(g[4] - g[0])
            ev["sc"].feed(g, ones, q - q[0] + g[0])
        if mano:
            mesh.feed(v, np.ones(len(v)), vp)
            vp_al = ref_similarity(v, vp)[0]
            mesh_al.feed(v, np.ones(len(v)), vp_al)
        else:  # the official keypoint-trafo path: about the mesh centroid, no 1/||P|| normalisation
            npr = np.linalg.norm(p - mu_p) + 1e-8
            vp_al = (vp - vp.mean(0)) @ Q * scale * npr + (mu_g - mu_p) + vp.mean(0)
        for t in f:
            f[t][0].append(ref_fscore(v, vp, t))
            f[t][1].append(ref_fscore(v, vp_al, t))
    out = {}
    names = [("xyz", "xyz"), ("al", "xyz_procrustes_al" if sc_tr else "xyz_al")]
    names += [("sc", "xyz_scale_trans_al")] if sc_tr else []
    for key, name in names:
        m, _, auc, _, _ = ev[key].get_measures(0.0, 0.05, 100)
        out[f"{name}_mean3d"], out[f"{name}_auc3d"] = m * 100, auc
    if mano:
        for e, name in ((mesh, "mesh"), (mesh_al, "mesh_al")):
            m, _, auc, _, _ = e.get_measures(0.0, 0.05, 100)
            out[f"{name}_mean3d"], out[f"{name}_auc3d"] = m * 100, auc
    for t, (a, b) in f.items():
        out[f"f_score_{round(t * 1000)}"], out[f"f_al_score_{round(t * 1000)}"] = np.mean(a), np.mean(b)
    return out


def assert_figures(res, ref):
    for k, v in ref.items():
        assert res.figures[k] == pytest.approx(v, abs=TOL, rel=0), k


@pytest.fixture(scope="module")
def fixed():
    """Fixed random predictions: noisy, rotated, scaled, shifted copies of hand-sized ground truth."""
    rng = np.random.default_rng(20240601)
    n = 8
    xyz = rng.normal(0, 0.03, (n, 21, 3)) + [0.02, -0.01, 0.6]
    verts = rng.normal(0, 0.03, (n, 778, 3)) + [0.02, -0.01, 0.6]
    xyz_p, verts_p = np.empty_like(xyz), np.empty_like(verts)
    for i in range(n):
        R = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        R *= np.sign(np.linalg.det(R))
        s, t = rng.uniform(0.8, 1.2), rng.normal(0, 0.01, 3)
        c = xyz[i].mean(0)  # move about the hand's centre: errors of a few cm, as real predictions
        M = 0.2 * R + 0.8 * np.eye(3)
        xyz_p[i] = s * (xyz[i] - c) @ M + c + t + rng.normal(0, 0.006, (21, 3))
        verts_p[i] = s * (verts[i] - c) @ M + c + t + rng.normal(0, 0.006, (778, 3))
    return xyz, verts, xyz_p, verts_p


# ---------------------------------------------------------------- alignment

def test_align_w_scale_matches_closed_form_svd_similarity():
    rng = np.random.default_rng(0)
    for _ in range(20):
        g = rng.normal(0, 0.04, (21, 3)) + [0, 0, 0.5]
        p = rng.normal(0, 0.04, (21, 3)) * rng.uniform(0.5, 2) + rng.normal(0, 0.1, 3)
        assert np.abs(align_w_scale(g, p) - ref_similarity(g, p)[0]).max() < 1e-12


def test_align_w_scale_recovers_a_similarity_and_leaves_inputs_alone():
    rng = np.random.default_rng(1)
    g = rng.normal(0, 0.04, (21, 3))
    R = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    R *= np.sign(np.linalg.det(R))
    p = 1.7 * g @ R.T + [0.3, -0.2, 0.9]
    p_copy = p.copy()
    assert np.abs(align_w_scale(g, p) - g).max() < 1e-8  # only the official 1e-8 terms remain
    assert np.array_equal(p, p_copy)
    Rt, s, s1, t = align_w_scale(g, p, return_trafo=True)
    assert np.allclose(Rt, R.T, atol=1e-9) and t == pytest.approx(g.mean(0) - p.mean(0))


def test_mirrored_prediction_aligns_because_there_is_no_reflection_fix():
    """The official aligner takes any orthogonal matrix, reflections included.

    A mirrored hand (x negated, then moved) reaches (near) zero aligned error;
    a rotation-only aligner (Kabsch with the det fix) cannot, and the unaligned
    error stays large: only unaligned figures see a handedness mistake.
    """
    rng = np.random.default_rng(2)
    g = rng.normal(0, 0.04, (21, 3)) + [0, 0, 0.5]
    mirrored = g * [-1, 1, 1] + [0.05, 0.0, 0.0]
    official = np.linalg.norm(align_w_scale(g, mirrored) - g, axis=1).mean()
    rotation_only = np.linalg.norm(ref_similarity(g, mirrored, fix_reflection=True)[0] - g, axis=1).mean()
    assert official < 1e-8
    assert rotation_only > 0.01
    res = evaluate_dexycb(g[None], mirrored[None])
    assert res.figures["procrustes_mpjpe"] < 1e-5 and res.figures["absolute_mpjpe"] > 10


def test_align_by_trafo_is_the_official_formula():
    rng = np.random.default_rng(3)
    g, p = rng.normal(0, 0.04, (21, 3)), rng.normal(0, 0.04, (21, 3)) + 0.1
    mesh = rng.normal(0, 0.04, (500, 3)) + 0.12
    _, (Q, scale, mu_g, mu_p) = ref_similarity(g, p)
    npr = np.linalg.norm(p - mu_p) + 1e-8
    expected = (mesh - mesh.mean(0)) @ Q * scale * npr + (mu_g - mu_p) + mesh.mean(0)
    got = align_by_trafo(mesh, align_w_scale(g, p, return_trafo=True))
    assert np.abs(got - expected).max() < 1e-12
    # the official quirk, visible with a perfect prediction: the keypoints align exactly, but the mesh
    # comes out scaled by the keypoints' Frobenius norm (the missing 1/s2) about its own centroid
    got = align_by_trafo(mesh, align_w_scale(g, g, return_trafo=True))
    shrink = np.linalg.norm(g - g.mean(0)) ** 2 / (np.linalg.norm(g - g.mean(0)) + 1e-8)  # ~ ||G||, 0.3 here
    assert np.abs((got - got.mean(0)) - (mesh - mesh.mean(0)) * shrink).max() < 1e-9
    assert np.abs(got.mean(0) - mesh.mean(0)).max() < 1e-12


def test_align_sc_tr_by_hand():
    g = np.zeros((21, 3))
    g[4] = [0.0, 0.0, 0.1]  # HO3D joint 4: middle MCP
    g += [0.1, 0.2, 0.5]
    p = np.random.default_rng(4).normal(0, 0.05, (21, 3))
    p[0], p[4] = [1.0, 1.0, 1.0], [1.0, 1.0, 1.2]  # bone 0.2, twice the ground truth's
    expected = (p - p[0]) * 0.5 + g[0]
    assert np.abs(align_sc_tr(g, p) - expected).max() < 1e-15
    # a predicted bone of length 0 is not rescaled (the official `if s > 0`)
    assert np.array_equal(align_sc_tr(g, np.zeros((21, 3))), np.repeat(g[:1], 21, 0))
    with pytest.raises(ValueError, match="21 HO3D-order joints"):
        align_sc_tr(g[:20], p[:20])


def test_alignment_rejects_empty_and_mismatched_sets():
    with pytest.raises(ValueError, match="non-empty"):
        align_w_scale(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="differ in shape"):
        align_w_scale(np.ones((21, 3)), np.ones((20, 3)))


# ---------------------------------------------------------------- EvalUtil

def test_pck_auc_by_hand():
    # keypoint 0 errors 0.5 and 1.0, keypoint 1 errors 0 and 0; thresholds 0, 0.5, 1
    d = np.array([[0.5, 0.0], [1.0, 0.0]])
    m = pck_measures(d, 0.0, 1.0, 3)
    assert m.per_keypoint_auc.tolist() == [0.5, 1.0]  # kp0: pck [0, .5, 1] ('<=' counts 0.5 at 0.5)
    assert m.auc == 0.75 and m.mean == 0.375 and m.median == 0.375
    assert m.pck.tolist() == [0.5, 0.75, 1.0]


def test_mean_epe_is_the_mean_of_per_keypoint_means():
    d = np.array([[1.0, 10.0], [3.0, 0.0], [5.0, 0.0]])
    vis = np.array([[1, 1], [1, 0], [1, 0]], bool)
    m = pck_measures(d, 0.0, 10.0, 11, visible=vis)
    assert m.mean == 6.5  # (3 + 10) / 2, not the 19 / 4 of all visible distances
    assert m.counts.tolist() == [3, 1]
    vis[:, 1] = False  # a keypoint never visible is skipped, as EvalUtil does
    m = pck_measures(d, 0.0, 10.0, 11, visible=vis)
    assert m.mean == 3.0 and np.isnan(m.per_keypoint_mean[1])
    with pytest.raises(ValueError, match="no keypoint has a visible sample"):
        pck_measures(d, 0.0, 10.0, 11, visible=np.zeros_like(vis))


def test_evalutil_matches_the_published_class_on_random_data():
    rng = np.random.default_rng(5)
    gt, pred = rng.normal(0, 0.03, (40, 21, 3)), rng.normal(0, 0.03, (40, 21, 3))
    vis = rng.random((40, 21)) > 0.3
    ref = RefEvalUtil()
    for g, p, v in zip(gt, pred, vis):
        ref.feed(g, v, p)
    mean, median, auc, pck, th = ref.get_measures(0.0, 0.05, 100)
    m = metrics.evaluate_keypoints(gt, pred, 0.0, 0.05, 100, visible=vis)
    assert (m.mean, m.median, m.auc) == pytest.approx((mean, median, auc), abs=1e-15)
    assert np.abs(m.pck - pck).max() < 1e-15 and np.array_equal(m.thresholds, th)


def test_identical_inputs_give_zero_error_and_auc_one():
    x = np.random.default_rng(6).normal(0, 0.03, (4, 21, 3)) + [0, 0, 0.5]
    m = metrics.evaluate_keypoints(x, x, 0.0, 0.05, 100)
    assert m.mean == 0.0 and m.auc == 1.0 and np.all(m.pck == 1.0)


def test_empty_inputs_are_errors():
    with pytest.raises(ValueError, match="no samples"):
        metrics.evaluate_keypoints(np.zeros((0, 21, 3)), np.zeros((0, 21, 3)), 0, 0.05, 100)
    with pytest.raises(ValueError, match="no samples"):
        evaluate_freihand(np.zeros((0, 21, 3)), None, np.zeros((0, 21, 3)), None)


# ---------------------------------------------------------------- F-score

def test_fscore_by_hand_with_strict_threshold():
    gt = np.array([[0.0, 0, 0], [1.0, 0, 0], [5.0, 0, 0]])
    pred = np.array([[0.0, 0, 0.5], [1.0, 0, 0.25]])
    # gt -> nearest pred: 0.5, 0.25, 4; pred -> nearest gt: 0.5, 0.25
    f, precision, recall = fscore(gt, pred, 0.5)  # 0.5 is exactly at the threshold: not counted
    assert (precision, recall) == (1 / 3, 1 / 2) and f == pytest.approx(0.4, abs=1e-15)
    f, precision, recall = fscore(gt, pred, 0.5000001)
    assert (precision, recall, f) == (2 / 3, 1.0, pytest.approx(0.8))
    assert fscore(gt, pred, 0.1) == (0.0, 0.0, 0.0)


def test_fscore_matches_brute_force_nearest_neighbours():
    rng = np.random.default_rng(7)
    for n_gt, n_pred in ((778, 778), (778, 1200), (50, 9)):
        gt = rng.normal(0, 0.03, (n_gt, 3))
        pred = gt[rng.integers(0, n_gt, n_pred)] + rng.normal(0, 0.006, (n_pred, 3))
        for th in (0.005, 0.015):
            assert fscore(gt, pred, th)[0] == pytest.approx(ref_fscore(gt, pred, th), abs=1e-15)


def test_fscore_of_empty_sets_is_an_error():
    with pytest.raises(ValueError, match="prediction: the point set is empty"):
        fscore(np.ones((5, 3)), np.zeros((0, 3)), 0.005)
    with pytest.raises(ValueError, match="ground truth: the point set is empty"):
        fscore(np.zeros((0, 3)), np.ones((5, 3)), 0.005)


# ---------------------------------------------------------------- FreiHAND / HO3D

def test_freihand_matches_the_re_derivation(fixed):
    xyz, verts, xyz_p, verts_p = fixed
    res = evaluate_freihand(xyz, verts, xyz_p, verts_p)
    assert_figures(res, ref_challenge(xyz, verts, xyz_p, verts_p))
    assert 0.2 < res.figures["xyz_auc3d"] < 0.9 and 0 < res.figures["f_score_5"] < res.figures["f_score_15"] < 1
    assert res.curves["xyz"].unit == "cm" and res.curves["xyz"].thresholds[-1] == pytest.approx(5.0)


def test_freihand_keypoint_transform_path_for_other_meshes(fixed):
    xyz, verts, xyz_p, verts_p = fixed
    other = verts_p[:, ::2]  # 389 vertices: not MANO, F-scores only, aligned with the keypoints' trafo
    res = evaluate_freihand(xyz, verts, xyz_p, other)
    assert_figures(res, ref_challenge(xyz, verts, xyz_p, other, mano=False))
    assert res.figures["mesh_mean3d"] is None and "not MANO" in res.notes[-1]
    # 778 vertices in another order (OpenHand): forced onto the same path
    forced = evaluate_freihand(xyz, verts, xyz_p, verts_p, mesh_is_mano=False)
    assert_figures(forced, ref_challenge(xyz, verts, xyz_p, verts_p, mano=False))


def test_freihand_identical_predictions(fixed):
    """Unaligned: exactly 0 cm and AUC 1. Aligned: the official 1e-8 terms leave ~1e-9 m, so the
    threshold-0 PCK (<= 0) is 0 and the aligned AUC is 1 - 0.5/99, as the official script reports."""
    xyz, verts = fixed[:2]
    res = evaluate_freihand(xyz, verts, xyz, verts)
    f = res.figures
    assert f["xyz_mean3d"] == 0.0 and f["xyz_auc3d"] == 1.0 and f["mesh_mean3d"] == 0.0 and f["mesh_auc3d"] == 1.0
    assert f["xyz_al_mean3d"] < 1e-5 and f["xyz_al_auc3d"] == pytest.approx(1 - 0.5 / 99, abs=1e-12)
    assert all(f[k] == 1.0 for k in ("f_score_5", "f_al_score_5", "f_score_15", "f_al_score_15"))


def test_ho3d_matches_the_re_derivation_in_ho3d_order(fixed):
    xyz, verts, xyz_p, verts_p = fixed
    res = evaluate_ho3d(xyz, verts, xyz_p, verts_p)
    gl = np.array([1.0, -1.0, -1.0])
    ref = ref_challenge(xyz[:, FREIHAND_TO_HO3D] * gl, verts * gl, xyz_p[:, FREIHAND_TO_HO3D] * gl, verts_p * gl,
                        sc_tr=True)
    assert_figures(res, ref)
    # the same arrays already in HO3D's convention give the same figures
    same = evaluate_ho3d(xyz[:, FREIHAND_TO_HO3D] * gl, verts * gl, xyz_p[:, FREIHAND_TO_HO3D] * gl, verts_p * gl,
                         input_convention="ho3d")
    assert same.figures == res.figures
    # scale-translation alignment depends on the joint order: FreiHAND order would give other numbers
    wrong = evaluate_ho3d(xyz * gl, None, xyz_p * gl, None, input_convention="ho3d")
    assert abs(wrong.figures["xyz_scale_trans_al_mean3d"] - res.figures["xyz_scale_trans_al_mean3d"]) > 1e-3
    assert wrong.figures["xyz_procrustes_al_mean3d"] == pytest.approx(res.figures["xyz_procrustes_al_mean3d"])
    # a prediction that is the ground truth scaled about the wrist: sc-tr error 0
    scaled = (xyz - xyz[:, :1]) * 1.3 + xyz[:, :1] + 0.05
    assert evaluate_ho3d(xyz, None, scaled, None).figures["xyz_scale_trans_al_mean3d"] < 1e-12


def test_ho3d_joint_order_table():
    names = metrics.conventions.JOINT_NAMES
    ho3d = [names[i] for i in HO3D_TO_FREIHAND.argsort()]
    assert ho3d[:4] == ["wrist", "index_mcp", "index_pip", "index_dip"]
    assert ho3d[4] == "middle_mcp" and ho3d[7] == "little_mcp" and ho3d[10] == "ring_mcp"
    assert ho3d[13:] == ["thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "index_tip", "middle_tip", "ring_tip",
                         "little_tip"]
    x = np.random.default_rng(8).normal(size=(3, 21, 3))
    assert np.array_equal(metrics.ho3d_to_freihand(metrics.freihand_to_ho3d(x)), x)


# ---------------------------------------------------------------- Dex-YCB, RHD/STB

def test_dexycb_matches_the_re_derivation(fixed):
    xyz, _, xyz_p, _ = fixed
    res = evaluate_dexycb(xyz, xyz_p)
    g, p = xyz * 1000, xyz_p * 1000
    for name, (gg, pp) in {"absolute": (g, p), "root_relative": (g - g[:, :1], p - p[:, :1]),
                           "procrustes": (g, np.stack([ref_similarity(a, b)[0] for a, b in zip(g, p)]))}.items():
        ev = RefEvalUtil()
        for a, b in zip(gg, pp):
            ev.feed(a, np.ones(21), b)
        mean, _, auc, _, _ = ev.get_measures(0.0, 50.0, 100)
        assert res.figures[f"{name}_mpjpe"] == pytest.approx(mean, abs=TOL, rel=0)
        assert res.figures[f"{name}_auc"] == pytest.approx(auc, abs=TOL, rel=0)
    assert res.units["absolute_mpjpe"] == "mm"


def test_dexycb_by_hand():
    g = np.random.default_rng(9).normal(0, 0.03, (3, 21, 3)) + [0, 0, 0.7]
    res = evaluate_dexycb(g, g + [0.0, 0.0, 0.01])  # every joint 10 mm off, shape exact
    f = res.figures
    assert f["absolute_mpjpe"] == pytest.approx(10.0, abs=1e-9) and f["root_relative_mpjpe"] < 1e-9
    # PCK is 1 from the first threshold >= 10 mm (index 20 of linspace(0, 50, 100)); 0 before
    th = np.linspace(0, 50, 100)
    assert f["absolute_auc"] == pytest.approx(np.trapz((th >= 10.0 - 1e-9).astype(float), th) / 50.0, abs=1e-12)


def test_rhd_stb_matches_the_re_derivation(fixed):
    xyz, _, xyz_p, _ = fixed
    rng = np.random.default_rng(10)
    uv = rng.uniform(0, 320, (len(xyz), 21, 2))
    uv_p = uv + rng.normal(0, 6, uv.shape)
    vis = rng.random((len(xyz), 21)) > 0.25
    res = evaluate_rhd_stb(xyz, xyz_p, uv, uv_p, vis, benchmark="stb")
    g, p = (xyz - xyz[:, :1]) * 1000, (xyz_p - xyz_p[:, :1]) * 1000
    ev3, pa3, ev2 = RefEvalUtil(), RefEvalUtil(), RefEvalUtil()
    for i in range(len(xyz)):
        ev3.feed(g[i], np.ones(21), p[i])
        pa3.feed(g[i], np.ones(21), ref_similarity(g[i], p[i])[0])
        ev2.feed(uv[i], vis[i], uv_p[i])
    expected = {}
    expected["rel_mean3d"], _, expected["rel_auc3d_20_50"], _, _ = ev3.get_measures(20.0, 50.0, 20)
    expected["pa_mean3d"], _, expected["pa_auc3d_20_50"], _, _ = pa3.get_measures(20.0, 50.0, 20)
    expected["mean2d"], _, expected["auc2d_0_30"], _, _ = ev2.get_measures(0.0, 30.0, 20)
    assert_figures(res, expected)
    assert res.benchmark == "stb" and res.curves["2d"].unit == "px"


def test_rhd_root_relative_ignores_translation():
    g = np.random.default_rng(11).normal(0, 0.03, (5, 21, 3)) + [0, 0, 0.5]
    res = evaluate_rhd_stb(g, g + [0.1, -0.2, 0.3])
    assert res.figures["rel_mean3d"] < 1e-9 and res.figures["rel_auc3d_20_50"] == 1.0
    assert "mean2d" not in res.figures
    with pytest.raises(ValueError, match="'rhd' or 'stb'"):
        evaluate_rhd_stb(g, g, benchmark="freihand")


# ---------------------------------------------------------------- Acc

def test_acceleration_by_hand():
    t = np.arange(6, dtype=float)
    still = np.zeros((6, 21, 3))
    linear = still + t[:, None, None] * [1.0, 2.0, 0.0]
    quadratic = still + (t ** 2)[:, None, None] * [0.0, 0.0, 1.0]  # x'' = 2 per frame^2
    assert np.all(acceleration(linear) == 0) and acceleration(linear).shape == (4, 21)
    assert np.all(acceleration(quadratic) == 2.0)
    assert np.all(acceleration(quadratic, fps=30) == 1800.0)
    assert np.all(acceleration_error(quadratic, linear) == 2.0)
    with pytest.raises(ValueError, match="at least 3 frames"):
        acceleration(still[:2])


def test_sequence_acceleration_does_not_cross_sequences():
    t = np.arange(5, dtype=float)[:, None, None] * np.ones((1, 21, 2))
    a, b = t * 3.0, 100.0 - t  # each moves at constant speed: no acceleration
    frames = np.concatenate([a, b])
    seq = np.array(["s1"] * 5 + ["s2"] * 5)
    assert sequence_acceleration(frames, seq) == 0.0
    assert sequence_acceleration(frames) > 0  # as one sequence, the jump between them accelerates
    # interleaved frames are grouped per sequence in their given order
    order = np.array([0, 5, 1, 6, 2, 7, 3, 8, 4, 9])
    assert sequence_acceleration(frames[order], seq[order]) == 0.0
    with pytest.raises(ValueError, match="no sequence has 3 or more frames"):
        sequence_acceleration(frames[:4], ["a", "a", "b", "b"])


def test_acceleration_figures_units():
    t = np.arange(4, dtype=float)
    xyz = np.zeros((4, 21, 3)) + (t ** 2)[:, None, None] * [0, 0, 0.001]  # 2 mm/frame^2, every joint
    xyz[:, 5] += (t ** 2)[:, None] * [0.001, 0, 0]
    figs = metrics.acceleration_figures(xyz, np.zeros(4), uv_pred=xyz[..., :2] * 1000)
    assert figs["acc3d"] == (pytest.approx(2.0 / 21), "mm/frame^2")  # wrist-relative: only joint 5 moves
    assert figs["acc2d"][1] == "px/frame^2" and figs["acc2d"][0] == pytest.approx(2.0 / 21)


# ---------------------------------------------------------------- plot and CLI

def test_pck_plot_draws_curves_per_unit(tmp_path):
    res = evaluate_rhd_stb(*[np.random.default_rng(12).normal(0, 0.03, (4, 21, 3)) for _ in range(2)],
                           uv_gt=np.zeros((4, 21, 2)), uv_pred=np.ones((4, 21, 2)))
    img = plot.plot_pck(res.curves, tmp_path / "pck.png", "test")
    assert Image.open(tmp_path / "pck.png").size == (2 * plot.PANEL[0], plot.PANEL[1])
    px = np.asarray(img).reshape(-1, 3)
    for colour in plot.COLOURS[:2]:
        assert (px == colour).all(1).sum() > 50
    assert list(plot.nice_ticks(20, 50)) == [20, 25, 30, 35, 40, 45, 50]


def _cli(argv):
    from hands.cli_evaluate import add_parser

    parser = argparse.ArgumentParser(prog="hands")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.fn(args)


def test_hands_evaluate_writes_table_json_and_png(tmp_path, fixed, capsys):
    xyz, verts, xyz_p, verts_p = fixed
    np.savez(tmp_path / "gt.npz", xyz=xyz, verts=verts)
    np.savez(tmp_path / "pred.npz", xyz=xyz_p, verts=verts_p)
    _cli(["evaluate", str(tmp_path / "pred.npz"), str(tmp_path / "gt.npz"), "--benchmark", "freihand",
          "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert "FreiHAND: 8 samples" in out and "xyz_al_mean3d" in out and "f_al_score_15" in out
    saved = json.loads((tmp_path / "out" / "metrics_freihand.json").read_text())
    ref = ref_challenge(xyz, verts, xyz_p, verts_p)
    assert all(abs(saved["figures"][k] - v) < TOL for k, v in ref.items())
    assert saved["units"]["xyz_mean3d"] == "cm" and len(saved["curves"]["xyz"]["pck"]) == 100
    assert Image.open(tmp_path / "out" / "pck_freihand.png").size[0] > 0


def test_hands_evaluate_sequences_and_projection(tmp_path, fixed, capsys):
    xyz, _, xyz_p, _ = fixed
    K = np.tile([[500.0, 0, 160], [0, 500, 160], [0, 0, 1]], (len(xyz), 1, 1))
    np.savez(tmp_path / "gt.npz", xyz=xyz, K=K)
    np.savez(tmp_path / "pred.npz", xyz=xyz_p, K=K, sequence=np.repeat([0, 1], len(xyz) // 2))
    _cli(["evaluate", str(tmp_path / "pred.npz"), str(tmp_path / "gt.npz"), "--benchmark", "rhd",
          "--out", str(tmp_path / "o")])
    saved = json.loads((tmp_path / "o" / "metrics_rhd.json").read_text())["figures"]
    assert {"auc2d_0_30", "acc2d", "acc3d", "rel_auc3d_20_50"} <= set(saved)
    uv = xyz @ K[0].T
    uv_p = xyz_p @ K[0].T
    direct = evaluate_rhd_stb(xyz, xyz_p, uv[..., :2] / uv[..., 2:], uv_p[..., :2] / uv_p[..., 2:])
    assert saved["auc2d_0_30"] == pytest.approx(direct.figures["auc2d_0_30"], abs=1e-12)


def test_hands_evaluate_rejects_bad_input(tmp_path, fixed):
    np.savez(tmp_path / "gt.npz", xyz=fixed[0])
    np.savez(tmp_path / "bad.npz", joints=fixed[0])
    with pytest.raises(ValueError, match=r"bad\.npz: no 'xyz' array"):
        _cli(["evaluate", str(tmp_path / "bad.npz"), str(tmp_path / "gt.npz"), "--benchmark", "dexycb"])
    np.savez(tmp_path / "short.npz", xyz=fixed[0][:5])
    with pytest.raises(ValueError, match="has 5 samples"):
        _cli(["evaluate", str(tmp_path / "short.npz"), str(tmp_path / "gt.npz"), "--benchmark", "dexycb"])
    with pytest.raises(SystemExit):
        _cli(["evaluate", str(tmp_path / "gt.npz"), str(tmp_path / "gt.npz"), "--benchmark", "coco"])
