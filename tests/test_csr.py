"""The camera-space model of seed 002 (finetune/models/csr.py, csr_graph.py, depth_bins.py): depth-bin
arithmetic and losses against hand-computed cases, the Inception graph layer against a dense reference
and its K-hop locality on the mesh, the ablation switches, counts, export, `hands finetune` /
`hands model-stats`, and overfitting rendered samples (PA-MPJPE and root depth)."""
import contextlib
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import finetune.models as registry
from finetune.models import depth_bins as db
from finetune.models.csr_graph import (ChebBlock, InceptionGraphBlock, InceptionGraphLayer, SEGraphAttention,
                                       level_laplacian)
from pretrain.complexity import count_complexity


S = 128


def _K(B, f=300.0, c=63.5):
    return torch.tensor([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]]).repeat(B, 1, 1)


# ---------------------------------------------------------------- depth bins (equations 2-4)

def test_bin_widths_are_positive_and_sum_to_one():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(5, 64, generator=g) * 3
    y[0] = -10.0                                          # all clamped by the ReLU: eps only, uniform
    b = db.bin_widths(y)
    assert (b > 0).all()
    assert torch.allclose(b.sum(-1), torch.ones(5), atol=1e-6)
    assert torch.allclose(b[0], torch.full((64,), 1 / 64))
    with pytest.raises(ValueError, match="eps"):
        db.bin_widths(y, eps=0.0)


def test_bin_centres_lie_inside_the_range_in_order():
    g = torch.Generator().manual_seed(1)
    b = db.bin_widths(torch.randn(4, 32, generator=g) * 5)
    c = db.bin_centres(b, 0.05, 0.6)
    assert (c > 0.05).all() and (c < 0.6).all()
    assert (c[:, 1:] > c[:, :-1]).all()
    # the bins tile the range: the last bin's right edge is the range's end
    assert torch.allclose(c[:, -1] + 0.55 * b[:, -1] / 2, torch.full((4,), 0.6), atol=1e-6)
    with pytest.raises(ValueError, match="hi > lo"):
        db.bin_centres(b, 0.6, 0.05)


def test_bins_of_a_hand_computed_case():
    # y = (-5, 1, 3), eps = 0.1: relu + eps = (0.1, 1.1, 3.1), total 4.3
    b = db.bin_widths(torch.tensor([[-5.0, 1.0, 3.0]], dtype=torch.float64))
    assert torch.allclose(b, torch.tensor([[0.1 / 4.3, 1.1 / 4.3, 3.1 / 4.3]], dtype=torch.float64))
    # range (0.1, 0.5): c_i = 0.1 + 0.4 (b_i / 2 + sum_{j<i} b_j)
    c = db.bin_centres(b, 0.1, 0.5)
    expect = 0.1 + 0.4 * torch.tensor([[0.05, 0.1 + 0.55, 0.1 + 1.1 + 1.55]], dtype=torch.float64) / 4.3
    assert torch.allclose(c, expect)
    assert abs(float(c[0, 0]) - 0.10465116) < 1e-7 and abs(float(c[0, 2]) - 0.35581395) < 1e-7
    # equation 4: a one-hot confidence picks its centre; p = (0.5, 0.5, 0) the mean of the first two
    p = torch.tensor([[[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]]], dtype=torch.float64)
    d = db.expected_depth(p, c)
    assert torch.allclose(d, torch.stack([c[0, 1], (c[0, 0] + c[0, 1]) / 2])[None])


def test_depth_normalisation_with_the_camera():
    K = _K(2, f=256.0)
    d = torch.tensor([[0.5], [1.0]])
    dn = db.normalised_depth(d, K, S)                     # S d / sqrt(fx fy) = 128 * 0.5 / 256
    assert torch.allclose(dn, torch.tensor([[0.25], [0.5]]))
    assert torch.allclose(db.metric_depth(dn, K, S), d)
    # rotation augmentation (K' = A K R^T with A = s R2) skews nothing for fx = fy, and the focal scale
    # sqrt|det K_2x2| is s f whatever the rotation
    th, s = 0.4, 1.1
    R = torch.tensor([[math.cos(th), -math.sin(th), 0.0], [math.sin(th), math.cos(th), 0.0], [0.0, 0.0, 1.0]])
    A = torch.eye(3)
    A[:2, :2] = s * R[:2, :2]
    K2 = A @ torch.tensor([[256.0, 0, 63.5], [0, 250.0, 63.5], [0, 0, 1]]) @ R.T
    assert abs(float(db.focal_scale(K2[None])[0]) - s * math.sqrt(256.0 * 250.0)) < 1e-3


def test_root_back_projection_inverts_the_projection():
    from finetune.models.csr import back_project

    X = torch.tensor([[0.05, -0.03, 0.6], [-0.1, 0.08, 0.45]])
    K = _K(2)
    K[1, 0, 1] = 12.0                                     # skewed, as augmentation makes
    p = torch.einsum("bij,bj->bi", K, X)
    uv = p[:, :2] / p[:, 2:]
    assert torch.allclose(back_project(uv, X[:, 2], K), X, atol=1e-6)


# ---------------------------------------------------------------- losses (equations 7-8)

def test_silog_loss_of_hand_computed_cases():
    e = math.e
    gt = torch.ones(1, 2)
    # g = (1, 1): sqrt(1 - 0.85 * 1) -- a common log offset costs sqrt(1 - lambda)
    assert float(db.silog_loss(torch.tensor([[e, e]]), gt)) == pytest.approx(math.sqrt(0.15), rel=1e-5)
    # g = (1, -1): mean g = 0, sqrt(1)
    assert float(db.silog_loss(torch.tensor([[e, 1 / e]]), gt)) == pytest.approx(1.0, rel=1e-5)
    # the invalid second point is left out; the batch mean over two samples
    pred = torch.tensor([[e, 5.0], [e, 1 / e]])
    gt2 = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    valid = torch.tensor([[True, True], [True, True]])
    got = db.silog_loss(pred, gt2, valid)                 # gt 0 counts as unlabelled too
    assert float(got) == pytest.approx((math.sqrt(0.15) + 1.0) / 2, rel=1e-5)
    # lambda = 0 is the RMS of the log error; a perfect prediction gives 0 with a finite gradient
    assert float(db.silog_loss(torch.tensor([[e, 1.0]]), gt, lam=0.0)) == pytest.approx(math.sqrt(0.5), rel=1e-5)
    x = torch.ones(1, 2, requires_grad=True)
    db.silog_loss(x, gt).backward()
    assert torch.isfinite(x.grad).all()


def test_bidirectional_chamfer_of_a_hand_computed_case():
    c = torch.tensor([[0.2, 0.5]], dtype=torch.float64)
    x = torch.tensor([[0.25, 0.3, 0.6, 9.0]], dtype=torch.float64)
    valid = torch.tensor([[1, 1, 1, 0]])
    # X -> c: 0.05^2, 0.1^2, 0.1^2 -> mean 0.0075; c -> X: 0.05^2, 0.1^2 -> mean 0.00625 (9.0 is invalid)
    assert float(db.chamfer_loss(c, x, valid)) == pytest.approx(0.0075 + 0.00625)
    # in units of the range: divided by its width squared
    assert float(db.chamfer_loss(c, x, valid, scale=0.5)) == pytest.approx((0.0075 + 0.00625) / 0.25)
    # identical sets cost nothing; a sample without valid depth adds nothing and does not count
    same = db.chamfer_loss(torch.tensor([[0.2, 0.5], [0.1, 0.1]]), torch.tensor([[0.5, 0.2], [0.3, 0.3]]),
                           torch.tensor([[1, 1], [0, 0]]))
    assert float(same) == 0.0


# ---------------------------------------------------------------- Inception graph network

@pytest.fixture(scope="module")
def level0(hand_model):
    from finetune.mesh.hierarchy import hierarchy_for

    h = hierarchy_for(hand_model)
    lap, lam = level_laplacian(h, 0)
    return h, lap, lam


def _hops_from(faces, n, v):
    from scipy.sparse.csgraph import shortest_path

    f = np.asarray(faces)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    a = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    return shortest_path(a, directed=False, unweighted=True, indices=v)


def test_inception_layer_equals_a_dense_chebyshev_reference(level0):
    h, lap, lam = level0
    torch.manual_seed(0)
    layer = InceptionGraphLayer(3, 4, lap, lam, hops=(1, 2, 3)).double()
    with torch.no_grad():
        for b in layer.branches:
            b.layer.bias.normal_()
    x = torch.randn(2, 778, 3, dtype=torch.float64)
    n = lap.shape[0]
    scaled = 2.0 * lap.toarray() / lam - np.eye(n)
    outs = []
    for branch, hop in zip(layer.branches, (1, 2, 3)):
        assert branch.K == hop + 1
        w, bias = branch.weight.detach().numpy(), branch.layer.bias.detach().numpy()
        per = []
        for xb in x.numpy():
            t = [xb, scaled @ xb]
            for _ in range(2, hop + 1):
                t.append(2 * scaled @ t[-1] - t[-2])
            per.append(sum(t[k] @ w[k] for k in range(hop + 1)) + bias)
        outs.append(np.stack(per))
        # the shared-terms computation of the layer equals the branch's own ChebConv
        # (the module stores the scaled Laplacian in float32, hence 1e-6)
        assert np.allclose(branch(x).detach().numpy(), outs[-1], atol=1e-6)
    fuse_w, fuse_b = layer.fuse.weight.detach().numpy(), layer.fuse.bias.detach().numpy()
    expect = np.concatenate(outs, axis=-1) @ fuse_w.T + fuse_b
    assert np.allclose(layer(x).detach().numpy(), expect, atol=1e-6)


def test_chebyshev_orders_act_only_within_their_hops_on_the_mesh(level0):
    h, lap, lam = level0
    n, v = 778, 400
    hop = _hops_from(h.faces[0], n, v)
    torch.manual_seed(1)
    layer = InceptionGraphLayer(3, 5, lap, lam, hops=(1, 2, 3)).double()
    x = torch.randn(1, n, 3, dtype=torch.float64)
    x2 = x.clone()
    x2[0, v] += torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    with torch.no_grad():
        for branch, k in zip(layer.branches, (1, 2, 3)):
            changed = (branch(x2) - branch(x)).abs().amax(-1)[0].numpy() > 1e-12
            assert changed[hop <= k].all() and not changed[hop > k].any(), k
        changed = (layer(x2) - layer(x)).abs().amax(-1)[0].numpy() > 1e-12
        assert changed[hop <= 3].all() and not changed[hop > 3].any()
        # a block stacks two layers (6 hops) and ends with the SE attention, whose mean over the
        # vertices makes it global: every vertex moves, those beyond 6 hops only through the gate
        block = InceptionGraphBlock(3, 5, lap, lam).double()
        diff = (block(x2) - block(x)).abs().amax(-1)[0].numpy()
        plain = (block.layer2(torch.relu(block.layer1(x2))) - block.layer2(torch.relu(block.layer1(x))))
        reach = plain.abs().amax(-1)[0].numpy() > 1e-12
        assert not reach[hop > 6].any() and reach[hop <= 1].all()
        assert (diff[hop > 6] > 0).any()


def test_se_graph_attention_scales_channels_by_a_gate_of_their_vertex_mean():
    torch.manual_seed(0)
    se = SEGraphAttention(8, reduction=4)
    x = torch.randn(2, 30, 8)
    gate = torch.sigmoid(se.fc2(torch.relu(se.fc1(x.mean(1)))))
    assert torch.allclose(se(x), x * gate[:, None])
    assert se.fc1.out_features == 2


def test_inception_block_shape_and_gradient(level0):
    h, lap, lam = level0
    block = InceptionGraphBlock(6, 4, lap, lam)
    x = torch.randn(3, 778, 6, requires_grad=True)
    y = block(x)
    assert y.shape == (3, 778, 4) and (y >= 0).all()
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


# ---------------------------------------------------------------- the model

@pytest.fixture(scope="module")
def csr18():
    torch.manual_seed(0)
    return registry.build_model("csr_resnet18").eval()


def _fake_batch(model, B, seed=0):
    g = torch.Generator().manual_seed(seed)
    verts = torch.randn(B, 778, 3, generator=g) * 0.03
    kp = model.joints_from_vertices(verts)
    verts, kp = verts - kp[:, :1], kp - kp[:, :1]
    root = torch.tensor([0.02, -0.01, 0.5]) + 0.05 * torch.rand(B, 3, generator=g)
    kp_cam = kp + root[:, None]
    K = _K(B)
    p = torch.einsum("bij,bnj->bni", K, kp_cam)
    return {"image": torch.rand(B, 3, S, S, generator=g), "K": K, "vertices_rel": verts, "keypoints_3d_rel": kp,
            "keypoints_3d": kp_cam, "keypoints_2d": p[..., :2] / p[..., 2:],
            "mesh_valid": torch.ones(B, dtype=torch.bool),
            "keypoints_2d_valid": torch.ones(B, 21, dtype=torch.bool)}


def test_outputs_and_camera_space_root(csr18):
    K = _K(2)
    with torch.no_grad():
        out = csr18(torch.rand(2, 3, S, S), K)
        bare = csr18(torch.rand(2, 3, S, S))
    assert out["vertices"].shape == (2, 778, 3) and out["keypoints_3d"].shape == (2, 21, 3)
    assert out["keypoints_2d"].shape == (2, 21, 2) and out["heatmaps"].shape == (2, 21, S // 8, S // 8)
    assert torch.allclose(out["keypoints_3d"][:, 0], torch.zeros(2, 3), atol=1e-6)
    assert out["bin_probs"].shape == (2, 21, 64) and out["bin_centres"].shape == (2, 64)
    assert torch.allclose(out["bin_widths"].sum(-1), torch.ones(2), atol=1e-5)
    lo, hi = csr18.depth.range
    assert ((out["depth_norm"] > lo) & (out["depth_norm"] < hi)).all()
    # the root: at the predicted depth of keypoint 0, on the ray of its predicted 2D position
    z = out["root_depth_norm"] * 300.0 / S
    assert torch.allclose(out["root"][:, 2], z, atol=1e-6)
    p = torch.einsum("bij,bj->bi", K, out["root"])
    assert torch.allclose(p[:, :2] / p[:, 2:], out["keypoints_2d"][:, 0], atol=1e-3)
    # without a camera: normalised depth only
    assert "root" not in bare and "depth" not in bare and bare["root_depth_norm"].shape == (2,)
    assert csr18.needs_camera


def test_loss_terms_carry_the_paper_weights_and_backpropagate():
    from finetune.models.csr import PAPER_WEIGHTS

    torch.manual_seed(0)
    model = registry.build_model("csr_resnet18")
    batch = _fake_batch(model, 2)
    pred = model(batch["image"], batch["K"])
    terms = model.loss_terms(pred, batch)
    detached = {k: v.detach() for k, v in pred.items()}
    assert set(terms) == {"pose2d", "depth", "bins", "mesh", "pose3d", "normal", "edge"}
    unit = registry.build_model("csr_resnet18", loss_weights={k: 1.0 for k in PAPER_WEIGHTS})
    unit.load_state_dict(model.state_dict())
    plain = unit.loss_terms(detached, batch)
    for k, v in terms.items():
        assert float(v.detach()) == pytest.approx(PAPER_WEIGHTS[k] * float(plain[k]), rel=1e-6), k
    assert PAPER_WEIGHTS["depth"] == PAPER_WEIGHTS["bins"] == 10 and PAPER_WEIGHTS["normal"] == 0.1
    # the SI term by hand from the prediction and the normalised ground truth
    gt = batch["keypoints_3d"][..., 2] * S / 300.0
    g = detached["depth_norm"].log() - gt.log()
    si = ((g ** 2).mean(-1) - 0.85 * g.mean(-1) ** 2).sqrt().mean()
    assert float(plain["depth"]) == pytest.approx(float(si), rel=1e-5)
    sum(terms.values()).backward()
    for name in ("depth.regressor.net.0.weight", "depth.key.weight", "graph.fc.weight", "aggregation.mlp.0.weight",
                 "encoder.body.conv1.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_explicit_heatmap_adds_a_heatmap_term_and_contradictions_are_refused():
    from finetune.models.csr import implicit_heatmap_setting

    assert implicit_heatmap_setting() is True
    assert implicit_heatmap_setting(heatmap_loss=True) is False
    assert implicit_heatmap_setting(False) is False
    with pytest.raises(ValueError, match="contradict"):
        implicit_heatmap_setting(True, True)
    torch.manual_seed(0)
    model = registry.build_model("csr_resnet18", implicit_heatmap=False)
    batch = _fake_batch(model, 2)
    terms = model.loss_terms(model(batch["image"], batch["K"]), batch)
    assert "heatmap" in terms and float(terms["heatmap"].detach()) > 0
    with pytest.raises(ValueError, match="loss_weights"):
        registry.build_model("csr_resnet18", loss_weights={"nosuch": 1.0})
    with pytest.raises(ValueError, match="queries"):
        registry.build_model("csr_resnet18", queries=65)
    with pytest.raises(ValueError, match="depth_range"):
        registry.build_model("csr_resnet18", depth_range=(0.6, 0.05))


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _cheb(c_in, c_out, K):
    return K * c_in * c_out + c_out


def _inception_block(c_in, c_out, hops=(1, 2, 3), r=4):
    layer = lambda a, b: sum(_cheb(a, b, h + 1) for h in hops) + len(hops) * b * b + b   # noqa: E731
    se = c_out * (c_out // r) + c_out // r + (c_out // r) * c_out + c_out
    return layer(c_in, c_out) + layer(c_out, c_out) + se + (0 if c_in == c_out else c_in * c_out)


def _cheb_block(c_in, c_out, hop=2):
    return _cheb(c_in, c_out, hop + 1) + _cheb(c_out, c_out, hop + 1) + (0 if c_in == c_out else c_in * c_out)


def test_ablation_switches_change_the_architecture_as_expected(csr18):
    torch.manual_seed(0)
    plain = registry.build_model("csr_resnet18", inception=False)
    glob = registry.build_model("csr_resnet18", gl_attention=False)
    explicit = registry.build_model("csr_resnet18", implicit_heatmap=False)
    widths = [(64, 64), (64, 64), (64, 32)]                                   # 195, 389, 778 vertices
    fc_and_head = 256 * 195 * 64 + 195 * 64 + _cheb(32, 3, 3)
    assert _params(csr18.graph) == fc_and_head + sum(_inception_block(a, b) for a, b in widths)
    assert _params(plain.graph) == fc_and_head + sum(_cheb_block(a, b) for a, b in widths)
    assert all(isinstance(b, InceptionGraphBlock) for b in csr18.graph.blocks)
    assert all(isinstance(b, ChebBlock) for b in plain.graph.blocks)
    # G&L attention: pose decoding (21 -> E), key and value (E -> E), head over E; the global-only
    # variant: a 3x3 key encoding (E -> E) and a head over the N_query range-attention maps
    E, Nq = 128, 32
    gl_only = (21 * E + E) + 2 * (E * E + E) + (E * E + E)
    global_only = (9 * E * E + E) + (Nq * E + E)
    assert _params(csr18.depth) - _params(glob.depth) == gl_only - global_only
    for name in ("encoder", "hourglass", "aggregation", "latent_net", "graph"):
        assert _params(getattr(glob, name)) == _params(getattr(csr18, name)), name
    for name in ("encoder", "hourglass", "aggregation", "latent_net", "depth"):
        assert _params(getattr(plain, name)) == _params(getattr(csr18, name)), name
    # the implicit heatmap is a loss setting: the same network
    assert _params(explicit) == _params(csr18)
    # the variants run
    with torch.no_grad():
        for m in (plain.eval(), glob.eval()):
            out = m(torch.rand(1, 3, S, S), _K(1))
            assert out["vertices"].shape == (1, 778, 3) and torch.isfinite(out["root"]).all()


def test_count_complexity_of_both_backbones(csr18):
    c = count_complexity(csr18, S)
    assert set(c.by_module) >= {"encoder", "hourglass", "aggregation", "latent_net", "graph", "depth"}
    assert c.params == _params(csr18)
    assert 15e6 < c.params < 25e6 and 0.8e9 < c.macs < 2.0e9, c.row()
    # the MLP of the 2D pose is (h_e w_e) -> 32 -> 2, shared by the 21 joints: 21 x (256 x 32 + 32 x 2)
    # multiply-adds
    mlp = csr18.aggregation.mlp
    assert mlp[0].in_features == (S // 8) ** 2 and mlp[0].out_features == 32 and mlp[2].out_features == 2
    with_k = count_complexity(csr18, inputs=(torch.zeros(1, 3, S, S), _K(1)))
    assert with_k.macs >= c.macs
    torch.manual_seed(0)
    c50 = count_complexity(registry.build_model("csr_resnet50").eval(), S)
    assert c50.params > c.params and c50.macs > c.macs
    assert c50.by_module["graph"] == c.by_module["graph"] and c50.by_module["depth"] == c.by_module["depth"]


def test_model_file_round_trip_and_onnx_export(tmp_path, csr18):
    pytest.importorskip("onnxruntime")
    from finetune.onnx_export import compare, export_onnx

    path = registry.save_model(tmp_path / "model.pt", csr18)
    again = registry.load_model(path)
    x, K = torch.rand(1, 3, S, S), _K(1)
    with torch.no_grad():
        assert torch.allclose(again(x, K)["root"], csr18(x, K)["root"], atol=1e-6)
    onnx = export_onnx(csr18, tmp_path / "csr.onnx")
    assert max(compare(csr18, onnx).values()) < 1e-4


# ---------------------------------------------------------------- CLI and training

@pytest.fixture(scope="module")
def shards(hand_model, tmp_path_factory):
    from fixtures_more_benchmarks import write_complement_shards

    root = tmp_path_factory.mktemp("complement_csr")
    write_complement_shards(root, hand_model, poses=(3, 17, 40), views=(0, 40, 101, 150))
    return root


def test_model_stats_lists_the_model(capsys):
    from hands.cli import main

    assert main(["model-stats", "--only", "csr_resnet18"]) == 0
    line = [r for r in capsys.readouterr().out.splitlines() if "csr_resnet18" in r]
    assert line and "n/a" not in line[0] and "M" in line[0]


def test_cli_finetune_trains_the_model(shards, tmp_path, capsys):
    from hands.cli import main

    out = tmp_path / "run"
    rc = main(["finetune", "--model", "csr_resnet18", "--data", f"complement:{shards}",
               "--eval", f"train=complement:{shards}", "--out", str(out), "--epochs", "1", "--batch-size", "4",
               "--loader-workers", "0", "--no-progress", "--no-consistency", "--model-option", "inception=false"])
    assert rc == 0
    assert "pa_mpjpe_mm" in capsys.readouterr().out
    model = registry.load_model(out / "model.pt")
    assert model.registry_name == "csr_resnet18" and not model.graph.inception
    with np.load(out / "pred_train.npz") as pred, np.load(out / "gt_train.npz") as gt:
        assert pred["xyz"].shape == gt["xyz"].shape == (12, 21, 3)


def _config(out, data, **kw):
    from pretrain.trainer import TrainConfig

    spec = {"name": "complement", "root": str(data), "options": {"views": [0, 110]}}
    opts = {"model": "csr_resnet18", "datasets": [spec], "eval_datasets": {"train": spec}, "augment": False,
            "consistency": False}
    base = dict(task="mesh", out=str(out), epochs=50, batch_size=6, lr=1e-3, milestones=[], num_workers=0,
                progress=False, checkpoint_every=0, eval_every=-1, log_every=1, seed=0, task_options=opts)
    base.update(kw)
    return TrainConfig(**base)


@contextlib.contextmanager
def _one_thread():
    """One intra-op thread: on the shared 2-core machines a second OpenMP thread competing with other jobs
    made this training ~6x slower (measured: 267 s with 2 threads, 46 s with 1, under a load of 5)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.mark.slow
@pytest.mark.trains
def test_overfitting_rendered_samples_drives_mesh_and_root_depth_errors_down(rendered_set, tmp_path, train_seed,
                                                                            margin):
    with _one_thread():
        _overfit(rendered_set, tmp_path, train_seed, margin)


def _overfit(rendered_set, tmp_path, seed, margin):
    from finetune.evaluate import evaluate_files
    from finetune.model_eval import evaluate_loader
    from pretrain.trainer import Trainer

    trainer = Trainer(_config(tmp_path / "run", rendered_set, seed=seed))
    loader = trainer.eval_loaders(final=True)["train"]
    before, arrays = evaluate_loader(trainer.model.eval(), loader, trainer.device)

    def root_depth_mm(a):
        return float(np.abs(a["pred_xyz"][:, 0, 2] - a["gt_xyz"][:, 0, 2]).mean() * 1000)

    depth_before = root_depth_mm(arrays)
    result = trainer.fit()
    after = result.metrics["train"]
    after_again, arrays = evaluate_loader(trainer.model.eval(), loader, trainer.device)
    depth_after = root_depth_mm(arrays)
    assert before["samples"] == 6
    margin.check("pa_mpjpe after / before", after["pa_mpjpe_mm"] / before["pa_mpjpe_mm"], 0.3, (before, after))
    margin.check("pa_mpvpe after / before", after["pa_mpvpe_mm"] / before["pa_mpvpe_mm"], 0.5, (before, after))
    margin.check("root depth after / before", depth_after / depth_before, 0.25, (depth_before, depth_after))
    margin.check("root after / before", after["root_mm"] / before["root_mm"], 0.25, (before, after))
    margin.check("px_2d after / before", after["px_2d"] / before["px_2d"], 0.6, (before, after))
    # the camera-space figures of `hands evaluate` (FreiHAND's unaligned = CJ / CV, aligned = PJ / PV);
    # the rendered meshes have the model's own topology, so the per-vertex path is the right one
    res = evaluate_files(tmp_path / "run" / "pred_train.npz", tmp_path / "run" / "gt_train.npz", "freihand",
                         mesh_topology="mano")
    assert res.figures["xyz_mean3d"] * 10 == pytest.approx(after_again["cs_mpjpe_mm"], rel=1e-3)
    assert res.figures["xyz_al_mean3d"] * 10 == pytest.approx(after_again["pa_mpjpe_mm"], rel=1e-3)
    assert res.figures["mesh_mean3d"] is not None and res.figures["mesh_al_mean3d"] is not None
