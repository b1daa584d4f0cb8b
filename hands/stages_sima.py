"""Pipeline stages of SiMA-Hand (seed 003; registered in hands/stages.py's STAGES).

`sima_mvr` trains MVR-Hand on multi-view items of the `render` stage's shards (N views of a pose per
item, redrawn every epoch), plus any multi-view benchmark given in `extra_datasets` (e.g.
`{name: hanco, root: ~/data/HanCo, ratio: 1.0}` or `{name: dexycb, root: ~/data/dex-ycb, options:
{setup: s0, hand_model: mano}}`), holding out some poses for evaluation; it gives
`sima_mvr_model` and `sima_mvr_run`. `sima_svr` trains SVR-Hand on the same data one view at a time,
distilling from that frozen MVR-Hand (L_SE, L_OE with weights beta, gamma; `distill: false` is the
ablation), and gives `sima_svr_model` and `sima_svr_run`. The orientation terms start at
`orientation_phase_epoch` (H2ONet's two phases). Settings left null come from the recipe (hands/recipes.py:
Adam, 128 px, 8 views, batch 64 / 32, MobRecon's schedule); the sima pipeline gives laptop sizes (64 px,
3 views) in pipelines.yaml.
"""
from __future__ import annotations

import json
from pathlib import Path


def _common(ctx, data, held, train_ids, extra_datasets):
    specs = [{"name": "complement", "root": str(data), "options": {"poses": train_ids}}]
    specs += [dict(s) for s in (extra_datasets or [])]
    evals = {"heldout_poses": {"name": "complement", "root": str(data), "options": {"poses": held}}}
    return specs, evals


def _report(ctx, result, what: str):
    ctx.figure(f"{what}: steps", f"{result.step} ({result.epoch} epochs), "
                                 f"{result.seconds / max(result.step, 1):.3f} s/step")
    for split, m in result.metrics.items():
        ctx.figure(f"{what} {split}: PA-MPJPE / PA-MPVPE (mm)",
                   f"{m['pa_mpjpe_mm']:.2f} / {m.get('pa_mpvpe_mm', float('nan')):.2f}")
        ctx.figure(f"{what} {split}: MPJPE (mm), rotation error (deg)", f"{m['mpjpe_mm']:.2f}, {m['rot_deg']:.1f}")
        ctx.figure(f"{what} {split}: 2D error (px)", f"{m['px_2d']:.2f}")


def _train(ctx, folder, epochs, batch_size, lr, milestones, seed, loader_workers, options):
    from hands.stages_pretrain import given
    from hands.training import build_config, run

    out = ctx.out / folder
    config = build_config("sima", out, train=given(epochs=epochs, batch_size=batch_size, lr=lr, milestones=milestones,
                                                   seed=int(seed), num_workers=int(loader_workers),
                                                   checkpoint_every=0, log_every=1, eval_every=-1),
                          options=given(**options))
    return out, run(config, overwrite=ctx.overwrite)


def sima_mvr(ctx, *, views: int | None = None, input_size: int | None = None, epochs: int | None = None,
             batch_size: int | None = None, lr: float | None = None, milestones: list | None = None,
             heldout_poses=(1400,), extra_datasets=(), orientation_phase_epoch: int | None = None,
             augment: bool | None = None, from_pretrained: bool = False, model_options: dict | None = None,
             seed: int = 0, loader_workers: int = 0, folder: str = "sima_mvr"):
    """Train MVR-Hand (N views per hand) on the rendered shards (+ extra multi-view benchmarks); null settings
    are the recipe's (hands/recipes.py)."""
    from hands.stages_finetune import heldout_split
    from synth.tables import load_tables

    data = Path(ctx.need("dataset", "render"))
    train_ids, held = heldout_split(load_tables(data).poses["pose_ids"], heldout_poses)
    specs, evals = _common(ctx, data, held, train_ids, extra_datasets)
    encoder = ctx.outputs.get("pretrained_encoder") if from_pretrained else None
    out, result = _train(ctx, folder, epochs, batch_size, lr, milestones, seed, loader_workers, {
        "stage": "mvr", "views": views, "input_size": input_size, "datasets": specs,
        "eval_datasets": evals, "augment": augment, "orientation_phase_epoch": orientation_phase_epoch,
        "pretrained_encoder": str(encoder) if encoder else None, "model_options": dict(model_options or {})})
    options = json.loads((out / "sima_config.json").read_text())["task_options"]
    ctx.figure("MVR-Hand", f"{options['views']} views per hand at {options['input_size']} px; train poses "
                           f"{train_ids}, held out {held}")
    _report(ctx, result, "MVR")
    ctx.give(sima_mvr_model=result.files["model"], sima_mvr_run=out)


def sima_svr(ctx, *, input_size: int | None = None, epochs: int | None = None, batch_size: int | None = None,
             lr: float | None = None, milestones: list | None = None, heldout_poses=(1400,), extra_datasets=(),
             orientation_phase_epoch: int | None = None, beta: float = 1.0, gamma: float = 1.0, distill: bool = True,
             augment: bool | None = None, from_pretrained: bool = False, model_options: dict | None = None,
             seed: int = 0, loader_workers: int = 0, folder: str = "sima_svr"):
    """Train SVR-Hand with single-to-multi-view adaptation from the `sima_mvr` stage's frozen MVR-Hand; null
    settings are the recipe's (hands/recipes.py)."""
    from hands.stages_finetune import heldout_split
    from synth.tables import load_tables

    data = Path(ctx.need("dataset", "render"))
    teacher = Path(ctx.need("sima_mvr_model", "sima_mvr"))
    train_ids, held = heldout_split(load_tables(data).poses["pose_ids"], heldout_poses)
    specs, evals = _common(ctx, data, held, train_ids, extra_datasets)
    for spec in evals.values():
        spec["options"]["multiview"] = "all"        # SVR is scored on every view of the held-out poses
    encoder = ctx.outputs.get("pretrained_encoder") if from_pretrained else None
    out, result = _train(ctx, folder, epochs, batch_size, lr, milestones, seed, loader_workers, {
        "stage": "svr", "teacher": str(teacher), "distill": bool(distill), "beta": float(beta),
        "gamma": float(gamma), "input_size": input_size, "datasets": specs, "eval_datasets": evals,
        "augment": augment, "orientation_phase_epoch": orientation_phase_epoch,
        "pretrained_encoder": str(encoder) if encoder else None, "model_options": dict(model_options or {})})
    ctx.figure("SVR-Hand", f"from MVR-Hand {teacher}" + (f" with L_SE x {beta}, L_OE x {gamma}" if distill
                                                         else " without distillation"))
    _report(ctx, result, "SVR")
    ctx.give(sima_svr_model=result.files["model"], sima_svr_run=out)
