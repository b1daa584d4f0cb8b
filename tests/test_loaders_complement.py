"""MobRecon's released complement data and our own complement shards as base.py samples."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fixtures_more_benchmarks import dot_errors, write_complement_shards, write_mobrecon_complement
from finetune.datasets.base import DatasetFormatError, apply_affine, box_crop, project
from finetune.datasets.complement import ComplementShardsDataset
from finetune.datasets.mobrecon_complement import MobReconComplementDataset, view_of
from synth.reader import MultiViewSampler

M_TOL = 1e-6
PX_TOL = 1e-3
DOT_TOL = 0.2    # full-image pixels


def check_sample(s, t, crop_size=128) -> int:
    kp3 = s["keypoints_3d"].double().numpy()
    np.testing.assert_allclose(kp3, t["keypoints_3d"], atol=M_TOL, rtol=0)
    np.testing.assert_allclose(s["keypoints_3d_rel"].double().numpy(), t["keypoints_3d"] - t["keypoints_3d"][0],
                               atol=M_TOL, rtol=0)
    np.testing.assert_allclose(s["vertices"].double().numpy(), t["vertices"], atol=M_TOL, rtol=0)
    np.testing.assert_allclose(s["vertices_rel"].double().numpy(), t["vertices"] - t["keypoints_3d"][0],
                               atol=M_TOL, rtol=0)
    uv = project(t["keypoints_3d"], t["K"])
    A = box_crop(uv, crop_size)
    np.testing.assert_allclose(s["keypoints_2d"].double().numpy(), apply_affine(uv, A), atol=PX_TOL, rtol=0)
    np.testing.assert_allclose(project(kp3, s["K"].double().numpy()), s["keypoints_2d"].double().numpy(),
                               atol=PX_TOL, rtol=0)
    assert s["image"].shape == (3, crop_size, crop_size) and s["mask"].shape == (crop_size, crop_size)
    assert s["has_mask"] and s["has_vertices"]
    px = np.round(s["keypoints_2d"].numpy()).astype(int)
    inside = np.all((px >= 0) & (px < crop_size), axis=1)
    assert s["mask"].numpy()[px[inside, 1], px[inside, 0]].all()
    scale = A[0, 0]
    err = dot_errors(s["image"].numpy(), s["keypoints_2d"].numpy(), t["dot_radius"] * scale) / scale
    assert np.all(err < DOT_TOL), (s["sample_id"], err)
    return len(err)


# ---------------------------------------------------------------- MobRecon's complement data

@pytest.fixture(scope="module")
def mob(hand_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("comphand")
    return root, write_mobrecon_complement(root, hand_model)


def test_mobrecon_complement_samples(mob):
    root, truth = mob
    ds = MobReconComplementDataset(root)
    expected = sorted(k for k, t in truth.items() if t["view"] != 215)   # MobRecon drops view 215
    assert [ds.sample_id(i) for i in range(len(ds))] == expected and len(ds) == 8
    spots = 0
    for i in range(len(ds)):
        s = ds[i]
        t = truth[s["sample_id"]]
        spots += check_sample(s, t)
        assert s["mirrored"] and not s["has_mano"] and s["topology"] == "mano"
        assert s["dataset"] == "mobrecon_complement" and s["visibility"].all()
    assert spots > 40
    # the mirrored principal point is (W - 1) - cx in the pixel-centre convention (MobRecon writes 256 - cx)
    K256 = np.load(root / "K256.npy")
    s = ds[0]
    A = box_crop(project(truth[s["sample_id"]]["keypoints_3d"], truth[s["sample_id"]]["K"]), 128)
    np.testing.assert_allclose(np.linalg.solve(A, s["K"].double().numpy())[0, 2], 255 - K256[0, 2], atol=1e-4)


def test_mobrecon_complement_settings(mob, tmp_path):
    root, truth = mob
    assert len(MobReconComplementDataset(root, exclude_views=())) == 12
    assert len(MobReconComplementDataset(root, image_glob="data/base_pose/**/pic256/**/*.png")) == 4
    assert view_of("17.0040.png") == 40 and view_of("a.7.b.png") == 7
    with pytest.raises(ValueError, match="not '<prefix>.<view>.png'"):
        view_of("0040.png")
    # a regressor given directly replaces j_reg.npy
    j_reg = np.load(root / "j_reg.npy")
    s = MobReconComplementDataset(root, joint_regressor=j_reg * 0 + 1.0 / 778)[0]
    np.testing.assert_allclose(s["keypoints_3d"][0].double().numpy(), s["vertices"].double().numpy().mean(0),
                               atol=M_TOL)
    with pytest.raises(ValueError, match="joint_regressor has shape"):
        MobReconComplementDataset(root, joint_regressor=j_reg[:16])


def test_mobrecon_complement_errors_name_the_file(mob, tmp_path):
    root, _ = mob
    copy_root = tmp_path / "comphand"
    shutil.copytree(root, copy_root)
    ds = MobReconComplementDataset(copy_root)
    obj = copy_root / "data" / "base_pose" / "0003" / "model_mano" / "0.obj"
    obj.write_text("".join(obj.read_text().splitlines(keepends=True)[:700]))
    with pytest.raises(DatasetFormatError, match=str(obj) + r": 700 vertices, expected 778"):
        ds[0]
    obj.unlink()
    with pytest.raises(DatasetFormatError, match=r"missing file .*model_mano/0\.obj"):
        ds[0]
    mask = copy_root / "data" / "base_pose" / "0003" / "mask256" / "40.png"
    mask.write_bytes(mask.read_bytes()[:100])
    with pytest.raises(DatasetFormatError, match=str(mask)):
        ds[1]
    (copy_root / "K256.npy").unlink()
    with pytest.raises(DatasetFormatError, match=r"missing file .*K256\.npy"):
        MobReconComplementDataset(copy_root)
    np.save(copy_root / "K256.npy", np.eye(4))
    with pytest.raises(DatasetFormatError, match=r"K256\.npy.*shape \(4, 4\), expected \(3, 3\)"):
        MobReconComplementDataset(copy_root)
    np.save(copy_root / "K256.npy", np.eye(3))
    bad = copy_root / "data" / "base_pose" / "0003" / "pic256" / "0" / "noview.png"
    bad.write_bytes(b"")
    with pytest.raises(DatasetFormatError, match=str(bad)):
        MobReconComplementDataset(copy_root)
    with pytest.raises(DatasetFormatError, match="no images match"):
        MobReconComplementDataset(copy_root, image_glob="nothing/**/*.png")


def test_mobrecon_complement_check(mob, tmp_path):
    root, _ = mob
    lines = MobReconComplementDataset.check(root)
    assert lines[:2] == ["count: 8 images in 2 pose folders", "count: 4 distinct meshes / masks checked"]
    copy_root = tmp_path / "comphand"
    shutil.copytree(root, copy_root)
    gone = copy_root / "data" / "trans_pose_batch1" / "0871" / "mask256" / "40.png"
    gone.unlink()
    img = copy_root / "data" / "base_pose" / "0003" / "pic256" / "17" / "17.0000.png"
    img.write_bytes(img.read_bytes()[:200])
    problems = [ln for ln in MobReconComplementDataset.check(copy_root) if ln.startswith("problem")]
    assert len(problems) == 2 and str(gone) in " ".join(problems) and str(img) in " ".join(problems)
    assert MobReconComplementDataset.check(tmp_path / "nowhere")[0].startswith("problem")


# ---------------------------------------------------------------- our complement shards

@pytest.fixture(scope="module")
def shards(hand_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("complement")
    return root, write_complement_shards(root, hand_model)


def test_complement_shards_samples(shards, hand_model):
    root, truth = shards
    ds = ComplementShardsDataset(root)
    assert len(ds) == 6
    spots = 0
    for i in range(len(ds)):
        s = ds[i]
        t = truth[s["sample_id"]]
        spots += check_sample(s, t)
        assert not s["mirrored"] and s["has_mano"] and s["dataset"] == "complement"
        assert s["topology"] == hand_model.template_hash
        assert s["visibility"].numpy().tolist() == t["visibility"].tolist()
        # mano_pose carries the camera-frame global rotation: the model posed with it is the mesh
        np.testing.assert_allclose(s["mano_pose"][3:].double().numpy(), t["params"][3:], atol=1e-6)
        with torch.no_grad():
            v, k = hand_model(s["mano_pose"][None], s["mano_betas"][None])
        np.testing.assert_allclose((v[0] - k[0, 0]).double().numpy(), s["vertices_rel"].double().numpy(), atol=2e-6)
    assert spots >= 8      # the dots really measured (10 with OpenHand 2's fixture samples, 11+ with OpenHand 1's)
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 3, 128, 128) and batch["has_mano"].dtype == torch.bool


def test_complement_shards_filters_and_crop_size(shards):
    root, truth = shards
    ds = ComplementShardsDataset(root, poses=[17], views=[0, 101], crop_size=64)
    assert sorted(ds[i]["sample_id"] for i in range(len(ds))) == ["0017_000", "0017_101"]
    check_sample(ds[0], truth[ds[0]["sample_id"]], crop_size=64)
    with pytest.raises(DatasetFormatError, match="not found"):
        ComplementShardsDataset(root / "missing")


def test_complement_shards_multiview(shards):
    root, truth = shards
    ds = ComplementShardsDataset(root, multiview=2, seed=3)
    assert len(ds) == 2
    first = [ds[i]["view_id"].tolist() for i in range(2)]
    assert first == [ds[i]["view_id"].tolist() for i in range(2)]          # deterministic
    epochs = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        epochs.add(tuple(ds[0]["view_id"].tolist()))
    assert len(epochs) > 1
    for i in range(2):
        item = ds[i]
        assert item["image"].shape == (2, 3, 128, 128) and item["R"].shape == (2, 3, 3)
        assert len(set(k[:4] for k in item["sample_id"])) == 1
        R, t = item["R"].double(), item["t"].double()
        model = torch.einsum("vji,vkj->vki", R, item["keypoints_3d"].double() - t[:, None])   # R^T (X - t)
        expected = truth[item["sample_id"][0]]["model_kps"]
        for v in range(2):
            np.testing.assert_allclose(model[v].numpy(), expected, atol=2e-6)
    every = ComplementShardsDataset(root, multiview="all")[1]
    assert every["view_id"].tolist() == [0, 40, 101]
    with pytest.raises(ValueError, match="fewer than multiview=4"):
        ComplementShardsDataset(root, multiview=4)
    # single-view mode works with the reader's multi-view sampler
    single = ComplementShardsDataset(root)
    groups = list(MultiViewSampler(single, num_views=3, seed=0))
    assert len(groups) == 2 and all(len({single[i]["sample_id"][:4] for i in g}) == 1 for g in groups)


def test_complement_topology_of_a_mano_render(shards, tmp_path):
    root, _ = shards
    copy_root = tmp_path / "mano"
    shutil.copytree(root, copy_root)
    d = json.loads((copy_root / "dataset.json").read_text())
    d["hand_model"]["name"] = "MANO"
    (copy_root / "dataset.json").write_text(json.dumps(d))
    assert ComplementShardsDataset(copy_root)[0]["topology"] == "mano"


def test_complement_check(shards, tmp_path):
    root, _ = shards
    lines = ComplementShardsDataset.check(root)
    assert "count: shards: 2 complete (6 samples), 0 incomplete, 0 missing" in lines
    assert not [ln for ln in lines if ln.startswith("problem")]
    copy_root = tmp_path / "broken"
    shutil.copytree(root, copy_root)
    tar = copy_root / "shards" / "0017.tar"
    tar.write_bytes(tar.read_bytes()[:3000])
    problems = [ln for ln in ComplementShardsDataset.check(copy_root) if ln.startswith("problem")]
    assert len(problems) == 1 and "pose 17" in problems[0]
    assert ComplementShardsDataset.check(tmp_path / "nowhere")[0].startswith("problem")
