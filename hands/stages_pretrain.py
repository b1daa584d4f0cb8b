"""Pipeline stages of the 2D-pose pretraining (registered in hands/stages.py's STAGES).

`pretrain` trains an encoder on the shards the `render` stage wrote and gives
`pretrained_encoder` (OUT/pretrain/encoder.pt) and `pretrain_run` (the run
folder); `pretrain_preview` draws the curves, the PCK curves of the held-out
splits and a grid of predicted vs. true 2D keypoints on held-out samples.
Settings left null come from the recipe (hands/recipes.py, as `hands pretrain`); the demo
pipeline gives its small sizes in pipelines.yaml.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def pretrain(ctx, *, encoder: str | None = None, epochs: int | None = None, batch_size: int | None = None,
             lr: float | None = None, milestones: list | None = None, input_size: int | None = None,
             heldout_poses=0.1, augment: bool = True, seed: int = 0, loader_workers: int = 0,
             folder: str = "pretrain"):
    """2D-pose pretraining (heatmap + MapReg heads, seed 001 Fig. 14) on the rendered shards; the recipe's
    settings (hands/recipes.py: the paper's 80 epochs, batch 128, lr 1e-3 / 10 at 20/40/60, DenseStack,
    128 px) where a setting is null; milestones [] keeps lr constant (the demo's short run)."""
    import json

    from hands.training import build_config, run

    data = Path(ctx.need("dataset", "render"))
    out = ctx.out / folder
    config = build_config("pose2d", out, train=given(epochs=epochs, batch_size=batch_size, lr=lr,
                                                     milestones=milestones, seed=int(seed),
                                                     num_workers=int(loader_workers), checkpoint_every=0,
                                                     log_every=1),
                          options=given(data=str(data), encoder=encoder, input_size=input_size,
                                        heldout_poses=heldout_poses, augment=bool(augment)))
    encoder, input_size = config.task_options["encoder"], config.task_options["input_size"]
    result = run(config, overwrite=ctx.overwrite)
    info = json.loads((out / "splits.json").read_text())
    ctx.figure("encoder", f"{encoder} at {input_size}x{input_size}")
    ctx.figure("samples", ", ".join(f"{k} {v}" for k, v in info["samples"].items()))
    if info["empty_splits"]:
        ctx.figure("empty splits", ", ".join(info["empty_splits"]) +
                   " (render with --hdri-split heldout for held-out-HDRI evaluation shards)")
    ctx.figure("steps", f"{result.step} ({result.epoch} epochs)")
    ctx.figure("seconds per step", f"{result.seconds / max(result.step, 1):.3f}")
    for split, m in result.metrics.items():
        ctx.figure(f"{split}: mean 2D error (px, MapReg)", f"{m['mean_px']:.2f}")
        ctx.figure(f"{split}: AUC 0-30 px (MapReg / heatmap)", f"{m['auc']:.3f} / {m['hm_auc']:.3f}")
    ctx.give(pretrained_encoder=result.files["encoder"], pretrain_run=out)


def given(**settings) -> dict:
    """The settings a stage was given (None: the recipe's, left out)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items() if v is not None}


def pretrain_preview(ctx, *, count: int = 8, columns: int = 4, split: str = "heldout_poses", scale: int = 2):
    """Training curves, PCK curves of the held-out splits and predicted (red) vs. true (green) 2D keypoints."""
    import json
    import shutil

    import torch
    from torch.utils.data import DataLoader, Subset

    from pretrain.curves import line_chart
    from pretrain.data2d import Augment2D, load_splits
    from pretrain.evaluate2d import predict_2d
    from pretrain.task2d import load_pose2d_model

    run = Path(ctx.need("pretrain_run", "pretrain"))
    curves = ctx.out / "pretrain_curves.png"
    shutil.copyfile(run / "curves.png", curves)
    ctx.picture(curves, "pretraining scalars: train losses and 2D error per step; eval/<split> per evaluation")

    metrics = json.loads((run / "metrics.json").read_text())["splits"]
    if metrics:
        series = {f"{s} MapReg (AUC {m['auc']:.3f})": (m["thresholds"], m["pck"]) for s, m in metrics.items()}
        series.update({f"{s} heatmap (AUC {m['hm_auc']:.3f})": (m["thresholds"], m["hm_pck"])
                       for s, m in metrics.items()})
        pck = ctx.out / "pretrain_pck.png"
        line_chart(series, title="2D PCK on held-out data", xlabel="threshold (px)", ylabel="PCK",
                   size=(560, 360), y_range=(0, 1)).save(pck)
        ctx.picture(pck, "2D PCK curves over 0-30 px of the MapReg positions and the heatmap peaks")

    cfg = json.loads((run / "pretrain_config.json").read_text())
    o = cfg["task_options"]
    splits = load_splits(o["data"], o["eval_data"], o["heldout_poses"], int(o["split_seed"]), int(o["input_size"]),
                         float(o["crop_scale"]), Augment2D.from_value(False), int(cfg["seed"]))
    if split not in splits.evals:
        have = ", ".join(splits.evals) or "none"
        ctx.figure("keypoint grid", f"no {split} samples (held-out splits: {have})")
        return
    ds = splits.evals[split]
    idx = np.linspace(0, len(ds) - 1, min(count, len(ds))).round().astype(int).tolist()
    model = load_pose2d_model(run)
    loader = DataLoader(Subset(ds, idx), batch_size=len(idx))
    pred = predict_2d(model, loader, torch.device("cpu"))
    tiles = [keypoint_tile(ds[i]["image"], pred["gt"][j], pred["position"][j], ds[i]["key"], scale)
             for j, i in enumerate(idx)]
    from synth.pictures import grid

    path = ctx.out / "pretrain_keypoints.png"
    grid(tiles, columns=columns).save(path)
    err = np.sqrt(((pred["position"] - pred["gt"]) ** 2).sum(-1)).mean()
    ctx.figure("keypoint grid", f"{len(idx)} {split} samples, mean error {err:.2f} px")
    ctx.picture(path, f"{split}: true 2D keypoints (green) and MapReg predictions (red) on the input crops")


def keypoint_tile(image, true_uv, pred_uv, label: str, scale: int = 2):
    """The input crop enlarged `scale` times with true (green) and predicted (red) skeletons."""
    from PIL import Image, ImageDraw

    from pretrain.data2d import PARENTS

    rgb = (np.asarray(image).transpose(1, 2, 0) * 255).round().clip(0, 255).astype(np.uint8)
    size = rgb.shape[0] * scale
    img = Image.fromarray(rgb).resize((size, size), Image.BILINEAR)
    d = ImageDraw.Draw(img)
    for uv, colour in ((np.asarray(true_uv), (40, 220, 60)), (np.asarray(pred_uv), (240, 40, 40))):
        p = (uv + 0.5) * scale - 0.5
        for j in range(1, len(p)):
            d.line([tuple(p[PARENTS[j]]), tuple(p[j])], fill=colour, width=2)
        for x, y in p:
            d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
    d.text((4, 3), label, fill=(255, 255, 255))
    return img
