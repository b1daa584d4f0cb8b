"""A sample's scene without Blender: synth.scene.draw_scene against independent truth (the documented
SeedSequence keys drawn by hand), one element switched off leaving the others' draws alone, the scene
frozen, and render_sample / render_shard applying it to a view that records what it is given (as Kubric
tests its scene against a mocked view). And what lives around the scene: RenderConfig's serialisation
from its fields, `hands render --set`, the render stage's `settings`, the pose count, the format version.
"""
import argparse
import dataclasses
import io
import json
import pickle
import re
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from PIL import Image

from synth.render_config import RenderConfig
from synth.scene import RUN_STREAMS, STREAMS, SampleScene, draw_scene

# no bundled HDRIs (finding them imports bpy): three procedural skies, of which at least one is for training
SETTINGS = {"resolution": 48, "samples": 4, "hdri_bundled": False, "hdri_skies": 3, "occluder_prob": 0.7,
            "camera_effects": "on", "camera_effect_settings": {"defocus_prob": 0.5, "motion_blur_prob": 0.5}}
SAMPLES = [(0, 0), (0, 1), (0, 12), (0, 130), (700, 0), (700, 45)]


def _photos(folder, n=4):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(folder / f"photo_{i}.png")
    return str(folder)


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    from synth.render_shard import prepare

    photos = _photos(tmp_path_factory.mktemp("scene") / "photos")
    return prepare(RenderConfig(**SETTINGS, backdrop_folders=(photos,)), report=lambda *a, **k: None)


def _rng(*key):
    return np.random.default_rng(np.random.SeedSequence(list(key)))


def _equal(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    return a == b


# ---------------------------------------------------------------- the scene's content

def test_the_same_ids_draw_the_same_scene_and_other_ids_another(plan):
    a, b = draw_scene(plan, 0, 1), draw_scene(plan, 0, 1)
    assert a == b and a is not b
    same_run, next_run, other_pose = draw_scene(plan, 0, 2), draw_scene(plan, 0, 12), draw_scene(plan, 700, 1)
    # world and skin are per run of 12 views of a pose; the camera and the per-sample draws are per view
    assert same_run.world == a.world and same_run.skin == a.skin
    assert next_run.world != a.world and next_run.skin != a.skin and other_pose.skin != a.skin
    assert not np.array_equal(same_run.R, a.R) and same_run.camera_effects != a.camera_effects
    assert same_run.backdrop != a.backdrop and same_run.arm != a.arm
    assert np.array_equal(same_run.hand_vertices, a.hand_vertices)
    assert not np.array_equal(other_pose.hand_vertices, a.hand_vertices)


@pytest.mark.parametrize("pose,view", SAMPLES)
def test_every_draw_comes_from_its_documented_stream(plan, pose, view):
    """Each part against the same draw made here by hand from the SeedSequence key the module docstring
    documents (stream numbers included: a renumbered stream would change every dataset's bytes)."""
    from synth.body_arm import draw_arm
    from synth.backdrops import draw_backdrop
    from synth.camera_effects import CameraEffectsConfig, draw_effects
    from synth.occluders import draw as draw_occluders
    from synth.skin import sample_skin

    cfg, v = plan.cfg, plan.views[view]
    s = draw_scene(plan, pose, view)
    assert (s.pose_id, s.view_id) == (pose, view)
    assert np.array_equal(s.K, v.K) and np.array_equal(s.R, v.R) and np.array_equal(s.t, v.t)
    assert np.array_equal(s.hand_vertices, plan.dense(pose))
    run = view // 12
    rng = _rng(cfg.seed, pose, 7919, run)
    hdris = [e for e in plan.catalog if e.split == "train"]
    entry = hdris[int(rng.integers(len(hdris)))]
    rotation, strength = round(float(rng.uniform(0, 360)), 6), round(float(rng.uniform(0.6, 1.6)) * 5.0, 6)
    assert s.hdri_entry == entry and s.world == {"id": entry.id, "rotation_deg": rotation, "strength": strength}
    assert s.skin == sample_skin(_rng(cfg.seed, pose, 7927, run))
    kp_cam = plan.keypoints[pose] @ v.R.T + v.t
    assert s.occluders == draw_occluders(_rng(cfg.seed, pose, view, 2), kp_cam, v.R, v.t, float(v.K[0, 0]), 0.7,
                                         2, skin_srgb=s.skin["base_color_srgb"])
    record, posed = draw_arm(_rng(cfg.seed, pose, view, 1), plan.arm,
                             {"flexion": (-30.0, 40.0), "deviation": (-10.0, 20.0), "twist": (-45.0, 45.0)},
                             plan.dense(pose), plan.poses[pose][:3], plan.root_joint, kp_cam, v.R, v.t, v.K, 48)
    assert s.arm == record and np.array_equal(s.arm_vertices, posed)
    assert np.array_equal(s.arm_skin_points, plan.arm.rest)
    effects = draw_effects(CameraEffectsConfig.from_dict(SETTINGS["camera_effect_settings"]),
                           _rng(cfg.seed, pose, view, 3))
    assert s.camera_effects == effects and s.noise_seed == (cfg.seed, pose, view, 4)
    assert s.backdrop == draw_backdrop(_rng(cfg.seed, pose, view, 5), plan.backdrops, "train")
    assert s.backdrop_image.shape == (48, 48, 3)


def test_stream_numbers_are_named_unique_and_cannot_meet():
    assert STREAMS == {"forearm": 1, "occluders": 2, "camera_effects": 3, "sensor_noise": 4, "backdrop": 5}
    assert RUN_STREAMS == {"world": 7919, "skin": 7927}
    assert len(set(STREAMS.values())) == len(STREAMS) and len(set(RUN_STREAMS.values())) == len(RUN_STREAMS)
    # a run key [seed, pose, RUN, run] could only equal a per-sample key [seed, pose, view, n] at view == RUN
    from synth.rig import NUM_VIEWS

    assert min(RUN_STREAMS.values()) >= NUM_VIEWS


OFF = {"occluders": [], "camera_effects": {"enabled": False}, "arm": None, "arm_vertices": None,
       "arm_skin_points": None, "backdrop": None, "backdrop_image": None}


@pytest.mark.parametrize("off,changed", [
    ({"occluder_prob": 0.0}, {"occluders"}),
    ({"camera_effects": "off"}, {"camera_effects"}),
    ({"forearm": False}, {"arm", "arm_vertices", "arm_skin_points"}),
    ({"backdrop_folders": ()}, {"backdrop", "backdrop_image"}),
])
def test_switching_one_element_off_leaves_every_other_draw_as_it_was(plan, off, changed):
    # the same plan with one setting changed (what prepare would build: nothing it shares depends on these)
    other = dataclasses.replace(plan, cfg=dataclasses.replace(plan.cfg, **off),
                                backdrops=[] if "backdrop_folders" in off else plan.backdrops)
    differed = set()
    for pose, view in SAMPLES:
        on, without = draw_scene(plan, pose, view), draw_scene(other, pose, view)
        for f in dataclasses.fields(SampleScene):
            a, b = getattr(on, f.name), getattr(without, f.name)
            if f.name in changed:
                assert _equal(b, OFF[f.name]), (f.name, pose, view)
                differed |= {f.name} if not _equal(a, b) else set()
            else:
                assert _equal(a, b), (f.name, pose, view)
    assert differed == changed        # and the element was on in some sample


def test_the_scene_is_frozen_all_the_way_down(plan):
    s = draw_scene(plan, 700, 45)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.skin = {}
    with pytest.raises(TypeError, match="frozen"):
        s.skin["roughness"] = 0.0
    with pytest.raises(ValueError):
        s.hand_vertices[0, 0] = 1.0
    with pytest.raises(ValueError):
        s.K[0, 0] = 1.0
    with pytest.raises(TypeError, match="frozen"):
        s.occluders.append({})
    assert plan.views[45].K.flags.writeable           # the scene holds copies, the plan is untouched
    records = s.records()
    json.dumps(records)                                     # plain JSON values
    records["skin"]["roughness"] = -1.0
    assert s.skin["roughness"] != -1.0                      # a copy: the scene is unchanged
    assert pickle.loads(pickle.dumps(s)) == s


def test_drawing_a_scene_imports_no_blender(plan):
    code = ("import sys\nfrom synth.render_config import RenderConfig\nfrom synth.render_shard import prepare\n"
            "from synth.scene import draw_scene\n"
            f"plan = prepare(RenderConfig(**{SETTINGS!r}), report=lambda *a: None)\n"
            "draw_scene(plan, 700, 45)\nassert 'bpy' not in sys.modules, 'bpy was imported'\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


# ---------------------------------------------------------------- the apply path, against a recording view

def _frame(plan, s):
    """A stand-in render of scene `s`: grey, with the hand a disc about its keypoints' centre."""
    size = plan.cfg.resolution
    uv = (plan.keypoints[s.pose_id] @ s.R.T + s.t) @ s.K.T
    cx, cy = (uv[:, :2] / uv[:, 2:]).mean(axis=0)
    yy, xx = np.mgrid[0:size, 0:size]
    hand = (xx - cx) ** 2 + (yy - cy) ** 2 < 64
    lin = np.full((size, size, 3), 0.2, np.float32) + 0.5 * hand[..., None]
    return lin, np.where(hand, 0.5, 0.0).astype(np.float32), np.where(hand, 255, 0).astype(np.uint8)


class RecordingView:
    """Stands in for synth.blender_scene.BlenderScene: records every scene it is asked to show and renders
    `_frame` of the last one."""

    def __init__(self, plan):
        self.plan, self.applied, self.renders = plan, [], 0

    def apply(self, scene):
        self.applied.append(scene)

    def render_linear(self):
        self.renders += 1
        return _frame(self.plan, self.applied[-1])


def test_render_sample_shows_the_drawn_scene_in_one_call_and_annotates_it(plan):
    from synth.camera_effects import apply_effects_linear
    from synth.render_shard import render_sample

    view = RecordingView(plan)
    for pose, view_id in SAMPLES[:3]:
        rgb, depth, labels, ann, _ = render_sample(plan, view, pose, view_id)
        scene = draw_scene(plan, pose, view_id)
        assert view.applied[-1] == scene and len(view.applied) == view.renders
        assert {k: ann[k] for k in scene.records()} == scene.records()
        assert ann["K"] == plan.views[view_id].K.tolist() and (ann["pose_id"], ann["view_id"]) == (pose, view_id)
        lin, d, mask = _frame(plan, scene)
        expected = apply_effects_linear(lin, d, scene.camera_effects, float(plan.views[view_id].K[0, 0]),
                                        noise_seed=[plan.cfg.seed, pose, view_id, 4])
        assert np.array_equal(rgb, expected) and np.array_equal(labels, mask) and np.array_equal(depth, d)
    box = {"kind": "box", "size": [0.01] * 3, "rotation": np.eye(3).tolist(), "location": [0.0, 0.0, 0.0],
           "colour_a": [0.2, 0.3, 0.8], "colour_b": [0.1, 0.1, 0.1], "pattern": "checker", "pattern_scale": 40.0,
           "roughness": 0.5}
    ann = render_sample(plan, view, 0, 0, occluders=[box])[3]
    assert view.applied[-1].occluders == [box] and ann["occluders"] == [box]


def test_render_shard_applies_each_views_scene_and_writes_its_annotation(plan, tmp_path, monkeypatch):
    import synth.render_shard as rs

    view = RecordingView(plan)
    monkeypatch.setattr(rs, "scene_for", lambda p: view)
    stats = rs.render_shard(plan.cfg, tmp_path, 700, [45, 0, 12])
    assert stats["images"] == 3
    assert [(s.pose_id, s.view_id) for s in view.applied] == [(700, 0), (700, 12), (700, 45)]
    assert all(s == draw_scene(plan, 700, s.view_id) for s in view.applied)
    with tarfile.open(tmp_path / "shards" / "0700.tar") as tar:
        for s in view.applied:
            ann = json.loads(tar.extractfile(f"0700_{s.view_id:03d}.json").read())
            assert {k: ann[k] for k in s.records()} == json.loads(json.dumps(s.records()))
            rgb = np.asarray(Image.open(io.BytesIO(tar.extractfile(f"0700_{s.view_id:03d}.rgb.png").read())))
            assert rgb.shape == (48, 48, 3)


# ---------------------------------------------------------------- the settings around the scene

def test_config_serialisation_follows_the_field_types():
    tuple_fields = [f.name for f in dataclasses.fields(RenderConfig) if "tuple" in str(f.type)]
    assert set(tuple_fields) >= {"hdri_folders", "hdri_heldout", "hdri_strength", "arm_flexion_deg",
                                 "arm_deviation_deg", "arm_twist_deg", "forearm_length_m", "forearm_taper",
                                 "backdrop_folders", "backdrop_heldout"}   # the lists to_dict once kept by hand
    cfg = RenderConfig(hdri_folders=("a", "b"), hdri_heldout=("x",), backdrop_heldout=None, arm_twist_deg=(-5, 5))
    d = cfg.to_dict()
    assert [f.name for f in dataclasses.fields(RenderConfig)] == list(d)
    for name in tuple_fields:
        assert d[name] is None if getattr(cfg, name) is None else d[name] == list(getattr(cfg, name)), name
    back = RenderConfig.from_dict(json.loads(json.dumps(d)))
    assert back == cfg and back.config_hash() == cfg.config_hash() and isinstance(back.arm_twist_deg, tuple)
    assert RenderConfig(threads=3).to_dict()["threads"] == 3 and RenderConfig(threads=3).config_hash() == \
        RenderConfig().config_hash()
    with pytest.raises(ValueError, match="hdri_folders must be a list, got '/data'"):
        RenderConfig.from_dict({"hdri_folders": "/data"})
    with pytest.raises(ValueError, match=r"unknown render setting\(s\) \['colour'\]"):
        RenderConfig.from_dict({"colour": 1})


def _render_args(*argv):
    from hands.cli_render import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["render", "--out", "x", *argv])


def test_render_flags_and_set_reach_the_config(tmp_path):
    from hands.cli_render import config_from_args

    (tmp_path / "c.yaml").write_text("samples: 8\nocclusion_unused: null\n")
    flags = _render_args("--seed", "3", "--skies", "2", "--hdri-folder", "a", "--hdri-folder", "b", "--heldout",
                         "sky/x", "--strict", "--no-forearm", "--occluders", "0.5", "--camera-effects", "off",
                         "--hdri-split", "heldout", "--rgb-format", "jpg", "--threads", "2")
    assert config_from_args(flags) == RenderConfig(
        seed=3, hdri_skies=2, hdri_folders=("a", "b"), hdri_heldout=("sky/x",), hdri_strict=True, forearm=False,
        occluder_prob=0.5, camera_effects="off", hdri_split="heldout", rgb_format="jpg", threads=2)
    assert config_from_args(_render_args()) == RenderConfig()
    sets = _render_args("--set", "skin_run_length=1", "--set", "hdri_strength=[0.8, 1.2]", "--set", "splay=true",
                        "--set", "camera_effect_settings={jpeg_prob: 0}", "--samples", "9")
    assert config_from_args(sets) == RenderConfig(skin_run_length=1, hdri_strength=(0.8, 1.2), splay=True,
                                                  camera_effect_settings={"jpeg_prob": 0}, samples=9)
    with pytest.raises(ValueError, match=r"\['samples'\] given both by a flag and by --set"):
        config_from_args(_render_args("--samples", "9", "--set", "samples=10"))
    with pytest.raises(ValueError, match="--set expects KEY=VALUE"):
        config_from_args(_render_args("--set", "samples"))
    with pytest.raises(ValueError, match=r"unknown render setting\(s\) \['sample'\]"):
        config_from_args(_render_args("--set", "sample=3"))
    with pytest.raises(ValueError, match="occlusion_unused"):
        config_from_args(_render_args("--config", str(tmp_path / "c.yaml")))


def test_the_pose_count_is_the_pose_spaces(tmp_path, capsys):
    from synth.poses import NUM_POSES, complement_poses, num_poses

    assert num_poses() == NUM_POSES == 1520
    assert num_poses(splay=True) == len(complement_poses(splay=True)) == 64 + 3 * 2016
    args = _render_args("--dry-run", "--set", "splay=true", "--poses", "6111", "--views", "0")
    args.out = str(tmp_path / "d")
    args.fn(args)
    assert "1 planned, 0 complete, 1 to render" in capsys.readouterr().out
    args = _render_args("--dry-run", "--poses", "1520")
    with pytest.raises(ValueError, match=r"ids \[1520\] are not in 0..1519"):
        args.fn(args)


def test_the_render_stage_takes_any_setting(tmp_path, monkeypatch):
    import synth.distribute
    from hands.stages import render

    made = []

    class Summary:
        failed, done, skipped, images, seconds = {}, [0], [], 0, 0.0

        def lines(self):
            return []

    def fake_render_dataset(cfg, root, poses, views, **kw):
        made.append(cfg)
        return Summary()

    class Ctx:
        out = tmp_path

        def need(self, key, stage):
            return "openhand"

        def figure(self, *a):
            pass

        def give(self, **kw):
            pass

    monkeypatch.setattr(synth.distribute, "render_dataset", fake_render_dataset)
    render(Ctx())
    render(Ctx(), workers=0, settings={"occluder_prob": 0.3, "arm_twist_deg": [-10, 10]})
    assert made[0] == RenderConfig(seed=0, model="openhand", resolution=128, samples=16, hdri_skies=2, threads=1)
    assert made[1] == RenderConfig(model="openhand", resolution=128, samples=16, hdri_skies=2, occluder_prob=0.3,
                                   arm_twist_deg=(-10, 10))
    with pytest.raises(ValueError, match=r"\['seed'\] are the stage's own"):
        render(Ctx(), settings={"seed": 1})


def test_one_format_version_and_older_datasets_still_read(tmp_path):
    import scipy.sparse as sp

    from synth.shards import FORMAT, FORMAT_VERSION
    from synth.tables import load_tables, write_tables

    assert FORMAT == f"hands-complement/{FORMAT_VERSION}"
    poses = {"pose_ids": np.array([0]), "params": np.zeros((1, 48)), "vertices": np.zeros((1, 3, 3)),
             "keypoints": np.zeros((1, 21, 3)), "dense": np.zeros((1, 3, 3))}
    views = {"view_ids": np.array([0]), "K": np.eye(3)[None], "R": np.eye(3)[None], "t": np.zeros((1, 3)),
             "longitude": np.zeros(1), "latitude": np.zeros(1)}
    mapping = {"M": sp.eye(3), "S": sp.eye(3), "faces": np.array([[0, 1, 2]]), "dense_faces": np.array([[0, 1, 2]])}
    ds = {"config": {}, "versions": {"python": "3"}, "hand_model": {"name": "x", "template_hash": "h",
                                                                    "num_vertices": 3}}
    written = write_tables(tmp_path, ds, poses, views, mapping, [])
    assert written["format"] == FORMAT and written["versions"] == {"python": "3", "format": FORMAT_VERSION}
    assert load_tables(tmp_path).dataset["format"] == FORMAT
    for fmt, ok in (("hands-complement/1", True), (f"hands-complement/{FORMAT_VERSION + 1}", False),
                    ("something/1", False)):
        (tmp_path / "dataset.json").write_text(json.dumps({**written, "format": fmt}))
        if ok:
            assert load_tables(tmp_path).dataset["format"] == fmt
        else:
            with pytest.raises(ValueError, match=re.escape(f"format '{fmt}', expected 'hands-complement/1' .. "
                                                          f"'{FORMAT}'")):
                load_tables(tmp_path)
