"""The 2D-pose pretraining task of seed 001 (section 6, Fig. 14): encoder + heatmap head + MapReg head.

Model (`Pose2DNet`), for an encoder of input size S (EncoderFeatures: maps2d
is the skip-fused middle-resolution map, (B, C, S/8, S/8)):

- heatmap head: 3x3 conv-BN-ReLU on maps2d, 2x bilinear upsampling, 3x3
  conv-BN-ReLU, 1x1 conv to 21 channels: heatmaps (B, 21, S/4, S/4), the
  high-resolution representation of Fig. 4(a);
- position head, MapReg (section 3.2, Fig. 4(d)): a 1x1 conv reduces the
  skip-fused small map to one channel per keypoint, (B, 21, S/8, S/8); each
  channel is flattened ((S/8)^2 = 256 values at S = 128) and a shared MLP
  (256 -> 128 -> 64 -> 2 with ReLU) regresses the keypoint's 2D position, so
  every position sees the whole map (global receptive field).

Coordinates. Pixels follow the project convention (the centre of the top-left
pixel is (0, 0); the image spans [-0.5, S - 0.5]). The position head works in
normalised coordinates n = (2u + 1) / S - 1, so the image spans [-1, 1]
(`grid_sample`'s align_corners=False convention); u = ((n + 1) S - 1) / 2.
Heatmap pixel j covers input pixels around h = (u + 0.5) H / S - 0.5 (H = S/4).

Targets and losses (2D labels only): Gaussian heatmaps of sigma
`heatmap_sigma` heatmap pixels (peak 1) with a mean-squared error, and an L1
loss on the normalised positions; total = heatmap_weight x MSE +
position_weight x L1 (weights 100 and 1 by default: at sigma 1 and H = 32 a
zero heatmap has an MSE of about 1.5e-3, which the weight brings near the
position loss so both heads train the shared encoder).

Evaluation: the MapReg positions are the headline 2D prediction (mean pixel
error, PCK and AUC over 0-30 px); the heatmap peaks (argmax refined by a
parabola through the log values around it) are reported beside them as hm_*.

Real photographs in COCO keypoint files (pretrain/coco_hand.py): `coco_eval` {name: file} adds
an evaluation split `name` per file (its figures are metrics['name'], as for the render splits,
scored on the labelled keypoints only: visibility there marks labels, not occlusion); `coco_train`
[files] concatenates their hands to the render training crops, each item then carrying `labelled`
(all True for renders) so that unlabelled keypoints add nothing to either loss. Without
`coco_train` the loss is computed exactly as before.

Output of a run (`export`): OUT/encoder.pt (load it with
pretrain.checkpoint.load_pretrained_encoder), OUT/head.pt (the two heads),
OUT/pretrain_config.json, OUT/metrics.json, OUT/splits.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import atomic_save, atomic_write_text, load_pretrained_encoder, safe_load, save_encoder
from .encoders import build_named_encoder
from .task import Task
from .tasks import register_task

NUM_JOINTS = 21

# ---------------------------------------------------------------- coordinates and targets

def px_to_norm(uv: torch.Tensor, size: int) -> torch.Tensor:
    return (2.0 * uv + 1.0) / size - 1.0


def norm_to_px(n: torch.Tensor, size: int) -> torch.Tensor:
    return ((n + 1.0) * size - 1.0) / 2.0


def gaussian_heatmaps(uv: torch.Tensor, size: int, heatmap_size: int, sigma: float) -> torch.Tensor:
    """(B, K, H, H) Gaussians (peak 1, sigma in heatmap pixels) at input-pixel keypoints uv (B, K, 2)."""
    h = (uv + 0.5) * (heatmap_size / size) - 0.5
    grid = torch.arange(heatmap_size, dtype=uv.dtype, device=uv.device)
    gx = torch.exp(-((grid.view(1, 1, -1) - h[..., 0:1]) ** 2) / (2 * sigma ** 2))  # (B, K, W)
    gy = torch.exp(-((grid.view(1, 1, -1) - h[..., 1:2]) ** 2) / (2 * sigma ** 2))  # (B, K, H)
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)


def heatmap_peaks(hm: torch.Tensor, size: int) -> torch.Tensor:
    """(B, K, 2) input-pixel positions of heatmap peaks: the argmax refined per axis by the vertex of the
    parabola through the log values of it and its two neighbours (exact for a Gaussian), at most half a
    heatmap pixel."""
    B, K, H, W = hm.shape
    hm = hm.float()
    idx = hm.reshape(B, K, -1).argmax(-1)
    y, x = idx // W, idx % W
    logp = F.pad(hm.clamp(min=1e-6).log(), (1, 1, 1, 1), mode="replicate")
    bi = torch.arange(B, device=hm.device).view(B, 1)
    ki = torch.arange(K, device=hm.device).view(1, K)

    def offset(prev, centre, nxt):
        curv = prev - 2 * centre + nxt
        off = torch.where(curv < -1e-9, 0.5 * (prev - nxt) / curv.where(curv < -1e-9, torch.ones_like(curv)),
                          torch.zeros_like(curv))
        return off.clamp(-0.5, 0.5)

    c = logp[bi, ki, y + 1, x + 1]
    dx = offset(logp[bi, ki, y + 1, x], c, logp[bi, ki, y + 1, x + 2])
    dy = offset(logp[bi, ki, y, x + 1], c, logp[bi, ki, y + 2, x + 1])
    h = torch.stack([x.float() + dx, y.float() + dy], -1)
    return (h + 0.5) * (size / H) - 0.5


# ---------------------------------------------------------------- the model

def _conv_bn_relu(cin, cout, k=3):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class HeatmapHead(nn.Module):
    def __init__(self, in_channels: int, joints: int = NUM_JOINTS, mid: int = 64):
        super().__init__()
        self.block1 = _conv_bn_relu(in_channels, mid)
        self.block2 = _conv_bn_relu(mid, mid)
        self.out = nn.Conv2d(mid, joints, 1)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        x = self.block1(maps)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.out(self.block2(x))


class MapRegHead(nn.Module):
    """Skip-fused small map -> one channel per keypoint -> each flattened -> shared MLP -> 2D (normalised).

    style 'release' (default; mobrecon/models/densestack.py `reduce`, `uv_reg` with modules.py
    linear_layer): the 1x1 reduction and the MLP without biases, Hardtanh(0, 4) between the layers;
    'plain': biases and ReLU.
    """

    def __init__(self, in_channels: int, map_size: int, joints: int = NUM_JOINTS, hidden=(128, 64),
                 style: str = "release"):
        super().__init__()
        if style not in ("release", "plain"):
            raise ValueError(f"MapReg style must be 'release' or 'plain', got {style!r}")
        bias = style == "plain"
        self.map_size = int(map_size)
        self.reduce = nn.Conv2d(in_channels, joints, 1, bias=bias)
        layers, d = [], self.map_size ** 2
        for h in hidden:
            act = nn.ReLU(inplace=True) if bias else nn.Hardtanh(0.0, 4.0)
            layers += [nn.Linear(d, int(h), bias=bias), act]
            d = int(h)
        layers.append(nn.Linear(d, 2, bias=bias))
        self.mlp = nn.Sequential(*layers)

    def forward(self, maps: torch.Tensor) -> tuple:
        m = self.reduce(maps)
        if m.shape[-1] != self.map_size or m.shape[-2] != self.map_size:
            raise ValueError(f"MapReg expects {self.map_size}x{self.map_size} maps (S/8), got {tuple(m.shape[-2:])}")
        return self.mlp(m.flatten(2)), m


class Pose2DNet(nn.Module):
    """Encoder + heatmap head + MapReg position head; forward(images in [0, 1]) -> dict."""

    def __init__(self, encoder, joints: int = NUM_JOINTS, hidden=(128, 64), heatmap_mid: int = 64):
        super().__init__()
        self.encoder = encoder
        self.input_size = int(encoder.input_size)
        c = int(encoder.map_channels)
        self.heatmap_head = HeatmapHead(c, joints, heatmap_mid)
        self.position_head = MapRegHead(c, self.input_size // 8, joints, hidden)

    def forward(self, images: torch.Tensor) -> dict:
        feats = self.encoder(images)
        positions, maps = self.position_head(feats.maps2d)
        return {"heatmaps": self.heatmap_head(feats.maps2d), "positions": positions, "maps": maps}

    @staticmethod
    def positions_px(pred: dict, size: int) -> torch.Tensor:
        return norm_to_px(pred["positions"].float(), size)

    @staticmethod
    def heatmap_px(pred: dict, size: int) -> torch.Tensor:
        return heatmap_peaks(pred["heatmaps"], size)

    def heads_state_dict(self) -> dict:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}


# ---------------------------------------------------------------- the task

DEFAULTS = {
    "data": None,               # dataset folder(s) of rendered shards
    "eval_data": [],            # extra folders of held-out-HDRI evaluation shards
    "encoder": "densestack",
    "input_size": 128,
    "poses": None,              # pose ids of `data` to use (None: all)
    "heldout_poses": 0.1,       # fraction of the poses (or a list of pose ids) kept for evaluation
    "split_seed": 0,
    "crop_scale": 1.5,
    "augment": True,            # true, false, or a dict of pretrain.data2d.Augment2D fields
    "heatmap_sigma": 1.0,       # heatmap pixels (S/4 resolution)
    "heatmap_weight": 100.0,
    "position_weight": 1.0,
    "hidden": [128, 64],        # MapReg MLP hidden sizes
    # COCO keypoint files (pretrain/coco_hand.py; a path, its folder, or {path, image_root, min_keypoints}):
    "coco_eval": {},            # {split name: file}: evaluation splits of real photos, labelled keypoints only
    "coco_train": [],           # files whose hands join the training crops (2D only; unlabelled keypoints masked)
    "coco_min_keypoints": 6,    # hands with fewer labelled keypoints are skipped
}
RENDER_SPLITS = ("train", "heldout_poses", "heldout_hdris", "heldout_both")


@register_task("pose2d")
class Pose2DTask(Task):
    """2D pose pretraining on complement shards (task_options: see DEFAULTS)."""

    # the heads read maps2d only: an encoder's latent-only layers get no gradient here
    find_unused_parameters = True

    def __init__(self, config):
        super().__init__(config)
        unknown = sorted(set(self.options) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"pose2d: unknown option(s) {unknown}; options: {sorted(DEFAULTS)}")
        self.options = {**DEFAULTS, **self.options}
        if not self.options["data"]:
            raise ValueError("pose2d: no training data (task_options['data'], the folder of rendered shards)")
        if int(self.options["input_size"]) % 32:
            raise ValueError(f"pose2d: input_size must be a multiple of 32, got {self.options['input_size']}")
        coco_eval, coco_train = self.options["coco_eval"] or {}, self.options["coco_train"] or []
        if not isinstance(coco_eval, dict):
            raise ValueError(f"pose2d: coco_eval must map split names to COCO keypoint files, got {coco_eval!r}")
        clash = sorted(set(coco_eval) & set(RENDER_SPLITS))
        if clash:
            raise ValueError(f"pose2d: coco_eval split name(s) {clash} are render split names; choose others")
        self.options["coco_eval"] = dict(coco_eval)
        self.options["coco_train"] = [coco_train] if isinstance(coco_train, (str, Path, dict)) else list(coco_train)
        self._splits = self._coco = None

    @property
    def splits(self):
        if self._splits is None:
            from .data2d import Augment2D, load_splits

            o = self.options
            self._splits = load_splits(o["data"], o["eval_data"], o["heldout_poses"], int(o["split_seed"]),
                                       int(o["input_size"]), float(o["crop_scale"]),
                                       Augment2D.from_value(o["augment"]), int(self.config.seed), o["poses"])
        return self._splits

    @property
    def coco(self) -> dict:
        """{'eval': {split: CocoHand2D}, 'train': [CocoHand2D]} of the coco_eval / coco_train options."""
        if self._coco is None:
            from .coco_hand import open_coco_sets
            from .data2d import Augment2D

            o = self.options
            common = dict(input_size=int(o["input_size"]), crop_scale=float(o["crop_scale"]),
                          seed=int(self.config.seed), min_keypoints=int(o["coco_min_keypoints"]))
            train = open_coco_sets({f"coco_train_{i}": s for i, s in enumerate(o["coco_train"])},
                                   augment=Augment2D.from_value(o["augment"]), **common)
            self._coco = {"eval": open_coco_sets(o["coco_eval"], **common), "train": list(train.values())}
        return self._coco

    def build_model(self) -> Pose2DNet:
        enc = build_named_encoder(self.options["encoder"], int(self.options["input_size"]))
        return Pose2DNet(enc, hidden=tuple(self.options["hidden"]))

    def train_dataset(self):
        if not self.options["coco_train"]:
            return self.splits.train
        from .coco_hand import Mixed2D

        return Mixed2D([self.splits.train, *self.coco["train"]])

    def eval_datasets(self) -> dict:
        return {**self.splits.evals, **self.coco["eval"]}

    def collate(self, samples):
        return torch.utils.data.default_collate(samples)

    def loss(self, model, batch) -> tuple:
        images, uv = batch["image"], batch["keypoints_2d"]
        S = images.shape[-1]
        pred = model(images)
        hm = pred["heatmaps"].float()
        target = gaussian_heatmaps(uv.float(), S, hm.shape[-1], float(self.options["heatmap_sigma"]))
        labelled = batch.get("labelled")       # with coco_train: the keypoints a COCO hand has labels for
        if labelled is None:
            l_hm = F.mse_loss(hm, target)
            l_pos = F.l1_loss(pred["positions"].float(), px_to_norm(uv.float(), S))
        else:
            w = labelled.float()
            n = w.sum().clamp(min=1.0)
            l_hm = ((hm - target) ** 2 * w[..., None, None]).sum() / (n * hm.shape[-1] * hm.shape[-2])
            l_pos = ((pred["positions"].float() - px_to_norm(uv.float(), S)).abs() * w[..., None]).sum() / (2 * n)
        loss = float(self.options["heatmap_weight"]) * l_hm + float(self.options["position_weight"]) * l_pos
        with torch.no_grad():
            err = (norm_to_px(pred["positions"].float(), S) - uv).norm(dim=-1)
            epe = err.mean() if labelled is None else (err * w).sum() / n
        return loss, {"heatmap": l_hm.detach(), "position": l_pos.detach(), "epe_px": epe}

    def evaluate(self, model, loaders: dict, device, final: bool = False) -> dict:
        from .evaluate2d import evaluate_split

        out = {}
        for name, loader in loaders.items():
            m = evaluate_split(model, loader, device, labelled_only=name in self.options["coco_eval"])
            out[name] = m if final else {k: v for k, v in m.items() if not isinstance(v, list)}
        return out

    def export(self, model, out: Path, metrics: dict, trainer) -> dict:
        o = self.options
        out = Path(out)
        summary = {split: {k: v for k, v in m.items() if not isinstance(v, list)} for split, m in metrics.items()}
        files = {"encoder": save_encoder(out / "encoder.pt", model.encoder, o["encoder"], int(o["input_size"]),
                                         task="pose2d", step=int(trainer.step), metrics=json.loads(json.dumps(summary)))}
        files["head"] = atomic_save({"format": "hands-pose2d-head/1", "encoder": o["encoder"],
                                     "input_size": int(o["input_size"]), "hidden": list(o["hidden"]),
                                     "state_dict": {k: v.detach().cpu() for k, v in model.heads_state_dict().items()}},
                                    out / "head.pt")
        cfg = trainer.config.to_dict()
        atomic_write_text(out / "pretrain_config.json", json.dumps(
            {**cfg, "task_options": {**o, "data": [str(d) for d in _as_list(o["data"])],
                                     "eval_data": [str(d) for d in _as_list(o["eval_data"])]},
             "milestones_resolved": trainer.milestones, "steps_per_epoch": trainer.steps_per_epoch,
             "total_steps": trainer.total_steps}, indent=1, default=str))
        files["config"] = out / "pretrain_config.json"
        info = dict(self.splits.info)
        if o["coco_eval"] or o["coco_train"]:
            info["coco"] = {"eval": {k: ds.file.info() for k, ds in self.coco["eval"].items()},
                            "train": [ds.file.info() for ds in self.coco["train"]]}
        atomic_write_text(out / "splits.json", json.dumps(info, indent=1))
        files["splits"] = out / "splits.json"
        atomic_write_text(out / "metrics.json", json.dumps({"step": trainer.step, "splits": metrics,
                                                            "history": trainer.history}, indent=1))
        files["metrics"] = out / "metrics.json"
        return files

    def describe_batch(self, batch, indices) -> list:
        keys = batch.get("key") if isinstance(batch, dict) else None
        return list(keys) if keys else super().describe_batch(batch, indices)


def _as_list(x) -> list:
    if x is None:
        return []
    return [x] if isinstance(x, (str, Path)) else list(x)


def load_pose2d_model(run_dir, map_location="cpu") -> Pose2DNet:
    """The full pretraining model (encoder.pt + head.pt) of a finished run, in eval mode."""
    run_dir = Path(run_dir)
    enc = load_pretrained_encoder(run_dir / "encoder.pt")
    head = safe_load(run_dir / "head.pt", "pretraining head file")
    net = Pose2DNet(enc, hidden=tuple(head.get("hidden", (128, 64))))
    missing = net.load_state_dict(head["state_dict"], strict=False)
    bad = [k for k in missing.missing_keys if not k.startswith("encoder.")] + list(missing.unexpected_keys)
    if bad:
        raise ValueError(f"{run_dir / 'head.pt'}: weights do not fit the pretraining heads ({bad[:5]})")
    return net.to(map_location).eval()
