"""Procedural skin detail: region weights on the render mesh, the widened skin palette, and the shader in a
render (nails show, the albedo varies over the hand)."""
import json
import re

import numpy as np
import pytest
import torch

from synth import skin as skin_module
from synth.poses import FINGER_JOINTS, FINGER_KEYPOINTS, FINGER_ORDER, base_pose, derive_axes
from synth.render_mesh import render_mesh_for
from synth.skin import SKIN_TONES_SRGB, UNDERTONES, flat_skin, sample_skin
from synth.skin_regions import ATTRIBUTES, CREASE_COORD, lbs_weights, palm_frame, region_weights, vertex_normals
from synth.skin_bake import region_colours
from synth.skin_shader import PLAIN_PROPERTIES, SKIN_PROPERTIES, shader_values


@pytest.fixture(scope="module")
def mesh(hand_model):
    rm = render_mesh_for(hand_model)
    dense = rm.rest_vertices(hand_model)
    kp = hand_model.joint_regressor @ hand_model.template
    return {"rm": rm, "dense": dense, "normals": vertex_normals(dense, rm.faces), "kp": kp,
            "lbs": rm.vertex_weights(hand_model), "regions": region_weights(hand_model, rm)}


def _posed(model, pose):
    with torch.no_grad():
        verts, kps = model(torch.as_tensor(np.asarray(pose)[None], dtype=torch.float32))
    return verts[0].double().numpy(), kps[0].double().numpy()


def _flexion_directions(model, kp):
    """Per finger, the unit direction its tip moves when the finger's last joint bends (30 degrees about
    the pose space's flexion axis, through the model's own skinning): the pad side of the distal segment."""
    axes = derive_axes(kp)
    out = {}
    for name in FINGER_ORDER:
        pose = np.zeros(48)
        j3 = FINGER_JOINTS[name][2]
        pose[3 * j3:3 * j3 + 3] = axes.flexion[j3] * np.radians(30.0)
        _, kps = _posed(model, pose)
        tip = FINGER_KEYPOINTS[name][3]
        move = kps[tip] - kp[tip]
        out[name] = move / np.linalg.norm(move)
    return out


def test_region_weights_are_per_dense_vertex_in_unit_range_and_pose_independent(hand_model, mesh):
    regions, n = mesh["regions"], mesh["rm"].num_vertices
    assert set(regions) == set(ATTRIBUTES)
    for name, w in regions.items():
        assert w.shape == (n,) and w.dtype == np.float32, name
        assert np.isfinite(w).all() and w.min() >= 0.0 and w.max() <= 1.0, name
        if name != CREASE_COORD:
            assert (w > 0.9).sum() >= 5, f"{name}: no vertex fully in the region"
    # a function of the rest model only: running the model on a fist changes nothing, and it repeats exactly
    _posed(hand_model, base_pose(31, derive_axes(mesh["kp"])))
    again = region_weights(hand_model, mesh["rm"])
    for name in ATTRIBUTES:
        np.testing.assert_array_equal(again[name], regions[name])
    # on the model's own vertices too, with the same names
    own = region_weights(hand_model)
    assert all(own[name].shape == (hand_model.num_vertices,) for name in ATTRIBUTES)


def test_palm_normal_points_out_of_the_palm(hand_model, mesh):
    normal = palm_frame(mesh["kp"])["normal"]
    _, kps = _posed(hand_model, base_pose(31, derive_axes(mesh["kp"])))   # fist: every finger bent
    for name in FINGER_ORDER:
        tip = FINGER_KEYPOINTS[name][3]
        assert (kps[tip] - mesh["kp"][tip]) @ normal > 0.01, name


def test_nails_are_on_the_back_of_each_fingertip(hand_model, mesh):
    nail, dense, normals, kp = mesh["regions"]["nail"], mesh["dense"], mesh["normals"], mesh["kp"]
    flex = _flexion_directions(hand_model, kp)
    tips = np.array([kp[FINGER_KEYPOINTS[f][3]] for f in FINGER_ORDER])
    distal = np.array([np.linalg.norm(kp[FINGER_KEYPOINTS[f][3]] - kp[FINGER_KEYPOINTS[f][2]]) for f in FINGER_ORDER])
    on = np.where(nail > 0)[0]
    nearest = np.argmin(np.linalg.norm(dense[on, None] - tips[None], axis=2), axis=1)
    dist = np.linalg.norm(dense[on] - tips[nearest], axis=1)
    # only near the five fingertips: within the distal segment's length of the nearest tip
    assert (dist < distal[nearest]).all(), dist.max()
    for fi, name in enumerate(FINGER_ORDER):
        mine = on[nearest == fi]
        strong = mine[nail[mine] > 0.8]
        assert len(strong) >= 3, f"{name}: {len(strong)} nail vertices"
        # only on the dorsal side: the normals face away from where the tip moves when the finger bends
        facing = normals[mine] @ flex[name]
        assert (facing < 0).all(), (name, facing.max())
        assert (normals[strong] @ flex[name]).max() < -0.3, name
        # about the distal 60 % of the segment, not its base near the DIP joint
        d3 = kp[FINGER_KEYPOINTS[name][2]]
        along = (dense[strong] - d3) @ (tips[fi] - d3) / distal[fi] ** 2
        assert along.min() > 0.3 and along.max() < 1.05, (name, along.min(), along.max())
    # the free edge lies on the nail's distal end
    edge = mesh["regions"]["nail_edge"]
    assert (nail[edge > 0.5] > 0.3).all()


def test_palm_tips_knuckles_and_creases_are_on_their_sides(hand_model, mesh):
    r, normals, kp, lbs = mesh["regions"], mesh["normals"], mesh["kp"], mesh["lbs"]
    palm_n = palm_frame(kp)["normal"]
    thumb = lbs[:, list(FINGER_JOINTS["thumb"])].sum(axis=1) > 0.3
    facing = normals @ palm_n
    # palm: the palmar side of the palm and the (long) fingers, none of the back of the hand
    assert (facing[(r["palm"] > 0.5) & ~thumb] > 0.0).all()
    assert (r["palm"][(facing < -0.2) & ~thumb] == 0).all()
    # (the thumb's pad faces where the thumb flexes to, turned from the palm normal)
    flex = _flexion_directions(hand_model, kp)["thumb"]
    thumb_palm = np.where((r["palm"] > 0.5) & thumb & (lbs[:, FINGER_JOINTS["thumb"][2]] > 0.5))[0]
    assert len(thumb_palm) > 5 and (normals[thumb_palm] @ flex > 0).all()
    assert (r["palm"][(facing > 0.8) & ~thumb] > 0.9).mean() > 0.9
    # knuckles: the back of the hand and fingers, around the MCP and PIP joints
    knuckle = np.where((r["knuckle"] > 0.5) & ~thumb)[0]
    assert len(knuckle) > 20 and (facing[knuckle] < 0).all()
    joints = kp[[FINGER_KEYPOINTS[f][i] for f in FINGER_ORDER[1:] for i in (0, 1)]]
    assert (np.linalg.norm(mesh["dense"][knuckle, None] - joints[None], axis=2).min(axis=1) < 0.02).all()
    # fingertip pads: near the tips, on the palmar side, apart from the nails
    tips = kp[[FINGER_KEYPOINTS[f][3] for f in FINGER_ORDER]]
    tip = np.where(r["tip"] > 0.5)[0]
    assert (np.linalg.norm(mesh["dense"][tip, None] - tips[None], axis=2).min(axis=1) < 0.025).all()
    assert (r["nail"][tip] < 0.5).all()
    # creases: palmar bands, with a centre line (crease_coord 0.5) crossing each long finger's PIP and DIP
    crease = np.where((r["crease"] > 0.5) & ~thumb)[0]
    assert (facing[crease] > 0.1).all()
    u = (r[CREASE_COORD].astype(np.float64) - 0.5) * 0.02
    for name in FINGER_ORDER[1:]:
        for joint_kp in FINGER_KEYPOINTS[name][1:3]:
            near = np.linalg.norm(mesh["dense"] - kp[joint_kp], axis=1) < 0.015
            band = near & (r["crease"] > 0.3)
            assert band.sum() >= 3 and u[band].min() < 0 < u[band].max(), (name, joint_kp)
    # palm lines: crease weight on the palm itself, away from the fingers
    palm_only = (lbs[:, 0] > 0.5) & (facing > 0.5)       # the wrist's bone dominates: the palm
    assert (r["crease"][palm_only] > 0.5).sum() >= 10


def _documented_ranges() -> dict:
    """key -> (lo, hi) for every `U(lo, hi)` row of synth/skin.py's parameter table."""
    ranges = {}
    for line in skin_module.__doc__.splitlines():
        m = re.match(r"\| (\w+) \|.*\| U\(([\d.]+), ([\d.]+)\)( each)? \|$", line)
        if m:
            ranges[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    return ranges


def test_sample_skin_is_deterministic_json_able_and_in_its_documented_ranges():
    draw = lambda seed: sample_skin(np.random.default_rng(seed))  # noqa: E731
    assert draw(5) == draw(5) != draw(6)
    first = draw(5)
    assert json.loads(json.dumps(first)) == first
    assert {"tone", "base_color_srgb", "roughness", "subsurface_weight", "subsurface_radius",
            "subsurface_scale"} <= set(first)
    ranges = _documented_ranges()
    assert {"palm_lightening", "knuckle_redness", "tip_redness", "crease_strength", "bump_strength",
            "noise_scale", "noise_strength", "noise_offset", "nail_roughness", "nail_gloss",
            "nail_edge_paleness", "roughness", "undertone_strength"} <= set(ranges)
    draws = [draw(s) for s in range(1500)]
    for key, (lo, hi) in ranges.items():
        values = np.concatenate([np.ravel(d[key]) for d in draws])
        assert values.min() >= lo and values.max() <= hi, (key, values.min(), values.max())
        assert values.max() - values.min() > 0.8 * (hi - lo), f"{key}: does not span its range"
        # recorded to 6 digits
        np.testing.assert_array_equal(values, np.round(values, 6))
    assert {d["tone"] for d in draws} == set(range(len(SKIN_TONES_SRGB)))
    assert {d["undertone"] for d in draws} == set(UNDERTONES)
    base = np.array([d["base_color_srgb"] for d in draws])
    assert base.min() >= 0 and base.max() <= 1
    luma = base @ [0.2126, 0.7152, 0.0722]
    assert luma.min() < 0.2 and luma.max() > 0.8      # very dark to very light
    nail = np.array([d["nail_color_srgb"] for d in draws])
    r, fg, fb = nail[:, 0], nail[:, 1] / nail[:, 0], nail[:, 2] / nail[:, 1]
    assert r.min() >= 0.82 - 1e-6 and r.max() <= 0.96 + 1e-6
    assert fg.min() >= 0.74 - 1e-5 and fg.max() <= 0.88 + 1e-5 and fb.min() >= 0.90 - 1e-5 and fb.max() <= 1.02 + 1e-5


def test_region_colours_and_shader_values_follow_the_sample_and_flat_skin_is_one_colour():
    skin = sample_skin(np.random.default_rng(3))
    colours, values = region_colours(skin), shader_values(skin)
    assert set(values) == set(SKIN_PROPERTIES) | set(PLAIN_PROPERTIES)
    luma = lambda c: float(np.asarray(c) @ [0.2126, 0.7152, 0.0722])  # noqa: E731
    base = colours["base"]
    np.testing.assert_allclose(values["skin_color"], base)              # the plain skin's colour is the base
    assert luma(colours["palm"]) > luma(base)                           # paler palm
    assert colours["knuckle"][0] / colours["knuckle"][1] > base[0] / base[1]   # redder knuckles
    assert colours["tip"][0] / colours["tip"][1] > colours["palm"][0] / colours["palm"][1]   # redder tips
    assert max(values["skin_crease_tint"]) < 1.0
    # overriding the base colour moves every derived colour with it
    red = region_colours(dict(skin, base_color_srgb=[0.9, 0.15, 0.1]))
    for name in ("palm", "knuckle", "tip"):
        assert red[name][0] > 3 * red[name][1], name
    flat = flat_skin(skin)
    flat_colours, flat_values = region_colours(flat), shader_values(flat)
    for name in ("palm", "knuckle", "tip"):
        np.testing.assert_allclose(flat_colours[name], flat_colours["base"], atol=1e-12, err_msg=name)
    for prop in ("skin_nail_color", "skin_nail_edge_color"):
        np.testing.assert_allclose(flat_values[prop], flat_values["skin_color"], atol=1e-12, err_msg=prop)
    assert flat_values["skin_crease_tint"] == [1.0, 1.0, 1.0]
    assert flat_values["skin_surface"][2] == 0.0                        # no clear coat


@pytest.mark.blender
def test_the_material_reads_packed_regions_and_rejects_unknown_ones():
    bpy = pytest.importorskip("bpy")
    from synth.skin_shader import SHADER_ATTRIBUTES, SURFACE_ATTRIBUTE, build_skin_material, set_surface

    mesh = bpy.data.meshes.new("skin-test")     # not linked to any scene: a cached render scene is untouched
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    obj = bpy.data.objects.new("skin-test", mesh)
    try:
        mat = build_skin_material(bpy, obj, {"nail": np.array([0.0, 0.5, 1.0]), "palm": np.full(3, 0.25)})
        assert list(mesh.materials) == [mat]
        values = np.zeros(9, dtype=np.float32)
        mesh.attributes["region_nail"].data.foreach_get("vector", values)
        np.testing.assert_allclose(values.reshape(3, 3)[:, 0], [0.0, 0.5, 1.0])
        assert not values.reshape(3, 3)[:, 1:].any()          # no nail edge, no crease given: 0
        set_surface(mesh, np.array([[0.1, 0.2, 0.3]] * 3), np.array([0.5, 0.25, 0.0]))
        surface = np.zeros(12, dtype=np.float32)
        mesh.attributes[SURFACE_ATTRIBUTE].data.foreach_get("color", surface)
        np.testing.assert_allclose(surface.reshape(3, 4), [[0.1, 0.2, 0.3, 0.5], [0.1, 0.2, 0.3, 0.25],
                                                           [0.1, 0.2, 0.3, 0.0]], atol=1e-7)
        # every attribute the tree reads is one the code writes: the object properties of shader_values,
        # the region attributes and the per-sample surface
        nodes = [n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeAttribute"]
        assert {n.attribute_name for n in nodes if n.attribute_type == "OBJECT"} == set(SKIN_PROPERTIES)
        assert {n.attribute_name for n in nodes if n.attribute_type == "GEOMETRY"} == \
            set(SHADER_ATTRIBUTES) | {SURFACE_ATTRIBUTE}
        with pytest.raises(ValueError, match="unknown skin region"):
            build_skin_material(bpy, obj, {"nails": np.zeros(3)})
        with pytest.raises(ValueError, match="has shape"):
            build_skin_material(bpy, obj, {"nail": np.zeros(4)})
    finally:
        for m in list(mesh.materials):
            bpy.data.materials.remove(m)
        bpy.data.objects.remove(obj)
        bpy.data.meshes.remove(mesh)


@pytest.mark.blender
@pytest.mark.slow
def test_nails_and_albedo_detail_reach_the_render():
    from synth.render_config import RenderConfig
    from synth.scene import draw_skin
    from synth.render_shard import prepare, scene_for
    from synth.shards import MASK_VALUES

    cfg = RenderConfig(resolution=96, samples=8, hdri_skies=1)
    plan = prepare(cfg, report=lambda *_: None)
    scene = scene_for(plan)
    regions = region_weights(plan.model, plan.render_mesh)
    rest = plan.dense(0)      # pose 0: the flat hand
    scene.set_vertices(rest)
    scene.set_forearm(None)
    scene.set_occluders([])
    scene.set_world(plan.usable_hdris[0], 0.0, 1.0)
    kp = plan.keypoints[0]
    palm_n = palm_frame(plan.model.joint_regressor @ plan.model.template)["normal"]
    # the rig view that looks most squarely at the back of the hand, zoomed onto the four long fingertips
    centre = kp.mean(axis=0)
    back = [(((-v.R.T @ v.t) - centre) @ palm_n) / np.linalg.norm((-v.R.T @ v.t) - centre) for v in plan.views]
    view = plan.views[int(np.argmin(back))]
    target = kp[[FINGER_KEYPOINTS[f][i] for f in FINGER_ORDER[1:] for i in (2, 3)]].mean(axis=0)
    X = view.R @ target + view.t
    f, c = view.K[0, 0] * 2.2, (cfg.resolution - 1) / 2
    K = np.array([[f, 0, c - f * X[0] / X[2]], [0, f, c - f * X[1] / X[2]], [0, 0, 1.0]])
    scene.set_camera(K, view.R, view.t)
    skin = dict(draw_skin(cfg, 0, 0), base_color_srgb=list(SKIN_TONES_SRGB[7]), knuckle_redness=0.5,
                nail_color_srgb=[0.92, 0.76, 0.72], noise_strength=0.06, crease_strength=0.8)
    renders = {}
    for name, s in (("detail", skin), ("flat", flat_skin(skin))):
        scene.set_skin(s)
        rgb, depth, labels = scene.render()
        renders[name] = (rgb.astype(np.float64), depth, labels == MASK_VALUES["hand"])

    rgb, depth, mask = renders["detail"]
    cam = rest @ view.R.T + view.t
    px = np.round((cam @ K.T)[:, :2] / cam[:, 2:3]).astype(int)
    inside = (px >= 0).all(axis=1) & (px < cfg.resolution).all(axis=1)
    seen = np.zeros(len(cam), dtype=bool)
    seen[inside] = mask[px[inside, 1], px[inside, 0]] & \
        (np.abs(depth[px[inside, 1], px[inside, 0]] - cam[inside, 2]) < 0.003)
    normals_cam = vertex_normals(cam, plan.render_mesh.faces)
    facing = -(normals_cam * cam / np.linalg.norm(cam, axis=1, keepdims=True)).sum(axis=1) > 0.5
    lbs = plan.render_mesh.vertex_weights(plan.model)
    # the finger skin around the nails: middle and distal segments, off the nail, knuckles, pads and palm side
    fingers = lbs[:, [FINGER_JOINTS[f][i] for f in FINGER_ORDER[1:] for i in (1, 2)]].sum(axis=1) > 0.95

    def pixels(select):
        p = np.unique(px[select & seen & facing], axis=0)
        return rgb[p[:, 1], p[:, 0]]

    nails = pixels(regions["nail"] > 0.8)
    skin_px = pixels(fingers & (regions["nail"] == 0) & (regions["knuckle"] < 0.2) & (regions["tip"] < 0.2)
                     & (regions["palm"] == 0))
    assert len(nails) >= 8 and len(skin_px) >= 8, (len(nails), len(skin_px))
    nail_mean, skin_mean = nails.mean(axis=0), skin_px.mean(axis=0)
    redness = lambda c: c[0] / c.sum()  # noqa: E731
    # (measured: nails (200, 130, 90) on finger skin (155, 95, 58))
    assert nail_mean.mean() > skin_mean.mean() + 15, (nail_mean, skin_mean)     # lighter
    assert redness(nail_mean) < redness(skin_mean) - 0.015, (nail_mean, skin_mean)  # less red

    # the albedo is no longer one colour: chromaticity and brightness vary more over the hand than with
    # every detail strength at 0 (same light, same geometry)
    def spread(name):
        img, _, m = renders[name]
        px_ = img[m]
        chroma = px_ / np.maximum(px_.sum(axis=1, keepdims=True), 1.0)
        return chroma[:, :2].std(axis=0).sum(), np.log(np.maximum(px_.mean(axis=1), 1.0)).std()

    (chroma_d, bright_d), (chroma_f, bright_f) = spread("detail"), spread("flat")
    # (measured with Blender 5.0.1: chromaticity 0.032 against 0.027, log-brightness 0.133 against 0.109)
    assert chroma_d > 1.08 * chroma_f, (chroma_d, chroma_f)
    assert bright_d > 1.08 * bright_f, (bright_d, bright_f)
