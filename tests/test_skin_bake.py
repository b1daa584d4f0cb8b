"""The skin's per-vertex part (synth/skin_bake.py): the gradient noise, the albedo, the normal detail and the
hand + forearm seam, checked against properties that hold independently of the implementation."""
import numpy as np
import pytest

from synth import skin_bake
from synth.forearm import forearm_faces, forearm_rest, wrist_loop
from synth.meshops import vertex_normals
from synth.render_mesh import build_render_mesh
from synth.skin import flat_skin, sample_skin
from synth.skin_bake import (FOREARM_PALM_SHARE, FRACTAL_STD, NOISE_STD, detail_normals, forearm_palm_weights,
                             fractal_noise, gradient_noise, joined_normals, region_colours, vertex_albedo)
from synth.skin_regions import region_weights


@pytest.fixture(scope="module")
def hand(hand_model):
    rm = build_render_mesh(hand_model.faces, hand_model.num_vertices)
    rest = rm.densify(np.asarray(hand_model.template, dtype=np.float64))
    return {"rm": rm, "rest": rest, "regions": region_weights(hand_model, rm), "loop": wrist_loop(rm.faces, rest)}


def test_gradient_noise_vanishes_on_the_lattice_is_smooth_periodic_and_has_its_stated_spread():
    rng = np.random.default_rng(0)
    lattice = rng.integers(-300, 300, size=(500, 3)).astype(float)
    np.testing.assert_allclose(gradient_noise(lattice), 0.0, atol=1e-12)
    p = rng.uniform(-50, 50, size=(200000, 3))
    n = gradient_noise(p)
    assert np.abs(n).max() <= 1.0
    assert abs(n.std() / NOISE_STD - 1) < 0.02, n.std()
    assert abs(fractal_noise(p).std() - 1) < 0.02          # normalised by FRACTAL_STD
    assert abs(n.mean()) < 0.01
    np.testing.assert_allclose(gradient_noise(p[:1000] + [256, -512, 768]), n[:1000], atol=1e-9)   # period 256
    # smooth: a step of 1e-4 cells changes the value by at most a few times 1e-4 (the gradient is bounded)
    step = gradient_noise(p[:5000] + 1e-4) - n[:5000]
    assert np.abs(step).max() < 1e-3
    assert FRACTAL_STD > NOISE_STD


def test_vertex_albedo_mixes_the_region_tones_and_varies_by_the_drawn_strength(hand):
    skin = dict(sample_skin(np.random.default_rng(4)), noise_strength=0.0)
    colours = region_colours(skin)
    n = 6
    regions = {"palm": np.array([0, 1, 0, 0, 1, 0.5]), "knuckle": np.array([0, 0, 1, 0, 0, 0]),
               "tip": np.array([0, 0, 0, 1, 1, 0])}
    albedo = vertex_albedo(skin, np.zeros((n, 3)), regions)
    np.testing.assert_allclose(albedo[0], colours["base"])
    np.testing.assert_allclose(albedo[1], colours["palm"])
    np.testing.assert_allclose(albedo[2], colours["knuckle"])
    np.testing.assert_allclose(albedo[3], colours["tip"])
    np.testing.assert_allclose(albedo[4], colours["tip"])               # the tip mixes in last
    np.testing.assert_allclose(albedo[5], (colours["base"] + colours["palm"]) / 2)
    # the noise: a factor of mean 1 and std noise_strength over the hand, the same at the same rest point
    noisy = dict(skin, noise_strength=0.05, noise_scale=80.0)
    factor = vertex_albedo(noisy, hand["rest"])[:, 1] / colours["base"][1]
    assert abs(factor.mean() - 1) < 0.01 and 0.03 < factor.std() < 0.07, (factor.mean(), factor.std())
    np.testing.assert_array_equal(vertex_albedo(noisy, hand["rest"]), vertex_albedo(noisy, hand["rest"]))
    moved = vertex_albedo(dict(noisy, noise_offset=[3.5, 0.0, 0.0]), hand["rest"])
    assert not np.allclose(moved, vertex_albedo(noisy, hand["rest"]))   # the offset draws another pattern
    np.testing.assert_allclose(vertex_albedo(flat_skin(noisy), hand["rest"], hand["regions"]),
                               np.tile(colours["base"], (len(hand["rest"]), 1)))   # flat skin: one colour


def test_detail_normals_tilt_by_the_drawn_strength_more_on_creases(hand):
    normals = vertex_normals(hand["rest"], hand["rm"].faces)
    skin = sample_skin(np.random.default_rng(2))
    np.testing.assert_array_equal(detail_normals(normals, hand["rest"], dict(skin, bump_strength=0.0)), normals)
    k = 0.06
    tilted = detail_normals(normals, hand["rest"], dict(skin, bump_strength=k))
    np.testing.assert_allclose(np.linalg.norm(tilted, axis=1), 1.0, atol=1e-12)
    angle = np.arccos(np.clip((tilted * normals).sum(axis=1), -1, 1))
    # the tangential part of a unit-std 3-vector has two unit-std components: tilt ~ k x Rayleigh(1), mean
    # k sqrt(pi / 2); the noise's spatial correlation over a small mesh leaves a loose band around it
    assert 0.6 < angle.mean() / (k * np.sqrt(np.pi / 2)) < 1.4, angle.mean()
    crease = np.zeros(len(normals))
    crease[: len(crease) // 2] = 1.0
    on_crease = detail_normals(normals, hand["rest"], dict(skin, bump_strength=k), crease)
    a = np.arccos(np.clip((on_crease * normals).sum(axis=1), -1, 1))
    np.testing.assert_allclose(a[len(crease) // 2:], angle[len(crease) // 2:], atol=1e-12)   # off-crease: same
    ratio = np.tan(a[: len(crease) // 2]) / np.maximum(np.tan(angle[: len(crease) // 2]), 1e-12)
    np.testing.assert_allclose(ratio[angle[: len(crease) // 2] > 1e-3], 1 + skin_bake.CREASE_BUMP, rtol=1e-6)


def test_hand_and_forearm_share_their_normals_and_tone_at_the_wrist(hand):
    loop = hand["loop"]
    arm = forearm_rest(loop, 0.15, 1.2)
    faces = forearm_faces(len(loop.indices))
    hn, an = joined_normals(hand["rest"], hand["rm"].faces, arm, faces, loop.indices)
    n = len(loop.indices)
    np.testing.assert_array_equal(hn[loop.indices], an[:n])            # one normal per seam vertex
    # the seam's normals are the tube's: about perpendicular to the arm's axis, which the hand's own
    # normals at its open boundary are not
    own = vertex_normals(hand["rest"], hand["rm"].faces)[loop.indices]
    assert np.abs(an[:n] @ loop.axis).mean() < 0.5 * np.abs(own @ loop.axis).mean()
    np.testing.assert_allclose(np.linalg.norm(an, axis=1), 1.0, atol=1e-12)
    # the tone: the arm's first ring gets the same albedo as the hand's wrist loop
    skin = sample_skin(np.random.default_rng(9))
    palm = forearm_palm_weights(hand["regions"]["palm"][loop.indices], len(arm))
    hand_albedo = vertex_albedo(skin, hand["rest"], hand["regions"])[loop.indices]
    arm_albedo = vertex_albedo(skin, arm, {"palm": palm})[:n]
    # (the hand's knuckle and tip weights are 0 at the wrist, the noise is painted at the same rest points)
    np.testing.assert_allclose(arm_albedo, hand_albedo, atol=1e-9)


def test_forearm_palm_weights_continue_the_loop_and_fade_to_the_inner_forearm_share():
    loop = np.array([0.0, 0.2, 1.0, 0.6])
    from synth.forearm import CAP_RINGS, RINGS

    count = (1 + RINGS + len(CAP_RINGS)) * len(loop) + 1
    w = forearm_palm_weights(loop, count)
    rings = w[:-1].reshape(-1, len(loop))
    np.testing.assert_array_equal(rings[0], loop)
    per_ring = rings[:, 2]
    assert np.all(np.diff(per_ring) <= 1e-12)                             # fades monotonically
    np.testing.assert_allclose(per_ring[RINGS:], FOREARM_PALM_SHARE)    # the far rings and the cap
    assert w[-1] == pytest.approx(FOREARM_PALM_SHARE * loop.mean())
    with pytest.raises(ValueError, match="not rings"):
        forearm_palm_weights(loop, count + 1)
