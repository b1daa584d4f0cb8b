"""FreiHAND, RHD and HO-3D loaders on tiny fixtures in the official layouts; registry; `hands data check`."""
from __future__ import annotations

import argparse
import pickle
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fixtures_benchmarks import FREIHAND_OFFSET, MIRROR, OPENGL, RHD_SIZE, write_freihand, write_ho3d, write_rhd
from finetune.datasets import registry
from finetune.datasets.base import DatasetFormatError, apply_affine, box_crop, crop_transform, project, warp_image
from finetune.datasets.freihand import FreiHANDDataset, root_from_mano
from finetune.datasets.ho3d import HO3DDataset
from finetune.datasets.rhd import RHDDataset

M_TOL = 1e-6    # metres
PX_TOL = 1e-3   # pixels
# The official HO-3D list (vis_HO3D.py, jointsMapManoToSimple), typed here independently of the loader
HO3D_MANO_TO_SIMPLE = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]


@pytest.fixture(scope="module")
def hm():
    from synth.hand_model import HandModel

    return HandModel(dtype=torch.float64)


@pytest.fixture(scope="module")
def fh(hm, tmp_path_factory):
    root = tmp_path_factory.mktemp("freihand")
    return root, write_freihand(root, hm)


@pytest.fixture(scope="module")
def rhd(hm, tmp_path_factory):
    root = tmp_path_factory.mktemp("rhd")
    return root, write_rhd(root, hm)


@pytest.fixture(scope="module")
def ho3d(hm, tmp_path_factory):
    root = tmp_path_factory.mktemp("ho3d_v2")
    return root, write_ho3d(root, hm, version="v2")


@pytest.fixture(scope="module")
def ho3d_v3(hm, tmp_path_factory):
    root = tmp_path_factory.mktemp("ho3d_v3")
    return root, write_ho3d(root, hm, version="v3", unannotated=True, seed=5)


def np64(t):
    return t.double().numpy()


def assert_consistent(s):
    """keypoints_2d == project(keypoints_3d, K) of the crop; rel keys; dtypes and shapes of base.py."""
    kp3, K = np64(s["keypoints_3d"]), np64(s["K"])
    lab = kp3[:, 2] != 0
    np.testing.assert_allclose(np64(s["keypoints_2d"])[lab], project(kp3[lab], K), atol=PX_TOL)
    np.testing.assert_allclose(np64(s["keypoints_3d_rel"]), kp3 - kp3[0], atol=M_TOL)
    S = s["image"].shape[-1]
    assert s["image"].shape == (3, S, S) and s["image"].dtype == torch.float32
    assert s["mask"].shape == (S, S) and s["mask"].dtype == torch.bool
    assert s["vertices"].shape == (778, 3) and s["mano_pose"].shape == (48,) and s["mano_betas"].shape == (10,)
    assert s["visibility"].shape == (21,) and s["visibility"].dtype == torch.bool
    if s["has_vertices"]:
        np.testing.assert_allclose(np64(s["vertices_rel"]), np64(s["vertices"]) - kp3[0], atol=M_TOL)


def assert_dots(s, min_value=0.6):
    """The image is bright at every labelled keypoint inside the crop (the fixture drew disks there)."""
    img = s["image"].numpy().max(axis=0)
    S = img.shape[0]
    kp2 = np64(s["keypoints_2d"])
    lab = np64(s["keypoints_3d"])[:, 2] != 0
    hits = 0
    for (u, v), ok in zip(kp2, lab):
        x, y = int(round(u)), int(round(v))
        if ok and 1 <= x < S - 1 and 1 <= y < S - 1:
            assert img[y, x] > min_value, f"keypoint at ({u:.1f}, {v:.1f}) is on a dark pixel ({img[y, x]:.2f})"
            hits += 1
    assert hits >= 1
    assert np.mean(img > min_value) < 0.5  # and the picture is not bright everywhere


# ============================================================================ FreiHAND

def test_freihand_training_keypoints_vertices_and_versions(fh):
    root, truth = fh
    t = truth["training"]
    ds = FreiHANDDataset(root, crop_size=128, crop="full")
    n = len(t["xyz"])
    assert len(ds) == 4 * n
    A = crop_transform((111.5, 111.5), 224, 128)
    for i in range(len(ds)):
        k, idx = divmod(i, n)
        s = ds[i]
        assert s["sample_id"] == f"training/{idx + FREIHAND_OFFSET * k:08d}"
        np.testing.assert_allclose(np64(s["keypoints_3d"]), t["xyz"][idx], atol=M_TOL)
        np.testing.assert_allclose(np64(s["vertices"]), t["verts"][idx], atol=M_TOL)
        np.testing.assert_allclose(np64(s["keypoints_2d"]), apply_affine(project(t["xyz"][idx], t["K"][idx]), A),
                                   atol=PX_TOL)
        np.testing.assert_allclose(np64(s["K"]), A @ t["K"][idx], rtol=1e-6, atol=1e-4)
        assert_consistent(s)
        assert s["has_vertices"] and s["has_mask"] and not s["mirrored"] and s["topology"] == "mano"
        assert s["visibility"].all() and s["dataset"] == "freihand"
        assert_dots(s)
    only = FreiHANDDataset(root, versions=("hom", "auto"))
    assert len(only) == 2 * n
    assert only[n]["sample_id"] == f"training/{3 * FREIHAND_OFFSET:08d}"


def test_freihand_mano_vector(fh, hm):
    root, truth = fh
    t = truth["training"]
    ds = FreiHANDDataset(root, hand_model=hm)
    for idx in range(len(t["xyz"])):
        s = ds[idx]
        assert s["has_mano"]
        np.testing.assert_allclose(np64(s["mano_pose"]), t["pose_flat"][idx], atol=1e-6)
        np.testing.assert_allclose(np64(s["mano_betas"]), t["betas"][idx], atol=1e-6)
        p = ds.mano_params(idx)
        np.testing.assert_allclose(p["uv_root"], project(t["xyz"][idx], t["K"][idx])[9], atol=1e-9)
        # the model posed with the sample's flat pose is the annotated mesh up to the translation
        with torch.no_grad():
            v, _ = hm(torch.as_tensor(np64(s["mano_pose"])[None]), torch.as_tensor(np64(s["mano_betas"])[None]))
        np.testing.assert_allclose(v[0].numpy() + t["trans"][idx], t["verts"][idx], atol=1e-5)
    # sample 0 has fx == fy: the toolbox's recover_root puts keypoint 9 back exactly
    np.testing.assert_allclose(root_from_mano(t["mano"][0], t["K"][0]), t["xyz"][0][9], atol=1e-9)
    assert ds.scale(1) == pytest.approx(np.linalg.norm(t["xyz"][1][10] - t["xyz"][1][9]))
    # without a hand model there is no flat pose
    assert not FreiHANDDataset(root)[0]["has_mano"]


def test_freihand_pose_is_made_flat_with_the_models_mean(fh, hm):
    """FreiHAND's pose is relative to the mean pose: the loader adds hands_mean (OpenHand's is 0, so fake one)."""
    import copy

    root, truth = fh
    fake = copy.copy(hm)
    fake.hands_mean = np.linspace(-0.3, 0.3, 45)
    s = FreiHANDDataset(root, hand_model=fake)[1]
    expected = truth["training"]["mano"][1][:48].copy()
    expected[3:] += fake.hands_mean
    np.testing.assert_allclose(np64(s["mano_pose"]), expected, atol=1e-6)


def test_freihand_mask_and_keypoint_crop(fh):
    root, truth = fh
    t = truth["training"]
    ds = FreiHANDDataset(root, crop="keypoints", crop_size=96)
    for idx in range(len(t["xyz"])):
        s = ds[idx]
        A = box_crop(project(t["xyz"][idx], t["K"][idx]), 96)
        np.testing.assert_allclose(np64(s["keypoints_2d"]), apply_affine(project(t["xyz"][idx], t["K"][idx]), A),
                                   atol=PX_TOL)
        assert s["image"].shape == (3, 96, 96)
        expected = warp_image(t["masks"][idx].astype(np.uint8) * 255, A, 96, resample=0) > 127
        got = s["mask"].numpy()
        iou = (got & expected).sum() / max((got | expected).sum(), 1)
        assert iou > 0.9, iou
        assert_consistent(s)
        assert_dots(s)


def test_freihand_evaluation_split(fh, tmp_path):
    root, truth = fh
    t = truth["evaluation"]
    ds = FreiHANDDataset(root, split="evaluation")
    assert len(ds) == len(t["xyz"]) and ds.versions == ("gs",)
    s = ds[1]
    assert s["sample_id"] == "evaluation/00000001" and not s["has_mask"]
    np.testing.assert_allclose(np64(s["keypoints_3d"]), t["xyz"][1], atol=M_TOL)
    np.testing.assert_allclose(np64(s["vertices"]), t["verts"][1], atol=M_TOL)
    # the published evaluation set without labels: K and scale only
    bare = tmp_path / "fh"
    shutil.copytree(root, bare)
    for kind in ("xyz", "verts", "mano"):
        (bare / f"evaluation_{kind}.json").unlink()
    s = FreiHANDDataset(bare, split="evaluation")[0]
    assert not s["visibility"].any() and not s["has_vertices"] and not s["has_mano"]
    assert torch.all(s["keypoints_2d"] == 0) and torch.all(s["keypoints_3d"] == 0)
    with pytest.raises(ValueError, match="evaluation_xyz.json"):
        FreiHANDDataset(bare, split="evaluation", crop="keypoints")


def test_freihand_errors_name_the_path(fh, tmp_path):
    root, _ = fh
    bad = tmp_path / "fh"
    shutil.copytree(root, bad)
    (bad / "training" / "rgb" / f"{FREIHAND_OFFSET + 1:08d}.jpg").unlink()
    ds = FreiHANDDataset(bad)
    with pytest.raises(DatasetFormatError, match=f"{FREIHAND_OFFSET + 1:08d}.jpg"):
        ds[len(ds) // 4 + 1]
    jpg = bad / "training" / "rgb" / "00000002.jpg"
    jpg.write_bytes(jpg.read_bytes()[:400])  # truncated
    with pytest.raises(DatasetFormatError, match=r"00000002\.jpg.*(truncated|corrupt)"):
        ds[2]
    (bad / "training_K.json").write_text("[[1, 2, 3]]")
    with pytest.raises(DatasetFormatError, match=r"training_K\.json.*shape"):
        FreiHANDDataset(bad)
    (bad / "training_K.json").unlink()
    with pytest.raises(DatasetFormatError, match=r"missing file .*training_K\.json"):
        FreiHANDDataset(bad)


# ============================================================================ RHD

def _rhd_expected(item, side):
    """Expected 3D / 2D (full image, after mirroring) keypoints, derived without the loader's code."""
    K = item["K"]
    if side == "right":
        return item["right"], project(item["right"], K)
    uv = project(item["left"], K)  # the left hand in the original image ...
    uv[:, 0] = (RHD_SIZE - 1) - uv[:, 0]  # ... flipped left-right with the image
    return item["left"] @ MIRROR, uv


def test_rhd_dominant_hand_reorder_and_mirror(rhd):
    root, truth = rhd
    items = truth["training"]
    ds = RHDDataset(root)  # root holds RHD_published_v2
    assert len(ds) == len(items)
    assert {it["dominant"] for it in items} == {"left", "right"}
    for i, it in enumerate(items):
        s = ds[i]
        side = it["dominant"]
        kp3, uv = _rhd_expected(it, side)
        assert s["sample_id"] == f"training/{i:05d}/{side}" and s["mirrored"] == (side == "left")
        np.testing.assert_allclose(np64(s["keypoints_3d"]), kp3, atol=M_TOL)
        np.testing.assert_allclose(np64(s["keypoints_2d"]), apply_affine(uv, box_crop(uv, 128)), atol=PX_TOL)
        assert np.array_equal(s["visibility"].numpy(), it[f"vis_{side}"])
        assert s["has_mask"] and not s["has_vertices"] and not s["has_mano"]
        assert_consistent(s)
        assert_dots(s)
    # the left sample of image 0 equals the right hand the fixture mirrored to make it
    np.testing.assert_allclose(np64(ds[0]["keypoints_3d"]), items[0]["left_as_right"], atol=M_TOL)


def test_rhd_mask_of_the_chosen_hand(rhd):
    root, truth = rhd
    it = truth["training"][0]
    assert it["dominant"] == "left"
    s = RHDDataset(root / "RHD_published_v2", crop_size=64)[0]
    _, uv = _rhd_expected(it, "left")
    left = ((it["labels"] >= 2) & (it["labels"] <= 17))[:, ::-1]
    expected = warp_image(np.ascontiguousarray(left.astype(np.uint8) * 255), box_crop(uv, 64), 64, resample=0) > 127
    assert s["mask"].any() and np.array_equal(s["mask"].numpy(), expected)


def test_rhd_every_visible_hand(rhd):
    root, truth = rhd
    ds = RHDDataset(root, hands="visible")
    expected = [(i, side) for i, it in enumerate(truth["training"]) for side in ("left", "right")
                if it[f"vis_{side}"].any()]
    assert [(int(sid), side) for sid, side in ds.index] == expected
    assert (3, "left") not in expected  # image 3's left hand is outside the picture
    for j, (i, side) in enumerate(expected):
        s = ds[j]
        np.testing.assert_allclose(np64(s["keypoints_3d"]), _rhd_expected(truth["training"][i], side)[0], atol=M_TOL)
        assert_consistent(s)
    assert len(RHDDataset(root, hands="visible", min_visible=22)) == 0
    ev = RHDDataset(root, split="evaluation")
    assert len(ev) == len(truth["evaluation"]) and ev[1]["sample_id"].startswith("evaluation/00001/")


def test_rhd_depth_encoding(rhd):
    root, truth = rhd
    ds = RHDDataset(root)
    d = ds.read_depth(1)
    np.testing.assert_allclose(d, truth["training"][1]["depth"], atol=1e-12)
    assert abs(d[0, 0] - 3.0) <= 5.0 / 65535  # the fixture's background depth, within one step
    raw = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(ds.path("depth", 1)).convert("RGB"))
    np.testing.assert_allclose(d, (raw[..., 0] * 256.0 + raw[..., 1]) / 65535.0 * 5.0)


def test_rhd_annotation_errors(rhd, tmp_path):
    root, _ = rhd
    bad = tmp_path / "rhd"
    shutil.copytree(root, bad)
    pkl = bad / "RHD_published_v2" / "training" / "anno_training.pickle"
    anno = pickle.loads(pkl.read_bytes(), encoding="latin1")
    del anno[2]["K"]
    anno[1]["xyz"] = anno[1]["xyz"][:21]
    pkl.write_bytes(pickle.dumps(anno, protocol=2))
    ds = RHDDataset(bad)
    with pytest.raises(DatasetFormatError, match=r"anno_training\.pickle \[sample 2\].*'K'"):
        ds[2]
    with pytest.raises(DatasetFormatError, match=r"sample 1\].*'xyz' has shape \(21, 3\), expected \(42, 3\)"):
        ds[1]
    pkl.write_bytes(b"not a pickle")
    with pytest.raises(DatasetFormatError, match="anno_training.pickle"):
        RHDDataset(bad)


# ============================================================================ HO-3D

def test_ho3d_v2_train(ho3d, hm):
    root, truth = ho3d
    ds = HO3DDataset(root, hand_model=hm)
    assert ds.version == "v2" and len(ds) == len(truth["train"])
    for i, it in enumerate(truth["train"]):
        s = ds[i]
        assert s["sample_id"] == f"train/{it['name']}"
        np.testing.assert_allclose(np64(s["keypoints_3d"]), it["kps_cv"], atol=M_TOL)
        uv = project(it["kps_cv"], it["K"])
        np.testing.assert_allclose(np64(s["keypoints_2d"]), apply_affine(uv, box_crop(uv, 128)), atol=PX_TOL)
        # vertices: the MANO layer (same code path, OpenHand standing in) + handTrans, flipped to OpenCV
        with torch.no_grad():
            v, _ = hm(torch.as_tensor(it["pose"][None]), torch.as_tensor(it["betas"][None]))
        np.testing.assert_allclose(np64(s["vertices"]), (v[0].numpy() + it["trans"]) @ OPENGL, atol=M_TOL)
        assert s["topology"] == hm.template_hash and s["has_vertices"] and s["has_mano"] and not s["mirrored"]
        # the sample's MANO pose (global orientation moved to OpenCV) gives the same mesh up to a translation
        with torch.no_grad():
            v2, _ = hm(s["mano_pose"].double()[None], s["mano_betas"].double()[None])
        d = np64(s["vertices"]) - v2[0].numpy()
        np.testing.assert_allclose(d, np.broadcast_to(d.mean(0), d.shape), atol=1e-5)
        np.testing.assert_allclose(np64(s["mano_pose"])[3:], it["pose"][3:], atol=1e-6)
        assert_consistent(s)
        assert_dots(s)


def test_ho3d_joint_order_is_the_official_map(ho3d):
    root, truth = ho3d
    meta = pickle.loads((root / "train" / "ABF10" / "meta" / "0001.pkl").read_bytes(), encoding="latin1")
    s = HO3DDataset(root)[1]
    expected = np.asarray(meta["handJoints3D"], dtype=np.float64)[HO3D_MANO_TO_SIMPLE] * np.array([1.0, -1.0, -1.0])
    np.testing.assert_allclose(np64(s["keypoints_3d"]), expected, atol=M_TOL)
    assert not s["has_vertices"] and s["topology"] == "mano" and s["has_mano"]


def test_ho3d_evaluation_split(ho3d):
    root, truth = ho3d
    ds = HO3DDataset(root, split="evaluation")
    for i, it in enumerate(truth["evaluation"]):
        s = ds[i]
        np.testing.assert_allclose(np64(s["keypoints_3d"])[0], it["root_cv"], atol=M_TOL)
        assert s["visibility"].tolist() == [True] + [False] * 20
        A = box_crop(np.asarray(it["bbox"], dtype=np.float64).reshape(2, 2), 128)
        np.testing.assert_allclose(np64(s["keypoints_2d"])[0], apply_affine(project(it["root_cv"][None], it["K"]),
                                                                            A)[0], atol=PX_TOL)
        assert_consistent(s)


def test_ho3d_v3_jpg_and_unannotated_frames(ho3d_v3, hm):
    root, truth = ho3d_v3
    ds = HO3DDataset(root)
    assert ds.version == "v3" and len(ds) == len(truth["train"])
    last = len(ds) - 1
    assert truth["train"][last].get("unannotated")
    with pytest.raises(DatasetFormatError, match=r"ABF10/meta/0002\.pkl.*no hand annotation"):
        ds[last]
    kept = HO3DDataset(root, skip_unannotated=True, hand_model=hm)
    assert len(kept) == len(ds) - 1
    for i in range(len(kept)):
        s = kept[i]
        np.testing.assert_allclose(np64(s["keypoints_3d"]), truth["train"][i]["kps_cv"], atol=M_TOL)
        assert_consistent(s)
        assert_dots(s)
    lines = HO3DDataset.check(root)
    assert not [ln for ln in lines if ln.startswith("problem")]
    assert any("1 frames without hand annotation" in ln for ln in lines)


def test_ho3d_depth_and_list_errors(ho3d, tmp_path):
    root, truth = ho3d
    ds = HO3DDataset(root)
    np.testing.assert_allclose(ds.read_depth(0), truth["train"][0]["depth_m"], atol=0.00012498664727900177 / 2 + 1e-12)
    bad = tmp_path / "ho3d"
    shutil.copytree(root, bad)
    (bad / "train.txt").write_text("ABF10/0000\nABF10-0001\n")
    with pytest.raises(DatasetFormatError, match=r"train\.txt:2: 'ABF10-0001' is not 'SEQ/FRAME'"):
        HO3DDataset(bad)
    (bad / "train.txt").write_text("ABF10/0000\n")
    meta = bad / "train" / "ABF10" / "meta" / "0000.pkl"
    m = pickle.loads(meta.read_bytes(), encoding="latin1")
    del m["handBeta"]
    meta.write_bytes(pickle.dumps(m, protocol=2))
    with pytest.raises(DatasetFormatError, match=r"0000\.pkl: missing key\(s\) \['handBeta'\]"):
        HO3DDataset(bad)[0]


# ============================================================================ all loaders together

def test_samples_of_all_loaders_collate_into_one_batch(fh, rhd, ho3d, hm):
    from finetune.mixture import MixtureDataset, MixtureSampler

    mix = MixtureDataset({"freihand": FreiHANDDataset(fh[0], hand_model=hm), "rhd": RHDDataset(rhd[0]),
                          "ho3d": HO3DDataset(ho3d[0], hand_model=hm)})
    sampler = MixtureSampler(mix, {"freihand": 1.0, "rhd": 0.5, "ho3d": 0.5}, seed=3)
    batch = next(iter(DataLoader(mix, batch_size=len(sampler), sampler=sampler)))
    assert batch["image"].shape == (len(sampler), 3, 128, 128)
    assert set(batch["dataset"]) == {"freihand", "rhd", "ho3d"}


# ============================================================================ registry and `hands data check`

def test_registry():
    assert registry.get("FreiHAND") is FreiHANDDataset
    assert registry.get("rhd") is RHDDataset and registry.get("ho3d") is HO3DDataset
    assert {"freihand", "rhd", "ho3d"} <= set(registry.names())

    class Other(torch.utils.data.Dataset):
        @classmethod
        def check(cls, root):
            return ["count: 0 samples"]

    registry.register("other-test", Other)
    assert registry.get("other-test") is Other
    registry.register("lazy-test", "finetune.datasets.rhd:RHDDataset")
    assert registry.get("lazy-test") is RHDDataset
    with pytest.raises(ValueError, match="unknown dataset 'nope'.*freihand"):
        registry.get("nope")


def _run_cli(argv, capsys):
    from hands.cli_data import add_parser

    parser = argparse.ArgumentParser(prog="hands")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = 0
    try:
        args.fn(args)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().out


def test_data_check_clean_fixtures(fh, rhd, ho3d, capsys):
    for name, root in (("freihand", fh[0]), ("rhd", rhd[0]), ("ho3d", ho3d[0])):
        code, out = _run_cli(["data", "check", name, str(root)], capsys)
        assert code == 0, out
        assert "0 problems" in out and "count:" in out
    code, out = _run_cli(["data", "check", "freihand", str(fh[0])], capsys)
    assert "training/rgb version 'auto': 3 of 3 images readable" in out
    code, out = _run_cli(["data", "list"], capsys)
    assert "freihand" in out.split()


def test_data_check_names_a_deleted_or_truncated_image(fh, rhd, ho3d, tmp_path, capsys):
    f = tmp_path / "fh"
    shutil.copytree(fh[0], f)
    gone = f / "training" / "rgb" / f"{2 * FREIHAND_OFFSET + 1:08d}.jpg"
    gone.unlink()
    code, out = _run_cli(["data", "check", "freihand", str(f)], capsys)
    assert code == 1
    assert f"problem: missing file {gone}" in out and "1 problem" in out

    r = tmp_path / "rhd"
    shutil.copytree(rhd[0], r)
    png = r / "RHD_published_v2" / "training" / "color" / "00002.png"
    png.write_bytes(png.read_bytes()[:300])
    code, out = _run_cli(["data", "check", "rhd", str(r)], capsys)
    assert code == 1 and str(png) in out and "truncated" in out

    h = tmp_path / "ho3d"
    shutil.copytree(ho3d[0], h)
    rgb = h / "train" / "MC1" / "rgb" / "0001.png"
    rgb.unlink()
    code, out = _run_cli(["data", "check", "ho3d", str(h), "--limit", "10"], capsys)
    assert code == 1 and f"missing file {rgb}" in out

    code, out = _run_cli(["data", "check", "freihand", str(tmp_path / "empty")], capsys)
    assert code == 1 and "training_K.json" in out
