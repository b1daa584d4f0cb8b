"""COCO-format 2D hand keypoints (`coco_hand`): parsing (plain COCO keypoint files and COCO-WholeBody's hand
arrays), keypoint names -> FreiHAND order, mirroring of left hands, the crop, errors naming the bad file,
the pretraining evaluation and training on labelled keypoints only, `hands pretrain --eval-coco / --train-coco`,
and the fine-tuning dataset (`hands data check coco_hand`, an evaluation with px_2d and no 3D figure, SMR's
'2d' supervision). Fixtures: tiny PNGs and JSON files written here; plus the shared real-photo file if present.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from pretrain.coco_hand import CocoHand2D, Mixed2D, freihand_order, load_hand, parse_coco_hand
from pretrain.encoders import register_encoder
from pretrain.encoders.base import Encoder, EncoderFeatures, normalise

FREIHAND_NUMBERED = ["wrist"] + [f"{f}{i}" for f in ("thumb", "forefinger", "middle_finger", "ring_finger",
                                                     "pinky_finger") for i in range(1, 5)]
MEDIAPIPE = ["wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip"] + \
    [f"{f}_{j}" for f in ("index_finger", "middle_finger", "ring_finger", "pinky")
     for j in ("mcp", "pip", "dip", "tip")]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "realhands" / "asl" / "coco_hand.json"

# The left hand: a 40 x 32 image; labelled x in [8, 20], y in [5, 27]; keypoints 2, 5, 17 unlabelled (v = 0, at
# (0, 0)). Mirrored: x' = 39 - x in [19, 31], box centre (25, 16), larger side 22 -> crop side 33. With S = 33
# the crop is a pure shift: u = x' - 25 + 16 = 30 - x, v = y.
LEFT_W, LEFT_H, UNLABELLED = 40, 32, (2, 5, 17)
LEFT_XY = np.array([[8 + (7 * j) % 13, 5 + (5 * j) % 23] for j in range(21)], dtype=np.float64)
# The right hand: 48 x 40; x in [10, 30], y in [12, 24]: box centre (20, 18), side 20 x 1.5 = 30.
RIGHT_W, RIGHT_H = 48, 40
RIGHT_XY = np.array([[10 + (2 * j) % 21, 12 + (5 * j) % 13] for j in range(21)], dtype=np.float64)


def _image(w, h, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _flat(xy, v):
    return [float(t) for p, vis in zip(xy, v) for t in (p[0], p[1], vis)]


def _left_v():
    v = np.full(21, 2)
    v[list(UNLABELLED)] = 0
    v[1] = 1                                  # labelled, not visible
    return v


def write_plain(root: Path, names=FREIHAND_NUMBERED) -> Path:
    """A COCO keypoint file: a right hand, a left hand with 3 unlabelled keypoints, a hand with 3 labels only."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    Image.fromarray(_image(RIGHT_W, RIGHT_H, 1)).save(root / "img" / "right.png")
    Image.fromarray(_image(LEFT_W, LEFT_H, 2)).save(root / "img" / "left.png")
    left_xy = LEFT_XY.copy()
    left_xy[list(UNLABELLED)] = 0.0
    sparse_v = np.zeros(21)
    sparse_v[:3] = 2
    anns = [{"id": 11, "image_id": 1, "category_id": 7, "keypoints": _flat(RIGHT_XY, np.full(21, 2)),
             "lefthand": False},
            {"id": 12, "image_id": 2, "category_id": 7, "keypoints": _flat(left_xy, _left_v()), "lefthand": True},
            {"id": 13, "image_id": 1, "category_id": 7, "keypoints": _flat(RIGHT_XY, sparse_v)}]
    data = {"images": [{"id": 1, "file_name": "img/right.png", "width": RIGHT_W, "height": RIGHT_H},
                       {"id": 2, "file_name": "img/left.png", "width": LEFT_W, "height": LEFT_H}],
            "categories": [{"id": 3, "name": "person", "keypoints": ["nose"] * 17},
                           {"id": 7, "name": "hand", "keypoints": list(names)}],
            "annotations": anns}
    path = root / "hands.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def plain(tmp_path):
    return write_plain(tmp_path / "plain")


# ---------------------------------------------------------------- (a) plain COCO file, mirroring, visibility

def test_plain_file_records_visibility_and_skipped_hands(plain):
    f = parse_coco_hand(plain)
    assert [r.annotation_id for r in f.records] == [11, 12]
    assert f.skipped == {"too_few_keypoints": 1} and f.order == "names" and f.categories == ["hand"]
    right, left = f.records
    assert not right.is_left and left.is_left and right.image == plain.parent / "img" / "right.png"
    assert np.array_equal(right.keypoints, RIGHT_XY) and right.labelled.all() and right.visible.all()
    assert np.flatnonzero(~left.labelled).tolist() == list(UNLABELLED)
    assert not left.visible[1] and left.labelled[1]           # v = 1: labelled, not visible
    # a stricter minimum skips more
    assert len(parse_coco_hand(plain, min_keypoints=19).records) == 1


def test_left_hand_is_mirrored_image_and_keypoints(plain):
    left = parse_coco_hand(plain).records[1]
    image, kp = load_hand(left)
    original = _image(LEFT_W, LEFT_H, 2)
    assert image.shape == (LEFT_H, LEFT_W, 3)
    assert np.array_equal(image[7, 29], original[7, 10]) and np.array_equal(image[:, 0], original[:, 39])
    lab = left.labelled
    assert np.array_equal(kp[lab, 0], 39 - LEFT_XY[lab, 0]) and np.array_equal(kp[:, 1], left.keypoints[:, 1])


def test_crop_of_the_left_hand_ignores_unlabelled_keypoints(plain):
    ds = CocoHand2D(plain, input_size=33)
    item = ds[1]
    assert set(item) == {"image", "keypoints_2d", "visibility", "key", "pose_id", "hdri_id"}
    assert item["pose_id"] == -1 and item["hdri_id"] == "" and item["key"] == "2/12"
    lab = ~np.isin(np.arange(21), UNLABELLED)
    assert np.array_equal(item["visibility"].numpy(), lab)
    kp = item["keypoints_2d"].numpy()
    # u = 30 - x, v = y (see LEFT_XY): only true if the (0, 0) of the unlabelled keypoints stayed out of the box
    assert np.allclose(kp[lab], np.stack([30 - LEFT_XY[lab, 0], LEFT_XY[lab, 1]], 1), atol=1e-5)
    assert np.all(kp[~lab] == 0)
    # the crop is the mirrored image shifted: crop pixel (u, v) = original pixel (30 - u, v)
    crop = np.round(item["image"].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
    original = _image(LEFT_W, LEFT_H, 2)
    assert np.array_equal(crop[:LEFT_H, :31], original[:, 30::-1])


# ---------------------------------------------------------------- (c) the crop rule

def test_crop_maps_the_box_centre_to_the_crop_centre_and_its_side_to_S_over_1_5(plain):
    S = 64
    item = CocoHand2D(plain, input_size=S)[0]
    s = S / 30.0                                  # box side 20 px x 1.5
    expected = (RIGHT_XY - [20.0, 18.0]) * s + (S - 1) / 2.0
    kp = item["keypoints_2d"].numpy()
    assert np.allclose(kp, expected, atol=1e-4)
    assert np.allclose((kp.min(0) + kp.max(0)) / 2, (S - 1) / 2.0, atol=1e-4)
    assert kp[:, 0].max() - kp[:, 0].min() == pytest.approx(S / 1.5, abs=1e-4)


def test_augmented_items_follow_the_per_item_stream(plain):
    from pretrain.data2d import Augment2D

    a = CocoHand2D(plain, input_size=32, augment=Augment2D(), seed=5)
    b = CocoHand2D(plain, input_size=32, augment=Augment2D(), seed=5)
    assert torch.equal(a[0]["keypoints_2d"], b[0]["keypoints_2d"])
    plain_kp = CocoHand2D(plain, input_size=32)[0]["keypoints_2d"]
    assert not torch.allclose(a[0]["keypoints_2d"], plain_kp)
    a.set_epoch(1)
    assert not torch.equal(a[0]["keypoints_2d"], b[0]["keypoints_2d"])


# ---------------------------------------------------------------- keypoint names

def test_keypoint_names_map_to_freihand_order():
    assert freihand_order(FREIHAND_NUMBERED) == list(range(21))        # COCO-WholeBody's order: unchanged
    assert freihand_order(MEDIAPIPE) == list(range(21))
    shuffled = list(np.random.default_rng(0).permutation(21))
    names = [MEDIAPIPE[i] for i in shuffled]
    perm = freihand_order(names)
    assert [names[p] for p in perm] == MEDIAPIPE
    tip_first = [f"R_{f}_{i}" for f in ("Thumb", "Index", "Middle", "Ring", "Pinky")
                 for i in (4, 3, 2, 1)] + ["R_Wrist"]       # InterHand2.6M's names and order
    assert [tip_first[p] for p in freihand_order(tip_first)][:5] == ["R_Wrist", "R_Thumb_1", "R_Thumb_2", "R_Thumb_3",
                                                                   "R_Thumb_4"]
    assert freihand_order([f"kp{i}" for i in range(21)]) is None      # not names: the stored order stands
    with pytest.raises(ValueError, match="not recognised"):
        freihand_order(MEDIAPIPE[:20] + ["knuckle"])
    with pytest.raises(ValueError, match="two wrist"):
        freihand_order(["wrist"] + MEDIAPIPE[1:20] + ["root"])


def test_a_file_in_another_keypoint_order_is_reordered(tmp_path):
    perm = np.random.default_rng(1).permutation(21)             # file position i holds FreiHAND keypoint perm[i]
    path = write_plain(tmp_path / "shuffled", names=[MEDIAPIPE[p] for p in perm])
    data = json.loads(path.read_text())
    xy = RIGHT_XY[perm]
    data["annotations"][0]["keypoints"] = _flat(xy, np.full(21, 2))
    path.write_text(json.dumps(data))
    assert np.array_equal(parse_coco_hand(path).records[0].keypoints, RIGHT_XY)
    unnamed = write_plain(tmp_path / "unnamed", names=[str(i) for i in range(21)])
    assert parse_coco_hand(unnamed).order == "as stored"


# ---------------------------------------------------------------- (b) COCO-WholeBody

def test_wholebody_person_annotations_give_one_sample_per_valid_hand(tmp_path):
    root = tmp_path / "wb"
    root.mkdir()
    Image.fromarray(_image(64, 48, 3)).save(root / "000001.png")
    zero = [0.0] * 63
    people = [{"id": 1, "image_id": 5, "category_id": 1, "keypoints": [0.0] * 51,
               "lefthand_kpts": _flat(RIGHT_XY, np.full(21, 2)), "lefthand_valid": True,
               "lefthand_box": [9, 11, 22, 14],
               "righthand_kpts": _flat(RIGHT_XY, np.full(21, 2)), "righthand_valid": False},
              {"id": 2, "image_id": 5, "category_id": 1, "keypoints": [0.0] * 51,
               "lefthand_kpts": zero, "righthand_kpts": _flat(RIGHT_XY + 5, np.full(21, 1))}]
    data = {"images": [{"id": 5, "file_name": "000001.png", "width": 64, "height": 48}],
            "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)]}],
            "annotations": people}
    (root / "wholebody.json").write_text(json.dumps(data))
    f = parse_coco_hand(root / "wholebody.json")
    assert [(r.annotation_id, r.is_left) for r in f.records] == [(1, True), (2, False)]
    assert f.skipped == {"not_valid": 1, "too_few_keypoints": 1} and f.order == "COCO-WholeBody"
    assert f.records[0].box == (9.0, 11.0, 22.0, 14.0) and f.records[1].box is None
    assert np.array_equal(f.records[1].keypoints, RIGHT_XY + 5) and f.records[1].key == "5/2/right"
    item = CocoHand2D(root, input_size=32)[0]                 # the folder's one JSON; the left hand mirrored
    assert item["keypoints_2d"].shape == (21, 2)
    _, kp = load_hand(f.records[0])
    assert np.array_equal(kp[:, 0], 63 - RIGHT_XY[:, 0])


# ---------------------------------------------------------------- (d) errors name the file

def _edit(path, fn):
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["categories"].pop(), "no category with 21 keypoints"),
    (lambda d: d["annotations"][0]["keypoints"].pop(), "annotation 11: 62 keypoint numbers, expected 63"),
    (lambda d: d["annotations"][1]["keypoints"].__setitem__(4, float("nan")), "annotation 12: .*non-finite"),
    (lambda d: d["images"][0].__setitem__("file_name", "img/gone.png"), "missing, e.g. .*gone.png"),
    (lambda d: d["annotations"][0].__setitem__("image_id", 99), "annotation 11: image_id 99 is not in"),
    (lambda d: d.pop("annotations"), "not a COCO file"),
    (lambda d: d["categories"][1]["keypoints"].__setitem__(3, "elbow"), "'elbow'.*not recognised"),
])
def test_bad_files_are_named_in_the_error(plain, edit, message):
    _edit(plain, edit)
    with pytest.raises(ValueError, match=message) as err:
        parse_coco_hand(plain)
    assert str(plain) in str(err.value)


def test_unreadable_or_mismatched_files(plain, tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        parse_coco_hand(tmp_path / "none.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        parse_coco_hand(tmp_path / "broken.json")
    _edit(plain, lambda d: d["images"][1].__setitem__("width", 41))
    with pytest.raises(ValueError, match="left.png: the image is 40x32 but its COCO entry says 41x32"):
        CocoHand2D(plain)[1]


# ---------------------------------------------------------------- (e) pretraining: evaluation and loss on labels only

class _ConstantPose2D(nn.Module):
    """predict_2d's model interface with one fixed prediction (pixels) for every image."""

    def __init__(self, uv):
        super().__init__()
        self.uv = torch.as_tensor(uv, dtype=torch.float32)

    def forward(self, images):
        return {"uv": self.uv.expand(len(images), -1, -1)}

    @staticmethod
    def positions_px(pred, size):
        return pred["uv"]

    heatmap_px = positions_px


def test_pretraining_evaluation_of_a_coco_split_scores_labelled_keypoints_only(tmp_path):
    from pretrain.task2d import Pose2DTask
    from pretrain.trainer import TrainConfig

    # two samples, prediction (13, 14) everywhere; A: every keypoint at (10, 10) -> 5 px; B: (13, 2) -> 12 px,
    # keypoints 0-4 of B unlabelled at (0, 0) (19.1 px away). Per keypoint: 5 (k < 5, A only), (5 + 12) / 2 = 8.5.
    gt = np.zeros((2, 21, 2), np.float32)
    gt[0] = (10, 10)
    gt[1, 5:] = (13, 2)
    vis = np.ones((2, 21), bool)
    vis[1, :5] = False
    items = [{"image": torch.zeros(3, 32, 32), "keypoints_2d": torch.from_numpy(gt[i]),
              "visibility": torch.from_numpy(vis[i]), "key": f"s{i}", "pose_id": -1, "hdri_id": ""} for i in range(2)]
    loader = torch.utils.data.DataLoader(items, batch_size=2)
    task = Pose2DTask(TrainConfig(out=str(tmp_path), task="pose2d",
                                  task_options={"data": "unused", "coco_eval": {"real": "unused.json"}}))
    model = _ConstantPose2D(np.full((21, 2), (13.0, 14.0)))
    m = task.evaluate(model, {"real": loader, "heldout_poses": loader}, torch.device("cpu"))
    assert m["real"]["mean_px"] == pytest.approx((5 * 5 + 16 * 8.5) / 21)
    assert m["real"]["hm_mean_px"] == pytest.approx(m["real"]["mean_px"])
    assert m["real"]["pck@10px"] == pytest.approx((5 * 1 + 16 * 0.5) / 21)
    far = np.hypot(13, 14)                                # a render split scores every keypoint
    assert m["heldout_poses"]["mean_px"] == pytest.approx((5 * (5 + far) / 2 + 16 * 8.5) / 21)


class _TinyEncoder(Encoder):
    latent_channels, map_channels, skip_channels = 16, 16, (8, 8)

    def __init__(self, input_size: int = 64):
        super().__init__(input_size)
        self.down = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU())

    def forward(self, images):
        m = self.down(normalise(images))
        return EncoderFeatures(latent=m, maps2d=m, skips=[m, m])


register_encoder("tiny_coco", _TinyEncoder)


@pytest.fixture(scope="module")
def sketch(tmp_path_factory):
    from sketch_data import write_sketch_dataset

    return write_sketch_dataset(tmp_path_factory.mktemp("sketch") / "data", poses=range(3), views=range(4), size=64)


def test_pose2d_task_joins_coco_sets_and_masks_unlabelled_keypoints_in_the_loss(sketch, plain, tmp_path):
    from pretrain.task2d import Pose2DTask
    from pretrain.trainer import TrainConfig

    cfg = TrainConfig(out=str(tmp_path), task="pose2d", task_options={
        "data": str(sketch), "encoder": "tiny_coco", "input_size": 64, "heldout_poses": [2], "augment": False,
        "coco_eval": {"real": str(plain.parent)}, "coco_train": [str(plain)]})
    task = Pose2DTask(cfg)
    evals = task.eval_datasets()
    assert "real" in evals and len(evals["real"]) == 2 and "heldout_poses" in evals
    train = task.train_dataset()
    assert isinstance(train, Mixed2D) and len(train) == len(task.splits.train) + 2
    render, left = train[0], train[len(train) - 1]
    assert render["labelled"].all() and render["pose_id"] >= 0
    assert np.flatnonzero(~left["labelled"].numpy()).tolist() == list(UNLABELLED)
    batch = torch.utils.data.default_collate([render, left])
    torch.manual_seed(0)
    model = task.build_model().eval()
    loss, terms = task.loss(model, batch)
    moved = {**batch, "keypoints_2d": batch["keypoints_2d"].clone()}
    moved["keypoints_2d"][1, list(UNLABELLED)] += 20.0      # unlabelled keypoints: no effect on the loss
    assert task.loss(model, moved)[0].item() == pytest.approx(loss.item(), rel=1e-6)
    moved["keypoints_2d"][1, 0] += 20.0                       # a labelled one: an effect
    assert task.loss(model, moved)[0].item() != pytest.approx(loss.item(), rel=1e-6)
    with pytest.raises(ValueError, match="render split names"):
        Pose2DTask(TrainConfig(out=str(tmp_path), task="pose2d",
                               task_options={"data": "x", "coco_eval": {"heldout_poses": str(plain)}}))


def test_hands_pretrain_eval_coco_and_train_coco(sketch, plain, tmp_path, capsys):
    from hands.cli import main

    out = tmp_path / "run"
    rc = main(["pretrain", "--data", str(sketch), "--encoder", "tiny_coco", "--input-size", "64", "--out", str(out),
               "--eval-coco", f"real={plain}", "--train-coco", str(plain), "--heldout-poses", "2", "--max-steps", "2",
               "--batch-size", "4", "--loader-workers", "0", "--no-progress"])
    assert rc == 0
    assert "real: mean error" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())["splits"]
    assert metrics["real"]["samples"] == 2 and np.isfinite(metrics["real"]["mean_px"])
    splits = json.loads((out / "splits.json").read_text())
    assert splits["coco"]["eval"]["real"]["hands"] == 2 and splits["coco"]["train"][0]["skipped"] == {
        "too_few_keypoints": 1}
    cfg = json.loads((out / "pretrain_config.json").read_text())["task_options"]
    assert cfg["coco_eval"] == {"real": str(plain)} and cfg["coco_train"] == [str(plain)]
    assert main(["pretrain", "--data", str(sketch), "--out", str(tmp_path / "x"), "--eval-coco", str(plain)]) == 2
    assert "NAME=PATH" in capsys.readouterr().err


# ---------------------------------------------------------------- (f) fine-tuning: the coco_hand dataset

def test_hands_data_check_coco_hand(plain, tmp_path, capsys):
    from hands.cli import main

    assert main(["data", "check", "coco_hand", str(plain.parent)]) == 0
    text = capsys.readouterr().out
    assert "count: 2 hands (1 left hands, mirrored on load)" in text and "count: 1 hands skipped" in text
    assert "count: 2 of 2 images readable" in text and "0 problems" in text
    (plain.parent / "other.json").write_text("{}")            # two JSON files, none named *coco*: ambiguous
    with pytest.raises(SystemExit) as stop:
        main(["data", "check", "coco_hand", str(plain.parent)])
    assert stop.value.code == 1
    assert "2 .json files" in capsys.readouterr().out
    assert "coco_hand" in __import__("finetune.datasets.registry", fromlist=["names"]).names()


def test_finetune_samples_are_2d_only(plain):
    from finetune.datasets.registry import create

    ds = create("coco_hand", plain, crop_size=33)
    s = ds[1]
    lab = ~np.isin(np.arange(21), UNLABELLED)
    assert s["mirrored"] and not s["has_vertices"] and not s["has_mano"] and s["has_keypoints_3d"] is False
    assert torch.equal(s["K"], torch.eye(3)) and not s["keypoints_3d"].any() and not s["keypoints_3d_rel"].any()
    assert np.array_equal(s["visibility"].numpy(), lab)
    assert np.allclose(s["keypoints_2d"].numpy()[lab], np.stack([30 - LEFT_XY[lab, 0], LEFT_XY[lab, 1]], 1), atol=1e-5)
    assert not s["keypoints_2d"][~torch.from_numpy(lab)].any()
    assert torch.allclose(s["image"], CocoHand2D(plain, input_size=33)[1]["image"])   # one crop rule, two loaders


class _ConstantMesh(nn.Module):
    """The reconstruction models' output contract with one fixed prediction."""

    def __init__(self, uv):
        super().__init__()
        self.uv = torch.as_tensor(uv, dtype=torch.float32)

    def forward(self, images):
        B = len(images)
        kp3 = torch.linspace(-0.05, 0.05, 63).view(1, 21, 3)
        return {"vertices": torch.zeros(B, 778, 3), "keypoints_3d": (kp3 - kp3[:, :1]).expand(B, -1, -1),
                "keypoints_2d": self.uv.expand(B, -1, -1)}


def test_a_coco_hand_evaluation_split_reports_px_2d_and_no_3d_figure(plain, tmp_path):
    from finetune.model_eval import evaluate_loader
    from finetune.task_common import evaluate_splits
    from finetune.task_mesh import MeshTask
    from pretrain.trainer import TrainConfig

    S = 33
    task = MeshTask(TrainConfig(out=str(tmp_path), task="mesh", task_options={
        "input_size": S, "datasets": [f"coco_hand:{plain}"], "eval_datasets": {"real": f"coco_hand:{plain.parent}"}}))
    evals = task.eval_datasets()
    loader = torch.utils.data.DataLoader(evals["real"], batch_size=2)
    P = np.full((21, 2), 16.0)
    metrics = evaluate_splits(evaluate_loader, _ConstantMesh(P), {"real": loader}, torch.device("cpu"), tmp_path)
    m = metrics["real"]
    assert set(m) == {"samples", "px_2d"} and m["samples"] == 2
    # the labelled keypoints in crop pixels, by hand: right hand s = 33 / 30 about (20, 18); left u = 30 - x, v = y
    lab = ~np.isin(np.arange(21), UNLABELLED)
    right = (RIGHT_XY - [20.0, 18.0]) * (S / 30.0) + 16.0
    left = np.stack([30 - LEFT_XY[lab, 0], LEFT_XY[lab, 1]], 1)
    errors = np.concatenate([np.linalg.norm(right - 16.0, axis=1), np.linalg.norm(left - 16.0, axis=1)])
    assert m["px_2d"] == pytest.approx(errors.mean(), rel=1e-5)
    with np.load(tmp_path / "gt_real.npz") as gt:
        assert "xyz" not in gt.files and gt["vis"].sum() == 21 + lab.sum()


def test_mixed_3d_and_2d_samples_score_3d_on_the_3d_ones_only():
    from finetune.model_eval import metrics_of

    rng = np.random.default_rng(0)
    a = {"ids": np.array(["a", "b"]), "gt_rel": rng.normal(size=(2, 21, 3)), "gt_xyz": rng.normal(size=(2, 21, 3))}
    a.update(pred_rel=a["gt_rel"] + 0.001, pred_xyz=a["gt_xyz"] + 0.002, pred_uv=np.zeros((2, 21, 2)),
             gt_uv=np.ones((2, 21, 2)), uv_valid=np.ones((2, 21)), mesh_valid=np.zeros(2), kp3_valid=np.array([1, 0]))
    a["gt_rel"][1] = a["gt_xyz"][1] = 0.0                     # the 2D-only sample's zeros
    m = metrics_of(a)
    assert m["mpjpe_mm"] == pytest.approx(np.sqrt(3) * 1.0) and m["samples_3d"] == 1 and m["samples"] == 2
    assert m["px_2d"] == pytest.approx(np.sqrt(2))


def test_smr_2d_supervision_trains_on_coco_hand_and_3d_models_refuse_it(plain):
    import finetune.models as registry
    from finetune.augment import AugmentConfig, augment, map_points
    from finetune.datasets.base import apply_affine
    from finetune.datasets.registry import create
    from finetune.training_data import MixedTrainingSet, as_rays, check_keypoints_3d, training_sample

    S = 64
    ds = create("coco_hand", plain, crop_size=S)
    sample = ds[1]
    lab = sample["visibility"]
    # augmentation re-projects keypoints_3d: as_rays makes it carry the 2D labels with the image
    out, A, _ = augment(as_rays(sample), AugmentConfig(), np.random.default_rng(3))
    assert np.allclose(out["keypoints_2d"][lab].numpy(), apply_affine(sample["keypoints_2d"][lab].double().numpy(), A),
                       atol=1e-3)
    t = training_sample(out, "mano")
    assert torch.equal(t["keypoints_2d_valid"], lab) and not t["keypoints_3d"].any() and not t["keypoints_3d_valid"]
    assert not t["mesh_valid"] and not t["keypoints_2d"][~lab].any()
    paired = MixedTrainingSet({"coco_hand": ds}, {"coco_hand": 1.0}, "mano", AugmentConfig(), paired=True, seed=1)[1]
    v1, v2 = paired["view1"], paired["view2"]
    assert np.abs(map_points(v1["keypoints_2d"][lab].numpy(), paired["T_12"].numpy())
                  - v2["keypoints_2d"][lab].numpy()).max() < 1e-3
    # SMR, supervision '2d': trains on these samples as they are
    torch.manual_seed(0)
    model = registry.build_model("smr_resnet18", input_size=S, supervision="2d", stages=1, high_size=16, hidden=32,
                                 maps_per_node=2, sapr_hidden=32, dropout=0.0)
    mixed = MixedTrainingSet({"coco_hand": ds}, {"coco_hand": 1.0}, model.topology, AugmentConfig(), seed=0)
    batch = torch.utils.data.default_collate([mixed[0], mixed[1]])
    terms = model.loss_terms(model(batch["image"]), batch)
    assert set(terms) == {"uv_low", "uv_high", "pose2d", "pose_prior", "shape_prior"}
    sum(terms.values()).backward()
    assert all(torch.isfinite(v) for v in terms.values()) and model.sapr[0].pose_out.weight.grad.abs().sum() > 0
    check_keypoints_3d({"coco_hand": ds}, model.reads_keypoints_3d, "smr_resnet18")
    model.supervision = "full"
    with pytest.raises(ValueError, match=r"\['coco_hand'\] have 2D labels only.*smr_resnet18 reads 3D"):
        check_keypoints_3d({"coco_hand": ds}, model.reads_keypoints_3d, "smr_resnet18")


# ---------------------------------------------------------------- the shared real-photo file

@pytest.mark.skipif(not SHARED.is_file(), reason="shared/realhands/asl/coco_hand.json is not here")
def test_the_shared_asl_file():
    ds = CocoHand2D(SHARED.parent)
    assert len(ds) == 325 and ds.file.skipped == {} and ds.file.order == "names"
    frames = json.loads((SHARED.parent / "labels.json").read_text())["frames"]
    for i in range(0, 325, 9):
        item = ds[i]
        kp = item["keypoints_2d"].numpy()
        assert item["image"].shape == (3, 128, 128) and item["visibility"].all()
        assert kp.min() >= 0 and kp.max() <= 127
        # the COCO file holds labels.json's keypoints, in its (FreiHAND) order
        assert ds.records[i].image.name == Path(frames[i]["image"]).name
        assert np.allclose(ds.records[i].keypoints, frames[i]["keypoints_2d"], atol=1e-3)
