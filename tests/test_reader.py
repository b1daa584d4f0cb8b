"""synth.reader: random access into shards, filters, DataLoader workers, multi-view batches."""
from __future__ import annotations

import json
import pickle
import shutil
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from synth.reader import ComplementDataset, MultiViewSampler, collate_multiview
from synth.shards import ShardWriter, config_hash
from synth.tables import write_tables

SIZE = 32
POSES = (3, 17)           # not 0..P-1, so ids and rows cannot be confused
VIEWS = (0, 40, 101)
HDRIS = [{"id": "studio", "split": "train"}, {"id": "sunset", "split": "train"}, {"id": "sky", "split": "heldout"}]


def _hdri_of(pose_id, view_id):
    return HDRIS[(pose_id + view_id) % 3]["id"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """2 poses x 3 views at 32x32, written with the real hand model's tables; returns (root, truth)."""
    from synth.camera import intrinsics
    from synth.hand_model import HandModel
    from synth.render_mesh import build_render_mesh
    from synth.rig import RigConfig, build_views

    root = tmp_path_factory.mktemp("complement")
    hm = HandModel()
    params = np.zeros((2, 48))
    params[1, 3:] = np.random.default_rng(1).normal(0, 0.3, 45)
    with torch.no_grad():
        verts, kps = (a.double().numpy() for a in hm(torch.as_tensor(params, dtype=torch.float32)))
    rm = build_render_mesh(hm.faces, hm.num_vertices)
    views = [v for v in build_views(hm.joint_regressor @ hm.template, RigConfig(image_size=SIZE)) if v.view_id in VIEWS]
    cfg = {"seed": 7, "image_size": SIZE}
    write_tables(
        root,
        {"config": cfg, "versions": {}, "config_hash": config_hash(cfg),
         "hand_model": {"name": hm.name, "template_hash": hm.template_hash, "num_vertices": 778}},
        poses={"pose_ids": np.array(POSES), "params": params, "vertices": verts, "keypoints": kps,
               "dense": rm.densify(verts)},
        views={"view_ids": np.array(VIEWS), "K": np.stack([v.K for v in views]), "R": np.stack([v.R for v in views]),
               "t": np.stack([v.t for v in views]), "longitude": np.array([v.longitude for v in views]),
               "latitude": np.array([v.latitude for v in views])},
        mapping={"M": rm.M, "S": rm.S, "faces": hm.faces, "dense_faces": rm.faces},
        hdris=HDRIS)
    K = intrinsics(SIZE, SIZE, 30.0)
    truth = {}
    for p_row, pid in enumerate(POSES):
        with ShardWriter(root, pid, config_hash(cfg)) as w:
            for view in views:
                rng = np.random.default_rng([pid, view.view_id])
                key = f"{pid:04d}_{view.view_id:03d}"
                cam = kps[p_row] @ view.R.T + view.t
                uv = cam[:, :2] / cam[:, 2:] * K[0, 0] + K[:2, 2]   # (K @ X) / z, written out
                mask = rng.random((SIZE, SIZE)) > 0.6
                depth = np.where(mask, rng.uniform(0.4, 0.6, (SIZE, SIZE)), 0.0)
                ann = {"pose_id": pid, "view_id": view.view_id, "K": K.tolist(), "R": view.R.tolist(),
                       "t": view.t.tolist(), "image_size": [SIZE, SIZE], "keypoints_2d": uv.tolist(),
                       "keypoints_3d": cam.tolist(), "visibility": (rng.random(21) > 0.2).tolist(),
                       "hdri": {"id": _hdri_of(pid, view.view_id), "rotation_deg": 30.0, "strength": 1.0},
                       "skin": {"tone": 0.3}, "crop_box": [0, 0, SIZE, SIZE], "seed": 1}
                rgb = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
                w.add(key, rgb=rgb, depth_m=depth, mask=mask, annotation=ann)
                truth[key] = {"rgb": rgb, "depth": depth, "mask": mask, "ann": ann,
                              "verts_cam": verts[p_row] @ view.R.T + view.t}
    return root, truth


def _check_item(item, truth):
    key = item["key"]
    assert key == f"{item['pose_id']:04d}_{item['view_id']:03d}"
    t = truth[key]
    ann = t["ann"]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, SIZE, SIZE)
    assert torch.equal(item["image"], torch.from_numpy(t["rgb"].transpose(2, 0, 1).astype(np.float32) / 255))
    assert item["mask"].dtype == torch.bool and np.array_equal(item["mask"].numpy(), t["mask"])
    assert item["depth"].dtype == torch.float32
    assert np.abs(item["depth"].numpy() - t["depth"]).max() <= 0.0005 + 1e-6
    assert np.all(item["depth"].numpy()[~t["mask"]] == 0)
    for k in ("K", "R", "t", "keypoints_2d", "keypoints_3d"):
        assert item[k].dtype == torch.float32
        np.testing.assert_allclose(item[k].numpy(), np.asarray(ann[k]), rtol=1e-6, atol=1e-7)
    assert item["keypoints_2d"].shape == (21, 2) and item["keypoints_3d"].shape == (21, 3)
    # 2D keypoints are the projections of the 3D ones (OpenCV pixel centres)
    k3, K = item["keypoints_3d"].double(), item["K"].double()
    np.testing.assert_allclose(((k3 @ K.T)[:, :2] / k3[:, 2:]).numpy(), item["keypoints_2d"].numpy(), atol=1e-4)
    assert item["vertices"].shape == (778, 3)
    np.testing.assert_allclose(item["vertices"].numpy(), t["verts_cam"], atol=2e-6)
    assert item["visibility"].dtype == torch.bool and item["visibility"].tolist() == ann["visibility"]
    assert item["hdri_id"] == ann["hdri"]["id"]


def test_random_access_reads_the_right_sample(dataset):
    root, truth = dataset
    ds = ComplementDataset(root)
    assert len(ds) == 6
    assert sorted(s.key for s in ds.samples) == sorted(truth)
    for i in np.random.default_rng(0).permutation(len(ds)).tolist() * 2:
        _check_item(ds[i], truth)


def test_vertices_are_in_the_camera_frame(dataset):
    root, truth = dataset
    ds = ComplementDataset(root)
    item = ds[4]
    model = np.load(root / "poses.npz")["vertices"][POSES.index(item["pose_id"])].astype(np.float64)
    R, t = item["R"].double().numpy(), item["t"].double().numpy()
    np.testing.assert_allclose(item["vertices"].numpy(), model @ R.T + t, atol=2e-6)
    # and the camera frame is the one the keypoints live in: the fingertip vertices are keypoints 4, 8, ...
    assert item["vertices"][:, 2].min() > 0


@pytest.mark.parametrize("kw, expected", [
    ({"poses": [17]}, lambda p, v: p == 17),
    ({"views": [40, 101]}, lambda p, v: v in (40, 101)),
    ({"hdri_split": "heldout"}, lambda p, v: _hdri_of(p, v) == "sky"),
    ({"hdri_split": "train", "poses": [3], "views": (0, 40)},
     lambda p, v: p == 3 and v < 100 and _hdri_of(p, v) != "sky"),
])
def test_filters(dataset, kw, expected):
    root, truth = dataset
    ds = ComplementDataset(root, **kw)
    want = sorted(k for k in truth if expected(int(k[:4]), int(k[5:])))
    assert sorted(ds[i]["key"] for i in range(len(ds))) == want
    for i in range(len(ds)):
        _check_item(ds[i], truth)


def test_hdri_filter_without_manifest_index(dataset, tmp_path):
    """Manifests without the hdri_ids index still filter, from the per-sample annotations."""
    root, truth = dataset
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    for man in (copy / "shards").glob("*.json"):
        m = json.loads(man.read_text())
        del m["hdri_ids"]
        man.write_text(json.dumps(m))
    for split in ("train", "heldout"):
        keys = sorted(s.key for s in ComplementDataset(copy, hdri_split=split).samples)
        assert keys == sorted(k for k in truth if (_hdri_of(int(k[:4]), int(k[5:])) == "sky") == (split == "heldout"))


def test_bad_filters(dataset, tmp_path):
    root, _ = dataset
    with pytest.raises(ValueError, match=r"unknown pose id\(s\) \[4\]"):
        ComplementDataset(root, poses=[3, 4])
    with pytest.raises(ValueError, match=r"unknown view id\(s\) \[1\]"):
        ComplementDataset(root, views=[1])
    with pytest.raises(ValueError, match="hdri_split"):
        ComplementDataset(root, hdri_split="test")
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / "hdris.json").write_text(json.dumps({"entries": [{"id": "studio", "split": "train"}]}))
    with pytest.raises(ValueError, match="HDRI '(sky|sunset)'.*not in .*hdris.json"):
        ComplementDataset(copy, hdri_split="train")


@pytest.mark.parametrize("damage", ["no_manifest", "truncated", "partial_only"])
def test_incomplete_shards_are_skipped_with_a_warning(dataset, tmp_path, damage):
    root, truth = dataset
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    if damage == "no_manifest":
        (copy / "shards/0003.json").unlink()
    elif damage == "truncated":
        tar = copy / "shards/0003.tar"
        tar.write_bytes(tar.read_bytes()[:5000])
    else:
        (copy / "shards/0003.tar").rename(copy / "shards/0003.tar.1234abcd.partial")
        (copy / "shards/0003.json").unlink()
    with pytest.warns(UserWarning, match=r"skipping 1 incomplete shard\(s\) of 2"):
        ds = ComplementDataset(copy)
    assert len(ds) == 3 and {ds[i]["pose_id"] for i in range(3)} == {17}
    assert [p for p, _ in ds.skipped["incomplete"]] == [3]
    for i in range(len(ds)):
        _check_item(ds[i], truth)


def test_missing_shards_warn_and_none_at_all_is_an_error(dataset, tmp_path):
    root, _ = dataset
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    for f in (copy / "shards").glob("0017.*"):
        f.unlink()
    with pytest.warns(UserWarning, match=r"1 of 2 selected pose\(s\) have no shard"):
        assert len(ComplementDataset(copy)) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="no samples match.*1 missing"):
            ComplementDataset(copy, poses=[17])


def test_config_hash_mismatch_makes_shards_incomplete(dataset, tmp_path):
    root, _ = dataset
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    d = json.loads((copy / "dataset.json").read_text())
    (copy / "dataset.json").write_text(json.dumps({**d, "config_hash": "from-another-config"}))
    with pytest.warns(UserWarning, match="skipping 1 incomplete"):
        with pytest.raises(ValueError, match="no samples"):
            ComplementDataset(copy, poses=[3])


def test_dataloader_with_workers(dataset):
    root, truth = dataset
    ds = ComplementDataset(root)
    _check_item(ds[5], truth)  # the parent opens a handle before the workers fork
    loader = DataLoader(ds, batch_size=2, shuffle=True, num_workers=2,
                        generator=torch.Generator().manual_seed(0))
    seen = []
    for batch in loader:
        assert batch["image"].shape == (2, 3, SIZE, SIZE) and batch["vertices"].shape == (2, 778, 3)
        for j, key in enumerate(batch["key"]):
            seen.append(key)
            _check_item({k: (v[j] if not isinstance(v, list) else v[j]) for k, v in batch.items()}
                        | {"pose_id": int(batch["pose_id"][j]), "view_id": int(batch["view_id"][j])}, truth)
    assert sorted(seen) == sorted(truth)
    _check_item(ds[0], truth)  # and the parent's own handles still work


def test_pickled_dataset_reads_the_same(dataset):
    root, truth = dataset
    ds = ComplementDataset(root)
    ds[2]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._handles == {} and ds._handles
    _check_item(clone[2], truth)
    assert torch.equal(clone[2]["image"], ds[2]["image"])
    ds.close()
    _check_item(ds[1], truth)


def test_verify_reads_checksums(dataset, tmp_path):
    root, truth = dataset
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    m = json.loads((copy / "shards/0017.json").read_text())["members"]["0017_040.rgb.png"]
    tar = copy / "shards/0017.tar"
    data = bytearray(tar.read_bytes())
    data[m["offset"] + 100] ^= 0x55
    tar.write_bytes(bytes(data))
    assert len(ComplementDataset(copy)) == 6
    with pytest.warns(UserWarning, match="0017_040.rgb.png: sha256 mismatch"):
        assert len(ComplementDataset(copy, verify=True)) == 3


# ---------------------------------------------------------------- errors naming the file

def test_missing_or_broken_tables_name_the_path(dataset, tmp_path):
    root, _ = dataset
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "empty")):
        ComplementDataset(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "empty" / "dataset.json") + ".*not found"):
        ComplementDataset(tmp_path / "empty")
    for name, content, msg in [("dataset.json", b'{"format": ', "not readable JSON"),
                               ("poses.npz", b"PK\x03\x04 broken", "not a readable .npz"),
                               ("views.npz", b"", "not a readable .npz")]:
        copy = tmp_path / name
        shutil.copytree(root, copy)
        (copy / name).write_bytes(content)
        with pytest.raises(ValueError, match=str(copy / name) + ".*" + msg):
            ComplementDataset(copy)


def test_garbled_member_names_the_shard(dataset, tmp_path):
    root, _ = dataset
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    m = json.loads((copy / "shards/0003.json").read_text())["members"]["0003_000.json"]
    tar = copy / "shards/0003.tar"
    data = bytearray(tar.read_bytes())
    data[m["offset"]:m["offset"] + 5] = b"@@@@@"
    tar.write_bytes(bytes(data))
    ds = ComplementDataset(copy, poses=[3], views=[0])
    with pytest.raises(ValueError, match=r"0003\.tar:0003_000\.json: not valid JSON"):
        ds[0]


# ---------------------------------------------------------------- multi-view batches

def _pose_list(n_poses=10, n_views=6, seed=0):
    """The pose id of every index, in a shuffled dataset order."""
    ids = np.repeat(np.arange(100, 100 + n_poses), n_views)
    return np.random.default_rng(seed).permutation(ids)


def test_sampler_groups_cover_every_sample_once():
    pose_of = _pose_list()
    s = MultiViewSampler(pose_of, num_views=3, seed=5)
    groups = list(s)
    assert len(groups) == len(s) == 20
    assert all(len(g) == 3 and len(set(g)) == 3 and len({pose_of[i] for i in g}) == 1 for g in groups)
    assert sorted(i for g in groups for i in g) == list(range(60))
    assert groups == list(MultiViewSampler(pose_of, num_views=3, seed=5))   # deterministic
    assert groups != list(MultiViewSampler(pose_of, num_views=3, seed=6))
    s.set_epoch(1)
    again = list(s)
    assert again != groups and sorted(map(sorted, again)) != sorted(map(sorted, groups))
    assert sorted(i for g in again for i in g) == list(range(60))


def test_sampler_without_shuffle_is_in_order():
    pose_of = np.repeat([7, 8], 4)
    assert list(MultiViewSampler(pose_of, num_views=2, shuffle=False)) == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_sampler_remainders():
    pose_of = _pose_list(n_poses=5, n_views=6)
    dropped = list(MultiViewSampler(pose_of, num_views=4, drop_last=True, seed=1))
    assert len(dropped) == 5 and len(MultiViewSampler(pose_of, num_views=4, drop_last=True)) == 5
    assert all(len(set(g)) == 4 and len({pose_of[i] for i in g}) == 1 for g in dropped)
    assert len({i for g in dropped for i in g}) == 20
    filled = list(MultiViewSampler(pose_of, num_views=4, drop_last=False, seed=1))
    assert len(filled) == len(MultiViewSampler(pose_of, num_views=4)) == 10
    assert all(len(set(g)) == 4 and len({pose_of[i] for i in g}) == 1 for g in filled)
    assert {i for g in filled for i in g} == set(range(30))           # every sample at least once
    with pytest.raises(ValueError, match=r"pose\(s\) \[1\] have fewer than num_views=3"):
        MultiViewSampler([0, 0, 0, 1, 1], num_views=3)
    assert list(MultiViewSampler([0, 0, 0, 1, 1], num_views=3, drop_last=True, shuffle=False)) == [[0, 1, 2]]


def test_multiview_batches_from_the_dataset(dataset):
    root, truth = dataset
    ds = ComplementDataset(root)
    sampler = MultiViewSampler(ds, num_views=3, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate_multiview)
    batches = list(loader)
    assert len(batches) == 2
    for b in batches:
        assert b["image"].shape == (3, 3, SIZE, SIZE) and b["vertices"].shape == (3, 778, 3)
        assert b["K"].shape == (3, 3, 3) and b["visibility"].shape == (3, 21)
        assert len(set(b["pose_id"].tolist())) == 1 and sorted(b["view_id"].tolist()) == list(VIEWS)
        for j, key in enumerate(b["key"]):
            np.testing.assert_allclose(b["vertices"][j].numpy(), truth[key]["verts_cam"], atol=2e-6)
    # several poses per batch: (B, V, ...)
    sampler = MultiViewSampler(ds, num_views=2, drop_last=True, poses_per_batch=2, seed=3)
    b = next(iter(DataLoader(ds, batch_sampler=sampler, collate_fn=lambda s: collate_multiview(s, num_views=2))))
    assert b["image"].shape == (2, 2, 3, SIZE, SIZE) and b["pose_id"].shape == (2, 2)
    assert sorted(b["pose_id"][:, 0].tolist()) == list(POSES) and (b["pose_id"][:, 0] == b["pose_id"][:, 1]).all()
    assert len(b["key"]) == 2 and all(len(k) == 2 for k in b["key"])
