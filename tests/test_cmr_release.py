"""The CMR baseline against the authors' release (SeanChenxy/HandMesh, cmr/, CMR-SG): spiral length 27,
the multi-scale decoder with a mesh per level and its losses against the down-sampled ground truth,
10 x BCE heatmaps, the 0.5 x BCE silhouette only where a sample has a mask, the stage-1 heatmaps of the
ResNet-18 stack supervised, and the model's size."""
import math

import numpy as np
import pytest
import torch

from finetune.models import build_model
from finetune.models.base import VERTEX_SCALE
from pretrain.complexity import count_complexity

S = 64   # small crops: the decoder and the losses do not depend on the input size


@pytest.fixture(scope="module")
def cmr():
    torch.manual_seed(0)
    return build_model("cmr_baseline", input_size=S).eval()


def _batch(model, B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    verts = torch.randn(B, 778, 3, generator=g) * 0.03
    kp = model.joints_from_vertices(verts)
    return {"image": torch.rand(B, 3, S, S, generator=g), "vertices_rel": verts - kp[:, :1],
            "keypoints_2d": torch.rand(B, 21, 2, generator=g) * (S - 1), "mesh_valid": torch.ones(B, dtype=torch.bool),
            "keypoints_2d_valid": torch.ones(B, 21, dtype=torch.bool),
            "mask": torch.rand(B, S, S, generator=g) > 0.5, "has_mask": torch.ones(B, dtype=torch.bool)}


def _pred(model, batch):
    with torch.no_grad():
        return model(batch["image"])


# ---------------------------------------------------------------- decoder

def test_decoder_spirals_have_length_27_and_begin_with_the_one_ring(cmr):
    hierarchy = cmr.mesh_hierarchy()
    blocks = list(cmr.decoder.blocks)
    assert len(blocks) == len(cmr.decoder.heads) == 4
    for block, head, level in zip(blocks, cmr.decoder.heads, (3, 2, 1, 0)):
        idx = block.conv.indices
        assert idx.shape == (hierarchy.sizes[level], 27) and head.indices.shape == idx.shape
        # the multi-scale parts read the first 18, 9 and 1 positions of the same spirals
        assert torch.equal(block.conv_2d3.indices, idx[:, :18]) and torch.equal(block.conv_d3.indices, idx[:, :9])
        assert torch.equal(block.shortcut.indices, idx[:, :1])
        # independent truth: each spiral starts at its vertex, then walks that vertex's 1-ring (from the faces)
        nbrs = [set() for _ in range(hierarchy.sizes[level])]
        for a, b, c in np.asarray(hierarchy.faces[level]).tolist():
            nbrs[a] |= {b, c}
            nbrs[b] |= {a, c}
            nbrs[c] |= {a, b}
        for v, ring in enumerate(nbrs):
            assert idx[v, 0] == v and set(idx[v, 1:1 + len(ring)].tolist()) == ring, (level, v)


def test_each_level_averages_its_head_with_the_upsampled_coarser_mesh(cmr):
    """release cmr_sg.py, CMR_SG.decoder: pred_l = (head_l + up(pred_{l+1})) / 2 below the coarsest level."""
    torch.manual_seed(1)
    coarse = torch.randn(2, cmr.coarse_vertices, 256)
    with torch.no_grad():
        head = cmr.decoder.heads[-1]
        saved = [p.clone() for p in head.parameters()]
        for p in head.parameters():
            p.zero_()
        levels = cmr.decoder(coarse)
        for p, s in zip(head.parameters(), saved):
            p.copy_(s)
    assert [v.shape[1] for v in levels] == [778, 389, 195, 98]
    up = cmr.decoder.upsample[-1]
    assert torch.allclose(levels[0], up(levels[1]) / 2, atol=1e-6)


def test_release_decoder_size_counted_by_hand(cmr):
    """The default decoder at D = (32, 64, 128, 256), S = 27, and the 2D-to-3D part (Table 2 row 1: FC 3.2M)."""
    c = count_complexity(cmr, S)
    blocks = [(256, 256, 98), (259, 128, 195), (131, 64, 389), (67, 32, 778)]   # (in, out, vertices), coarse first
    per_vertex = 27 / 2 + 18 / 4 + 9 / 4 + 1          # the S, 2S/3, S/3 and 1-position convolutions
    params = sum(ci * co * per_vertex + 2 * co for ci, co, _ in blocks) + sum(co * 27 * 3 + 3 for _, co, _ in blocks)
    macs = sum(n * ci * co * per_vertex for ci, co, n in blocks) + sum(n * co * 27 * 3 for _, co, n in blocks)
    assert c.by_module["decoder"] == (int(params), int(macs)) == (2360692, 386689280)
    assert c.by_module["lift"][0] == 256 * 49 * 256 + 49 * 256                # 3.2M
    assert c.by_module["attention"][0] == 3 * (256 * 256 + 256) + 1            # query, key, value and gamma
    # the paper's reading (no attention) leaves the FC alone in the 2D-to-3D part
    plain = build_model("cmr_baseline", input_size=S, attention=False)
    assert "attention" not in count_complexity(plain, S).by_module
    with pytest.raises(ValueError, match="ism, dsconv, spiral"):
        build_model("cmr_baseline", decoder="lstm")
    with pytest.raises(ValueError, match="multiple of 4"):
        build_model("cmr_baseline", input_size=S, channels=(30, 64, 128, 256))


# ---------------------------------------------------------------- losses

def test_a_mesh_term_per_level_against_the_down_sampled_ground_truth(cmr):
    hierarchy = cmr.mesh_hierarchy()
    template = torch.as_tensor(hierarchy.vertices[0], dtype=torch.float32)
    wrist = (cmr.joint_regressor @ template)[0]
    scale = torch.tensor([1.0, 1.3]).view(2, 1, 1)
    batch = _batch(cmr)
    batch["vertices_rel"] = (template - wrist).unsqueeze(0) * scale
    pred = _pred(cmr, batch)
    assert [pred[f"vertices_{l}"].shape[1] for l in (1, 2, 3)] == [389, 195, 98]
    # independent truth: the decimated meshes of the hierarchy, minus the same wrist, at the same scale
    coarse = [(torch.as_tensor(hierarchy.vertices[l], dtype=torch.float32) - wrist).unsqueeze(0) * scale
              for l in (1, 2, 3)]
    for l in (1, 2, 3):
        pred[f"vertices_{l}"] = torch.zeros_like(pred[f"vertices_{l}"])
    terms = cmr.loss_terms(pred, batch)
    for l in (1, 2, 3):
        expected = coarse[l - 1].abs().mean().item() / VERTEX_SCALE       # weight 1, mean over samples
        assert terms[f"mesh_{l}"].item() == pytest.approx(expected, rel=1e-5)
    # predicting the decimated meshes exactly gives zero; a sample without a mesh adds nothing
    for l in (1, 2, 3):
        pred[f"vertices_{l}"] = coarse[l - 1].clone()
        pred[f"vertices_{l}"][1] += 0.05
    batch["mesh_valid"] = torch.tensor([True, False])
    terms = cmr.loss_terms(pred, batch)
    assert all(terms[f"mesh_{l}"].item() < 1e-6 for l in (1, 2, 3))
    # ms_mesh off (release --ms_mesh no): the finest level only
    assert not any(k.startswith("mesh_") for k in build_model("cmr_baseline", input_size=S, ms_mesh=False)
                   .loss_terms(pred, batch))


def test_heatmap_term_is_ten_times_the_bce_of_the_release_targets(cmr):
    """A hand-computed case: the release's targets are a 13 x 13 px window of a Gaussian of sigma 3.5 px,
    peak 1; heatmap pixel (row 5, column 6) of a 16 x 16 map at S = 64 is centred at input pixel (25.5, 21.5)."""
    batch = _batch(cmr)
    batch["keypoints_2d"][0, 0] = torch.tensor([25.5, 21.5])
    batch["keypoints_2d_valid"][0, 5] = False
    pred = _pred(cmr, batch)
    logits = torch.zeros(2, 21, 16, 16)
    logits[0, 0, 5, 6] = 2.0       # the peak, target 1
    logits[0, 0, 5, 7] = -1.0      # 4 px away, target exp(-16 / 24.5)
    logits[0, 0, 6, 7] = 0.5       # 4 px away on both axes, target exp(-32 / 24.5)
    logits[0, 0, 5, 8] = 3.0       # 8 px away: outside the 13 x 13 window, target 0
    logits[0, 5] = 50.0            # an unlabelled keypoint: not supervised
    pred["heatmap_logits"] = logits

    def bce(t, x):
        p = 1 / (1 + math.exp(-x))
        return -(t * math.log(p) + (1 - t) * math.log(1 - p))

    special = [(1.0, 2.0), (math.exp(-16 / 24.5), -1.0), (math.exp(-32 / 24.5), 0.5), (0.0, 3.0)]
    map0 = (sum(bce(t, x) for t, x in special) + (256 - 4) * math.log(2)) / 256
    # every other labelled map has logits 0: ln 2 per pixel whatever its target; 41 labelled maps in all
    expected = 10 * (map0 + 40 * math.log(2)) / 41
    assert cmr.loss_terms(pred, batch)["pose2d"].item() == pytest.approx(expected, rel=1e-5)


def test_heatmap_targets_peak_at_the_keypoints():
    """The targets and the decoding of the peaks share one pixel convention: the refined peak of a target
    map is its keypoint (a Gaussian's log is a parabola, and the window keeps both neighbours)."""
    from finetune.models.cmr_blocks import release_heatmaps
    from pretrain.task2d import heatmap_peaks

    uv = torch.rand(3, 21, 2, generator=torch.Generator().manual_seed(0)) * 100 + 14
    for size, hm_size in ((128, 32), (128, 64), (224, 56)):
        target = release_heatmaps(uv * size / 128, size, hm_size)
        assert target.amax(dim=(2, 3)).min() > math.exp(-8 / 24.5) - 1e-6   # at most 2 px off a centre per axis
        assert (heatmap_peaks(target, size) - uv * size / 128).abs().max() < 1e-3


def test_mask_term_only_where_a_sample_has_a_mask(cmr):
    batch = _batch(cmr)
    mask = torch.zeros(S, S, dtype=torch.bool)
    mask[8:24, 12:32] = True                                   # 4 x 5 heatmap cells (4 px each), exactly
    batch["mask"][0] = mask
    batch["has_mask"] = torch.tensor([True, False])
    pred = _pred(cmr, batch)
    logits = torch.full((2, 16, 16), -2.0)
    logits[0, 2:6, 3:8] = 2.0                                  # confident and right everywhere on sample 0
    logits[1] = torch.randn(16, 16) * 5                        # sample 1 has no mask: anything goes
    pred["mask_logits"] = logits
    terms = cmr.loss_terms(pred, batch)
    assert terms["mask"].item() == pytest.approx(0.5 * math.log(1 + math.exp(-2.0)), rel=1e-5)
    # sample 1's mask does not matter
    batch["mask"][1] = ~batch["mask"][1]
    assert cmr.loss_terms(pred, batch)["mask"].item() == pytest.approx(terms["mask"].item(), rel=1e-6)
    # with no mask in the batch the term is zero (and still part of the graph)
    batch["has_mask"] = torch.tensor([False, False])
    none = cmr.loss_terms(pred, batch)["mask"]
    assert none.item() == 0.0
    without = {k: v for k, v in batch.items() if k not in ("mask", "has_mask")}
    assert cmr.loss_terms(pred, without)["mask"].item() == 0.0


def test_terms_carry_the_release_weights_and_reach_every_part():
    torch.manual_seed(0)
    model = build_model("cmr_baseline", input_size=S)
    batch = _batch(model)
    pred = model(batch["image"])
    terms = model.loss_terms(pred, batch)
    assert set(terms) == {"mesh", "mesh_1", "mesh_2", "mesh_3", "normal", "edge", "pose2d", "mask"}
    # logits 0 everywhere: ln 2 per pixel, so the weights show: 10 x for the heatmaps, 0.5 x for the mask
    pred0 = dict(pred, heatmap_logits=torch.zeros_like(pred["heatmap_logits"]),
                 mask_logits=torch.zeros_like(pred["mask_logits"]))
    t0 = model.loss_terms(pred0, batch)
    assert t0["pose2d"].item() == pytest.approx(10 * math.log(2), rel=1e-6)
    assert t0["mask"].item() == pytest.approx(0.5 * math.log(2), rel=1e-6)
    from finetune.mesh.losses import normal_loss

    gt = batch["vertices_rel"] / VERTEX_SCALE
    assert terms["normal"].item() == pytest.approx(0.1 * normal_loss(pred["vertices"] / VERTEX_SCALE, gt,
                                                                     model.faces).item(), rel=1e-5)
    sum(terms.values()).backward()
    parts = [model.decoder.heads[i].layer.weight for i in range(4)] + [
        model.uv_head.mask_out.weight, model.uv_head.out.weight, model.lift.weight, model.attention.gamma]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in parts)


def test_resnet18_stack_stage1_heatmaps_are_supervised():
    """release cmr_pg.py / cmr_sg.py, loss: uv_prior_loss = 10 x BCE of the first stage's heatmaps."""
    torch.manual_seed(0)
    model = build_model("cmr_baseline", encoder="resnet18_stack", input_size=S)
    batch = _batch(model)
    pred = model(batch["image"])
    assert pred["heatmaps_prior"].shape == (2, 21, S // 2, S // 2)
    terms = model.loss_terms(pred, batch)
    terms["pose2d_prior"].backward()
    g = model.encoder.heat_head.weight.grad
    assert g is not None and g.abs().sum() > 0
    flat = dict(pred, heatmaps_prior=torch.full_like(pred["heatmaps_prior"], 0.5))
    assert model.loss_terms(flat, batch)["pose2d_prior"].item() == pytest.approx(10 * math.log(2), rel=1e-6)


def test_bce_matches_torch_and_is_finite_at_saturation():
    from finetune.models.cmr_blocks import bce

    g = torch.Generator().manual_seed(0)
    t, x = torch.rand(50, generator=g), torch.randn(50, generator=g) * 4
    ref = torch.nn.functional.binary_cross_entropy(torch.sigmoid(x.double()), t.double(), reduction="none").float()
    assert torch.allclose(bce(t, logits=x), ref, atol=1e-5)
    assert torch.allclose(bce(t, prob=torch.sigmoid(x)), ref, atol=1e-3)   # fp32 probabilities lose the tails
    p = torch.tensor([0.0, 1.0, 0.5], requires_grad=True)
    loss = bce(torch.tensor([1.0, 0.0, 1.0]), prob=p)
    assert torch.allclose(loss.detach(), torch.tensor([100.0, 100.0, math.log(2)]))
    loss.sum().backward()
    assert torch.isfinite(p.grad).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):               # F.binary_cross_entropy alone refuses autocast
        assert bce(t, prob=torch.sigmoid(x).bfloat16()).dtype == torch.float32


# ---------------------------------------------------------------- training

@pytest.mark.slow
@pytest.mark.trains
def test_cmr_overfits_rendered_samples(rendered_set, tmp_path, train_seed, margin):
    """Six Blender renders (3 poses x 2 views), 200 steps through the shared trainer: PA-MPJPE and the
    2D error fall well below their start. The 10 x BCE heatmaps learn their background first and their
    peaks late: at lr 1e-3 the 2D error was still at 0.59 of its start after 120 steps (PA-MPJPE at 0.20);
    at 2e-3 (seed 0, 2 threads) PA-MPJPE / px_2d went 45.7 mm / 72.0 px -> 18.8 / 44.4 at step 80, 13.1 / 34.1
    at 120, 9.9 / 26.7 at 160, 7.6 / 20.3 at 200."""
    from pretrain.trainer import TrainConfig
    from test_mobrecon import overfit_and_check

    spec = {"name": "complement", "root": str(rendered_set), "options": {"views": [0, 110]}}
    cfg = TrainConfig(task="mesh", out=str(tmp_path / "run"), epochs=200, batch_size=6, lr=2e-3, milestones=[],
                      num_workers=0, progress=False, checkpoint_every=0, eval_every=-1, log_every=1, seed=train_seed,
                      task_options={"model": "cmr_baseline", "datasets": [spec], "eval_datasets": {"train": spec},
                                    "augment": False, "consistency": False})
    overfit_and_check(cfg, margin)
