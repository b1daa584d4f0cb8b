"""SAR against the authors' release (github.com/zxz267/SAR) where the paper is silent: 256 px input, 778
vertex graph nodes with the 21 keypoints mapped from them, the identity-started row-sum adjacency, the
perspective lift with K and the root depth, the depth unit 0.3 m, and the ImageNet weights' key mapping."""
import inspect

import numpy as np
import pytest
import torch

import finetune.models as registry
from finetune.models.sar import SAR, perspective_lift, uvd_targets
from finetune.models.sar_head import GBBMR, AdaptiveGraphConv, vertex_adjacency

SMALL = {"heatmap_size": 8, "hidden": 32, "maps_per_keypoint": 2, "dropout": 0.0}


def _small(**kw):
    torch.manual_seed(0)
    return registry.build_model(kw.pop("name", "sar_resnet18"), **{**SMALL, "input_size": 128, **kw})


# ---------------------------------------------------------------- defaults

def test_the_release_settings_are_the_defaults():
    p = inspect.signature(SAR).parameters
    assert p["input_size"].default == 256                         # release: config.py input_img_shape
    assert p["nodes"].default == "release" and p["adjacency_init"].default == "release"
    assert p["lift"].default == "perspective" and p["depth_unit"].default == 0.3
    model = registry.build_model("sar_resnet18", **SMALL)         # no input_size: the release's 256 px
    assert model.input_size == 256
    assert model.heads[0].saigb.feature_hw == 8 * 8               # an 8 x 8 layer4 map per node
    assert model.needs_camera                                      # run_model passes K


# ---------------------------------------------------------------- nodes

def test_release_nodes_are_778_vertices_and_21_keypoints_mapped_from_them(hand_model):
    model = _small()
    head = model.heads[0]
    assert head.saigb.num_nodes == 778 and head.gbbmr.graph_nodes == 778 and head.gbbmr.mapped_nodes == 21
    for branch in (head.gbbmr.uv, head.gbbmr.depth):
        for gc in (branch.gc1, branch.gc2):
            assert gc.num_nodes == 778 and tuple(gc.matrix.shape) == (778, 778)
    assert head.num_nodes == 799 and head.gbbmr.log_beta.shape == (799,)
    with torch.no_grad():
        out = model.eval()(torch.rand(2, 3, 128, 128))
    assert out["uvd"].shape == (2, 799, 3) and out["vertices"].shape == (2, 778, 3)

    # the keypoints' heatmap logits and depth maps are a learned linear map (778 -> 21, with bias) of the
    # vertices', pixel by pixel
    torch.manual_seed(1)
    g = GBBMR(vertex_adjacency(hand_model.faces, 778), 10, size=4, hidden=8, dropout=0.0, init="release",
              mapped_nodes=21)
    assert tuple(g.map_logits.weight.shape) == (21, 778) and tuple(g.map_depth.bias.shape) == (21,)
    maps = g(torch.randn(2, 778, 10))
    W, b = g.map_logits.weight, g.map_logits.bias
    ref = torch.einsum("jv,bvhw->bjhw", W, maps.logits[:, 21:]) + b[None, :, None, None]
    assert torch.allclose(maps.logits[:, :21], ref, atol=1e-5)
    W, b = g.map_depth.weight, g.map_depth.bias
    ref = torch.einsum("jv,bvhw->bjhw", W, maps.depth[:, 21:]) + b[None, :, None, None]
    assert torch.allclose(maps.depth[:, :21], ref, atol=1e-5)
    # the keypoint nodes of the output are the mapped ones
    assert torch.allclose(out["keypoints_2d"], ((out["uvd"][:, :21, :2] + 1) * 128 - 1) / 2, atol=1e-5)


def test_paper_nodes_stay_reachable():
    model = _small(nodes="paper", adjacency_init="graph")
    head = model.heads[0]
    assert head.gbbmr.graph_nodes == 799 and head.gbbmr.mapped_nodes == 0 and head.num_nodes == 799
    A = head.gbbmr.uv.gc1.normalised_adjacency().detach()
    assert A.shape == (799, 799) and (A > 0).all()                 # the softmax rows of 'graph'
    with pytest.raises(ValueError, match="nodes"):
        SAR(backbone="resnet18", nodes="all")


# ---------------------------------------------------------------- adjacency

def test_release_adjacency_starts_at_the_identity_and_is_normalised_by_row_sums():
    layer = AdaptiveGraphConv(np.zeros((3, 3), dtype=bool), 2, 4, init="release")
    A0 = layer.normalised_adjacency().detach()
    assert torch.allclose(A0, torch.eye(3) / (1 + 1e-5), atol=1e-7)  # identity / (1 + 1e-5)
    with torch.no_grad():
        layer.adj.copy_(torch.tensor([[1.0, 2.0, 1.0], [0.0, 3.0, 1.0], [2.0, -1.0, 1.0]]))
    A = layer.normalised_adjacency().detach()
    # by hand: rows / their sums (4, 4, 2); the negative entry stays negative (no abs, no relu)
    expected = torch.tensor([[0.25, 0.5, 0.25], [0.0, 0.75, 0.25], [1.0, -0.5, 0.5]])
    assert torch.allclose(A, expected, atol=1e-5)
    assert torch.allclose(A.sum(1), torch.ones(3), atol=1e-5)
    # learnable everywhere from the identity start: the off-diagonal entries get gradients too
    fresh = AdaptiveGraphConv(np.zeros((5, 5), dtype=bool), 3, 4, init="release")
    (fresh(torch.randn(2, 5, 3)) * torch.randn(2, 5, 4)).sum().backward()
    off = ~torch.eye(5, dtype=torch.bool)
    assert (fresh.adj.grad[off] != 0).all()
    # SAR's default heads use it on the 778 x 778 matrix
    model = _small()
    gc = model.heads[1].gbbmr.depth.gc2
    assert gc.init == "release" and torch.equal(gc.adj.detach(), torch.eye(778))
    assert torch.allclose(gc.normalised_adjacency().sum(1), torch.ones(778), atol=1e-4)


# ---------------------------------------------------------------- perspective lift, depth unit

def test_perspective_lift_of_a_hand_computed_case():
    K = torch.tensor([[[500.0, 0.0, 64.0], [0.0, 400.0, 60.0], [0.0, 0.0, 1.0]]])
    uvd = torch.tensor([[[0.25, -0.5, 0.1], [-0.5, 0.75, -0.2]]])
    # crop pixels ((n + 1) 128 - 1) / 2: (79.5, 31.5) and (31.5, 111.5); Z = 0.5 + d 0.3: 0.53 and 0.44
    # x = (u - 64) Z / 500, y = (v - 60) Z / 400
    expected = torch.tensor([[[15.5 * 0.53 / 500, -28.5 * 0.53 / 400, 0.53],
                              [-32.5 * 0.44 / 500, 51.5 * 0.44 / 400, 0.44]]])
    xyz, z = perspective_lift(uvd, K, 128, 0.3, root_depth=torch.tensor([0.5]))
    assert torch.allclose(xyz, expected, atol=1e-6) and z.item() == pytest.approx(0.5)


def test_the_root_depth_is_fitted_to_the_template_bones(hand_model):
    from finetune.models.sar import bone_lengths, keypoint_template
    from pretrain.task2d import px_to_norm

    kp = torch.as_tensor(keypoint_template(hand_model), dtype=torch.float64)
    R = torch.as_tensor([[0.36, 0.48, -0.8], [-0.8, 0.6, 0.0], [0.48, 0.64, 0.6]], dtype=torch.float64)
    X = kp @ R.T + torch.tensor([0.03, -0.02, 0.45], dtype=torch.float64)   # wrist at depth 0.45 m
    K = torch.tensor([[520.0, 0.0, 61.0], [0.0, 510.0, 66.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    p = X @ K.T
    uvd = torch.cat([px_to_norm(p[:, :2] / p[:, 2:], 128), (X[:, 2:] - 0.45) / 0.3], dim=1)[None]
    bones = torch.as_tensor(bone_lengths(kp.numpy()))
    xyz, z = perspective_lift(uvd, K[None], 128, 0.3, bones=bones)
    assert z.item() == pytest.approx(0.45, rel=1e-6)
    assert torch.allclose(xyz[0], X, atol=1e-7)


def test_sar_lifts_with_the_camera_when_run_model_gives_it():
    from finetune.models.base import run_model
    from finetune.models.sar import project_points

    model = _small(stages=1).eval()
    K = torch.tensor([[[300.0, 0.0, 63.5], [0.0, 300.0, 63.5], [0.0, 0.0, 1.0]]]).repeat(2, 1, 1)
    images = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        out = run_model(model, images, K)
        given = model(images, K, root_depth=torch.tensor([0.4, 0.7]))
    assert torch.equal(out["keypoints_3d"][:, 0], torch.zeros(2, 3))
    assert out["root"].shape == (2, 3) and (out["root_depth"] >= 0.05).all()
    # the camera-frame keypoints project onto the predicted 2D keypoints
    uv, _ = project_points(out["keypoints_3d"] + out["root"][:, None], K)
    assert torch.allclose(uv, out["keypoints_2d"], atol=1e-3)
    # a given root depth is used as is: the wrist lies at root depth + d_wrist * 0.3
    assert torch.allclose(given["root_depth"], torch.tensor([0.4, 0.7]))
    assert torch.allclose(given["root"][:, 2], torch.tensor([0.4, 0.7]) + given["uvd"][:, 0, 2] * 0.3, atol=1e-6)
    # 'weak' keeps the weak-perspective lift and takes no camera
    weak = _small(stages=1, lift="weak")
    assert not weak.needs_camera and "scale" in weak.eval()(images)


def test_uvd_depth_is_in_the_release_unit_of_0_3_m():
    batch = {"keypoints_2d": torch.full((1, 21, 2), 63.5), "keypoints_3d_rel": torch.zeros(1, 21, 3),
             "keypoints_2d_valid": torch.ones(1, 21, dtype=torch.bool)}
    batch["keypoints_3d_rel"][0, 8, 2] = 0.06
    target, _ = uvd_targets(batch, 128, with_vertices=False, depth_unit=0.3)
    assert target[0, 8, 2].item() == pytest.approx(0.2) and target[0, 8, :2].abs().max() < 1e-6
    model = _small()
    assert model.depth_unit == 0.3


# ---------------------------------------------------------------- ImageNet weights

def torchvision_resnet_layout(arch: str) -> dict:
    """key -> shape of torchvision's resnet18 / resnet34 state dict (torchvision/models/resnet.py), written out
    from the published architecture, not from our modules."""
    counts = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}[arch]
    shapes = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix, c):
        shapes.update({f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                       f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()})

    bn("bn1", 64)
    inplanes = 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), counts), start=1):
        for j in range(n):
            p = f"layer{i}.{j}"
            shapes[f"{p}.conv1.weight"] = (planes, inplanes, 3, 3)
            bn(f"{p}.bn1", planes)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            if j == 0 and i > 1:
                shapes[f"{p}.downsample.0.weight"] = (planes, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes)
            inplanes = planes
    shapes["fc.weight"], shapes["fc.bias"] = (1000, 512), (1000,)
    return shapes


def _torchvision_state_dict(arch, seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in torchvision_resnet_layout(arch).items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(7, dtype=torch.long)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[k] = torch.randn(shape, generator=g)
    return sd


def test_the_layout_is_torchvisions():
    # torchvision's published parameter counts: resnet18 11,689,512, resnet34 21,797,672
    for arch, n in (("resnet18", 11_689_512), ("resnet34", 21_797_672)):
        shapes = torchvision_resnet_layout(arch)
        params = sum(int(np.prod(s)) for k, s in shapes.items()
                     if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
        assert params == n, arch


def test_imagenet_weights_map_onto_every_stage_by_key(tmp_path):
    sd = _torchvision_state_dict("resnet18")
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(sd, path)
    model = registry.build_model("sar_resnet18", **SMALL, input_size=64, stages=2, imagenet_weights=str(path))
    body, stage2 = model.encoder.body, model.refine_high[0]
    own = body.state_dict()
    for k, v in sd.items():
        if k.startswith("fc."):
            assert k not in own
            continue
        assert torch.equal(own[k], v), k
    assert torch.equal(body.layer2[0].downsample[1].running_var, sd["layer2.0.downsample.1.running_var"])
    # the second stage's layer3 / layer4 are ImageNet's too (release: a fresh ImageNet ResNet per stage)
    assert torch.equal(stage2[0][1].conv2.weight, sd["layer3.1.conv2.weight"])
    assert torch.equal(stage2[1][0].downsample[0].weight, sd["layer4.0.downsample.0.weight"])
    assert torch.equal(stage2[1][1].bn2.running_mean, sd["layer4.1.bn2.running_mean"])
    assert stage2[0][0].conv1.weight.data_ptr() != body.layer3[0].conv1.weight.data_ptr()   # copies, not shared
    # the file is not part of what rebuilds a saved model (the weights are in its state dict)
    assert "imagenet_weights" not in model.build_kwargs and model.build_kwargs["input_size"] == 64

    # older files without num_batches_tracked load too
    old = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.pth")
    m2 = registry.build_model("sar_resnet18", **SMALL, input_size=64, stages=1,
                              imagenet_weights=str(tmp_path / "old.pth"))
    assert torch.equal(m2.encoder.body.layer4[1].conv1.weight, sd["layer4.1.conv1.weight"])


def test_imagenet_weights_that_do_not_fit_are_refused_naming_the_file(tmp_path):
    sd = _torchvision_state_dict("resnet18")
    cases = {
        "missing.pth": {k: v for k, v in sd.items() if k != "layer1.0.bn1.running_mean"},
        "renamed.pth": {("layer1.0.conv_1.weight" if k == "layer1.0.conv1.weight" else k): v for k, v in sd.items()},
        "shape.pth": {**sd, "layer2.0.conv1.weight": torch.zeros(128, 64, 5, 5)},
    }
    for name, bad in cases.items():
        torch.save(bad, tmp_path / name)
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            SAR(backbone="resnet18", input_size=64, stages=1, **SMALL, imagenet_weights=str(tmp_path / name))
    # a resnet18 file for a resnet34 model
    torch.save(sd, tmp_path / "r18.pth")
    with pytest.raises(ValueError, match=r"r18\.pth.*missing keys.*layer1\.2"):
        SAR(backbone="resnet34", input_size=64, stages=1, **SMALL, imagenet_weights=str(tmp_path / "r18.pth"))
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        SAR(backbone="resnet18", input_size=64, stages=1, **SMALL, imagenet_weights=str(tmp_path / "nowhere.pth"))
