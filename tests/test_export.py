"""finetune.export: submission files round-trip, carry the benchmark's conventions, and evaluate as the arrays do."""
from __future__ import annotations

import json

import numpy as np
import pytest

from finetune.evaluate import evaluate_files
from finetune.export import (SubmissionFormatError, read_dexycb_results, read_freihand_pred, read_ho3d_pred,
                             write_dexycb_results, write_freihand_pred, write_ho3d_pred)
from finetune.metrics import evaluate_dexycb, evaluate_freihand, evaluate_ho3d


@pytest.fixture(scope="module")
def hands():
    """Camera-frame hands in the project's convention (metres, OpenCV: z > 0), with MANO-sized meshes."""
    rng = np.random.default_rng(42)
    n = 5
    xyz = rng.normal(0, 0.03, (n, 21, 3)) + [0.01, -0.02, 0.55]
    verts = rng.normal(0, 0.03, (n, 778, 3)) + [0.01, -0.02, 0.55]
    xyz_p = xyz + rng.normal(0, 0.008, xyz.shape)
    verts_p = verts + rng.normal(0, 0.008, verts.shape)
    return xyz, verts, xyz_p, verts_p


def test_freihand_pred_round_trip_and_layout(tmp_path, hands):
    xyz, verts = hands[2], hands[3]
    path = write_freihand_pred(tmp_path / "sub" / "pred.json", xyz, verts)
    raw = json.loads(path.read_text())
    assert len(raw) == 2 and len(raw[0]) == len(raw[1]) == len(xyz)
    assert np.array(raw[0][0]).shape == (21, 3) and np.array(raw[1][0]).shape == (778, 3)
    assert raw[0][3][9] == xyz[3, 9].tolist()  # FreiHAND order, metres, as given
    xyz_back, verts_back = read_freihand_pred(path)
    assert np.array_equal(xyz_back, xyz) and all(np.array_equal(a, b) for a, b in zip(verts_back, verts))


def test_freihand_pred_takes_meshes_of_other_sizes(tmp_path, hands):
    xyz = hands[0][:2]
    meshes = [np.ones((10, 3)), np.zeros((12, 3))]
    _, back = read_freihand_pred(write_freihand_pred(tmp_path / "pred.json", xyz, meshes))
    assert [m.shape for m in back] == [(10, 3), (12, 3)]
    with pytest.raises(ValueError, match="needs one mesh per sample"):
        write_freihand_pred(tmp_path / "x.json", xyz, None)
    with pytest.raises(ValueError, match=r"expected \(N, 21, 3\)"):
        write_freihand_pred(tmp_path / "x.json", xyz[:, :20], meshes)


def test_ho3d_pred_is_in_ho3d_order_and_opengl(tmp_path, hands):
    xyz, verts = hands[2], hands[3]
    path = write_ho3d_pred(tmp_path / "pred.json", xyz, verts)
    raw = json.loads(path.read_text())
    flip = np.array([1.0, -1.0, -1.0])
    # HO3D joint 4 is the middle MCP (FreiHAND 9), 13 the thumb CMC (FreiHAND 1), 17 the index tip (FreiHAND 8)
    for h, f in ((0, 0), (4, 9), (13, 1), (16, 4), (17, 8), (7, 17), (10, 13)):
        assert np.array_equal(raw[0][2][h], (xyz[2, f] * flip).tolist())
    assert np.all(np.array(raw[0])[..., 2] < 0) and np.all(np.array(raw[1])[..., 2] < 0)  # OpenGL: hand at -z
    assert np.array_equal(raw[1][1], (verts[1] * flip).tolist())  # vertices keep MANO order
    xyz_back, verts_back = read_ho3d_pred(path)
    assert np.array_equal(xyz_back, xyz) and all(np.array_equal(a, b) for a, b in zip(verts_back, verts))
    native, _ = read_ho3d_pred(path, convention="ho3d")
    assert np.array_equal(native, np.array(raw[0]))


def test_ho3d_pred_refuses_opengl_input(tmp_path, hands):
    xyz, verts = hands[2], hands[3]
    with pytest.raises(ValueError, match="sample 0 has all its points at z < 0"):
        write_ho3d_pred(tmp_path / "pred.json", xyz * [1, -1, -1], verts * [1, -1, -1])


def test_dexycb_results_lines_round_trip(tmp_path, hands):
    xyz = hands[2]
    ids = np.array([7, 3, 120, 0, 55])
    path = write_dexycb_results(tmp_path / "res.txt", xyz, ids)
    lines = path.read_text().splitlines()
    assert len(lines) == len(xyz)
    for line, i, joints in zip(lines, ids, xyz):
        values = line.split(",")
        assert len(values) == 64 and int(values[0]) == i
        assert np.allclose(np.array(values[1:], float), joints.ravel() * 1000.0, rtol=0, atol=1e-12)  # mm
    ids_back, xyz_back = read_dexycb_results(path)
    assert np.array_equal(ids_back, ids)
    assert np.abs(xyz_back - xyz).max() < 1e-15  # the mm scaling costs at most an ulp
    assert np.array_equal(read_dexycb_results(write_dexycb_results(tmp_path / "d.txt", xyz))[0], np.arange(5))


def test_dexycb_results_errors_name_file_and_line(tmp_path, hands):
    good = ",".join(["0"] + ["1.0"] * 63)
    bad = tmp_path / "bad.txt"
    bad.write_text(good + "\n" + ",".join(["1"] + ["1.0"] * 62) + "\n")
    with pytest.raises(SubmissionFormatError, match=r"bad\.txt:2: a line needs 64 comma-separated values.*got 63"):
        read_dexycb_results(bad)
    bad.write_text(good + "\n" + good + "\n")
    with pytest.raises(SubmissionFormatError, match="sample index 0 appears more than once"):
        read_dexycb_results(bad)
    bad.write_text(",".join(["x"] + ["1.0"] * 63) + "\n")
    with pytest.raises(SubmissionFormatError, match=r"bad\.txt:1: not a number"):
        read_dexycb_results(bad)
    with pytest.raises(ValueError, match="indices repeat"):
        write_dexycb_results(tmp_path / "r.txt", hands[0][:2], [4, 4])


def test_pred_json_format_errors_name_the_file(tmp_path):
    p = tmp_path / "pred.json"
    p.write_text(json.dumps({"xyz": []}))
    with pytest.raises(SubmissionFormatError, match=r"pred\.json: expected a JSON list \[xyz_list, verts_list\]"):
        read_freihand_pred(p)
    p.write_text(json.dumps([[np.zeros((21, 3)).tolist()], []]))
    with pytest.raises(SubmissionFormatError, match="1 keypoint sets but 0 meshes"):
        read_freihand_pred(p)
    p.write_text(json.dumps([[np.zeros((20, 3)).tolist()], [np.zeros((5, 3)).tolist()]]))
    with pytest.raises(SubmissionFormatError, match=r"keypoints have shape \(1, 20, 3\)"):
        read_freihand_pred(p)
    p.write_text("[[1, 2")
    with pytest.raises(SubmissionFormatError, match="not a JSON file"):
        read_freihand_pred(p)


def test_exported_files_evaluate_like_the_arrays(tmp_path, hands):
    """Write predictions and ground truth in the official formats; `evaluate_files` must give the same figures."""
    xyz, verts, xyz_p, verts_p = hands
    # FreiHAND: pred.json against evaluation_xyz.json + evaluation_verts.json (the official ground-truth pair)
    (tmp_path / "evaluation_xyz.json").write_text(json.dumps(xyz.tolist()))
    (tmp_path / "evaluation_verts.json").write_text(json.dumps(verts.tolist()))
    pred = write_freihand_pred(tmp_path / "pred.json", xyz_p, verts_p)
    got = evaluate_files(pred, tmp_path / "evaluation_xyz.json", "freihand")
    assert got.figures == evaluate_freihand(xyz, verts, xyz_p, verts_p).figures
    # HO3D: both files in HO3D's convention, evaluated in it
    gt_h = write_ho3d_pred(tmp_path / "ho3d_gt.json", xyz, verts)
    pred_h = write_ho3d_pred(tmp_path / "ho3d_pred.json", xyz_p, verts_p)
    got = evaluate_files(pred_h, gt_h, "ho3d")
    ref = evaluate_ho3d(xyz, verts, xyz_p, verts_p)
    assert got.figures == pytest.approx(ref.figures, abs=1e-12)
    # Dex-YCB: a result file in shuffled order, matched to the ground truth by sample index
    order = np.array([3, 0, 4, 1, 2])
    res = write_dexycb_results(tmp_path / "res.txt", xyz_p[order], ids=np.arange(10, 15)[order])
    np.savez(tmp_path / "gt.npz", xyz=xyz, ids=np.arange(10, 15))
    got = evaluate_files(res, tmp_path / "gt.npz", "dexycb")
    assert got.figures == pytest.approx(evaluate_dexycb(xyz, xyz_p).figures, abs=1e-9)
    np.savez(tmp_path / "gt_more.npz", xyz=np.concatenate([xyz, xyz[:1]]), ids=np.arange(10, 16))
    with pytest.raises(ValueError, match=r"res\.txt: no prediction for sample index 15"):
        evaluate_files(res, tmp_path / "gt_more.npz", "dexycb")
