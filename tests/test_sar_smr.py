"""SAR and SMR (seed 000): 2.5D decoding, the adaptive adjacency, the weak-perspective camera, the MANO
layer and priors, the metric lifting, loss terms, complexity counts, and training through the shared
trainer and `hands finetune` (overfitting rendered samples)."""
import math

import numpy as np
import pytest
import torch

import finetune.models as registry
from finetune.models.base import VERTEX_SCALE
from finetune.models.sar_head import (AdaptiveGraphConv, SARHead, area_resample, decode_belief_maps,
                                      hand_mesh_adjacency, map_centres, pool_belief_maps, skeleton_adjacency)
from pretrain.complexity import count_complexity


# small heads and 128 px keep the CPU tests fast; the defaults are the paper's / release's (S = 32, H = S^2,
# 8 maps, dropout 0.5, 256 px)
SAR_SMALL = {"heatmap_size": 8, "hidden": 64, "maps_per_keypoint": 4, "dropout": 0.0, "input_size": 128}
SMR_SMALL = {"high_size": 16, "hidden": 64, "maps_per_node": 4, "sapr_hidden": 128, "dropout": 0.0}


# ---------------------------------------------------------------- 2.5D belief maps

def _gaussian_logits(uv, S, sigma):
    """log of a Gaussian around normalised uv (B, N, 2), sigma in normalised units, on an S x S map."""
    c = map_centres(S, torch.float64)
    dx = c.view(1, 1, 1, S) - uv[..., 0, None, None]
    dy = c.view(1, 1, S, 1) - uv[..., 1, None, None]
    return -(dx ** 2 + dy ** 2) / (2 * sigma ** 2), dx, dy


def test_a_belief_map_built_around_a_known_uvd_decodes_to_it():
    S = 32
    uvd = torch.tensor([[[0.13, -0.27, 0.41], [-0.52, 0.318, -0.2], [0.0, 0.5, 1.3]]], dtype=torch.float64)
    # sigma 1.25 map pixels; every keypoint at least 5.7 sigma from the border (truncation < 1e-7)
    logits, dx, dy = _gaussian_logits(uvd[..., :2], S, sigma=1.25 * 2.0 / S)
    # a depth map that is not constant: linear around the keypoint, so only its value at (u, v) survives
    depth = uvd[..., 2, None, None] + 0.7 * dx - 1.1 * dy
    got, p = decode_belief_maps(logits, depth)
    assert torch.allclose(got, uvd, atol=1e-7), (got - uvd).abs().max()
    assert torch.allclose(p.sum(dim=(2, 3)), torch.ones(1, 3, dtype=torch.float64))
    # beta sharpens the same map without moving its centre
    got2, p2 = decode_belief_maps(logits, depth, beta=torch.tensor([1.5, 1.5, 1.5], dtype=torch.float64))
    assert torch.allclose(got2, uvd, atol=1e-7) and p2.amax() > p.amax()


def test_belief_map_pixels_follow_the_pixel_centre_convention():
    from pretrain.task2d import norm_to_px

    S = 32
    logits = torch.full((1, 1, S, S), -60.0)
    logits[0, 0, 10, 21] = 60.0
    uvd, _ = decode_belief_maps(logits, torch.zeros_like(logits))
    # map pixel (21, 10) of 32 covers crop pixels 84..87 and 40..43 of a 128 px crop: centre 85.5, 41.5
    assert torch.allclose(norm_to_px(uvd[..., :2], 128), torch.tensor([[[85.5, 41.5]]]), atol=1e-4)


def test_pooled_belief_maps_are_densities_of_mean_one():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(2, 21, 32 * 32, generator=g), -1).view(2, 21, 32, 32)
    d = torch.randn(2, 21, 32, 32, generator=g)
    for size in (16, 8, 64, 12):
        m = pool_belief_maps(p, d, size)
        assert m.shape == (2, 42, size, size)
        assert torch.allclose(m[:, :21].mean(dim=(2, 3)), torch.ones(2, 21), atol=1e-5)
        # the exportable resampling is adaptive average pooling
        assert torch.allclose(area_resample(p, size, 32), torch.nn.functional.adaptive_avg_pool2d(p, size), atol=1e-7)
    # the depth half, averaged, is the decoded depth (the expectation under p)
    m = pool_belief_maps(p, d, 16)
    assert torch.allclose(m[:, 21:].mean(dim=(2, 3)), (p * d).sum(dim=(2, 3)), atol=1e-5)


# ---------------------------------------------------------------- adaptive adjacency and graphs

def test_adaptive_adjacency_is_row_normalised_initialised_from_the_graph_and_learnable():
    adj = skeleton_adjacency()
    assert adj.sum() == 2 * 20 and (adj == adj.T).all() and not adj.diagonal().any()
    layer = AdaptiveGraphConv(adj, 5, 7)
    A = layer.normalised_adjacency().detach()
    assert (A > 0).all() and torch.allclose(A.sum(1), torch.ones(21), atol=1e-6)
    # at initialisation: the lazy random walk (I + D^-1 A) / 2, up to the off-graph mass
    a = torch.as_tensor(adj, dtype=torch.float32)
    ref = (torch.eye(21) + a / a.sum(1, keepdim=True)) / 2
    assert (A - ref).abs().max() < 1e-3
    mean = AdaptiveGraphConv(adj, 5, 7, init="mean").normalised_adjacency().detach()
    ref = (a + torch.eye(21)) / (a + torch.eye(21)).sum(1, keepdim=True)
    assert (mean - ref).abs().max() < 1e-3
    # learnable: every entry (on and off the graph) gets a gradient, a step changes A and keeps it normalised
    x = torch.randn(3, 21, 5)
    (layer(x) * torch.randn(3, 21, 7)).sum().backward()
    g = layer.logits.grad
    assert g is not None and torch.isfinite(g).all()
    assert (g[torch.as_tensor(adj)] != 0).all() and (g[~torch.as_tensor(adj)] != 0).all()
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    opt.step()
    A2 = layer.normalised_adjacency().detach()
    assert (A2 - A).abs().max() > 1e-3 and torch.allclose(A2.sum(1), torch.ones(21), atol=1e-6)
    # the release's identity start
    ident = AdaptiveGraphConv(adj, 5, 7, init="identity").normalised_adjacency().detach()
    assert (ident - torch.eye(21)).abs().max() < 1e-3
    with pytest.raises(ValueError, match="identity"):
        AdaptiveGraphConv(adj, 5, 7, init="ring")


def test_adaptive_graph_conv_is_fc_of_the_normalised_mixture():
    torch.manual_seed(0)
    layer = AdaptiveGraphConv(skeleton_adjacency(), 4, 6)
    x = torch.randn(2, 21, 4)
    A = layer.normalised_adjacency()
    ref = torch.einsum("ij,bjc->bic", A, x) @ layer.fc.weight.T + layer.fc.bias
    assert torch.allclose(layer(x), ref, atol=1e-5)


def test_hand_mesh_graph_links_keypoints_skeleton_mesh_and_regressor(hand_model):
    from finetune.models.sar_head import mesh_edges

    adj = hand_mesh_adjacency(hand_model.faces, hand_model.joint_regressor)
    reg = hand_model.joint_regressor
    assert adj.shape == (799, 799) and (adj == adj.T).all() and not adj.diagonal().any()
    assert (adj[:21, :21] == skeleton_adjacency()).all()
    assert adj[21:, 21:].sum() == 2 * len(mesh_edges(hand_model.faces))
    assert adj[:21, 21:].sum() == (reg != 0).sum()
    tip = int(hand_model.tip_vertex_ids[0])             # keypoint 4 (thumb tip) is one vertex
    assert adj[4, 21 + tip] and adj[4, 21:].sum() == 1


# ---------------------------------------------------------------- weak perspective, MANO, priors

def test_weak_perspective_projection_matches_a_hand_computed_case():
    from finetune.models.smr import CAMERA_SCALE0, camera_from_raw, weak_perspective

    X = torch.tensor([[[0.0, 0.0, 0.0], [0.02, -0.04, 0.3], [-0.05, 0.01, -0.1]]])
    cam = torch.tensor([[5.0, 0.1, -0.2]])
    # n = s X_xy + t: (0.1, -0.2), (0.2, -0.4), (-0.15, -0.15); u = ((n + 1) 128 - 1) / 2
    expected = torch.tensor([[[69.9, 50.7], [76.3, 37.9], [53.9, 53.9]]])
    assert torch.allclose(weak_perspective(X, cam, 128), expected, atol=1e-4)
    # the camera of a zero raw output: s0, centred
    assert torch.allclose(camera_from_raw(torch.zeros(1, 3)), torch.tensor([[CAMERA_SCALE0, 0.0, 0.0]]))
    assert torch.allclose(camera_from_raw(torch.tensor([[math.log(2.0), 0.3, -0.1]])),
                          torch.tensor([[2 * CAMERA_SCALE0, 0.3, -0.1]]))


def test_mano_layer_reproduces_the_hand_model(hand_model):
    from finetune.models.smr import ManoLayer

    g = torch.Generator().manual_seed(0)
    theta = torch.randn(4, 48, generator=g) * 0.5
    theta[0] = 0.0                                       # the rest pose (angle 0 everywhere)
    beta = torch.randn(4, 10, generator=g)
    layer = ManoLayer(hand_model)
    ref, _ = hand_model(theta, beta)
    assert (layer(theta, beta) - ref).abs().max() < 1e-5
    # the arrays are buffers that move with the module but are not weights
    assert layer.state_dict() == {} and layer.to(torch.float64).v_template.dtype == torch.float64
    assert (layer(theta.double(), beta.double()) - ref.double()).abs().max() < 1e-5
    # differentiable in both inputs
    t, b = theta.clone().requires_grad_(), beta.clone().requires_grad_()
    layer.float()(t, b).square().sum().backward()
    assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_bounded_articulation_keeps_small_angles_and_clamps_large_ones():
    from finetune.models.smr import ANGLE_BOUND, bound_articulation, joint_angles

    g = torch.Generator().manual_seed(0)
    theta = torch.randn(3, 48, generator=g)
    theta[0] *= 1e-3                                          # small: unchanged
    theta[2, 3:] *= 20.0                                      # far beyond the bound: clamped below it
    out = bound_articulation(theta)
    assert torch.equal(out[:, :3], theta[:, :3])              # the global orientation is free
    assert torch.allclose(out[0], theta[0], atol=1e-9)
    a_in, a_out = joint_angles(theta), joint_angles(out)
    assert (a_out <= ANGLE_BOUND + 1e-6).all() and (a_out <= a_in + 1e-6).all() and a_out[2].min() > 0.95 * ANGLE_BOUND
    # the rotation axes are kept
    r_in, r_out = theta[:, 3:].reshape(3, 15, 3), out[:, 3:].reshape(3, 15, 3)
    assert torch.allclose(r_out / a_out[..., None], r_in / a_in[..., None], atol=1e-5)


def test_prior_range():
    from finetune.models.smr import ANGLE_BOUND, joint_angles, prior_range

    theta, beta = torch.zeros(2, 48), torch.zeros(2, 10)
    assert prior_range(theta, beta)["inside"]
    theta[1, 3 + 3 * 4: 3 + 3 * 5] = torch.tensor([0.0, 0.0, ANGLE_BOUND + 0.1])   # one joint bent too far
    r = prior_range(theta, beta)
    assert not r["inside"] and r["inside_per_sample"].tolist() == [True, False]
    assert r["max_angle"] == pytest.approx(ANGLE_BOUND + 0.1, abs=1e-5)
    assert joint_angles(theta)[1, 4] == pytest.approx(ANGLE_BOUND + 0.1, abs=1e-5)
    theta[:], beta[0, 3] = 0.0, -3.2
    assert not prior_range(theta, beta)["inside"]
    # the global orientation (first 3 values) is not an articulation: any angle is inside
    theta[:, :3], beta[:] = 3.0, 0.0
    assert prior_range(theta, beta)["inside"]


# ---------------------------------------------------------------- SAR: metric lifting, targets, losses

def _posed_hand(hand_model, seed=0, B=2):
    """Camera-frame keypoints / vertices of random poses at ~0.5 m, their K and a training-style batch."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(B, 48, generator=g) * 0.3
    with torch.no_grad():
        v, _ = hand_model(theta, torch.zeros(B, 10))
    kp = torch.as_tensor(hand_model.joint_regressor, dtype=torch.float32) @ v
    shift = torch.tensor([[0.01, -0.02, 0.5]]) - kp[:, :1]
    v, kp = v + shift, kp + shift
    K = torch.tensor([[[400.0, 0.0, 63.5], [0.0, 400.0, 63.5], [0.0, 0.0, 1.0]]]).repeat(B, 1, 1)
    p = torch.einsum("bij,bnj->bni", K, kp)
    batch = {"keypoints_2d": p[..., :2] / p[..., 2:], "keypoints_3d": kp, "keypoints_3d_rel": kp - kp[:, :1],
             "vertices_rel": v - kp[:, :1], "K": K, "mesh_valid": torch.ones(B, dtype=torch.bool),
             "keypoints_2d_valid": torch.ones(B, 21, dtype=torch.bool)}
    return batch


def test_uvd_targets_of_keypoints_and_vertices_agree(hand_model):
    from finetune.models.sar import uvd_targets

    batch = _posed_hand(hand_model)
    target, weight = uvd_targets(batch, 128)
    assert target.shape == (2, 799, 3) and weight.shape == (2, 799) and (weight == 1).all()
    # keypoint 4 (thumb tip) is a vertex: its keypoint target and its vertex target coincide
    tip = 21 + int(hand_model.tip_vertex_ids[0])
    assert torch.allclose(target[:, 4], target[:, tip], atol=1e-4)
    assert torch.allclose(target[:, 0, 2], torch.zeros(2))               # root-relative depth
    # without a mesh of the model's topology only the keypoints supervise
    batch["mesh_valid"][1] = False
    _, weight = uvd_targets(batch, 128)
    assert weight[1, :21].all() and not weight[1, 21:].any() and weight[0].all()


def test_weak_perspective_lift_recovers_a_scaled_orthographic_hand(hand_model):
    from finetune.models.sar import bone_lengths, keypoint_template, weak_perspective_lift

    kp = torch.as_tensor(keypoint_template(hand_model), dtype=torch.float32)        # template: bones fit exactly
    R = torch.as_tensor(np.array([[0.36, 0.48, -0.8], [-0.8, 0.6, 0.0], [0.48, 0.64, 0.6]]), dtype=torch.float32)
    xyz = kp @ R.T
    s = 6.0
    uvd = torch.cat([0.1 + s * xyz[:, :2], xyz[:, 2:] / VERTEX_SCALE], dim=1)[None]
    got, scale = weak_perspective_lift(uvd, torch.as_tensor(bone_lengths(kp.numpy()), dtype=torch.float32))
    assert scale.item() == pytest.approx(1 / s, rel=1e-4)
    assert torch.allclose(got[0], xyz - xyz[:1], atol=1e-5)


@pytest.fixture(scope="module")
def sar_small():
    torch.manual_seed(0)
    return registry.build_model("sar_resnet18", **SAR_SMALL)


def test_sar_outputs_and_loss_terms(sar_small, hand_model):
    from finetune.models.sar import uvd_targets

    model = sar_small.train()
    batch = _posed_hand(hand_model)
    out = model(torch.rand(2, 3, 128, 128))
    assert out["vertices"].shape == (2, 778, 3) and out["keypoints_3d"].shape == (2, 21, 3)
    assert out["keypoints_2d"].shape == (2, 21, 2) and out["uvd_stages"].shape == (2, 2, 799, 3)
    assert torch.equal(out["keypoints_3d"][:, 0], torch.zeros(2, 3))
    terms = model.loss_terms(out, batch)
    assert set(terms) == {"uvd", "normal", "edge"} and all(torch.isfinite(v) for v in terms.values())
    sum(terms.values()).backward()
    assert model.heads[0].gbbmr.uv.gc1.matrix.grad.abs().sum() > 0
    # a perfect prediction at every stage has zero loss
    target, _ = uvd_targets(batch, 128, depth_unit=model.depth_unit)
    zero = model.loss_terms({"uvd_stages": torch.stack([target, target])}, batch)
    assert all(float(v) < 1e-6 for v in zero.values()), zero


def test_sar_refuses_a_backbone_it_cannot_split():
    from finetune.models.sar import SAR

    with pytest.raises(ValueError, match="plain ResNet"):
        SAR(backbone="densestack")


# ---------------------------------------------------------------- SMR

@pytest.fixture(scope="module")
def smr_small():
    torch.manual_seed(0)
    return registry.build_model("smr_resnet18", **SMR_SMALL)


def test_smr_outputs_are_the_mano_mesh_and_its_projection(smr_small):
    from finetune.models.smr import weak_perspective

    model = smr_small.eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 128, 128))
    assert out["vertices"].shape == (2, 778, 3) and out["theta"].shape == (2, 48) and out["beta"].shape == (2, 10)
    assert torch.allclose(out["keypoints_3d"][:, 0], torch.zeros(2, 3), atol=1e-7)
    # keypoints: the regressor of the mesh; mesh: MANO of the predicted parameters
    assert torch.allclose(model.joint_regressor @ out["vertices"][0], out["keypoints_3d"][0], atol=1e-6)
    verts = model.mano(out["theta"], out["beta"])
    rel = verts - (model.joint_regressor @ verts)[:, :1]
    assert torch.allclose(rel, out["vertices"], atol=1e-6)
    assert torch.allclose(weak_perspective(out["keypoints_3d"], out["camera"], 128), out["keypoints_2d"], atol=1e-4)
    assert out["uvd_low"].shape == (2, 21, 3) and out["uvd_high"].shape == (2, 21, 3)
    # the start: near the rest pose and mean shape, inside the prior's range
    from finetune.models.smr import prior_range
    assert prior_range(out["theta"], out["beta"])["inside"]


def test_smr_loss_terms_per_supervision_mode(smr_small, hand_model):
    from finetune.models.smr import SMR

    batch = _posed_hand(hand_model)
    model = smr_small.train()
    out = model(torch.rand(2, 3, 128, 128))
    full = model.loss_terms(out, batch)
    assert set(full) == {"uvd_low", "uvd_high", "mesh", "pose3d", "pose2d", "pose_prior", "shape_prior"}
    model.supervision = "2d"
    try:
        only2d = {k: batch[k] for k in ("keypoints_2d", "keypoints_2d_valid")}     # no 3D label is read
        terms = model.loss_terms(out, only2d)
    finally:
        model.supervision = "full"
    assert set(terms) == {"uv_low", "uv_high", "pose2d", "pose_prior", "shape_prior"}
    assert terms["pose2d"].item() == pytest.approx(full["pose2d"].item(), rel=1e-6)
    sum(terms.values()).backward()
    assert model.sapr[0].pose_out.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="supervision"):
        SMR(backbone="resnet18", supervision="self")


def test_smr_priors_penalise_what_lies_outside_the_range(smr_small):
    from finetune.models.smr import ANGLE_BOUND

    theta, beta = torch.zeros(1, 48), torch.zeros(1, 10)
    zero = smr_small.prior_terms(theta, beta)
    assert float(zero["pose_prior"]) == 0.0 and float(zero["shape_prior"]) == 0.0
    theta[0, 6:9] = torch.tensor([0.0, ANGLE_BOUND + 0.5, 0.0])
    beta[0, 0] = 2.0
    t = smr_small.prior_terms(theta, beta)
    w = smr_small
    assert float(t["pose_prior"]) == pytest.approx(w.pose_prior_weight * (ANGLE_BOUND + 0.5) ** 2 / 45
                                                   + w.range_weight * 0.25 / 15, rel=1e-5)
    assert float(t["shape_prior"]) == pytest.approx(w.shape_prior_weight * 4.0 / 10, rel=1e-6)


# ---------------------------------------------------------------- complexity

def test_complexity_counts_match_a_hand_count():
    # one adaptive graph convolution: N^2 adjacency logits + FC; Mult-Adds N^2 C_in (A_hat @ x) + N C_in C_out
    N, cin, cout = 21, 35, 64
    layer = AdaptiveGraphConv(skeleton_adjacency(), cin, cout)
    c = count_complexity(layer, inputs=torch.zeros(1, N, cin))
    assert c.params == N * N + cin * cout + cout
    assert c.macs == N * N * cin + N * cin * cout
    # a whole SAR-Head(21, S=8) on a 4 x 4 map of 512 channels, M = 4 maps per keypoint, hidden 64
    M, S, H, C, hw = 4, 8, 64, 512, 16
    head = SARHead(C, hw, np.zeros((N, 3)), skeleton_adjacency(), S, M, H, dropout=0.0)
    c = count_complexity(head, inputs=torch.zeros(1, C, 4, 4))
    f = M * hw + 3
    branch_p = (N * N + f * H + H) + (N * N + H * S * S + S * S)
    branch_m = (N * N * f + N * f * H) + (N * N * H + N * H * S * S)
    assert c.params == C * N * M + N * M + 2 * branch_p + N            # SAIGB conv, two branches, betas
    assert c.macs == C * N * M * hw + 2 * branch_m


@pytest.mark.parametrize("name", ["sar_resnet34", "smr_resnet34"])
def test_complexity_of_the_registered_models(name):
    torch.manual_seed(0)
    model = registry.build_model(name)
    c = count_complexity(model, model.input_size)          # SAR: 256 px (the release's), SMR: 128 px
    assert c.params > 20e6 and c.macs > 1e9
    assert c.by_module["encoder"][0] > 20e6                   # ResNet-34 (21.3M)
    heads = ("heads",) if name.startswith("sar") else ("pose_low", "sapr", "pose_high")
    assert all(c.by_module[h][1] > 0 for h in heads)
    out = model.eval()(torch.rand(1, 3, model.input_size, model.input_size))
    assert out["vertices"].shape == (1, 778, 3)


# ---------------------------------------------------------------- training (shared trainer, CLI)

def _config(out, data, model, model_options, epochs, batch_size=6, views=(0, 45), lr=1e-3, **kw):
    """One step an epoch (6 samples, batch 6), constant learning rate."""
    from pretrain.trainer import TrainConfig

    spec = {"name": "complement", "root": str(data), "options": {"views": list(views)}}
    opts = {"model": model, "model_options": model_options, "datasets": [spec], "eval_datasets": {"train": spec},
            "augment": False, "consistency": False}
    return TrainConfig(task="mesh", out=str(out), epochs=epochs, batch_size=batch_size, lr=lr, milestones=[],
                       num_workers=0, progress=False, checkpoint_every=0, eval_every=-1, log_every=10,
                       task_options=opts, **kw)


def _overfit(cfg):
    from finetune.model_eval import evaluate_loader
    from pretrain.trainer import Trainer

    trainer = Trainer(cfg)
    loader = trainer.eval_loaders(final=True)["train"]
    before = evaluate_loader(trainer.model.eval(), loader, trainer.device)[0]
    after = trainer.fit().metrics["train"]
    return trainer, loader, before, after


# The overfit check trains the softmax adjacency started from the graph ('graph'), not the release's default
# (identity start, row-sum normalisation): Adam moves each of the dense 778 x 778 entries by about the learning
# rate every step, and over these 40 steps at lr 1e-3 the release's adjacency left PA-MPJPE / PA-MPVPE / 2D error
# at 0.77 / 0.96 / 0.64 of their start (one run, seed 0; with 'graph' 0.32 / 0.16 / 0.24). With the 799-node
# graph, depth unit 0.2 and the weak lift (the earlier defaults) the release's adjacency reached 0.91 / 0.97 / 0.87,
# 'graph' 0.20 / 0.14 / 0.23, and the identity start held fixed 0.41 / 0.52 / 0.34: it is Adam's entry-by-entry
# steps on the dense matrix. Everything else is at its default here (778 nodes + the learned 21, depth unit 0.3 m,
# the perspective lift with the batch's K).
SAR_TRAIN = {**SAR_SMALL, "adjacency_init": "graph"}


@pytest.mark.slow
@pytest.mark.trains
def test_sar_overfits_rendered_samples(rendered_set, tmp_path, train_seed, margin):
    cfg = _config(tmp_path / "sar", rendered_set, "sar_resnet18", SAR_TRAIN, epochs=40, seed=train_seed)
    _, _, before, after = _overfit(cfg)
    for key in ("pa_mpjpe_mm", "pa_mpvpe_mm", "px_2d"):
        margin.check(f"{key} after / before", after[key] / before[key], 0.5, (before, after))


@pytest.mark.slow
@pytest.mark.trains
@pytest.mark.parametrize("supervision", ["full", "2d"])
def test_smr_overfits_rendered_samples(rendered_set, tmp_path, supervision, train_seed, margin):
    from finetune.models.smr import prior_range

    from finetune.models.sar import bone_lengths, keypoint_template

    # fully supervised: lr 2e-3 (at 1e-3 the PA-MPJPE was still at 42 % of its start after 100 steps on
    # some views, at 2e-3 at 21 %); 2D-only: 50 steps at 1e-3
    full = supervision == "full"
    cfg = _config(tmp_path / f"smr_{supervision}", rendered_set, "smr_resnet18",
                  {**SMR_SMALL, "supervision": supervision}, epochs=100 if full else 50, lr=2e-3 if full else 1e-3,
                  seed=train_seed)
    trainer, loader, before, after = _overfit(cfg)
    margin.check("px_2d after / before", after["px_2d"] / before["px_2d"], 0.5, (before, after))
    if supervision == "full":
        margin.check("pa_mpjpe after / before", after["pa_mpjpe_mm"] / before["pa_mpjpe_mm"], 0.5, (before, after))
    # the mesh stays a valid hand: MANO parameters inside the prior's range on every sample (the angles
    # by construction, bounded=True; the betas by their prior), and bones of a hand's proportions
    model = trainer.model.eval()
    template = bone_lengths(keypoint_template(model._hand_model))
    # each bone within a factor 1.25 of the template's; with 2D keypoints alone nothing but the prior holds the
    # 3D proportions, and the default hand's (OpenHand 2) betas at the prior box's corners reach 0.66-0.77 of
    # its bones (OpenHand 1's: 0.46-0.74), so a factor 1.6 there
    factor = 1.25 if full else 1.6
    with torch.no_grad():
        for batch in loader:
            out = model(batch["image"])
            r = prior_range(out["theta"], out["beta"])
            assert r["inside"], r
            for kp in out["keypoints_3d"].numpy():
                ratio = bone_lengths(kp) / template
                margin.check("bones' |log(length / template)|", np.abs(np.log(ratio)).max(), np.log(factor), ratio)


@pytest.mark.slow
@pytest.mark.parametrize("name,options", [("sar_resnet18", SAR_SMALL), ("smr_resnet18", SMR_SMALL)])
def test_hands_finetune_trains_and_writes_a_loadable_model(rendered_set, tmp_path, capsys, name, options):
    from hands.cli import main

    out = tmp_path / name
    argv = ["finetune", "--model", name, "--data", f"complement:{rendered_set}",
            "--eval", f"train=complement:{rendered_set}", "--out", str(out), "--epochs", "1", "--batch-size", "6",
            "--loader-workers", "0", "--no-progress"]
    for k, v in options.items():      # the crop size is the task's (a model option alone would not crop to it)
        argv += ["--input-size", str(v)] if k == "input_size" else ["--model-option", f"{k}={v}"]
    assert main(argv) == 0                       # with MobRecon's consistency terms on (the default)
    text = capsys.readouterr().out
    assert "pa_mpjpe_mm" in text and "model.pt" in text
    model = registry.load_model(out / "model.pt")
    assert model.registry_name == name and model.training is False
    assert (out / "pred_train.npz").exists() and (out / "gt_train.npz").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name,options", [("sar_resnet18", SAR_SMALL), ("smr_resnet18", SMR_SMALL)])
def test_onnx_export_matches_pytorch(tmp_path, name, options):
    pytest.importorskip("onnxruntime")
    from finetune.onnx_export import compare, export_onnx

    torch.manual_seed(0)
    model = registry.build_model(name, **options).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    worst = compare(model, path)
    assert max(worst.values()) < 1e-3, worst
