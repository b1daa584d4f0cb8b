"""OpenHand: the bundled asset, its topology, skinning, regressor and shape space."""
import pickle

import numpy as np
import pytest

from synth import meshops
from synth.openhand.build import ASSET, build_model
from synth.openhand.mesh import MANO_PARENTS, build_mesh
from synth.openhand.proportions import FINGERS, Proportions


@pytest.fixture(scope="module")
def asset():
    with open(ASSET, "rb") as fh:
        return pickle.load(fh)


@pytest.mark.slow
def test_generator_reproduces_the_bundled_asset(asset):
    fresh = build_model()
    assert set(fresh) == set(asset)
    for key, value in fresh.items():
        if hasattr(value, "toarray"):
            value, stored = value.toarray(), asset[key].toarray()
        else:
            stored = asset[key]
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiu":
            np.testing.assert_allclose(value, stored, atol=1e-6, rtol=0, err_msg=key)
        else:
            assert value == stored, key


def test_mesh_counts_and_topology(asset):
    faces = asset["f"].astype(np.int64)
    assert asset["v_template"].shape == (778, 3)
    assert len(np.unique(faces)) == 778  # every vertex is used
    assert meshops.is_edge_manifold(faces)
    loops = meshops.boundary_loops(faces)
    assert len(loops) == 1, "exactly one open boundary (the wrist)"
    # a disk: V - E + F = 1, i.e. genus 0 with one hole
    assert meshops.euler_characteristic(faces) == 1
    assert meshops.is_consistently_oriented(faces)


def test_normals_point_outwards(asset):
    v, f = asset["v_template"], asset["f"].astype(np.int64)
    closed_v, closed_f = meshops.close_boundary(v, f, meshops.boundary_loops(f)[0])
    assert meshops.signed_volume(closed_v, closed_f) > 0
    # every vertex, pushed 1 mm along its normal, is outside the closed hand and
    # pushed 1 mm against it is inside (an inward-facing patch would flip both)
    n = meshops.vertex_normals(v, f)
    outside = meshops.winding_numbers(v + 1e-3 * n, closed_v, closed_f)
    inside = meshops.winding_numbers(v - 1e-3 * n, closed_v, closed_f)
    assert (outside < 0.5).mean() == 1.0
    assert (inside > 0.5).mean() > 0.99


def test_kinematic_tree_is_manos(asset):
    parents = asset["kintree_table"][0].astype(np.int64)
    assert parents[0] == 4294967295  # MANO's root marker
    np.testing.assert_array_equal(parents[1:], [0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14])
    np.testing.assert_array_equal(MANO_PARENTS[1:], parents[1:])


def test_skinning_weights_are_convex_and_smooth(asset):
    w = asset["weights"]
    f = asset["f"].astype(np.int64)
    assert w.shape == (778, 16)
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    jump = np.abs(w[edges[:, 0]] - w[edges[:, 1]]).max()
    assert jump < 0.5, f"a weight jumps by {jump:.2f} across one edge"
    for j in range(16):
        partial = ((w[:, j] > 0.1) & (w[:, j] < 0.9)).sum()
        assert partial >= 20, f"joint {j} has a hard seam ({partial} blended vertices)"
        assert (w.argmax(axis=1) == j).sum() >= 15, f"joint {j} dominates too few vertices"


def test_each_finger_is_weighted_to_its_own_chain(asset):
    mesh = build_mesh()
    w = asset["weights"]
    chains = {"index": (1, 2, 3), "middle": (4, 5, 6), "little": (7, 8, 9), "ring": (10, 11, 12),
              "thumb": (13, 14, 15)}
    for name, joints in chains.items():
        tip = mesh.tips[name]
        assert w[tip].argmax() == joints[2], name
        others = [j for j in range(1, 16) if j not in joints]
        assert w[tip, others].sum() < 1e-3, name


def test_joint_regressor_recovers_the_generators_joints(asset):
    reg = asset["J_regressor"].toarray()
    assert reg.shape == (16, 778)
    assert (reg >= 0).all()
    np.testing.assert_allclose(reg.sum(axis=1), 1.0, atol=1e-9)
    mesh = build_mesh()
    err = np.linalg.norm(reg @ mesh.vertices - mesh.joints, axis=1).max()
    assert err < 2e-3, f"regressed joints are {1000 * err:.2f} mm off"


def test_fingertip_vertices_are_the_finger_ends(asset):
    mesh = build_mesh()
    tips = asset["tip_vertex_ids"]
    assert [mesh.tips[f] for f in FINGERS] == list(tips)
    v = asset["v_template"]
    for name, tip in zip(FINGERS, tips):
        sel = mesh.finger == FINGERS.index(name)
        direction = mesh.frames[name][0]
        assert (v[sel] @ direction).argmax() == np.where(sel)[0].tolist().index(tip), name


def test_proportions_of_an_adult_hand(asset):
    mesh = build_mesh()
    v = asset["v_template"]
    length = mesh.joints[0][0] - v[mesh.tips["middle"]][0]
    assert 0.17 < length < 0.21, f"wrist-to-middle-tip {length:.3f} m"
    knuckle_width = v[mesh.finger != 0][:, 2].max() - v[mesh.finger != 0][:, 2].min()
    assert 0.07 < knuckle_width < 0.10, knuckle_width
    # finger lengths in anatomical order: middle > ring ~ index > little
    tip_dist = {f: np.linalg.norm(v[mesh.tips[f]] - mesh.joints[0]) for f in FINGERS[1:]}
    assert tip_dist["middle"] > tip_dist["ring"] > tip_dist["little"]
    assert tip_dist["middle"] > tip_dist["index"] > tip_dist["little"]


def test_shape_space_is_a_pca_of_the_generators_proportions(asset):
    dirs = asset["shapedirs"]
    assert dirs.shape == (778, 3, 10)
    flat = dirs.reshape(-1, 10)
    gram = flat.T @ flat
    off = gram - np.diag(np.diag(gram))
    assert np.abs(off).max() < 1e-9 * np.abs(gram).max(), "components are not orthogonal"
    norms = np.sqrt(np.diag(gram))
    assert (np.diff(norms) <= 1e-12).all(), "components are not sorted by variance"
    explained = asset["shape_explained_variance"]
    assert explained.sum() > 0.95 and explained[0] > 0.5
    # beta 0 is overall size: +2 std makes a longer hand
    mesh = build_mesh()
    bigger = asset["v_template"] + dirs[:, :, 0] * 2.0
    assert np.linalg.norm(bigger[mesh.tips["middle"]] - mesh.joints[0]) > \
        np.linalg.norm(asset["v_template"][mesh.tips["middle"]] - mesh.joints[0]) * 1.05


def test_a_changed_proportion_changes_the_mesh_but_not_its_topology():
    base = build_mesh()
    longer = build_mesh(Proportions(finger_length_scale=(1.0, 1.2, 1.0, 1.0, 1.0)))
    np.testing.assert_array_equal(base.faces, longer.faces)
    moved = np.linalg.norm(longer.vertices - base.vertices, axis=1)
    index = base.finger == FINGERS.index("index")
    assert moved[index].max() > 0.01 and moved[~index & ~base.on_palm].max() < 1e-9


def test_no_pose_correctives_and_identity_pose_basis(asset):
    assert asset["posedirs"].shape == (778, 3, 135) and not asset["posedirs"].any()
    np.testing.assert_array_equal(asset["hands_components"], np.eye(45))
    assert not asset["hands_mean"].any()
