"""SiMA-Hand (seed 003): 6D rotations, the palm frame, the multi-view fusions, the orientation feature
enhancement, the distillation terms, and MVR / SVR training through the shared trainer."""
import numpy as np
import pytest
import torch

import finetune.task_sima  # noqa: F401  (registers the "sima" task and, until the registry lists them, the models)
from finetune.models import build_model, load_model, save_model
from finetune.models.sima_fusion import (ImageFusion, JointFusion, OrientationEnhancement, VertexFusion,
                                         matrix_to_rotation_6d, palm_frame, rotation_6d_to_matrix)

S = 64


def _random_rotations(n, seed=0):
    from scipy.spatial.transform import Rotation

    return torch.as_tensor(Rotation.random(n, random_state=seed).as_matrix(), dtype=torch.float64)


def test_6d_round_trip_of_rotations():
    R = _random_rotations(64)
    assert torch.allclose(rotation_6d_to_matrix(matrix_to_rotation_6d(R)), R, atol=1e-12)


def test_gram_schmidt_gives_proper_orthonormal_matrices_and_keeps_the_first_direction():
    d6 = torch.randn(256, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    R = rotation_6d_to_matrix(d6)
    eye = torch.eye(3, dtype=torch.float64).expand_as(R)
    assert torch.allclose(R.transpose(-1, -2) @ R, eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(256, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(R[..., 0], d6[:, :3] / d6[:, :3].norm(dim=-1, keepdim=True), atol=1e-12)
    # the second column lies in the plane of the two 3-vectors, on a2's side
    assert ((R[..., 1] * d6[:, 3:]).sum(-1) >= 0).all()


def test_palm_frame_rotates_with_the_hand():
    g = torch.Generator().manual_seed(1)
    kp = torch.randn(8, 21, 3, dtype=torch.float64, generator=g) * 0.05
    kp = kp - kp[:, :1]
    Q = _random_rotations(8, seed=2)
    R0, R1 = palm_frame(kp), palm_frame(torch.einsum("bij,bkj->bki", Q, kp))
    assert torch.allclose(R1, Q @ R0, atol=1e-10)     # canonical coordinates R^T p do not change


def _perm_views(x, perm):
    return x[:, perm]


def test_joint_and_vertex_fusions_are_invariant_to_view_permutations():
    torch.manual_seed(0)
    B, N = 2, 5
    perm = torch.tensor([3, 0, 4, 1, 2])
    fj = torch.randn(B, N, 21, 16)
    jf = JointFusion(16).double()
    assert torch.allclose(jf(fj.double()), jf(_perm_views(fj, perm).double()), atol=1e-12)
    fv = torch.randn(B, N, 49, 16, dtype=torch.float64)
    for mode in ("attention", "literal", "mean", "max"):
        vf = VertexFusion(mode)
        assert torch.allclose(vf(fv), vf(_perm_views(fv, perm)), atol=1e-12), mode


def test_vertex_fusion_of_identical_views_is_that_view_and_weights_views_by_agreement():
    f = torch.randn(2, 1, 49, 8, dtype=torch.float64)
    assert torch.allclose(VertexFusion("attention")(f.expand(-1, 4, -1, -1)), f[:, 0], atol=1e-12)
    assert torch.allclose(VertexFusion("literal")(f), f[:, 0] * f[:, 0], atol=1e-12)   # eq. 3 as printed
    # the fused feature is a per-channel convex combination of the views' features
    fv = torch.randn(3, 4, 49, 8, dtype=torch.float64)
    fused = VertexFusion("attention")(fv)
    assert (fused <= fv.amax(1) + 1e-12).all() and (fused >= fv.amin(1) - 1e-12).all()


def test_image_level_concat_fusion_is_order_dependent_but_equivariant_to_rolling_the_views():
    torch.manual_seed(0)
    fusion = ImageFusion(8, 4, 6).double()
    f = torch.randn(2, 4, 8, dtype=torch.float64)
    out = fusion(f)
    swapped = fusion(f[:, [0, 2, 1, 3]])
    # Cat[.] is ordered (eq. 1): swapping two non-target views changes the target view's fused feature
    assert not torch.allclose(out[:, 0], swapped[:, 0], atol=1e-6)
    # the per-target-view rolling makes a cyclic shift of the views shift the outputs the same way
    assert torch.allclose(fusion(torch.roll(f, 1, dims=1)), torch.roll(out, 1, dims=1), atol=1e-12)
    # with token dimensions (Table 5's JFF cat.): the same, token by token
    tokens = torch.randn(2, 4, 21, 8, dtype=torch.float64)
    per_token = torch.stack([fusion(tokens[:, :, j]) for j in range(21)], dim=2)
    assert torch.allclose(fusion(tokens), per_token, atol=1e-12)


def test_orientation_enhancement_follows_equation_5():
    from finetune.models.sima_fusion import attention

    g = torch.Generator().manual_seed(0)
    fj, fo = torch.randn(2, 21, 8, generator=g, dtype=torch.float64), torch.randn(2, 4, 8, generator=g,
                                                                                 dtype=torch.float64)
    out = OrientationEnhancement()(fj, fo)
    hj = torch.softmax(fj @ fj.transpose(1, 2) / np.sqrt(8), -1) @ fj
    ho = torch.softmax(fo @ fo.transpose(1, 2) / np.sqrt(8), -1) @ fo
    assert out.shape == (2, 21, 8)
    assert torch.allclose(out, torch.softmax(hj @ ho.transpose(1, 2) / np.sqrt(8), -1) @ ho, atol=1e-12)
    assert torch.allclose(attention(fj, fj, fj), hj)


def test_vertex_concat_fusion_is_order_dependent():
    """Table 5 row iv: an MLP on the views' features concatenated in view order."""
    torch.manual_seed(0)
    fv = torch.randn(2, 5, 49, 16, dtype=torch.float64)
    vf = VertexFusion("concat", 16, 5).double()
    out = vf(fv)
    assert out.shape == (2, 49, 16)
    assert not torch.allclose(out, vf(_perm_views(fv, torch.tensor([3, 0, 4, 1, 2]))), atol=1e-6)
    # vertex by vertex: changing one vertex's features moves only that vertex
    moved = fv.clone()
    moved[:, :, 7] += 1.0
    diff = (vf(moved) - out).abs().amax(dim=(0, 2))
    assert diff[7] > 1e-6 and torch.all(diff[torch.arange(49) != 7] == 0)
    with pytest.raises(ValueError, match="needs the channels"):
        VertexFusion("concat")


def _reaches(model, x, view: int) -> torch.Tensor:
    """|d f_o(view 0) / d image(v)| summed per view v: which views' pixels the view-0 orientation feature sees."""
    x = x.clone().requires_grad_(True)
    model(x)["f_o"].view(x.shape[0], x.shape[1], 21, -1)[:, view].sum().backward()
    return x.grad.abs().sum(dim=(0, 2, 3, 4))


def test_table5_mvr_ablations_cut_exactly_the_cross_view_paths(tmp_path):
    """Without image- and joint-level fusion (rows i, ii) a view's orientation feature sees that view's
    pixels only; the full model and the concatenating JFF (row iii) see every view's. (Gradients in eval
    mode: batch norm then mixes nothing across views.)"""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 3, S, S, dtype=torch.float64)
    kw = {"input_size": S, "num_views": 3, "orient_dim": 16}
    alone = build_model("sima_mvr", image_fusion="none", joint_fusion="none", vertex_fusion="concat", **kw)
    full = build_model("sima_mvr", **kw)
    concat = build_model("sima_mvr", image_fusion="none", joint_fusion="concat", **kw)
    reach = {name: _reaches(m.double().eval(), x, 0) for name, m in
             (("alone", alone), ("full", full), ("concat", concat))}
    assert reach["alone"][0] > 0 and torch.all(reach["alone"][1:] == 0), reach
    assert torch.all(reach["full"] > 0) and torch.all(reach["concat"] > 0), reach
    with torch.no_grad():
        again = load_model(save_model(tmp_path / "alone.pt", alone.float()))
        xf = x.float()
        assert torch.allclose(again(xf)["vertices"], alone(xf)["vertices"], atol=1e-6)
        assert again.joint_fusion_mode == "none" and again.vertex_fusion.mode == "concat"
    with pytest.raises(ValueError, match="joint_fusion must be one of"):
        build_model("sima_mvr", input_size=S, num_views=3, joint_fusion="mean")


def test_table5_svr_orientation_enhancement_ablations():
    """Rows vii / viii: the orientation feature from the orientation tokens alone (one per joint, blind to
    the joint features), or a Linear on [joint feature, pooled tokens]; all three give proper rotations."""
    torch.manual_seed(0)
    models = {mode: build_model("sima_svr", input_size=S, orient_dim=16, orientation_enhancement=mode).eval()
              for mode in ("attention", "none", "concat")}
    cj = models["none"].pose_pooling.out_channels
    f_j, f_j2, tokens = torch.randn(2, 21, cj), torch.randn(2, 21, cj), torch.randn(2, 4, 16)
    with torch.no_grad():
        none = models["none"].orientation_feature(f_j, tokens)
        assert torch.equal(none, models["none"].orientation_feature(f_j2, tokens))
        assert torch.allclose(none, none[:, :1].expand_as(none))
        cat = models["concat"]
        expected = cat.orient_out(torch.cat([cat.joint_to_orient(f_j), tokens.mean(1, keepdim=True).expand(-1, 21, -1)],
                                            dim=-1))
        assert torch.allclose(cat.orientation_feature(f_j, tokens), expected, atol=1e-6)
        att = models["attention"]
        assert torch.allclose(att.orientation_feature(f_j, tokens),
                              att.orient_out(OrientationEnhancement()(att.joint_to_orient(f_j), tokens)), atol=1e-6)
        for model in models.values():
            R = model(torch.rand(2, 3, S, S))["rotation"]
            assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand_as(R), atol=1e-5)
    with pytest.raises(ValueError, match="orientation_enhancement must be one of"):
        build_model("sima_svr", input_size=S, orientation_enhancement="add")


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    mvr = build_model("sima_mvr", input_size=S, num_views=3, orient_dim=16).eval()
    svr = build_model("sima_svr", input_size=S, orient_dim=16).eval()
    return mvr, svr


def test_distillation_terms_vanish_when_the_student_has_the_teachers_features(pair):
    from finetune.models.sima import distillation_terms

    mvr, svr = pair
    with torch.no_grad():
        t = mvr(torch.rand(2, 3, 3, S, S))
        student = {"f_v": t["f_v"].repeat_interleave(3, dim=0).clone(), "f_o": t["f_o"].clone()}
        terms = distillation_terms(student, t, 3)
        assert float(terms["se"]) == 0.0 and float(terms["oe"]) == 0.0
        s = svr(torch.rand(6, 3, S, S))
        moved = distillation_terms(s, t, 3)
    assert float(moved["se"]) > 0 and float(moved["oe"]) > 0
    assert s["f_v"].shape == student["f_v"].shape and s["f_o"].shape == student["f_o"].shape


def test_output_contract_single_and_multi_view(pair, tmp_path):
    mvr, svr = pair
    x = torch.rand(2, 3, 3, S, S)
    with torch.no_grad():
        multi = mvr(x)
        one = mvr(x[:, 0])
        same = mvr(x[:, :1].expand(-1, 3, -1, -1, -1))
    assert multi["vertices"].shape == (6, 778, 3) and multi["keypoints_2d"].shape == (6, 21, 2)
    assert one["vertices"].shape == (2, 778, 3) and one["keypoints_3d"].shape == (2, 21, 3)
    assert torch.allclose(one["vertices"], same["vertices"][::3], atol=1e-6)   # a 4-D input fills the N slots
    assert torch.allclose(one["keypoints_3d"][:, 0], torch.zeros(2, 3), atol=1e-7)
    R = one["rotation"]
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand_as(R), atol=1e-5)
    # a multi-view hand has one canonical mesh, rotated per view
    canon = multi["canonical_vertices"].view(2, 3, 778, 3)
    assert torch.allclose(canon[:, 0], canon[:, 2])
    for m in (mvr, svr):
        again = load_model(save_model(tmp_path / f"{m.registry_name}.pt", m))
        with torch.no_grad():
            assert torch.allclose(again(x[:, 0])["vertices"], m(x[:, 0])["vertices"], atol=1e-6)


def test_canonical_targets_undo_the_palm_rotation():
    from finetune.models.sima import canonical_targets

    g = torch.Generator().manual_seed(3)
    kp = torch.randn(4, 21, 3, generator=g) * 0.05
    kp = kp - kp[:, :1]
    verts = torch.randn(4, 778, 3, generator=g) * 0.05
    Q = _random_rotations(4, seed=5).float()
    batch = {"keypoints_3d_rel": kp, "vertices_rel": verts, "keypoints_3d": kp + torch.tensor([0, 0, 0.5])}
    rot = {"keypoints_3d_rel": torch.einsum("bij,bkj->bki", Q, kp), "vertices_rel": torch.einsum("bij,bkj->bki", Q, verts),
           "keypoints_3d": torch.einsum("bij,bkj->bki", Q, kp) + torch.tensor([0, 0, 0.5])}
    a, b = canonical_targets(batch), canonical_targets(rot)
    assert torch.allclose(a["vertices"], b["vertices"], atol=1e-5)
    assert torch.allclose(torch.einsum("bij,bvj->bvi", a["R"], a["vertices"]), verts, atol=1e-5)


def _config(out, data, stage, steps, views=3, seed=0, **opts):
    from pretrain.trainer import TrainConfig

    options = {"stage": stage, "views": views, "input_size": S, "augment": False,
               "datasets": [{"name": "complement", "root": str(data)}],
               "eval_datasets": {"train": {"name": "complement", "root": str(data)}},
               "model_options": {"orient_dim": 16}, **opts}
    # grad_clip: from a random initialisation the decoder's first mesh is nearly collapsed, and the normal
    # loss (which normalises predicted edges, as the released code does) then has gradients of 5e5 (seed 0,
    # OpenHand 2): one such step spoiled the 2D head's batch statistics for the rest of this short overfit
    return TrainConfig(task="sima", out=str(out), epochs=steps, batch_size=3, lr=1e-3, milestones=[],
                       num_workers=0, seed=seed, checkpoint_every=0, log_every=5, eval_every=-1, progress=False,
                       grad_clip=10.0, task_options=options)


def _train_term(out, tag):
    from pretrain.curves import read_scalars

    return list(read_scalars(out / "scalars.csv").get(f"train/{tag}", ([], []))[1])


@pytest.mark.slow
@pytest.mark.trains
def test_mvr_then_svr_with_distillation_overfit_rendered_samples(rendered_set, tmp_path, train_seed, margin):
    """3 poses x 3 views of Blender renders at 64 px. MVR-Hand: 100 steps; SVR-Hand from
    it with L_SE and L_OE: 50 steps (at 30 its PA-MPJPE ended at 64 % of its start, too near the 80 % bound). Errors must fall well below their start, the distillation terms too."""
    from finetune.task_sima import evaluate_multiview
    from pretrain.trainer import Trainer

    torch.set_num_threads(1)
    mvr_out = tmp_path / "mvr"
    trainer = Trainer(_config(mvr_out, rendered_set, "mvr", 100, seed=train_seed, orientation_phase_epoch=10))
    loader = trainer.eval_loaders(final=True)["train"]
    before = evaluate_multiview(trainer.model, loader, trainer.device)[0]
    result = trainer.fit()
    after = result.metrics["train"]
    print("MVR before", before, "after", after)
    margin.check("MVR pa_mpjpe after / before", after["pa_mpjpe_mm"] / before["pa_mpjpe_mm"], 0.7, (before, after))
    margin.check("MVR px_2d after / before", after["px_2d"] / before["px_2d"], 0.8, (before, after))
    rot = _train_term(mvr_out, "rot")
    assert rot, "no train/rot rows in scalars.csv"
    margin.check("MVR rotation loss last / first", rot[-1] / rot[0], 1.0, rot)

    svr_out = tmp_path / "svr"
    every_view = {"train": {"name": "complement", "root": str(rendered_set), "options": {"multiview": "all"}}}
    trainer = Trainer(_config(svr_out, rendered_set, "svr", 50, views=None, seed=train_seed,
                              teacher=str(result.files["model"]), eval_datasets=every_view))
    loader = trainer.eval_loaders(final=True)["train"]
    before = evaluate_multiview(trainer.model, loader, trainer.device)[0]
    after = trainer.fit().metrics["train"]
    se, oe = _train_term(svr_out, "se"), _train_term(svr_out, "oe")
    print("SVR before", before, "after", after, "se", se, "oe", oe)
    assert before["samples"] == 18       # SVR is scored on every view of every pose
    margin.check("SVR pa_mpjpe after / before", after["pa_mpjpe_mm"] / before["pa_mpjpe_mm"], 0.8, (before, after))
    margin.check("SVR L_SE last / first", se[-1] / se[0], 1.0, se)
    margin.check("SVR L_OE last / first", oe[-1] / oe[0], 1.0, oe)


def test_orientation_terms_wait_for_their_phase_and_single_view_loaders_are_refused():
    from finetune.task_sima import SiMATask
    from finetune.training_data import open_multiview
    from finetune.training_data import parse_spec
    from pretrain.trainer import TrainConfig

    task = SiMATask(TrainConfig(task="sima", task_options={"datasets": ["complement:/nowhere"], "beta": 0.5,
                                                           "gamma": 2.0, "orientation_phase_epoch": 3}))
    task._set_epoch(2)
    assert [task.weight(k) for k in ("rot", "mesh_r", "joint_r", "mesh_c", "pose2d", "se", "oe")] == \
        [0.0, 0.0, 0.0, 1.0, 1.0, 0.5, 2.0]
    task._set_epoch(3)
    assert task.weight("rot") == 1.0 and task.weight("mesh_r") == 1.0
    with pytest.raises(ValueError, match="multi-view"):
        open_multiview(parse_spec("freihand:/nowhere"), S, 3)


def test_hanco_multiview_items_share_one_canonical_hand(hand_model, tmp_path):
    """HanCo's 8 cameras of one frame through MultiViewSet: N views drawn per item, and the palm-frame
    canonical keypoints (the shape branch's target) agree across the views."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from fixtures_more_benchmarks import write_hanco

    from finetune.models.sima import canonical_targets
    from finetune.training_data import MultiViewSet, collate_views as collate, flatten_views, open_multiview
    from finetune.training_data import parse_spec

    write_hanco(tmp_path, hand_model)
    ds = open_multiview(parse_spec(f"hanco:{tmp_path}"), S, 4)
    mv = MultiViewSet({"hanco": ds}, "any", 4, augment=None, seed=0)
    batch = collate([mv[0], mv[1]])
    assert batch["image"].shape == (2, 4, 3, S, S) and len(batch["sample_id"][0]) == 4
    canon = canonical_targets(flatten_views(batch))["keypoints"].view(2, 4, 21, 3)
    assert (canon - canon[:, :1]).abs().max() < 1e-4


def test_the_view_choice_and_each_views_augmentation_are_independent_streams(hand_model, tmp_path):
    """A multi-view item keeps N of its views, drawn from its own stream; each kept view is augmented from
    SeedSequence([seed, epoch, i, view]). The choice once drew from [seed, epoch, i, 7], which is view 7's
    augmentation stream: two draws meant to be independent were one. The cameras an item keeps are the
    ones the choice stream gives, and that stream is none of the views' streams."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from fixtures_more_benchmarks import write_hanco

    from finetune.training_data import MultiViewSet, open_multiview, parse_spec

    write_hanco(tmp_path, hand_model)
    ds = open_multiview(parse_spec(f"hanco:{tmp_path}"), S, 3)
    mv = MultiViewSet({"hanco": ds}, "any", 3, augment=None, seed=5)
    mv.set_epoch(2)
    for i in range(2):
        item = ds[int(mv.indices[i])]
        expected = np.sort(np.random.default_rng(mv.view_choice_seed(i)).choice(len(item["image"]), 3,
                                                                                 replace=False))
        assert mv[i]["sample_id"] == [item["sample_id"][k] for k in expected]
        choice = mv.view_choice_seed(i).generate_state(8)
        for view in range(216):
            assert not np.array_equal(choice, mv.view_seed(i, view).generate_state(8)), view
    # the former key was view 7's augmentation stream
    assert np.array_equal(np.random.SeedSequence([5, 2, 0, 7]).generate_state(8), mv.view_seed(0, 7).generate_state(8))


def test_dexycb_multiview_batches_and_too_few_cameras_are_refused(hand_model, tmp_path):
    """Dex-YCB's 8 synchronised cameras through MultiViewSet (s1 val: subject 07, right and left hands):
    the palm-frame canonical keypoints agree across the views; s2's single test camera cannot feed 3 views."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from fixtures_more_benchmarks import write_dexycb

    from finetune.models.sima import canonical_targets
    from finetune.training_data import MultiViewSet, collate_views as collate, flatten_views, open_multiview
    from finetune.training_data import parse_spec

    truth = write_dexycb(tmp_path, hand_model, subjects=(6,))
    spec = {"name": "dexycb", "root": str(tmp_path), "options": {"setup": "s1", "split": "val",
                                                                  "hand_model": hand_model}}
    ds = open_multiview(parse_spec(spec), S, 4)
    mv = MultiViewSet({"dexycb": ds}, "any", 4, augment=None, seed=0)
    batch = collate([mv[i] for i in range(len(mv))])
    assert batch["image"].shape == (3, 4, 3, S, S)
    assert {truth[f"{i}"]["side"] for row in batch["sample_id"] for i in row} == {"left", "right"}
    canon = canonical_targets(flatten_views(batch))["keypoints"].view(3, 4, 21, 3)
    assert (canon - canon[:, :1]).abs().max() < 1e-4
    with pytest.raises(ValueError, match="only 1 views, fewer than views=3"):
        open_multiview(parse_spec({**spec, "options": {"setup": "s2", "split": "test", "strict": False}}), S, 3)


@pytest.mark.slow
@pytest.mark.trains
def test_mvr_trains_on_dexycb_multiview_items(hand_model, tmp_path, train_seed, margin):
    """MVR-Hand through the trainer on Dex-YCB items (3 of a frame's 8 cameras, right and left hands):
    the data path end to end, and the error on those items falls well below its start (dot images; 70 steps:
    after 30 the 2D error had fallen only to 89 % of its start)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from fixtures_more_benchmarks import write_dexycb

    from finetune.task_sima import evaluate_multiview
    from pretrain.trainer import Trainer

    torch.set_num_threads(1)
    write_dexycb(tmp_path / "dex", hand_model, subjects=(6,))
    dex = {"name": "dexycb", "root": str(tmp_path / "dex"),
           "options": {"setup": "s1", "split": "val", "hand_model": "openhand"}}
    trainer = Trainer(_config(tmp_path / "mvr", None, "mvr", 70, views=3, seed=train_seed, datasets=[dex],
                              eval_datasets={"train": dex}))
    loader = trainer.eval_loaders(final=True)["train"]
    before = evaluate_multiview(trainer.model, loader, trainer.device)[0]
    after = trainer.fit().metrics["train"]
    print("Dex-YCB MVR before", before, "after", after)
    assert before["samples"] == after["samples"] == 3 * 3
    margin.check("pa_mpjpe after / before", after["pa_mpjpe_mm"] / before["pa_mpjpe_mm"], 0.5, (before, after))
    margin.check("px_2d after / before", after["px_2d"] / before["px_2d"], 1.0, (before, after))
    margin.check("rot_deg after / before", after["rot_deg"] / before["rot_deg"], 0.5, (before, after))
