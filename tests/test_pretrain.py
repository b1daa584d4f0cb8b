"""The 2D-pose pretraining task: coordinates and targets, the heads, crops and augmentation, splits,
2D metrics, the encoder file, exact resume, the CLI, the pipeline stages, and a learning check.

Data: a Blender-free dataset in the real shard format (tests/sketch_data.py write_sketch_dataset: hands
drawn as coloured bones and joint blobs). Model: a tiny Encoder subclass registered as 'tiny'."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from pretrain.checkpoint import load_pretrained_encoder, save_encoder
from pretrain.data2d import Augment2D, Pose2DSamples, choose_heldout_poses, load_splits
from sketch_data import write_sketch_dataset
from pretrain.image_ops import warp_image as warp
from pretrain.encoders import build_named_encoder, register_encoder
from pretrain.encoders.base import Encoder, EncoderFeatures, normalise
from pretrain.evaluate2d import pck_2d
from pretrain.task2d import (Pose2DNet, Pose2DTask, gaussian_heatmaps, heatmap_peaks, load_pose2d_model, norm_to_px,
                             px_to_norm)
from pretrain.trainer import TrainConfig, Trainer, train

S = 64


def _cbr(i, o, s=1):
    return nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


class TinyEncoder(Encoder):
    """The Encoder interface at toy size: maps2d fuses S/8 features with the upsampled S/16 and S/32 ones."""

    latent_channels, map_channels, skip_channels = 48, 32, (16, 24)

    def __init__(self, input_size: int = S):
        super().__init__(input_size)
        self.s2, self.s4, self.s8 = _cbr(3, 16, 2), _cbr(16, 24, 2), _cbr(24, 32, 2)
        self.s16, self.s32 = _cbr(32, 48, 2), _cbr(48, 48, 2)
        self.fuse = _cbr(32 + 48 + 48, 32)

    def forward(self, images):
        x2 = self.s2(normalise(images))
        x4 = self.s4(x2)
        x8 = self.s8(x4)
        x16 = self.s16(x8)
        x32 = self.s32(x16)
        up = lambda t, f: nn.functional.interpolate(t, scale_factor=f, mode="nearest")  # noqa: E731
        return EncoderFeatures(latent=x32, maps2d=self.fuse(torch.cat([x8, up(x16, 2), up(x32, 4)], 1)),
                               skips=[x2, x4])


register_encoder("tiny", TinyEncoder)


@pytest.fixture(scope="module")
def sketch(tmp_path_factory):
    """8 poses x 12 views at 96 px; views 3, 7, 11 of every pose use the held-out background."""
    return write_sketch_dataset(tmp_path_factory.mktemp("sketch") / "data", poses=range(8), views=range(12), size=96)


def _options(root, **kw):
    return {"data": str(root), "encoder": "tiny", "input_size": S, "heldout_poses": 0.25, "hidden": [64, 32], **kw}


def _config(root, out, **kw):
    task_kw = kw.pop("task_options", {})
    base = dict(out=str(out), epochs=2, batch_size=8, lr=2e-3, num_workers=0, progress=False, checkpoint_every=0,
                eval_every=-1, task_options=_options(root, **task_kw))
    base.update(kw)
    return TrainConfig(**base)


# ---------------------------------------------------------------- coordinates, targets, heads

def test_normalised_coordinates_and_heatmap_targets():
    # the image spans [-0.5, S - 0.5] in pixels (centre of the top-left pixel at 0) and [-1, 1] normalised
    assert px_to_norm(torch.tensor([-0.5, 63.5, 127.5]), 128).tolist() == [-1.0, 0.0, 1.0]
    uv = torch.rand(3, 21, 2) * 120
    assert torch.allclose(norm_to_px(px_to_norm(uv, 128), 128), uv, atol=1e-4)
    # heatmap pixel j (stride 4) is centred on input pixel 4j + 1.5
    hm = gaussian_heatmaps(torch.tensor([[[4 * 7 + 1.5, 4 * 3 + 1.5]]]), 128, 32, 1.0)
    assert hm.shape == (1, 1, 32, 32) and hm[0, 0, 3, 7] == 1.0 and hm.max() == 1.0
    assert hm[0, 0, 3, 8] == pytest.approx(np.exp(-0.5), rel=1e-5)
    # peaks decode back to sub-pixel positions
    uv = torch.rand(2, 21, 2) * 110 + 8
    assert (heatmap_peaks(gaussian_heatmaps(uv, 128, 32, 1.0), 128) - uv).abs().max() < 1e-3


def test_model_outputs_and_losses(sketch):
    net = Pose2DNet(TinyEncoder(S), hidden=(64, 32))
    out = net(torch.rand(2, 3, S, S))
    assert out["heatmaps"].shape == (2, 21, S // 4, S // 4) and out["positions"].shape == (2, 21, 2)
    assert out["maps"].shape == (2, 21, S // 8, S // 8)   # MapReg: one S/8 map per keypoint, flattened into the MLP
    assert net.position_head.mlp[0].in_features == (S // 8) ** 2

    task = Pose2DTask(_config(sketch, "unused"))
    uv = torch.rand(2, 21, 2) * (S - 1)
    batch = {"image": torch.rand(2, 3, S, S), "keypoints_2d": uv}

    class Oracle(nn.Module):
        def __init__(self, shift=0.0):
            super().__init__()
            self.shift = shift

        def forward(self, images):
            return {"heatmaps": gaussian_heatmaps(uv, S, S // 4, 1.0), "positions": px_to_norm(uv + self.shift, S)}

    loss, terms = task.loss(Oracle(), batch)
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and terms["epe_px"].item() < 1e-4
    loss, terms = task.loss(Oracle(shift=3.2), batch)   # L1 of normalised coordinates: 3.2 px = 0.1 at S = 64
    assert terms["position"].item() == pytest.approx(0.1, rel=1e-4) and loss.item() == pytest.approx(0.1, rel=1e-4)
    assert terms["epe_px"].item() == pytest.approx(3.2 * np.sqrt(2), rel=1e-4)


def test_real_encoder_in_the_pretraining_model():
    pytest.importorskip("pretrain.encoders.mobilenet")
    net = Pose2DNet(build_named_encoder("mobilenet_stack", 128)).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 128, 128))
    assert out["heatmaps"].shape == (1, 21, 32, 32) and out["positions"].shape == (1, 21, 2)
    assert net.position_head.mlp[0].in_features == 256   # 16 x 16 at 128 px, as the paper's example
    with pytest.raises(ValueError, match="unknown encoder 'nonesuch'.*densestack"):
        build_named_encoder("nonesuch")


# ---------------------------------------------------------------- crops and augmentation

def test_warp_follows_the_pixel_centre_convention():
    img = np.zeros((80, 80, 3), np.uint8)
    img[39:42, 29:32] = 255                      # a 3x3 square centred on pixel (x=30, y=40)
    th = np.radians(25)
    A = np.array([[1.3 * np.cos(th), -1.3 * np.sin(th), 5.0], [1.3 * np.sin(th), 1.3 * np.cos(th), -12.0], [0, 0, 1]])
    out = warp(Image.fromarray(img), A, 64)[..., 0].astype(float)
    ys, xs = np.mgrid[:64, :64]
    centroid = np.array([(out * xs).sum(), (out * ys).sum()]) / out.sum()
    np.testing.assert_allclose(centroid, (A @ [30.0, 40.0, 1.0])[:2], atol=0.05)


def test_crops_centre_the_hand_and_augmentation_is_reproducible(sketch):
    from synth.reader import ComplementDataset

    reader = ComplementDataset(sketch, poses=[0, 1])
    plain = Pose2DSamples(reader, input_size=S)
    s = plain[5]
    assert s["image"].shape == (3, S, S) and s["image"].dtype == torch.float32 and 0 <= s["image"].min()
    kp = s["keypoints_2d"].numpy()
    lo, hi = kp.min(0), kp.max(0)
    np.testing.assert_allclose((lo + hi) / 2, (S - 1) / 2, atol=1e-4)        # box centred
    assert (hi - lo).max() == pytest.approx(S / 1.5, rel=1e-4)                 # 1.5 x the keypoint box
    # the drawn wrist blob (dark grey) lies under the wrist label, in plain and augmented crops
    aug = Pose2DSamples(reader, input_size=S, augment=Augment2D(colour_prob=0.0), seed=3)
    for item in (s, aug[5]):
        x, y = np.round(item["keypoints_2d"][0].numpy()).astype(int)
        assert item["image"][:, y, x].max() < 0.3
    a1 = aug[5]
    assert torch.equal(a1["image"], aug[5]["image"]) and torch.equal(a1["keypoints_2d"], aug[5]["keypoints_2d"])
    aug.set_epoch(1)
    assert not torch.equal(a1["keypoints_2d"], aug[5]["keypoints_2d"])
    assert set(s) >= {"image", "keypoints_2d", "visibility", "key", "hdri_id", "pose_id"}
    with pytest.raises(ValueError, match="augment: unknown field"):
        Augment2D.from_value({"rotate": 3})


# ---------------------------------------------------------------- splits

def test_splits_hold_out_poses_and_hdris(sketch, tmp_path):
    sp = load_splits(sketch, heldout_poses=0.25, input_size=S)
    held = set(sp.info["heldout_pose_ids"])
    assert len(held) == 2 and sp.info["samples"] == {"train": 54, "heldout_poses": 18, "heldout_hdris": 18,
                                                     "heldout_both": 6}
    assert not held & set(sp.train.pose_ids().tolist())
    assert set(sp.evals["heldout_poses"].pose_ids().tolist()) == held
    hdri = lambda ds: {ds.read(i)[1]["hdri"]["id"] for i in range(len(ds))}  # noqa: E731
    assert "sketch/night" not in hdri(sp.train) and hdri(sp.evals["heldout_hdris"]) == {"sketch/night"}
    assert sp.info["empty_splits"] == []
    # explicit ids; a second folder of held-out-HDRI shards joins the held-out-HDRI splits
    extra = write_sketch_dataset(tmp_path / "evalshards", poses=[0, 5], views=[100, 101], size=96, heldout_every=1)
    sp2 = load_splits(sketch, eval_data=[extra], heldout_poses=[5, 6], input_size=S)
    assert sp2.info["heldout_pose_ids"] == [5, 6]
    assert sp2.info["samples"]["heldout_hdris"] == 18 + 2 and sp2.info["samples"]["heldout_both"] == 6 + 2
    # a dataset rendered with training HDRIs only has no held-out-HDRI split
    plain = write_sketch_dataset(tmp_path / "plain", poses=range(3), views=range(4), size=64, heldout_every=0)
    sp3 = load_splits(plain, heldout_poses=0.1, input_size=S)
    assert sp3.info["empty_splits"] == ["heldout_hdris", "heldout_both"] and list(sp3.evals) == ["heldout_poses"]
    assert len(sp3.info["heldout_pose_ids"]) == 1   # at least one pose when there are two or more
    # a subset of the poses: nothing else is read, in training or held out
    ids = sorted(set(sp.train.pose_ids().tolist()) | held)
    sp4 = load_splits(sketch, heldout_poses=[ids[1]], input_size=S, poses=ids[:3])
    assert set(sp4.train.pose_ids().tolist()) == {ids[0], ids[2]}
    assert set(sp4.evals["heldout_poses"].pose_ids().tolist()) == {ids[1]}
    assert set(sp4.evals["heldout_hdris"].pose_ids().tolist()) == {ids[0], ids[2]}
    with pytest.raises(ValueError, match=r"pose id\(s\) \[9999\] are not in"):
        load_splits(sketch, heldout_poses=0.0, input_size=S, poses=[ids[0], 9999])


def test_heldout_pose_choice():
    ids = list(range(100, 120))
    a = choose_heldout_poses(ids, 0.1, seed=0)
    assert len(a) == 2 and a == choose_heldout_poses(ids, 0.1, seed=0) and set(a) <= set(ids)
    assert choose_heldout_poses([7], 0.5) == [] and choose_heldout_poses(ids, 0.0) == []
    with pytest.raises(ValueError, match=r"held-out pose id\(s\) \[3\] are not in the dataset"):
        choose_heldout_poses(ids, [3, 101])
    with pytest.raises(ValueError, match="every pose is held out"):
        choose_heldout_poses([1, 2], [1, 2])
    with pytest.raises(ValueError, match="fraction in"):
        choose_heldout_poses(ids, 1.5)


# ---------------------------------------------------------------- 2D metrics

def test_pck_auc_and_pixel_error():
    gt = np.random.default_rng(0).uniform(0, 128, (10, 21, 2))
    perfect = pck_2d(gt, gt)
    assert perfect["mean_px"] == 0 and perfect["auc"] == pytest.approx(1.0) and perfect["pck"][0] == 1.0
    off = pck_2d(gt + [9.0, 12.0], gt)                   # every keypoint 15 px off
    assert off["mean_px"] == pytest.approx(15.0) and off["pck@10px"] == 0.0
    t = np.array(off["thresholds"])
    assert t[0] == 0 and t[-1] == 30 and len(t) == 100
    assert off["auc"] == pytest.approx(np.trapz((t >= 15.0).astype(float), t) / 30.0)   # about 0.5
    vis = np.ones((10, 21), bool)
    vis[:, 3] = False
    far = gt.copy()
    far[:, 3] += 100.0
    assert pck_2d(far, gt, visible=vis)["mean_px"] == 0.0   # invisible keypoints are not scored
    with pytest.raises(ValueError, match="expected"):
        pck_2d(gt[:, :, :1], gt[:, :, :1])


# ---------------------------------------------------------------- outputs, resume, CLI, stages

def test_run_outputs_and_the_encoder_file(sketch, tmp_path):
    cfg = _config(sketch, tmp_path / "run", epochs=1)
    res = train(cfg)
    out = tmp_path / "run"
    for name in ("encoder.pt", "head.pt", "metrics.json", "pretrain_config.json", "splits.json", "scalars.csv",
                 "curves.png", "checkpoints/last.pt"):
        assert (out / name).exists(), name
    data = torch.load(out / "encoder.pt", weights_only=True)
    assert data["encoder"] == "tiny" and data["input_size"] == S and data["format"] == "hands-encoder/1"
    enc = load_pretrained_encoder(out / "encoder.pt").eval()
    net = load_pose2d_model(out)
    x = torch.rand(2, 3, S, S)
    with torch.no_grad():
        assert torch.equal(enc(x).maps2d, net.encoder(x).maps2d)
        res_net = Trainer(cfg).model   # a fresh model differs: the file holds trained weights
        res_net.load_state_dict(torch.load(out / "checkpoints/last.pt", weights_only=True)["model"])
        assert torch.equal(res_net.eval()(x)["positions"], net(x)["positions"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["splits"]) == {"heldout_poses", "heldout_hdris", "heldout_both"}
    m = metrics["splits"]["heldout_poses"]
    assert len(m["pck"]) == 100 and 0 <= m["auc"] <= 1 and m["samples"] == 18
    assert res.metrics["heldout_poses"]["mean_px"] == pytest.approx(m["mean_px"])
    # files that are not encoder files are named in the error
    torch.save({"format": "other"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="x.pt: not a pretrained encoder file"):
        load_pretrained_encoder(tmp_path / "x.pt")
    save_encoder(tmp_path / "wrong.pt", TinyEncoder(S), "mobilenet_stack", 128)
    with pytest.raises(ValueError, match="wrong.pt: weights do not fit encoder 'mobilenet_stack'"):
        load_pretrained_encoder(tmp_path / "wrong.pt")


def test_resume_matches_an_uninterrupted_run(sketch, tmp_path):
    straight = _config(sketch, tmp_path / "a", epochs=2)            # 54 samples / 8 = 6 steps per epoch
    a = Trainer(straight)
    assert a.fit().step == 12
    part = _config(sketch, tmp_path / "b", epochs=2, max_steps=5)   # stops (and saves) mid-epoch
    assert train(part).step == 5
    rest = _config(sketch, tmp_path / "b", epochs=2)
    b = Trainer(rest)
    assert b.fit(resume=tmp_path / "b").step == 12
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k


def _cli(argv):
    from hands.cli_train import add_parser

    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    args = p.parse_args(argv)
    args.fn(args)


def test_cli_pretrain_and_resume(sketch, tmp_path, capsys):
    out = tmp_path / "cli"
    _cli(["pretrain", "--encoder", "tiny", "--data", str(sketch), "--out", str(out), "--epochs", "1",
          "--batch-size", "8", "--input-size", str(S), "--heldout-poses", "0,1", "--no-progress",
          "--loader-workers", "0"])
    text = capsys.readouterr().out
    assert "trained 6 steps" in text and "heldout_poses: mean error" in text and "encoder.pt" in text
    cfg = json.loads((out / "pretrain_config.json").read_text())
    assert cfg["epochs"] == 1 and cfg["milestones_resolved"] == [0, 0, 1] and cfg["lr"] == 1e-3
    assert cfg["task_options"]["heldout_poses"] == [0, 1] and cfg["task_options"]["encoder"] == "tiny"
    _cli(["pretrain", "--out", str(out), "--resume", "--epochs", "2", "--no-progress"])
    assert "trained 12 steps" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--data is required"):
        _cli(["pretrain", "--out", str(tmp_path / "none")])
    with pytest.raises(ValueError, match="cannot resume with a different batch_size"):
        _cli(["pretrain", "--out", str(out), "--resume", "--batch-size", "4", "--no-progress"])


def test_pipeline_stages(sketch, tmp_path):
    from hands.pipeline import Context, StageRecord
    from hands.stages_pretrain import pretrain, pretrain_preview

    ctx = Context(out=tmp_path)
    ctx.outputs["dataset"] = sketch
    ctx.records.append(StageRecord("pretrain", {}))
    pretrain(ctx, encoder="tiny", epochs=2, batch_size=16, input_size=S, heldout_poses=0.25)
    assert ctx.outputs["pretrained_encoder"].name == "encoder.pt" and ctx.outputs["pretrained_encoder"].exists()
    figs = ctx.records[-1].figures
    assert "heldout_poses: mean 2D error (px, MapReg)" in figs and figs["steps"].startswith("6 ")
    ctx.records.append(StageRecord("pretrain_preview", {}))
    pretrain_preview(ctx, count=6, columns=3)
    pics = [p for p, _ in ctx.records[-1].pictures]
    assert pics == ["pretrain_curves.png", "pretrain_pck.png", "pretrain_keypoints.png"]
    assert Image.open(tmp_path / "pretrain_keypoints.png").size == (3 * 2 * S, 2 * 2 * S)


# ---------------------------------------------------------------- it learns

@pytest.mark.slow
@pytest.mark.trains
def test_training_brings_the_2d_error_well_below_its_start(tmp_path, train_seed, margin):
    """Held-out poses: after 480 steps the MapReg error is under half the untrained model's, the heatmap-peak
    error under a third (at 300 steps the MapReg error was at 37-41 % of its start: too little room)."""
    from torch.utils.data import DataLoader

    from pretrain.evaluate2d import evaluate_split

    data = write_sketch_dataset(tmp_path / "data", poses=range(10), views=range(16), size=96)
    cfg = _config(data, tmp_path / "run", epochs=40, batch_size=8, milestones=[], eval_every=-1, seed=train_seed,
                  task_options={"heldout_poses": 0.2})
    t = Trainer(cfg)
    loader = DataLoader(t.eval_sets["heldout_poses"], batch_size=32)
    before = evaluate_split(t.model, loader, t.device)
    res = t.fit()
    assert res.step == 480
    after = res.metrics["heldout_poses"]
    margin.check("mean_px after / before", after["mean_px"] / before["mean_px"], 0.5, (before, after))
    margin.check("0.2 / auc gain", 0.2 / max(after["auc"] - before["auc"], 1e-9), 1.0, (before["auc"], after["auc"]))
    margin.check("hm_mean_px after / before", after["hm_mean_px"] / before["hm_mean_px"], 0.33, (before, after))
