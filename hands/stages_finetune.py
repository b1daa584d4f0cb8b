"""Pipeline stages of fine-tuning and evaluation (registered in hands/stages.py's STAGES).

`finetune` trains a reconstruction model (MobRecon-DenseStack by default) on the shards of the
`render` stage, from the `pretrain` stage's encoder when there is one, holding out some poses for
evaluation; it gives `model_file` and `finetune_run`. `evaluate` scores the held-out predictions
with the FreiHAND metric suite (`hands evaluate`'s code: PA-MPJPE, PA-MPVPE or the keypoint-
transform path, F-scores, PCK curves), and draws predicted meshes over the input crops.
Settings left null come from the model family's recipe (hands/recipes.py, as `hands finetune`); the
demo pipeline gives its small sizes in pipelines.yaml.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def heldout_split(pose_ids: list, heldout) -> tuple:
    """(train ids, held-out ids): `heldout` is a list of ids or a fraction (at least one pose, from the end)."""
    ids = sorted(int(p) for p in pose_ids)
    if isinstance(heldout, (list, tuple)):
        held = sorted(int(p) for p in heldout)
        missing = sorted(set(held) - set(ids))
        if missing:
            raise ValueError(f"held-out poses {missing} are not in the dataset's poses {ids}")
    else:
        n = max(1, int(round(float(heldout) * len(ids))))
        held = ids[-n:]
    train = [p for p in ids if p not in held]
    if not train:
        raise ValueError(f"no training poses left: all of {ids} are held out")
    return train, held


def finetune(ctx, *, model: str = "mobrecon_densestack", epochs: int | None = None, batch_size: int | None = None,
             lr: float | None = None, milestones: list | None = None, heldout_poses=(1400,),
             consistency: bool | None = None, consistency_from_epoch: int | None = None, augment: bool = True,
             from_pretrained: bool = True, extra_datasets: list = (), model_options: dict | None = None,
             input_size: int | None = None, seed: int = 0, loader_workers: int = 0, folder: str = "finetune"):
    """Fine-tune a reconstruction model on the rendered shards (held-out poses for evaluation) mixed with
    `extra_datasets` (NAME:ROOT[:RATIO] specs, e.g. freihand:~/data/FreiHAND:1.0); null settings are the model
    family's recipe (hands/recipes.py, as `hands finetune`); milestones [] keeps lr constant; `augment: true`
    is the recipe's augmentation, false plain crops."""
    import json

    from hands.stages_pretrain import given
    from hands.training import build_config, run
    from synth.tables import load_tables

    data = Path(ctx.need("dataset", "render"))
    train_ids, held = heldout_split(load_tables(data).poses["pose_ids"], heldout_poses)
    encoder = ctx.outputs.get("pretrained_encoder") if from_pretrained else None
    out = ctx.out / folder
    config = build_config("mesh", out, train=given(
        epochs=epochs, batch_size=batch_size, lr=lr, milestones=milestones, seed=int(seed),
        num_workers=int(loader_workers), checkpoint_every=0, log_every=1, eval_every=-1), options=given(
        model=model, pretrained_encoder=str(encoder) if encoder else None, model_options=dict(model_options or {}),
        input_size=input_size,
        datasets=[{"name": "complement", "root": str(data), "options": {"poses": train_ids}}, *extra_datasets],
        eval_datasets={"heldout_poses": {"name": "complement", "root": str(data), "options": {"poses": held}}},
        consistency=consistency, consistency_from_epoch=consistency_from_epoch, augment=None if augment else False))
    result = run(config, overwrite=ctx.overwrite)
    ctx.figure("model", f"{model}" + (f" from the pretrained encoder {Path(encoder).name}" if encoder
                                      else " from scratch"))
    ctx.figure("poses", f"train {train_ids}, held out {held}")
    ctx.figure("steps", f"{result.step} ({result.epoch} epochs), {result.seconds / max(result.step, 1):.3f} s/step")
    for split, m in result.metrics.items():
        ctx.figure(f"{split}: PA-MPJPE / PA-MPVPE (mm)", f"{m['pa_mpjpe_mm']:.2f} / {m.get('pa_mpvpe_mm', float('nan')):.2f}")
        ctx.figure(f"{split}: root error after root recovery (mm)", f"{m['root_mm']:.1f}")
        ctx.figure(f"{split}: 2D error (px)", f"{m['px_2d']:.2f}")
    history = json.loads((out / "metrics.json").read_text())["history"]
    ctx.give(model_file=result.files["model"], finetune_run=out, finetune_history=history)


def evaluate(ctx, *, split: str = "heldout_poses", count: int = 8, columns: int = 4, scale: int = 2):
    """FreiHAND metrics of the held-out predictions and a grid of predicted meshes over the input crops."""
    import shutil

    from finetune.evaluate import run_evaluate

    run = Path(ctx.need("finetune_run", "finetune"))
    pred, gt = run / f"pred_{split}.npz", run / f"gt_{split}.npz"
    if not pred.exists():
        raise FileNotFoundError(f"evaluate: {pred} is missing (the finetune stage writes one per evaluation split)")
    from finetune.models import load_model

    model = load_model(ctx.need("model_file", "finetune"))
    topology = "mano" if model.topology == "mano" else "other"
    res, js, png = run_evaluate(pred, gt, "freihand", ctx.out, mesh_topology=topology)
    for name, value in res.figures.items():
        if value is not None:
            unit = res.units.get(name, "")
            ctx.figure(f"{name} ({unit})" if unit else name, f"{value:.4f}")
    ctx.picture(png, f"FreiHAND-style PCK curves on {split} ({res.num_samples} samples)")
    curves = ctx.out / "finetune_curves.png"
    shutil.copyfile(run / "curves.png", curves)
    ctx.picture(curves, "fine-tuning scalars: loss terms per step, evaluation metrics")

    path = ctx.out / "predictions.png"
    mesh_grid(model, run, split, path, count=count, columns=columns, scale=scale)
    ctx.picture(path, f"{split}: input crops with the predicted mesh (camera space, root recovered from the 2D "
                      "keypoints) and predicted (red) vs true (green) 2D keypoints")


def mesh_grid(model, run: Path, split: str, path: Path, count: int = 8, columns: int = 4, scale: int = 2) -> Path:
    """Crops of the run's evaluation split with the predicted mesh drawn over them."""
    import json

    import torch

    from finetune.models.base import run_model
    from finetune.models.root import camera_space
    from finetune.training_data import open_dataset
    from synth.pictures import grid

    cfg = json.loads((run / "finetune_config.json").read_text())
    spec = cfg["task_options"]["eval_datasets"][split]
    ds = open_dataset(spec, int(model.input_size))
    idx = np.linspace(0, len(ds) - 1, min(count, len(ds))).round().astype(int).tolist()
    samples = [ds[i] for i in idx]
    with torch.no_grad():
        K = torch.stack([s["K"] for s in samples]).float()
        pred = run_model(model, torch.stack([s["image"] for s in samples]), K)
        cam = camera_space(pred, K)
    tiles = [mesh_tile(s["image"], cam["vertices_cam"][j].double().numpy(), model.faces.numpy(),
                       s["K"].double().numpy(), pred["keypoints_2d"][j].numpy(), s["keypoints_2d"].numpy(),
                       s["sample_id"], scale) for j, s in enumerate(samples)]
    grid(tiles, columns=columns).save(path)
    return path


def mesh_tile(image, vertices_cam, faces, K, pred_uv, true_uv, label: str, scale: int = 2):
    """The crop enlarged `scale` times with the shaded mesh blended over it and both skeletons."""
    from PIL import Image

    from hands.stages_pretrain import keypoint_tile
    from synth.raster import rasterize, shade

    rgb = np.asarray(image).transpose(1, 2, 0)
    size = rgb.shape[0] * scale
    Ks = np.diag([scale, scale, 1.0]) @ np.asarray(K)
    Ks[:2, 2] += (scale - 1) / 2.0        # pixel centres: u' = scale (u + 0.5) - 0.5
    big = np.asarray(Image.fromarray((rgb * 255).round().clip(0, 255).astype(np.uint8)).resize(
        (size, size), Image.BILINEAR)).astype(np.float64) / 255.0
    hit = rasterize(vertices_cam, faces, Ks, (size, size))[1] >= 0
    shaded = shade(vertices_cam, faces, Ks, (size, size)).astype(np.float64) / 255.0
    big[hit] = 0.65 * shaded[hit] + 0.35 * big[hit]
    blended = big.transpose(2, 0, 1)
    # keypoint_tile draws at its own scale: hand it the blended picture at scale 1
    return keypoint_tile(blended, (np.asarray(true_uv) + 0.5) * scale - 0.5, (np.asarray(pred_uv) + 0.5) * scale - 0.5,
                         label, scale=1)
