"""STB, Dex-YCB and HanCo loaders on tiny fixtures in the official layouts (tests/fixtures_more_benchmarks.py)."""
from __future__ import annotations

import copy
import json
import shutil
import warnings

import numpy as np
import pytest
import scipy.io
import torch
from torch.utils.data import DataLoader

from fixtures_more_benchmarks import (DEX_SERIALS, DEX_SUBJECTS, MIRROR, STB_SK_R, STB_SK_T_M, dot_errors,
                                      random_pca_basis, write_dexycb, write_hanco, write_stb)
from finetune.datasets.base import DatasetFormatError, apply_affine, box_crop, project
from finetune.datasets.dexycb import DexYCBDataset, pose_from_pca, split_rule
from finetune.datasets.hanco import HanCoDataset
from finetune.datasets.stb import SPLITS, STB_TO_FREIHAND, STBDataset

M_TOL = 1e-6     # metres
PX_TOL = 1e-3    # pixels
DOT_TOL = 0.2    # pixels of the full image: spot centroids in the crop vs keypoints_2d


def check_sample(s, t, crop_size: int, dots: bool = True) -> int:
    """The common checks of a sample against its truth; returns the number of spots measured."""
    S = crop_size
    assert s["image"].shape == (3, S, S) and s["image"].dtype == torch.float32
    assert s["mask"].shape == (S, S) and s["mask"].dtype == torch.bool
    assert s["keypoints_2d"].shape == (21, 2) and s["keypoints_3d"].shape == (21, 3)
    assert s["vertices"].shape == (778, 3) and s["mano_pose"].shape == (48,) and s["mano_betas"].shape == (10,)
    assert s["visibility"].dtype == torch.bool
    kp3 = s["keypoints_3d"].double().numpy()
    np.testing.assert_allclose(kp3, t["keypoints_3d"], atol=M_TOL, rtol=0)
    np.testing.assert_allclose(s["keypoints_3d_rel"].double().numpy(), t["keypoints_3d"] - t["keypoints_3d"][0],
                               atol=M_TOL, rtol=0)
    # 2D: the truth projected with the (mirrored) full-image K, then moved by the crop computed here
    uv = project(t["keypoints_3d"], t["K"])
    A = box_crop(uv, S)
    np.testing.assert_allclose(s["keypoints_2d"].double().numpy(), apply_affine(uv, A), atol=PX_TOL, rtol=0)
    np.testing.assert_allclose(s["K"].double().numpy(), A @ t["K"], rtol=1e-6, atol=1e-4)
    K = s["K"].double().numpy()
    np.testing.assert_allclose(project(kp3, K), s["keypoints_2d"].double().numpy(), atol=PX_TOL, rtol=0)
    assert s["visibility"].all()          # every fixture keypoint is inside its image
    if not dots:
        return 0
    scale = A[0, 0]
    err = dot_errors(s["image"].numpy(), s["keypoints_2d"].numpy(), t["dot_radius"] * scale) / scale
    assert np.all(err < DOT_TOL), (s["sample_id"], err)
    return len(err)


# ---------------------------------------------------------------- STB

@pytest.fixture(scope="module")
def stb(hand_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("stb")
    return root, write_stb(root, hand_model)


def test_stb_reads_every_camera(stb):
    root, truth = stb
    seen, spots = set(), 0
    for seqs in (("B1Counting",), ("B2Random",)):
        ds = STBDataset(root, sequences=seqs, cameras=("SK", "BB_left", "BB_right"), crop_size=160)
        assert len(ds) == 9
        for i in range(len(ds)):
            s = ds[i]
            spots += check_sample(s, truth[s["sample_id"]], 160)
            assert s["mirrored"] and not (s["has_mask"] or s["has_vertices"] or s["has_mano"])
            assert s["dataset"] == "stb" and s["topology"] == "mano"
            seen.add(s["sample_id"])
    assert seen == set(truth) and spots > 100


def test_stb_joint_order_and_wrist_rules(stb):
    """Keypoint 0 under each rule, re-derived from the raw handPara in the test."""
    root, truth = stb
    para = scipy.io.loadmat(root / "labels" / "B1Counting_SK.mat")["handPara"]
    assert para.shape == (3, 21, 3)
    raw = para.transpose(2, 1, 0)[1] / 1000.0                  # frame 1, STB order, depth frame, metres
    colour = (raw - STB_SK_T_M) @ STB_SK_R                      # R^T (X - T) as row vectors
    # STB order: palm, little (MCP..tip), ring, middle, index, thumb
    names = ["palm"] + [f"{f}{j}" for f in ("little", "ring", "middle", "index", "thumb") for j in range(4)]
    by_name = dict(zip(names, colour))
    assert [STB_TO_FREIHAND[i] for i in (1, 5, 9, 13, 17)] == [names.index(f"{f}0") for f in
                                                               ("thumb", "index", "middle", "ring", "little")]
    palm, mid, ring = by_name["palm"], by_name["middle0"], by_name["ring0"]
    for rule, expected in (("palm", palm), ("middle_mcp_2.2", mid + 2.2 * (palm - mid)),
                           ("ring_mcp_2.0", ring + 2.0 * (palm - ring))):
        s = STBDataset(root, sequences=("B1Counting",), wrist=rule)[1]
        np.testing.assert_allclose(s["keypoints_3d"][0].double().numpy(), expected * MIRROR, atol=M_TOL)
        np.testing.assert_allclose(s["keypoints_3d"][8].double().numpy(), by_name["index3"] * MIRROR, atol=M_TOL)
    np.testing.assert_allclose(STBDataset(root, sequences=("B1Counting",))[1]["keypoints_3d"].double().numpy(),
                               truth["B1Counting/SK_color_1"]["keypoints_3d"], atol=M_TOL)


def test_stb_splits_and_bad_settings(stb):
    root, _ = stb
    assert SPLITS["test"] == ("B1Counting", "B1Random") and len(SPLITS["train"]) == 10
    assert not any(s.startswith("B1") for s in SPLITS["train"]) and len(SPLITS["all"]) == 12
    with pytest.raises(DatasetFormatError, match=r"labels/B1Random_SK\.mat"):
        STBDataset(root, split="test")
    with pytest.raises(ValueError, match="split"):
        STBDataset(root, split="val")
    with pytest.raises(ValueError, match="camera"):
        STBDataset(root, sequences=("B1Counting",), cameras=("SK_depth",))
    with pytest.raises(ValueError, match="wrist"):
        STBDataset(root, sequences=("B1Counting",), wrist="palm+2.2")


def test_stb_errors_name_the_file(stb, tmp_path):
    root, _ = stb
    copy_root = tmp_path / "stb"
    shutil.copytree(root, copy_root)
    img = copy_root / "images" / "B2Random" / "SK_color_2.png"
    img.write_bytes(img.read_bytes()[:300])                     # truncated PNG
    ds = STBDataset(copy_root, sequences=("B2Random",))
    with pytest.raises(DatasetFormatError, match=str(img)):
        ds[2]
    (copy_root / "images" / "B2Random" / "SK_color_1.png").unlink()
    with pytest.raises(DatasetFormatError, match=r"missing file .*SK_color_1\.png"):
        ds[1]
    mat = copy_root / "labels" / "B2Random_BB.mat"
    scipy.io.savemat(mat, {"hand_para": np.zeros((3, 21, 2))})
    with pytest.raises(DatasetFormatError, match=str(mat) + r".*no 'handPara'"):
        STBDataset(copy_root, sequences=("B2Random",), cameras=("BB_left",))
    scipy.io.savemat(mat, {"handPara": np.zeros((21, 3, 2))})
    with pytest.raises(DatasetFormatError, match=str(mat) + r".*shape \(21, 3, 2\).*expected \(3, 21, N\)"):
        STBDataset(copy_root, sequences=("B2Random",), cameras=("BB_left",))
    mat.write_bytes(b"MATLAB 5.0 broken")
    with pytest.raises(DatasetFormatError, match=str(mat)):
        STBDataset(copy_root, sequences=("B2Random",), cameras=("BB_left",))


def test_stb_check_names_a_deleted_image(stb, tmp_path):
    root, _ = stb
    lines = STBDataset.check(root)
    assert not [ln for ln in lines if ln.startswith("problem")]
    assert "count: B1Counting SK: 3 labelled frames, 3 of 3 checked images readable" in lines
    assert any(ln.startswith("info:") and "10 of 12 sequences" in ln for ln in lines)
    copy_root = tmp_path / "stb"
    shutil.copytree(root, copy_root)
    gone = copy_root / "images" / "B1Counting" / "BB_right_2.png"
    gone.unlink()
    problems = [ln for ln in STBDataset.check(copy_root) if ln.startswith("problem")]
    assert len(problems) == 1 and str(gone) in problems[0]
    assert STBDataset.check(tmp_path / "nowhere")[0].startswith("problem")


# ---------------------------------------------------------------- Dex-YCB

@pytest.fixture(scope="module")
def dex(hand_model, tmp_path_factory):
    """Subjects 01 and 07 with 100 sequences each; hands in positions 4 (right), 9 (left), 15 (right).
    The PCA basis and mean are random (not OpenHand's identity / zeros) so the conversion is exercised."""
    root = tmp_path_factory.mktemp("dexycb")
    comps, mean = random_pca_basis(np.random.default_rng(5))
    hm = copy.copy(hand_model)
    hm.hands_components, hm.hands_mean = comps, mean
    return root, write_dexycb(root, hand_model, pca=(comps, mean)), hm


def _dex(root, setup, split, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DexYCBDataset(root, setup=setup, split=split, strict=False, **kw)


def test_dexycb_samples_right_and_left(dex):
    root, truth, hm = dex
    ds = DexYCBDataset(root, setup="s1", split="val", hand_model=hm, crop_size=160)   # subject 07 only: strict
    assert len(ds) == 3 * 8 and ds.num_skipped == 3 * 8
    sides = set()
    for i in range(len(ds)):
        s = ds[i]
        t = truth[s["sample_id"]]
        check_sample(s, t, 160)
        assert s["mirrored"] == (t["side"] == "left") and s["has_vertices"] and s["has_mano"]
        np.testing.assert_allclose(s["vertices"].double().numpy(), t["vertices"], atol=M_TOL)
        np.testing.assert_allclose(s["vertices_rel"].double().numpy(), t["vertices"] - t["keypoints_3d"][0],
                                   atol=M_TOL)
        np.testing.assert_allclose(s["mano_pose"].double().numpy(), t["mano_pose"], atol=1e-6)
        np.testing.assert_allclose(s["mano_betas"].double().numpy(), t["betas"], atol=1e-6)
        assert s["topology"] == hm.template_hash and s["dataset"] == "dexycb"
        sides.add(t["side"])
    assert sides == {"left", "right"}


def test_dexycb_without_a_hand_model_has_no_mano(dex):
    root, truth, _ = dex
    s = DexYCBDataset(root, setup="s1", split="val")[0]
    assert not s["has_mano"] and not s["has_vertices"] and s["topology"] == "mano"
    assert torch.count_nonzero(s["vertices"]) == 0 and torch.count_nonzero(s["mano_pose"]) == 0
    np.testing.assert_allclose(s["keypoints_3d"].double().numpy(), truth[s["sample_id"]]["keypoints_3d"], atol=M_TOL)


def test_pose_from_pca_is_manopth_and_mirrors():
    rng = np.random.default_rng(1)
    comps, mean = random_pca_basis(rng)
    pose_m = rng.normal(size=51)
    flat = pose_from_pca(pose_m, comps, mean)
    # manopth: th_full_hand_pose = coeffs.mm(th_selected_comps); th_full_pose = cat(root, hands_mean + that)
    expected = np.concatenate([pose_m[:3], mean + np.einsum("c,cj->j", pose_m[3:48], comps[:45])])
    np.testing.assert_allclose(flat, expected, atol=1e-12)
    # the left basis is the right one mirrored per joint: the same coefficients give the mirrored pose
    flip = np.tile([1.0, -1.0, -1.0], 16)
    left = pose_from_pca(pose_m * np.r_[flip[:3], np.ones(48)], comps * flip[3:], mean * flip[3:])
    np.testing.assert_allclose(left * flip, flat, atol=1e-12)


def _positions(root):
    return {subj: {seq: i for i, seq in enumerate(sorted(p.name for p in (root / subj).iterdir()))}
            for subj in DEX_SUBJECTS if (root / subj).is_dir()}


# the toolkit's split rules, typed from its description: (subject ok, serial ok, sequence position ok)
RULES = {
    ("s0", "train"): (lambda s: True, lambda c: True, lambda i: i % 5 != 4),
    ("s0", "val"): (lambda s: s in (0, 1), lambda c: True, lambda i: i % 5 == 4),
    ("s0", "test"): (lambda s: s >= 2, lambda c: True, lambda i: i % 5 == 4),
    ("s1", "train"): (lambda s: s in (0, 1, 2, 3, 4, 5, 9), lambda c: True, lambda i: True),
    ("s1", "val"): (lambda s: s == 6, lambda c: True, lambda i: True),
    ("s1", "test"): (lambda s: s in (7, 8), lambda c: True, lambda i: True),
    ("s2", "train"): (lambda s: True, lambda c: c <= 5, lambda i: True),
    ("s2", "val"): (lambda s: True, lambda c: c == 6, lambda i: True),
    ("s2", "test"): (lambda s: True, lambda c: c == 7, lambda i: True),
    ("s3", "train"): (lambda s: True, lambda c: True, lambda i: i // 5 not in (3, 7, 11, 15, 19)),
    ("s3", "val"): (lambda s: True, lambda c: True, lambda i: i // 5 in (3, 19)),
    ("s3", "test"): (lambda s: True, lambda c: True, lambda i: i // 5 in (7, 11, 15)),
}


@pytest.mark.parametrize("setup, split", sorted(RULES))
def test_dexycb_split_rules(dex, setup, split):
    root, truth, _ = dex
    pos = _positions(root)
    sub_ok, ser_ok, seq_ok = RULES[setup, split]
    expected = sorted(k for k in truth if sub_ok(DEX_SUBJECTS.index(k.split("/")[0])) and
                      ser_ok(DEX_SERIALS.index(k.split("/")[2])) and seq_ok(pos[k.split("/")[0]][k.split("/")[1]]))
    ds = _dex(root, setup, split)
    got = [ds.sample_id(i) for i in range(len(ds))]
    assert sorted(got) == expected
    # the toolkit's order: sequence, then camera, then frame
    keys = [(ds.sequences.index("/".join(g.split("/")[:2])), DEX_SERIALS.index(g.split("/")[2])) for g in got]
    assert keys == sorted(keys)
    sub, ser, seq = split_rule(setup, split)
    assert (len(sub), len(ser)) == {"s0": {"train": (10, 8), "val": (2, 8), "test": (8, 8)},
                                    "s1": {"train": (7, 8), "val": (1, 8), "test": (2, 8)},
                                    "s2": {"train": (10, 6), "val": (10, 1), "test": (10, 1)},
                                    "s3": {"train": (10, 8), "val": (10, 8), "test": (10, 8)}}[setup][split]
    assert len(seq) == {"s0": {"train": 80, "val": 20, "test": 20}, "s1": {"train": 100, "val": 100, "test": 100},
                        "s2": {"train": 100, "val": 100, "test": 100},
                        "s3": {"train": 75, "val": 10, "test": 15}}[setup][split]


def test_dexycb_strict_layout_and_bad_settings(dex, tmp_path):
    root, _, _ = dex
    with pytest.raises(DatasetFormatError, match="20200813-subject-02: subject folder not found"):
        DexYCBDataset(root, setup="s0", split="val")
    with pytest.warns(UserWarning, match="subject-02"):
        assert len(DexYCBDataset(root, setup="s0", split="val", strict=False)) == 2 * 8
    with pytest.raises(ValueError, match="setup"):
        DexYCBDataset(root, setup="s4")
    with pytest.raises(ValueError, match="split"):
        DexYCBDataset(root, split="dev")
    copy_root = tmp_path / "dex"
    shutil.copytree(root / "calibration", copy_root / "calibration")
    shutil.copytree(root / DEX_SUBJECTS[6], copy_root / DEX_SUBJECTS[6])
    victim = sorted((copy_root / DEX_SUBJECTS[6]).iterdir())[50]
    shutil.rmtree(victim)
    with pytest.raises(DatasetFormatError, match="99 sequence folders, expected 100"):
        DexYCBDataset(copy_root, setup="s1", split="val")


def test_dexycb_errors_name_the_file(dex, tmp_path):
    root, _, hm = dex
    copy_root = tmp_path / "dex"
    shutil.copytree(root / "calibration", copy_root / "calibration")
    shutil.copytree(root / DEX_SUBJECTS[6], copy_root / DEX_SUBJECTS[6])
    ds = DexYCBDataset(copy_root, setup="s1", split="val")
    sid = ds.sample_id(3)
    img = copy_root / sid.rsplit("/", 1)[0] / f"color_{sid.rsplit('/', 1)[1]}.jpg"
    img.write_bytes(img.read_bytes()[:2000])
    with pytest.raises(DatasetFormatError, match=str(img)):
        ds[3]
    label = copy_root / sid.rsplit("/", 1)[0] / f"labels_{sid.rsplit('/', 1)[1]}.npz"
    np.savez(label, joint_3d=np.zeros((1, 21, 3)), joint_2d=np.zeros((1, 21, 2)))
    with pytest.raises(DatasetFormatError, match=str(label) + r".*no \['pose_m'\]"):
        ds[3]
    np.savez(label, joint_3d=np.zeros((21, 3)), joint_2d=np.zeros((1, 21, 2)), pose_m=np.zeros((1, 51)))
    with pytest.raises(DatasetFormatError, match=str(label) + r".*'joint_3d' has shape \(21, 3\)"):
        ds[3]
    label.unlink()
    with pytest.raises(DatasetFormatError, match=r"missing file .*" + label.name):
        DexYCBDataset(copy_root, setup="s1", split="val")
    intr = copy_root / "calibration" / "intrinsics" / f"{DEX_SERIALS[2]}_640x480.yml"
    intr.write_text("depth: {fx: 1}\n")
    with pytest.raises(DatasetFormatError, match=str(intr) + r".*no key 'color'"):
        DexYCBDataset(copy_root, setup="s1", split="val")
    intr.unlink()
    with pytest.raises(DatasetFormatError, match=r"missing file .*" + intr.name):
        DexYCBDataset(copy_root, setup="s1", split="val")
    meta = sorted((copy_root / DEX_SUBJECTS[6]).iterdir())[0] / "meta.yml"
    meta.write_text("num_frames: 0\nmano_sides: [right]\n")
    with pytest.raises(DatasetFormatError, match=str(meta) + r".*no key 'mano_calib'"):
        read_meta_of(meta)


def test_dexycb_multiview_items_are_one_hand_seen_by_every_camera(dex):
    """multiview=True: an item is one (sequence, frame) with its 8 cameras; each view's extras map its
    keypoints back to the one world skeleton the fixture posed (left hands: a mirrored world)."""
    root, truth, hm = dex
    ds = DexYCBDataset(root, setup="s1", split="val", hand_model=hm, crop_size=96, multiview=True)
    assert len(ds) == 3 and ds.min_views == 8          # 3 filled sequences x 1 annotated frame
    sides = set()
    for i in range(len(ds)):
        item = ds[i]
        assert item["image"].shape == (8, 3, 96, 96) and item["camera"].tolist() == list(range(8))
        ids = item["sample_id"]
        assert {(x.rsplit("/", 2)[0], x.rsplit("/", 1)[1]) for x in ids} == {(ids[0].rsplit("/", 2)[0],
                                                                             ids[0].rsplit("/", 1)[1])}
        assert [x.split("/")[2] for x in ids] == DEX_SERIALS
        world = []
        for v, sid in enumerate(ids):
            t = truth[sid]
            R, tr = item["R"][v].double().numpy(), item["t"][v].double().numpy()
            np.testing.assert_allclose(R, t["R"], atol=1e-6)
            np.testing.assert_allclose(tr, t["t"], atol=1e-6)
            kp = item["keypoints_3d"][v].double().numpy()
            np.testing.assert_allclose(kp, t["keypoints_3d"], atol=M_TOL)
            world.append((kp - tr) @ R)
            assert bool(item["mirrored"][v]) == (t["side"] == "left")
        np.testing.assert_allclose(np.stack(world), np.broadcast_to(truth[ids[0]]["xyz_world"], (8, 21, 3)),
                                   atol=1e-5)
        sides.add(truth[ids[0]]["side"])
    assert sides == {"left", "right"}
    # s2 trains on cameras 0-5 only: 6 views per item
    s2 = _dex(root, "s2", "train", multiview=True)
    assert s2.min_views == 6 and len(s2) == 6 and s2[0]["image"].shape[0] == 6


def test_dexycb_multiview_errors_name_the_file(dex, tmp_path):
    root, _, _ = dex
    copy_root = tmp_path / "dex"
    shutil.copytree(root / "calibration", copy_root / "calibration")
    shutil.copytree(root / DEX_SUBJECTS[6], copy_root / DEX_SUBJECTS[6])
    DexYCBDataset(copy_root, setup="s1", split="val")        # single views need no extrinsics
    extr = next((copy_root / "calibration").glob("extrinsics_*")) / "extrinsics.yml"
    text = extr.read_text()
    extr.write_text(text.replace(DEX_SERIALS[3], "000000000000"))
    with pytest.raises(DatasetFormatError, match=str(extr) + f".*no key '{DEX_SERIALS[3]}'"):
        DexYCBDataset(copy_root, setup="s1", split="val", multiview=True)
    extr.unlink()
    with pytest.raises(DatasetFormatError, match=r"missing file .*extrinsics.yml"):
        DexYCBDataset(copy_root, setup="s1", split="val", multiview=True)
    extr.write_text(text)
    meta = sorted((copy_root / DEX_SUBJECTS[6]).iterdir())[4] / "meta.yml"
    meta.write_text("\n".join(ln for ln in meta.read_text().splitlines() if not ln.startswith("extrinsics")))
    with pytest.raises(DatasetFormatError, match=str(meta) + r": no key 'extrinsics'"):
        DexYCBDataset(copy_root, setup="s1", split="val", multiview=True)


def read_meta_of(meta_path):
    from finetune.datasets.dexycb import read_meta

    return read_meta(meta_path.parents[2], meta_path.parents[1].name, meta_path.parent.name)


def test_dexycb_index_cache(dex, tmp_path, monkeypatch):
    root, _, _ = dex
    cache = tmp_path / "cache" / "s1_val.npz"
    first = DexYCBDataset(root, setup="s1", split="val", index_cache=cache)
    assert cache.is_file()
    import finetune.datasets.dexycb as dexycb

    def boom(path):
        raise AssertionError(f"label {path} read although the index is cached")

    monkeypatch.setattr(dexycb, "read_label", boom)
    again = DexYCBDataset(root, setup="s1", split="val", index_cache=cache)
    assert np.array_equal(again.mapping, first.mapping)


def test_dexycb_check(dex, tmp_path):
    root, _, _ = dex
    lines = DexYCBDataset.check(root)
    assert any(ln == f"count: {DEX_SUBJECTS[6]}: 100 sequences, 48 checked frames x cameras" for ln in lines)
    assert "count: 96 checked frames x cameras, 48 with a hand, 48 without (skipped)" in lines
    assert not [ln for ln in lines if ln.startswith("problem")]
    copy_root = tmp_path / "dex"
    shutil.copytree(root / "calibration", copy_root / "calibration")
    shutil.copytree(root / DEX_SUBJECTS[6], copy_root / DEX_SUBJECTS[6])
    gone = next((copy_root / DEX_SUBJECTS[6]).glob(f"*/{DEX_SERIALS[5]}/color_000000.jpg"))
    gone.unlink()
    problems = [ln for ln in DexYCBDataset.check(copy_root, limit=1) if ln.startswith("problem")]
    assert len(problems) == 1 and str(gone) in problems[0]
    extr = next((copy_root / "calibration").glob("extrinsics_*")) / "extrinsics.yml"
    extr.write_text("extrinsics: {}\n")
    problems = [ln for ln in DexYCBDataset.check(copy_root, limit=1) if ln.startswith("problem")]
    assert len(problems) == 2 and any(f"{extr}: no key '{DEX_SERIALS[0]}'" in ln for ln in problems)


# ---------------------------------------------------------------- HanCo

@pytest.fixture(scope="module")
def hanco(hand_model, tmp_path_factory):
    """3 sequences (train 2 frames, test 2 frames, train 1 frame); MANO poses relative to a random mean."""
    root = tmp_path_factory.mktemp("hanco")
    hm = copy.copy(hand_model)
    hm.hands_mean = np.random.default_rng(9).normal(0, 0.2, 45)
    return root, write_hanco(root, hm), hm


def _hanco_key(sample_id):
    seq, cam, frame = sample_id.split("/")
    return int(seq), int(cam[3:]), int(frame)


def test_hanco_single_views(hanco):
    root, truth, hm = hanco
    ds = HanCoDataset(root, split="all", hand_model=hm)
    assert len(ds) == 5 * 8
    spots = 0
    for i in range(len(ds)):
        s = ds[i]
        t = truth[_hanco_key(s["sample_id"])]
        spots += check_sample(s, t, 128)
        assert not s["mirrored"] and s["dataset"] == "hanco" and s["topology"] == hm.template_hash
        assert s["has_mano"] == s["has_vertices"] == t["has_fit"]
        if t["has_fit"]:
            np.testing.assert_allclose(s["vertices"].double().numpy(), t["vertices"], atol=M_TOL)
            np.testing.assert_allclose(s["mano_betas"].double().numpy(), t["betas"], atol=1e-6)
            # mano_pose is in the camera frame: the model posed with it matches the root-relative mesh
            with torch.no_grad():
                v, k = hm(s["mano_pose"].double()[None], s["mano_betas"].double()[None])
            np.testing.assert_allclose((v[0] - k[0, 0]).double().numpy(), s["vertices_rel"].double().numpy(),
                                       atol=2e-6)
            np.testing.assert_allclose(s["mano_pose"][3:].double().numpy(), t["pose_world"][3:], atol=1e-6)
        else:
            assert torch.count_nonzero(s["vertices"]) == 0
        assert s["has_mask"] == (_hanco_key(s["sample_id"])[0] == 0)
        if s["has_mask"]:
            px = np.round(s["keypoints_2d"].numpy()).astype(int)
            assert s["mask"].numpy()[px[:, 1], px[:, 0]].all()
            assert s["mask"].float().mean() < 0.6
    assert spots > 50


def test_hanco_splits(hanco):
    root, _, _ = hanco
    ids = lambda ds: sorted({s[:2] for s in ds.samples})  # noqa: E731
    assert ids(HanCoDataset(root, split="train")) == [(0, 0), (0, 1), (2, 0)]
    assert ids(HanCoDataset(root, split="test")) == [(1, 0), (1, 1)]
    assert ids(HanCoDataset(root, split="all", valid_only=True)) == [(0, 0), (1, 0), (2, 0)]
    assert ids(HanCoDataset(root, split="all", sequences=[1])) == [(1, 0), (1, 1)]
    assert len(HanCoDataset(root, split="train", cameras=(2, 5))) == 3 * 2
    s = HanCoDataset(root, split="train")[0]        # no hand model: keypoints only
    assert not s["has_mano"] and not s["has_vertices"]
    with pytest.raises(ValueError, match="split"):
        HanCoDataset(root, split="val")
    with pytest.raises(ValueError, match="cameras"):
        HanCoDataset(root, cameras=(8,))


def test_hanco_multiview_frames_agree_in_the_world(hanco):
    root, truth, hm = hanco
    ds = HanCoDataset(root, split="train", multiview=True, hand_model=hm)
    assert len(ds) == 3
    for i in range(len(ds)):
        item = ds[i]
        assert item["image"].shape == (8, 3, 128, 128) and item["keypoints_3d"].shape == (8, 21, 3)
        assert item["R"].shape == (8, 3, 3) and item["t"].shape == (8, 3)
        assert item["camera"].tolist() == list(range(8)) and item["has_mask"].dtype == torch.bool
        frames = {sid.split("/")[0] + sid.split("/")[2] for sid in item["sample_id"]}
        assert len(frames) == 1 and len(item["sample_id"]) == 8
        R, t = item["R"].double(), item["t"].double()
        world = torch.einsum("vji,vkj->vki", R, item["keypoints_3d"].double() - t[:, None])   # R^T (X - t)
        key = _hanco_key(item["sample_id"][0])
        for v in range(8):
            np.testing.assert_allclose(world[v].numpy(), truth[key]["xyz"], atol=2e-6)
        if item["has_vertices"].all():
            vw = torch.einsum("vji,vkj->vki", R, item["vertices"].double() - t[:, None])
            assert float((vw - vw[0]).abs().max()) < 2e-6
    views = HanCoDataset(root, split="train", hand_model=hm).frame(0, 1)
    assert len(views) == 8 and [v["camera"] for v in views] == list(range(8))
    assert [v["sample_id"] for v in views] == [f"0000/cam{c}/00000001" for c in range(8)]


def test_hanco_dataloader(hanco):
    root, _, _ = hanco
    batch = next(iter(DataLoader(HanCoDataset(root, split="all"), batch_size=4)))
    assert batch["image"].shape == (4, 3, 128, 128) and batch["has_mask"].dtype == torch.bool
    mv = next(iter(DataLoader(HanCoDataset(root, split="train", multiview=True, cameras=(0, 3)), batch_size=2)))
    assert mv["image"].shape == (2, 2, 3, 128, 128) and mv["R"].shape == (2, 2, 3, 3)


def test_hanco_errors_name_the_file(hanco, tmp_path):
    root, _, _ = hanco
    copy_root = tmp_path / "hanco"
    shutil.copytree(root, copy_root)
    calib = copy_root / "calib" / "0000" / "00000000.json"
    calib.write_text(json.dumps({"K": json.loads(calib.read_text())["K"]}))
    ds = HanCoDataset(copy_root, split="train")
    with pytest.raises(DatasetFormatError, match=str(calib) + ".*'M'"):
        ds[0]
    calib.unlink()
    with pytest.raises(DatasetFormatError, match=r"missing file .*calib/0000/00000000\.json"):
        ds[0]
    xyz = copy_root / "xyz" / "0000" / "00000001.json"
    xyz.write_text(json.dumps([[0.0, 0.0]] * 21))
    with pytest.raises(DatasetFormatError, match=str(xyz) + r".*shape \(21, 2\), expected \(21, 3\)"):
        ds[8]
    img = copy_root / "rgb" / "0002" / "cam3" / "00000000.jpg"
    img.unlink()
    with pytest.raises(DatasetFormatError, match=str(img)):
        ds[16 + 3]
    (copy_root / "meta.json").write_text(json.dumps({"is_train": [[True]]}))
    with pytest.raises(DatasetFormatError, match=r"meta\.json.*'is_valid'"):
        HanCoDataset(copy_root)
    shutil.rmtree(copy_root / "rgb")
    with pytest.raises(DatasetFormatError, match=r"rgb: image folder not found"):
        HanCoDataset(copy_root)


def test_hanco_check(hanco, tmp_path):
    root, _, _ = hanco
    lines = HanCoDataset.check(root)
    assert "count: meta.json: 3 sequences, 5 frames (3 train, 2 test)" in lines
    assert "count: 5 checked frames, 40 readable images, 3 MANO fits" in lines
    assert not [ln for ln in lines if ln.startswith("problem")]
    copy_root = tmp_path / "hanco"
    shutil.copytree(root, copy_root)
    gone = copy_root / "rgb" / "0001" / "cam6" / "00000001.jpg"
    gone.unlink()
    problems = [ln for ln in HanCoDataset.check(copy_root) if ln.startswith("problem")]
    assert len(problems) == 1 and str(gone) in problems[0]
