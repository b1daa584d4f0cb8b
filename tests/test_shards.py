"""synth.shards: shard writer (atomic, deterministic), shard status, global tables."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from synth import shards
from synth.shards import ShardWriter, clean_partial, shard_status
from synth.tables import load_tables, write_tables

SIZE = 32
CONFIG = "cfg-0123456789ab"


def _camera(view_id):
    K = np.array([[40.0, 0.0, (SIZE - 1) / 2], [0.0, 40.0, (SIZE - 1) / 2], [0.0, 0.0, 1.0]])
    R = Rotation.from_euler("xyz", [0.1 * view_id, 0.3 + 0.2 * view_id, -0.05 * view_id]).as_matrix()
    return K, R, np.array([0.01, -0.02, 0.5])


def make_sample(pose_id, view_id, smooth=False):
    """Synthetic images and an annotation whose 2D keypoints are projections of known 3D points."""
    rng = np.random.default_rng([pose_id, view_id])
    if smooth:  # JPEG-friendly
        yy, xx = np.mgrid[0:SIZE, 0:SIZE]
        rgb = np.stack([xx * 7, yy * 7, (xx + yy) * 3 + 20 * view_id], -1).clip(0, 255).astype(np.uint8)
    else:
        rgb = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    mask = (xx - 15.5) ** 2 + (yy - 13) ** 2 < (8 + view_id) ** 2
    depth = np.where(mask, rng.uniform(0.3, 0.7, (SIZE, SIZE)), np.inf if view_id % 2 else 0.0)
    K, R, t = _camera(view_id)
    points = rng.normal(0, 0.03, (21, 3))
    cam = points @ R.T + t
    uv = np.stack([K[0, 0] * cam[:, 0] / cam[:, 2] + K[0, 2], K[1, 1] * cam[:, 1] / cam[:, 2] + K[1, 2]], 1)
    annotation = {
        "pose_id": pose_id, "view_id": view_id, "K": K, "R": R, "t": t, "image_size": [SIZE, SIZE],
        "keypoints_2d": uv, "keypoints_3d": cam, "visibility": rng.random(21) > 0.3,
        "hdri": {"id": f"hdri{view_id % 2}", "rotation_deg": 12.5 * view_id, "strength": 1.25},
        "skin": {"tone": 0.4, "roughness": np.float32(0.5)}, "crop_box": [1, 2, 30, 31],
        "seed": int(rng.integers(1 << 31)),
    }
    return {"rgb": rgb, "depth_m": depth, "mask": mask, "annotation": annotation}


def write_shard(root, pose_id, views=(0, 1, 2), config=CONFIG, **kw):
    samples = {}
    with ShardWriter(root, pose_id, config) as w:
        for v in views:
            key = f"{pose_id:04d}_{v:03d}"
            samples[key] = make_sample(pose_id, v, smooth=kw.get("rgb_format") == "jpg")
            w.add(key, **samples[key], **kw)
    return samples


def _plain(obj):
    return json.loads(json.dumps(shards._jsonable(obj)))


def _files(root):
    return sorted(p.name for p in (root / "shards").iterdir())


# ---------------------------------------------------------------- writing and reading back

def test_round_trip_png(tmp_path):
    samples = write_shard(tmp_path, 7)
    tar_path, man_path = tmp_path / "shards/0007.tar", tmp_path / "shards/0007.json"
    assert _files(tmp_path) == ["0007.json", "0007.tar"]
    manifest = json.loads(man_path.read_text())
    assert manifest["pose_id"] == 7 and manifest["config_hash"] == CONFIG
    assert manifest["samples"] == list(samples)
    assert manifest["hdri_ids"] == {k: s["annotation"]["hdri"]["id"] for k, s in samples.items()}
    with tarfile.open(tar_path) as tar:  # any tar reader (and WebDataset) sees the same members
        infos = tar.getmembers()
        assert [i.name for i in infos] == [f"{k}.{m}" for k in samples
                                           for m in ("rgb.png", "depth.png", "mask.png", "json")]
        assert set(manifest["members"]) == {i.name for i in infos}
        for info in infos:
            data = tar.extractfile(info).read()
            rec = manifest["members"][info.name]
            assert (rec["offset"], rec["size"]) == (info.offset_data, info.size)
            assert rec["sha256"] == hashlib.sha256(data).hexdigest()
            key, kind = info.name.split(".", 1)
            s = samples[key]
            if kind == "json":
                assert json.loads(data) == _plain(s["annotation"])
                continue
            im = Image.open(io.BytesIO(data))
            arr = np.asarray(im)
            if kind == "rgb.png":
                assert im.mode == "RGB" and np.array_equal(arr, s["rgb"])
            elif kind == "mask.png":
                assert im.mode == "L" and set(np.unique(arr)) <= {0, 255}
                assert np.array_equal(arr == 255, s["mask"])
            else:
                assert im.mode == "I;16" and arr.dtype == np.uint16
                fg = s["mask"]
                assert np.all(arr[~fg] == 0)
                assert np.abs(arr[fg] / 1000.0 - s["depth_m"][fg]).max() <= 0.0005 + 1e-12
                assert np.array_equal(arr[fg], np.round(s["depth_m"][fg] * 1000).astype(np.uint16))


def test_round_trip_jpg(tmp_path):
    samples = write_shard(tmp_path, 3, rgb_format="jpg", jpeg_quality=95)
    with tarfile.open(tmp_path / "shards/0003.tar") as tar:
        names = tar.getnames()
        for key, s in samples.items():
            assert f"{key}.rgb.jpg" in names and f"{key}.rgb.png" not in names
            im = Image.open(tar.extractfile(f"{key}.rgb.jpg"))
            assert im.format == "JPEG" and im.size == (SIZE, SIZE)
            err = np.abs(np.asarray(im.convert("RGB")).astype(int) - s["rgb"].astype(int))
            assert err.mean() < 2.0 and err.max() < 25
    assert shard_status(tmp_path, 3, CONFIG, verify=True) == "complete"


def test_identical_inputs_give_identical_bytes(tmp_path):
    for sub in ("a", "b"):
        write_shard(tmp_path / sub, 12)
    for name in ("0012.tar", "0012.json"):
        assert (tmp_path / "a/shards" / name).read_bytes() == (tmp_path / "b/shards" / name).read_bytes()
    with tarfile.open(tmp_path / "a/shards/0012.tar") as tar:
        for info in tar.getmembers():
            assert (info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode) == (0, 0, 0, "", "", 0o644)
    # and a different input gives a different shard
    write_shard(tmp_path / "c", 12, views=(0, 1))
    assert (tmp_path / "c/shards/0012.tar").read_bytes() != (tmp_path / "a/shards/0012.tar").read_bytes()


def test_png_has_no_metadata_chunks():
    data = shards.encode_png(np.zeros((4, 4), np.uint8))
    chunks, pos = [], 8
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        chunks.append(data[pos + 4:pos + 8])
        pos += 12 + n
    assert chunks == [b"IHDR", b"IDAT", b"IEND"]


# ---------------------------------------------------------------- atomic completion

def test_exception_inside_with_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="render failed"):
        with ShardWriter(tmp_path, 5, CONFIG) as w:
            w.add("0005_000", **make_sample(5, 0))
            assert any(p.name.endswith(".partial") for p in (tmp_path / "shards").iterdir())
            raise RuntimeError("render failed")
    assert _files(tmp_path) == []
    assert shard_status(tmp_path, 5) == "missing"


def test_failure_while_writing_manifest_leaves_nothing(tmp_path, monkeypatch):
    def broken(path, obj):
        raise OSError("disk full")

    monkeypatch.setattr(shards, "_atomic_write_json", broken)
    with pytest.raises(OSError, match="disk full"):
        write_shard(tmp_path, 5)
    assert _files(tmp_path) == []
    assert shard_status(tmp_path, 5) == "missing"


def test_failed_rewrite_keeps_the_complete_shard(tmp_path):
    write_shard(tmp_path, 2)
    before = (tmp_path / "shards/0002.tar").read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with ShardWriter(tmp_path, 2, CONFIG) as w:
            w.add("0002_000", **make_sample(2, 0))
            raise KeyboardInterrupt
    assert (tmp_path / "shards/0002.tar").read_bytes() == before
    assert shard_status(tmp_path, 2, CONFIG, verify=True) == "complete"


def test_empty_shard_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no samples"):
        with ShardWriter(tmp_path, 1, CONFIG):
            pass
    assert _files(tmp_path) == []


# ---------------------------------------------------------------- shard status

def test_status_complete_and_missing(tmp_path):
    write_shard(tmp_path, 4)
    assert shard_status(tmp_path, 4) == "complete"
    assert shard_status(tmp_path, 4, CONFIG, expected_keys=["0004_000", "0004_002"], verify=True) == "complete"
    assert shard_status(tmp_path, 9) == "missing"


def test_tar_without_manifest_is_incomplete(tmp_path):
    write_shard(tmp_path, 4)
    (tmp_path / "shards/0004.json").unlink()
    assert shard_status(tmp_path, 4) == "incomplete"


def test_manifest_without_tar_is_incomplete(tmp_path):
    write_shard(tmp_path, 4)
    (tmp_path / "shards/0004.tar").unlink()
    assert shard_status(tmp_path, 4) == "incomplete"


@pytest.mark.parametrize("cut", ["half", "end_blocks"])
def test_truncated_tar_is_incomplete(tmp_path, cut):
    write_shard(tmp_path, 4)
    tar = tmp_path / "shards/0004.tar"
    data = tar.read_bytes()
    members = json.loads((tmp_path / "shards/0004.json").read_text())["members"].values()
    last = max(m["offset"] + m["size"] for m in members)
    # "end_blocks" keeps every member's data but cuts the end-of-archive blocks
    tar.write_bytes(data[:len(data) // 2] if cut == "half" else data[:last + 600])
    assert shard_status(tmp_path, 4) == "incomplete"


def test_config_hash_mismatch_is_incomplete(tmp_path):
    write_shard(tmp_path, 4)
    assert shard_status(tmp_path, 4, config_hash=CONFIG) == "complete"
    assert shard_status(tmp_path, 4, config_hash="another-config") == "incomplete"


def test_expected_keys_missing_is_incomplete(tmp_path):
    write_shard(tmp_path, 4, views=(0, 1))
    assert shard_status(tmp_path, 4, expected_keys=["0004_000", "0004_001", "0004_002"]) == "incomplete"


@pytest.mark.parametrize("edit", ["garbage", "wrong_offset", "wrong_size", "wrong_pose", "no_mask"])
def test_mismatching_manifest_is_incomplete(tmp_path, edit):
    write_shard(tmp_path, 4)
    path = tmp_path / "shards/0004.json"
    m = json.loads(path.read_text())
    if edit == "garbage":
        path.write_text('{"pose_id": 4, "samples": [')
    else:
        if edit == "wrong_offset":
            m["members"]["0004_001.json"]["offset"] += 512
        elif edit == "wrong_size":
            m["members"]["0004_001.depth.png"]["size"] += 1
        elif edit == "wrong_pose":
            m["pose_id"] = 5
        else:
            del m["members"]["0004_002.mask.png"]
        path.write_text(json.dumps(m))
    assert shard_status(tmp_path, 4) == "incomplete"


def test_verify_detects_corrupted_data(tmp_path):
    write_shard(tmp_path, 4)
    m = json.loads((tmp_path / "shards/0004.json").read_text())["members"]["0004_001.rgb.png"]
    tar = tmp_path / "shards/0004.tar"
    data = bytearray(tar.read_bytes())
    data[m["offset"] + m["size"] // 2] ^= 0xFF
    tar.write_bytes(bytes(data))
    assert shard_status(tmp_path, 4) == "complete"           # sizes and headers still agree
    assert shard_status(tmp_path, 4, verify=True) == "incomplete"


def test_partial_files_and_clean_partial(tmp_path):
    write_shard(tmp_path, 1)
    (tmp_path / "shards/0006.tar.deadbeef.partial").write_bytes(b"half a tar")
    (tmp_path / "shards/0001.tar.cafecafe.partial").write_bytes(b"a stale retry")
    (tmp_path / "poses.npz.01234567.partial").write_bytes(b"x")
    assert shard_status(tmp_path, 6) == "incomplete"
    assert shard_status(tmp_path, 1) == "complete"  # a stale temp file beside a verified shard
    assert clean_partial(tmp_path, min_age_s=3600) == []
    removed = clean_partial(tmp_path)
    assert sorted(p.name for p in removed) == ["0001.tar.cafecafe.partial", "0006.tar.deadbeef.partial",
                                               "poses.npz.01234567.partial"]
    assert shard_status(tmp_path, 6) == "missing"
    assert _files(tmp_path) == ["0001.json", "0001.tar"]


# ---------------------------------------------------------------- input checks

def test_depth_encoding():
    d = np.array([[0.0, np.inf, 0.0001, 0.5004], [0.5006, 65.535, 1.0, 2.0]])
    assert shards.encode_depth(d).tolist() == [[0, 0, 1, 500], [501, 65535, 1000, 2000]]
    with pytest.raises(ValueError, match=r"65\.535.*1e10"):
        shards.encode_depth(np.array([[0.5, 1e10]]))
    with pytest.raises(ValueError, match="NaN"):
        shards.encode_depth(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="negative"):
        shards.encode_depth(np.array([[-0.1]]))


def test_add_rejects_bad_input(tmp_path):
    s = make_sample(3, 0)
    with pytest.raises(ValueError, match="belongs to pose 3, not to shard 2"):
        with ShardWriter(tmp_path, 2, CONFIG) as w:
            w.add("0003_000", **s)
    with pytest.raises(ValueError, match="already added"):
        with ShardWriter(tmp_path, 3, CONFIG) as w:
            w.add("0003_000", **s)
            w.add("0003_000", **s)
    bad = [({"key": "3_0"}, "not of the form"),
           ({"rgb": s["rgb"].astype(np.float32)}, "uint8"),
           ({"depth_m": s["depth_m"][:-1]}, "depth shape"),
           ({"mask": s["mask"].astype(np.float32)}, "mask must be bool"),
           ({"depth_m": np.full((SIZE, SIZE), 80.0)}, "0003_000.*65.535"),
           ({"rgb_format": "webp"}, "rgb_format"),
           ({"annotation": {**s["annotation"], "view_id": 9}}, "view_id=9 disagrees"),
           ({"annotation": {**s["annotation"], "image_size": [64, 32]}}, "image_size"),
           ({"annotation": {"x": object()}}, "not JSON-serialisable")]
    for change, msg in bad:
        args = {"key": "0003_000", **s, **change}
        with pytest.raises(ValueError, match=msg):
            with ShardWriter(tmp_path, 3, CONFIG) as w:
                w.add(args.pop("key"), **args)
    assert _files(tmp_path) == []
    with pytest.raises(RuntimeError, match="outside"):
        ShardWriter(tmp_path, 3, CONFIG).add("0003_000", **s)


def test_config_hash_is_order_independent():
    a = shards.config_hash({"a": 1, "b": [1, 2], "c": {"x": np.float64(0.5)}})
    assert a == shards.config_hash({"c": {"x": 0.5}, "b": [1, 2], "a": 1})
    assert a != shards.config_hash({"a": 2, "b": [1, 2], "c": {"x": 0.5}})


# ---------------------------------------------------------------- global tables

@pytest.fixture(scope="module")
def real_tables():
    from synth.hand_model import HandModel
    from synth.render_mesh import build_render_mesh
    from synth.rig import build_views

    hm = HandModel()
    params = np.zeros((2, 48))
    params[1, 3:] = np.random.default_rng(0).normal(0, 0.2, 45)
    with torch.no_grad():
        verts, kps = hm(torch.as_tensor(params, dtype=torch.float32))
    rm = build_render_mesh(hm.faces, hm.num_vertices)
    views = build_views(hm.joint_regressor @ hm.template)[::100]
    poses = {"pose_ids": np.array([3, 17]), "params": params, "vertices": verts.numpy(),
             "keypoints": kps.numpy(), "dense": rm.densify(verts.numpy().astype(np.float64))}
    view_tab = {"view_ids": np.array([v.view_id for v in views]), "K": np.stack([v.K for v in views]),
                "R": np.stack([v.R for v in views]), "t": np.stack([v.t for v in views]),
                "longitude": np.array([v.longitude for v in views]), "latitude": np.array([v.latitude for v in views])}
    mapping = {"M": rm.M, "S": rm.S, "faces": hm.faces, "dense_faces": rm.faces}
    ds = {"config": {"seed": 1, "image_size": 32}, "versions": {"hands": "0.1.0"},
          "hand_model": {"name": hm.name, "template_hash": hm.template_hash, "num_vertices": 778}}
    hdris = [{"id": "studio", "split": "train", "path": "a.exr"}, {"id": "sky", "split": "heldout"}]
    return ds, poses, view_tab, mapping, hdris


def test_tables_round_trip(tmp_path, real_tables):
    ds, poses, views, mapping, hdris = real_tables
    written = write_tables(tmp_path, ds, poses, views, mapping, hdris)
    assert not list(tmp_path.glob("*.partial"))
    t = load_tables(tmp_path)
    assert t.dataset == written == json.loads((tmp_path / "dataset.json").read_text())
    assert t.dataset["format"] == "hands-complement/4"
    assert t.dataset["counts"] == {"poses": 2, "views": 3, "samples": 6}
    assert t.dataset["pose_ids"] == [3, 17] and t.dataset["view_ids"] == [0, 100, 200]
    assert t.dataset["config"] == ds["config"] and t.dataset["hand_model"] == ds["hand_model"]
    assert t.poses["pose_ids"].dtype == np.int64 and t.poses["params"].dtype == np.float64
    for k in ("vertices", "keypoints", "dense"):
        assert t.poses[k].dtype == np.float32
        np.testing.assert_allclose(t.poses[k], poses[k], rtol=0, atol=1e-7)
    np.testing.assert_array_equal(t.poses["params"], poses["params"])
    for k, v in views.items():
        np.testing.assert_array_equal(t.views[k], v)
    assert (t.mapping["M"] != mapping["M"]).nnz == 0 and (t.mapping["S"] != mapping["S"]).nnz == 0
    assert t.mapping["M"].shape == (778, poses["dense"].shape[1])
    np.testing.assert_array_equal(t.mapping["dense_faces"], mapping["dense_faces"])
    # the stored map takes the stored dense vertices back to the stored model vertices
    np.testing.assert_allclose(t.mapping["M"] @ t.poses["dense"][1].astype(np.float64), t.poses["vertices"][1],
                               atol=1e-5)
    assert t.hdris == hdris
    assert t.pose_index() == {3: 0, 17: 1}


def test_write_tables_rejects_inconsistent_input(tmp_path, real_tables):
    ds, poses, views, mapping, hdris = real_tables
    with pytest.raises(ValueError, match="counts"):
        write_tables(tmp_path, {**ds, "counts": {"poses": 5}}, poses, views, mapping, hdris)
    with pytest.raises(ValueError, match=r"poses: missing arrays \['dense'\]"):
        write_tables(tmp_path, ds, {k: v for k, v in poses.items() if k != "dense"}, views, mapping, hdris)
    with pytest.raises(ValueError, match=r"params has shape \(2, 45\)"):
        write_tables(tmp_path, ds, {**poses, "params": poses["params"][:, :45]}, views, mapping, hdris)
    with pytest.raises(ValueError, match="num_vertices"):
        write_tables(tmp_path, {**ds, "hand_model": {**ds["hand_model"], "num_vertices": 700}},
                     poses, views, mapping, hdris)
    assert not (tmp_path / "dataset.json").exists()


def test_load_tables_errors_name_the_file(tmp_path, real_tables):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_tables(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "dataset.json")):
        load_tables(tmp_path)
    write_tables(tmp_path, *real_tables)
    (tmp_path / "poses.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=str(tmp_path / "poses.npz") + ".*not a readable .npz"):
        load_tables(tmp_path)
    write_tables(tmp_path, *real_tables)
    z = dict(np.load(tmp_path / "views.npz"))
    del z["K"]
    np.savez(tmp_path / "views.npz", **z)
    with pytest.raises(ValueError, match=str(tmp_path / "views.npz") + r".*missing arrays \['K'\]"):
        load_tables(tmp_path)
    write_tables(tmp_path, *real_tables)
    (tmp_path / "mapping.npz").unlink()
    with pytest.raises(FileNotFoundError, match="mapping.npz"):
        load_tables(tmp_path)
    write_tables(tmp_path, *real_tables)
    (tmp_path / "hdris.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="hdris.json.*not readable JSON"):
        load_tables(tmp_path)
    write_tables(tmp_path, *real_tables)
    d = json.loads((tmp_path / "dataset.json").read_text())
    (tmp_path / "dataset.json").write_text(json.dumps({**d, "format": "something/2"}))
    with pytest.raises(ValueError, match="format 'something/2', expected 'hands-complement/1'"):
        load_tables(tmp_path)
