"""Rendering with Blender: annotation consistency, HDRI backgrounds, resumable runs, bad HDRIs, Ray.

Renders a few small images (64-96 px, few samples), so most tests here are slow; the annotation checks
read the session's shared renders with every realism setting on (conftest.RealisticSet).
"""
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from image_checks import assert_same_render
from PIL import Image

from synth.raster import rasterize
from synth.render_config import RenderConfig
from synth.scene import draw_skin, draw_world

RES = 96
CFG = RenderConfig(resolution=RES, samples=8, hdri_skies=1, rgb_format="png")


def _members(tar_path: Path) -> dict:
    out = {}
    with tarfile.open(tar_path) as tar:
        for m in tar.getmembers():
            out[m.name] = tar.extractfile(m).read()
    return out


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def _samples(root: Path, spec):
    """(plan, pose, view, annotation, rgb, depth, mask) of every sample of the session's shared renders."""
    from synth.render_shard import prepare

    plan = prepare(spec.config())
    for pose in spec.poses:
        files = _members(root / "shards" / f"{pose:04d}.tar")
        for view in spec.views:
            key = f"{pose:04d}_{view:03d}"
            ann = json.loads(files[f"{key}.json"])
            yield plan, pose, view, ann, _png(files[f"{key}.rgb.png"]), \
                _png(files[f"{key}.depth.png"]).astype(np.float64) / 1000.0, _png(files[f"{key}.mask.png"])


@pytest.mark.blender
@pytest.mark.slow
def test_keypoints_2d_are_the_projection_of_the_3d_ones(realistic_set, realistic_set_spec):
    for plan, pose, view, ann, *_ in _samples(realistic_set, realistic_set_spec):
        K, X = np.asarray(ann["K"]), np.asarray(ann["keypoints_3d"])
        uv = (X @ K.T)[:, :2] / X[:, 2:3]
        np.testing.assert_allclose(np.asarray(ann["keypoints_2d"]), uv, atol=1e-9)
        # and the 3D keypoints are the model's, moved into this camera
        R, t = np.asarray(ann["R"]), np.asarray(ann["t"])
        np.testing.assert_allclose(X, plan.keypoints[pose] @ R.T + t, atol=1e-9)


def _scene_geometry(plan, pose, ann):
    """(vertices, faces, mask value per face) of what the annotation says stood before the camera: the dense
    hand, its forearm and the occluders (model frame), rebuilt from the recorded draws."""
    from synth.occluders import occluder_mesh
    from synth.scene import arm_geometry
    from synth.shards import MASK_VALUES

    dense = plan.dense(pose)
    parts = [(dense, plan.render_mesh.faces, MASK_VALUES["hand"])]
    if ann["forearm"]:
        parts.append((*arm_geometry(plan, pose, ann["forearm"], dense), MASK_VALUES["arm"]))
    parts += [(*occluder_mesh(rec), MASK_VALUES["occluder"]) for rec in ann["occluders"]]
    verts, faces, values, offset = [], [], [], 0
    for v, f, value in parts:
        verts.append(v), faces.append(f + offset), values.append(np.full(len(f), value))
        offset += len(v)
    return np.vstack(verts), np.vstack(faces), np.concatenate(values)


@pytest.mark.blender
@pytest.mark.slow
def test_depth_and_mask_agree_with_the_geometry(realistic_set, realistic_set_spec):
    """An independent z-buffer of hand, forearm and occluders (rebuilt from the annotation) against the
    rendered labels and depth: the hand's visible vertices fall on the hand label at their own depth, and each
    label's region matches the z-buffer's."""
    from scipy.ndimage import binary_erosion

    from synth.shards import MASK_VALUES

    inside_share, errors, shifts = [], [], []
    ious = {name: [] for name in ("hand", "arm", "occluder")}
    res = realistic_set_spec.resolution
    for plan, pose, view, ann, rgb, depth, labels in _samples(realistic_set, realistic_set_spec):
        R, t, K = np.asarray(ann["R"]), np.asarray(ann["t"]), np.asarray(ann["K"])
        v, f, face_value = _scene_geometry(plan, pose, ann)
        z_ref, face_id, _ = rasterize(v @ R.T + t, f, K, (res, res))
        label_ref = np.where(face_id >= 0, face_value[np.maximum(face_id, 0)], 0)
        mask = labels == MASK_VALUES["hand"]
        # the rendered (dense) hand's vertices that the z-buffer shows at their pixel (within 1.5 mm):
        # the rendered hand label and depth are there too
        verts = plan.dense(pose) @ R.T + t
        px = np.round((verts @ K.T)[:, :2] / verts[:, 2:3]).astype(int)
        ok = (px >= 0).all(axis=1) & (px < res).all(axis=1)
        px, verts = px[ok], verts[ok]
        seen = z_ref[px[:, 1], px[:, 0]]
        # ... away from the label boundaries (a pixel whose neighbours all show the hand in the z-buffer):
        # where an occluder's edge crosses a pixel, which surface its centre sample shows is a coin toss
        interior = binary_erosion(label_ref == MASK_VALUES["hand"])[px[:, 1], px[:, 0]]
        visible = np.isfinite(seen) & (np.abs(verts[:, 2] - seen) <= 1.5e-3) & interior
        hit = mask[px[visible, 1], px[visible, 0]]
        inside_share.append(hit.mean())
        errors.append(np.abs(depth[px[visible, 1], px[visible, 0]][hit] - verts[visible, 2][hit]))
        for name in ious:
            a, b = labels == MASK_VALUES[name], label_ref == MASK_VALUES[name]
            if b.sum() >= 30:                       # labels of a few pixels are all boundary
                ious[name].append((a & b).sum() / (a | b).sum())
        ys, xs = np.nonzero(mask)
        yr, xr = np.nonzero(label_ref == MASK_VALUES["hand"])
        shifts.append(np.hypot(xs.mean() - xr.mean(), ys.mean() - yr.mean()))
        # depth covers hand and forearm, nothing else
        assert ((depth > 0) == np.isin(labels, [MASK_VALUES["hand"], MASK_VALUES["arm"]])).all()
    errors = np.concatenate(errors)
    print({k: np.round(v, 3).tolist() for k, v in ious.items()})
    assert min(inside_share) >= 0.99, inside_share
    assert errors.max() < 3e-3 and np.median(errors) < 1e-3, (errors.max(), np.median(errors))
    assert ious["arm"] and ious["occluder"], ious          # the set has both in front of the camera
    assert min(ious["hand"]) >= 0.95 and min(ious["arm"]) >= 0.95 and min(ious["occluder"]) >= 0.9, ious
    assert max(shifts) < 0.5, shifts


@pytest.mark.blender
@pytest.mark.slow
def test_annotations_record_the_random_draws(realistic_set, realistic_set_spec):
    cfg, res = realistic_set_spec.config(), realistic_set_spec.resolution
    for plan, pose, view, ann, rgb, depth, labels in _samples(realistic_set, realistic_set_spec):
        mask = labels == 255
        assert ann["skin"] == draw_skin(cfg, pose, view)
        world = draw_world(cfg, pose, view, plan.usable_hdris)
        assert ann["hdri"] == {k: world[k] for k in ("id", "rotation_deg", "strength")}
        assert ann["hdri"]["id"] in {e.id for e in plan.catalog if e.split == "train"}
        assert rgb.shape == (res, res, 3) and rgb.dtype == np.uint8
        x0, y0, x1, y1 = ann["crop_box"]
        ys, xs = np.nonzero(mask)
        assert (x0, y0, x1, y1) == (xs.min() - 0.5, ys.min() - 0.5, xs.max() + 0.5, ys.max() + 0.5)
        # visibility: a keypoint marked visible is on the mask
        uv = np.round(np.asarray(ann["keypoints_2d"])).astype(int)
        for k in np.where(ann["visibility"])[0]:
            assert mask[uv[k, 1], uv[k, 0]]


@pytest.mark.blender
@pytest.mark.slow
def test_background_comes_from_the_hdri():
    from hdri.catalog import build_catalog
    from synth.render_shard import prepare, scene_for

    plan = prepare(CFG)
    scene = scene_for(plan)
    scene.set_vertices(plan.dense(0))
    view = plan.views[57]
    scene.set_camera(view.K, view.R, view.t)
    scene.set_skin(draw_skin(CFG, 0, 57))
    bundled = [e for e in build_catalog(skies=0, report=lambda *_: None) if e.source == "blender"]
    backgrounds = []
    for entry in bundled[:2]:
        scene.set_world(entry, 0.0, 1.0)
        rgb, _, labels = scene.render()
        bg = rgb[labels == 0].astype(float)
        assert bg.std(axis=0).max() > 3.0, f"{entry.id}: background looks like a constant colour"
        backgrounds.append(rgb)
    assert np.abs(backgrounds[0].astype(float) - backgrounds[1]).mean() > 5.0


def _render_cmd(out: Path, *extra) -> list:
    return [sys.executable, "-m", "hands.cli", "render", "--out", str(out), "--poses", "0:3",
            "--views", "0,50,100", "--resolution", "48", "--samples", "4", "--skies", "1",
            "--workers", "0", "--no-progress", *extra]


def _dataset_contents(root: Path) -> dict:
    out = {}
    for tar in sorted((root / "shards").glob("*.tar")):
        for name, data in _members(tar).items():
            out[name] = json.loads(data) if name.endswith(".json") else _png(data)
    return out


@pytest.mark.blender
@pytest.mark.slow
def test_a_killed_render_resumes_to_the_same_dataset(tmp_path):
    clean, resumed = tmp_path / "clean", tmp_path / "resumed"
    res = subprocess.run(_render_cmd(clean), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    # a killed process cannot remove its frame folder: TMPDIR keeps it inside this test's folder
    proc = subprocess.Popen(_render_cmd(resumed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    deadline = time.time() + 120
    while not (resumed / "shards" / "0000.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    complete_before = sorted(p.name for p in (resumed / "shards").glob("*.json"))
    assert "0002.json" not in complete_before, "the kill came too late to interrupt the run"
    res = subprocess.run(_render_cmd(resumed), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert f"skipped (already complete) {len(complete_before)}" in res.stdout
    a, b = _dataset_contents(clean), _dataset_contents(resumed)
    assert sorted(a) == sorted(b)
    for name in a:
        if name.endswith(".json"):
            assert a[name] == b[name], name
        else:
            assert_same_render(a[name], b[name], name)
    assert not list((resumed / "shards").glob("*partial*"))


@pytest.mark.blender
@pytest.mark.slow
def test_a_corrupt_hdri_is_named_and_leaves_no_shard(tmp_path):
    folder = tmp_path / "hdris"
    folder.mkdir()
    (folder / "broken_sky.hdr").write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 64 +X 128\n" + b"\x02" * 100)
    out = tmp_path / "ds"
    res = subprocess.run(_render_cmd(out, "--hdri-folder", str(folder), "--strict"), capture_output=True, text=True)
    assert res.returncode == 2
    assert "broken_sky.hdr" in res.stderr
    assert not list(out.glob("shards/*")) if out.exists() else True
    # without --strict the file is reported by name and skipped
    res = subprocess.run(_render_cmd(out, "--hdri-folder", str(folder), "--poses", "0", "--views", "0"),
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "broken_sky.hdr" in res.stdout + res.stderr


def test_dry_run_prints_the_plan_and_cost(tmp_path):
    res = subprocess.run([sys.executable, "-m", "hands.cli", "render", "--out", str(tmp_path / "d"),
                          "--poses", "0:10", "--views", "all", "--dry-run", "--skies", "0"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "10 planned, 0 complete, 10 to render (216 views each: 2160 images)" in res.stdout
    assert "estimated cost" in res.stdout and "CPU-hours" in res.stdout


def test_bad_ids_are_named():
    from hands.cli_render import parse_ids

    assert parse_ids("0:3,7", 10, "poses") == [0, 1, 2, 7]
    assert parse_ids("all", 4, "views") == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"--poses: ids \[1520\]"):
        parse_ids("1519,1520", 1520, "poses")
    with pytest.raises(ValueError, match="cannot read 'x'"):
        parse_ids("x", 10, "views")


def test_config_hash_tracks_what_changes_pixels():
    base = RenderConfig()
    assert base.config_hash() == RenderConfig().config_hash()
    assert RenderConfig(samples=65).config_hash() != base.config_hash()
    assert RenderConfig(threads=7).config_hash() == base.config_hash()
    assert RenderConfig(skin_subsurface="random_walk").config_hash() != base.config_hash()
    with pytest.raises(ValueError, match="skin_subsurface='christensen'"):
        RenderConfig(skin_subsurface="christensen")


def test_the_automatic_prefilter_is_accurate_from_64_samples():
    assert [RenderConfig(samples=s).prefilter() for s in (1, 16, 63, 64, 1024)] == ["FAST"] * 3 + ["ACCURATE"] * 2
    assert RenderConfig(samples=16, denoise_prefilter="ACCURATE").prefilter() == "ACCURATE"
    assert RenderConfig(samples=128, denoise_prefilter="FAST").prefilter() == "FAST"
    with pytest.raises(ValueError, match="denoise_prefilter='fast'"):
        RenderConfig(denoise_prefilter="fast")


def test_a_later_setting_at_its_former_value_keeps_the_hash_of_before():
    """skin_subsurface came after datasets were made with random walk: at that value the hash is the one
    computed without the field (the former formula, re-derived here), so those datasets keep their hash;
    at another value (Burley, the default now) it counts."""
    import hashlib

    from synth.shards import FORMAT_VERSION

    def former_hash(cfg):
        d = cfg.to_dict()
        del d["skin_subsurface"], d["threads"]
        d["format_version"] = FORMAT_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    for cfg in (RenderConfig(skin_subsurface="random_walk"), RenderConfig(samples=16, seed=3,
                                                                           skin_subsurface="random_walk")):
        assert cfg.config_hash() == former_hash(cfg)
    assert RenderConfig().config_hash() != former_hash(RenderConfig())


def test_one_world_per_run_of_views():
    class E:
        def __init__(self, i):
            self.id = i

    hdris = [E(f"h{i}") for i in range(5)]
    cfg = RenderConfig(hdri_run_length=12)
    first = draw_world(cfg, 3, 0, hdris)
    assert all(draw_world(cfg, 3, v, hdris) == first for v in range(12))
    runs = {draw_world(cfg, 3, v, hdris)["rotation_deg"] for v in range(0, 216, 12)}
    assert len(runs) == 18  # every run draws its own rotation


def test_one_skin_per_run_of_views_or_per_sample():
    from synth.scene import sample_rng
    from synth.skin import sample_skin

    cfg = RenderConfig(skin_run_length=12)
    assert all(draw_skin(cfg, 3, v) == draw_skin(cfg, 3, 0) for v in range(12))
    skins = [draw_skin(cfg, 3, v) for v in range(0, 216, 12)]
    assert len({repr(sorted(s.items())) for s in skins}) == 18            # every run its own skin
    assert draw_skin(cfg, 4, 0) != draw_skin(cfg, 3, 0)                    # and every pose
    single = RenderConfig(skin_run_length=1)
    assert draw_skin(single, 3, 5) == sample_skin(sample_rng(0, 3, 5)) != draw_skin(single, 3, 6)
    with pytest.raises(ValueError, match="skin_run_length=0"):
        RenderConfig(skin_run_length=0)


@pytest.mark.blender
@pytest.mark.slow
def test_ray_renders_missing_shards_only(tmp_path):
    from synth.distribute import render_dataset

    cfg = RenderConfig(resolution=48, samples=2, hdri_skies=0, threads=1)
    first = render_dataset(cfg, tmp_path, [0, 1], [0, 1], workers=2, progress=False)
    assert sorted(first.done) == [0, 1] and first.images == 4 and not first.failed
    again = render_dataset(cfg, tmp_path, [0, 1, 2], [0, 1], workers=2, progress=False)
    assert again.skipped == [0, 1] and again.done == [2]


@pytest.mark.blender
def test_evaluation_renders_draw_only_held_out_environments():
    from synth.render_shard import prepare

    train = prepare(RenderConfig(hdri_skies=4))
    heldout = prepare(RenderConfig(hdri_skies=4, hdri_split="heldout"))
    assert {e.split for e in train.usable_hdris} == {"train"}
    assert {e.split for e in heldout.usable_hdris} == {"heldout"}
    drawn = {draw_world(heldout.cfg, p, v, heldout.usable_hdris)["id"] for p in range(20) for v in (0, 100)}
    assert drawn <= {e.id for e in heldout.usable_hdris}
    assert not drawn & {e.id for e in train.usable_hdris}


@pytest.mark.blender
def test_the_subsurface_and_prefilter_settings_reach_the_scene():
    from synth.render_config import SUBSURFACE_METHODS
    from synth.render_shard import drop_scene, prepare, scene_for

    try:
        for setting, method in SUBSURFACE_METHODS.items():
            scene = scene_for(prepare(RenderConfig(resolution=32, samples=1, skin_subsurface=setting)))
            for obj in (scene.hand, scene.arm):
                nodes = [n for m in obj.data.materials for n in m.node_tree.nodes if n.type == "BSDF_PRINCIPLED"]
                assert nodes and {n.subsurface_method for n in nodes} == {method}, (setting, obj.name)
            assert scene.scene.cycles.denoising_prefilter == "FAST"       # 'auto' at 1 sample
            drop_scene()
        scene = scene_for(prepare(RenderConfig(resolution=32, samples=64)))
        assert scene.scene.cycles.denoising_prefilter == "ACCURATE"       # 'auto' at 64
    finally:
        drop_scene()


@pytest.mark.blender
@pytest.mark.slow
def test_skin_parameters_reach_the_render():
    from synth.render_shard import prepare, scene_for

    plan = prepare(CFG)
    scene = scene_for(plan)
    scene.set_vertices(plan.dense(0))
    view = plan.views[0]
    scene.set_camera(view.K, view.R, view.t)
    scene.set_world(plan.usable_hdris[0], 0.0, 1.0)
    means = []
    for colour in ((0.9, 0.15, 0.1), (0.1, 0.8, 0.15)):
        skin = dict(draw_skin(CFG, 0, 0), base_color_srgb=list(colour))
        scene.set_skin(skin)
        rgb, _, labels = scene.render()
        means.append(rgb[labels == 255].astype(float).mean(axis=0))
    red, green = means
    assert red[0] > red[1] + 20 and green[1] > green[0] + 20, means
