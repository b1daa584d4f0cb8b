"""synth.meshops on small meshes built here, and synth.selfcontact.penetration_share on OpenHand."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

from synth import meshops


def _outward_hull(points):
    """Triangles of a convex point set, each wound counter-clockwise seen from outside."""
    points = np.asarray(points, float)
    faces = ConvexHull(points).simplices.copy()
    centre = points.mean(axis=0)
    for f in faces:
        a, b, c = points[f]
        if np.cross(b - a, c - a) @ (a - centre) < 0:
            f[[1, 2]] = f[[2, 1]]
    return faces


def unit_cube():
    v = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float)
    # 6 quads, counter-clockwise from outside, split along one diagonal
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    f = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    return v, f


def tetrahedron():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    return v, _outward_hull(v)


def icosphere():
    p = (1 + 5 ** 0.5) / 2
    v = np.array([[-1, p, 0], [1, p, 0], [-1, -p, 0], [1, -p, 0], [0, -1, p], [0, 1, p],
                  [0, -1, -p], [0, 1, -p], [p, 0, -1], [p, 0, 1], [-p, 0, -1], [-p, 0, 1]], float)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v, _outward_hull(v)


def open_cylinder(n=12, rings=4, radius=1.0, height=2.0):
    ang = 2 * np.pi * np.arange(n) / n
    v = np.array([[radius * np.cos(a), radius * np.sin(a), h]
                  for h in np.linspace(0, height, rings) for a in ang])
    faces = []
    for r in range(rings - 1):
        for k in range(n):
            a, b = r * n + k, r * n + (k + 1) % n
            c, d = a + n, b + n
            faces += [(a, b, d), (a, d, c)]  # outward (counter-clockwise seen from outside)
    return v, np.array(faces)


def test_test_meshes_are_what_they_claim():
    # the constructions themselves, checked against geometry independent of meshops
    v, f = unit_cube()
    for tri in f:
        a, b, c = v[tri]
        n = np.cross(b - a, c - a)
        assert n @ (a - 0.5) > 0
    v, f = open_cylinder()
    a, b, c = v[f[0]]
    assert np.cross(b - a, c - a) @ np.r_[a[:2], 0] > 0


# ----------------------------------------------------------------- winding numbers


@pytest.mark.parametrize("mesh", [unit_cube, tetrahedron, icosphere])
def test_winding_number_inside_and_outside(mesh):
    v, f = mesh()
    centroid = v.mean(axis=0)
    inside = np.array([centroid, 0.8 * centroid + 0.2 * v[0], 0.9 * centroid + 0.1 * v[-1]])
    outside = np.array([centroid + 5.0, [-0.3, -0.2, -1.5], centroid + 1.5 * (v[1] - centroid), [100, -50, 20]])
    w = meshops.winding_numbers(np.vstack([inside, outside]), v, f)
    np.testing.assert_allclose(w[:3], 1.0, atol=1e-9)
    np.testing.assert_allclose(w[3:], 0.0, atol=1e-9)
    # reversed faces give -1 inside
    reversed_f = np.ascontiguousarray(f[:, ::-1])
    np.testing.assert_allclose(meshops.winding_numbers(inside, v, reversed_f), -1.0, atol=1e-9)


def test_winding_number_accepts_reversed_face_view():
    v, f = unit_cube()
    w = meshops.winding_numbers(np.array([[0.5, 0.5, 0.5]]), v, f[:, ::-1])
    assert w[0] == pytest.approx(-1.0, abs=1e-9)


def test_winding_number_of_an_open_hemisphere_is_fractional():
    # a cube missing its top (two triangles): at the centre the missing face
    # subtends 1/6 of the sphere, so w = 5/6
    v, f = unit_cube()
    top = [i for i, t in enumerate(f) if (v[t][:, 2] == 1).all()]
    assert len(top) == 2
    w = meshops.winding_numbers(np.array([[0.5, 0.5, 0.5]]), v, np.delete(f, top, axis=0))
    assert w[0] == pytest.approx(5 / 6, abs=1e-9)


def test_winding_number_batched_and_chunked():
    v, f = unit_cube()
    rng = np.random.default_rng(0)
    shifts = np.array([[0.0, 0.0, 0.0], [3.0, -1.0, 2.0], [-5.0, 0.5, 0.0]])
    verts = v[None] + shifts[:, None]                     # (3, 8, 3)
    pts = rng.uniform(-0.5, 1.5, size=(3, 200, 3)) + shifts[:, None]
    w = meshops.winding_numbers(pts, verts, f, chunk=37)
    assert w.shape == (3, 200)
    local = pts - shifts[:, None]
    truth = ((local > 0) & (local < 1)).all(axis=-1)
    clear = (np.minimum(np.abs(local), np.abs(local - 1)).min(axis=-1) > 1e-3)
    np.testing.assert_allclose(w[clear], truth[clear].astype(float), atol=1e-6)
    # equal to the unbatched answer, point by point
    for b in range(3):
        np.testing.assert_allclose(w[b], meshops.winding_numbers(pts[b], verts[b], f), atol=1e-12)
    w32 = meshops.winding_numbers(pts, verts, f, dtype=torch.float32)
    np.testing.assert_allclose(w32[clear], truth[clear].astype(float), atol=1e-3)


# ----------------------------------------------------------- volume and orientation


def test_signed_volume():
    v, f = unit_cube()
    assert meshops.signed_volume(v, f) == pytest.approx(1.0, abs=1e-12)
    assert meshops.signed_volume(v, f[:, ::-1]) == pytest.approx(-1.0, abs=1e-12)
    # translation-invariant for a closed mesh; scales with the cube of the size
    assert meshops.signed_volume(2.0 * v + [3, -4, 5], f) == pytest.approx(8.0, abs=1e-9)
    tv, tf = tetrahedron()
    assert meshops.signed_volume(tv, tf) == pytest.approx(1 / 6, abs=1e-12)


@pytest.mark.parametrize("mesh", [unit_cube, icosphere, open_cylinder])
def test_make_consistent_repairs_flipped_faces(mesh):
    v, f = mesh()
    assert meshops.is_consistently_oriented(f)
    rng = np.random.default_rng(1)
    flip = rng.random(len(f)) < 0.4
    flip[0] = False
    flip[len(f) // 2] = True
    broken = f.copy()
    broken[flip] = broken[flip][:, ::-1]
    assert not meshops.is_consistently_oriented(broken)
    fixed = meshops.make_consistent(broken)
    assert meshops.is_consistently_oriented(fixed)
    # face 0 kept its orientation, so every face is back to its original winding
    # (same vertex cycle, possibly starting elsewhere)
    for a, b in zip(fixed, f):
        assert any(tuple(np.roll(a, k)) == tuple(b) for k in range(3))
    assert broken is not fixed and not np.array_equal(broken, f)  # input untouched


def test_make_consistent_follows_face_zero():
    v, f = unit_cube()
    broken = f.copy()
    broken[0] = broken[0][::-1]  # only face 0 wrong: everything else gets flipped to agree
    fixed = meshops.make_consistent(broken)
    assert meshops.is_consistently_oriented(fixed)
    assert meshops.signed_volume(v, fixed) == pytest.approx(-1.0, abs=1e-12)


# ----------------------------------------------------------------------- topology


def test_boundary_loops_of_open_cylinder():
    n = 12
    v, f = open_cylinder(n=n, rings=4)
    loops = meshops.boundary_loops(f)
    assert len(loops) == 2
    assert sorted(len(lp) for lp in loops) == [n, n]
    rings = sorted(set(np.asarray(lp) // n) for lp in [np.asarray(x) for x in loops])
    assert [sorted(r) for r in rings] == [[0], [3]]  # bottom and top rings
    directed = {(int(t[k]), int(t[(k + 1) % 3])) for t in f for k in range(3)}
    for lp in loops:
        assert sorted(lp.tolist()) == sorted(set(lp.tolist()))  # no repeats
        for i in range(len(lp)):
            a, b = int(lp[i]), int(lp[(i + 1) % len(lp)])
            # consecutive loop vertices are a boundary edge walked against its face
            assert (b, a) in directed and (a, b) not in directed


def test_boundary_loops_of_closed_mesh_is_empty():
    assert meshops.boundary_loops(unit_cube()[1]) == []


def test_is_edge_manifold():
    v, f = unit_cube()
    assert meshops.is_edge_manifold(f)
    # a third face on the edge (0, 1) of the cube
    extra = np.vstack([v, [[0.5, -1.0, 0.5]]])
    assert not meshops.is_edge_manifold(np.vstack([f, [[0, 1, len(extra) - 1]]]))
    # three triangles sharing one edge, nothing else
    assert not meshops.is_edge_manifold(np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]]))
    assert meshops.is_edge_manifold(np.array([[0, 1, 2], [1, 0, 3]]))


@pytest.mark.parametrize("mesh,chi", [(unit_cube, 2), (tetrahedron, 2), (icosphere, 2), (open_cylinder, 0)])
def test_euler_characteristic(mesh, chi):
    assert meshops.euler_characteristic(mesh()[1]) == chi


def test_euler_characteristic_of_a_disk():
    v, f = open_cylinder()
    loops = meshops.boundary_loops(f)
    _, closed = meshops.close_boundary(v, f, loops[0])
    assert meshops.euler_characteristic(closed) == 1


# ------------------------------------------------------------------ close_boundary


@pytest.mark.parametrize("reverse_loop", [False, True])
@pytest.mark.parametrize("flip_mesh", [False, True])
def test_close_boundary_of_a_cube_without_its_top(reverse_loop, flip_mesh):
    v, f = unit_cube()
    top = [i for i, t in enumerate(f) if (v[t][:, 2] == 1).all()]
    open_f = np.delete(f, top, axis=0)
    if flip_mesh:
        open_f = open_f[:, ::-1]
    (loop,) = meshops.boundary_loops(open_f)
    assert len(loop) == 4
    if reverse_loop:
        loop = loop[::-1]
    new_v, new_f = meshops.close_boundary(v, open_f, loop)
    assert len(new_v) == len(v) + 1
    np.testing.assert_allclose(new_v[-1], [0.5, 0.5, 1.0], atol=1e-15)
    assert len(new_f) == len(open_f) + 4
    np.testing.assert_array_equal(new_f[:len(open_f)], open_f)
    assert (new_f[len(open_f):] == len(v)).sum(axis=1).tolist() == [1] * 4  # a fan around the new vertex
    assert meshops.boundary_loops(new_f) == []
    assert meshops.is_edge_manifold(new_f)
    assert meshops.is_consistently_oriented(new_f)
    assert meshops.euler_characteristic(new_f) == 2
    assert meshops.signed_volume(new_v, new_f) == pytest.approx(-1.0 if flip_mesh else 1.0, abs=1e-12)


def test_close_boundary_of_a_cylinder():
    v, f = open_cylinder(n=10, rings=3)
    loops = meshops.boundary_loops(f)
    closed_v, closed_f = v, f
    for lp in loops:
        closed_v, closed_f = meshops.close_boundary(closed_v, closed_f, lp)
    assert len(closed_v) == len(v) + 2
    assert meshops.boundary_loops(closed_f) == []
    assert meshops.is_consistently_oriented(closed_f)
    assert meshops.euler_characteristic(closed_f) == 2
    # outward-wound: positive volume, that of the inscribed prism (regular 10-gon)
    prism = 0.5 * 10 * np.sin(2 * np.pi / 10) * 2.0
    assert meshops.signed_volume(closed_v, closed_f) == pytest.approx(prism, rel=1e-12)


def test_close_boundary_batched():
    v, f = open_cylinder(n=10, rings=3)
    loop = meshops.boundary_loops(f)[0]
    batch = np.stack([v, 2 * v + 1])
    bv, bf = meshops.close_boundary(batch, f, loop)
    assert bv.shape == (2, len(v) + 1, 3)
    sv, sf = meshops.close_boundary(v, f, loop)
    np.testing.assert_allclose(bv[0], sv, atol=1e-15)
    np.testing.assert_allclose(bv[1, -1], 2 * sv[-1] + 1, atol=1e-12)
    np.testing.assert_array_equal(bf, sf)  # the fan uses the new (last) vertex, index V


# ----------------------------------------------------------------------- normals


def test_vertex_normals_of_cube_corners_point_outward():
    v, f = unit_cube()
    n = meshops.vertex_normals(v, f)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-12)
    outward = v - 0.5
    assert (np.sign(n) == np.sign(outward)).all()  # every component points out of the cube
    assert (np.einsum("ij,ij->i", n, outward) > 0.5 * np.sqrt(0.75)).all()
    # reversed winding reverses the normals
    np.testing.assert_allclose(meshops.vertex_normals(v, f[:, ::-1]), -n, atol=1e-12)


def test_vertex_normals_of_a_regular_icosahedron_are_radial_and_batched():
    v, f = icosphere()
    n = meshops.vertex_normals(v, f)
    np.testing.assert_allclose(n, v, atol=1e-12)  # unit vertices: radial == position
    R = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))[0]
    batch = np.stack([v, v @ R.T])
    nb = meshops.vertex_normals(batch, f)
    assert nb.shape == (2, 12, 3)
    np.testing.assert_allclose(nb[0], n, atol=1e-12)
    np.testing.assert_allclose(nb[1], n @ R.T, atol=1e-12)


def test_face_normals_hand_computed():
    v = np.array([[0, 0, 0], [2, 0, 0], [0, 3, 0]], float)
    np.testing.assert_allclose(meshops.face_normals(v, np.array([[0, 1, 2]])), [[0, 0, 6]])


# ----------------------------------------------------------- selfcontact on OpenHand


@pytest.fixture(scope="module")
def hand():
    from synth.hand_model import HandModel

    return HandModel()


def _pose_vertices(hm, poses):
    with torch.no_grad():
        return hm(torch.tensor(np.asarray(poses), dtype=torch.float32))[0].numpy().astype(np.float64)


def test_openhand_mesh_has_one_wrist_boundary(hand):
    loops = meshops.boundary_loops(hand.faces)
    assert len(loops) == 1
    assert meshops.is_edge_manifold(hand.faces)
    assert meshops.is_consistently_oriented(hand.faces)
    assert meshops.euler_characteristic(hand.faces) == 1
    closed_v, closed_f = meshops.close_boundary(hand.template, hand.faces, loops[0])
    assert meshops.signed_volume(closed_v, closed_f) > 0  # outward-wound


def test_penetration_share_rest_pose_and_finger_through_palm(hand):
    from synth.poses import derive_axes
    from synth.selfcontact import penetration_share

    axes = derive_axes(hand.joint_regressor @ hand.template)
    poses = np.zeros((2, 48))
    # index MCP (MANO joint 1) and PIP (joint 2), 150 deg each about their flexion axes
    poses[1, 3:6] = axes.flexion[1] * np.radians(150.0)
    poses[1, 6:9] = axes.flexion[2] * np.radians(150.0)
    verts = _pose_vertices(hand, poses)
    shares = penetration_share(verts, hand.faces)
    assert shares.shape == (2,)
    assert shares[0] == 0.0
    assert shares[1] > 0.02
    single, inside = penetration_share(verts[1], hand.faces, return_points=True)
    assert single == pytest.approx(shares[1])
    assert inside.shape == (hand.num_vertices,) and inside.mean() == pytest.approx(single)
    # the points that went in belong mostly to the index finger or the palm it goes through:
    # none of them is on the little finger's tip
    tip_little = hand.tip_vertex_ids[4]
    assert not inside[tip_little]
