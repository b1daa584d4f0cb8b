"""Pipeline stages of SiMA-Hand (seed 003; registered in hands/stages.py's STAGES).

`sima_mvr` trains MVR-Hand on multi-view items of the `render` stage's shards (N views of a pose per
item, redrawn every epoch), plus any multi-view benchmark given in `extra_datasets` (e.g.
`{name: hanco, root: ~/data/HanCo, ratio: 1.0}` or `{name: dexycb, root: ~/data/dex-ycb, options:
{setup: s0, hand_model: mano}}`), holding out some poses for evaluation; it gives
`sima_mvr_model` and `sima_mvr_run`. `sima_svr` trains SVR-Hand on the same data one view at a time,
distilling from that frozen MVR-Hand (L_SE, L_OE with weights beta, gamma; `distill: false` is the
ablation), and gives `sima_svr_model` and `sima_svr_run`. The orientation terms start at
`orientation_phase_epoch` (H2ONet's two phases). Defaults are sized for a laptop demo (64 px, 3 views).
"""
from __future__ import annotations

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
    import finetune.task_sima  # noqa: F401  registers the task
    from pretrain.trainer import TrainConfig, train

    out = ctx.out / folder
    config = TrainConfig(task="sima", out=str(out), epochs=int(epochs), batch_size=int(batch_size), lr=float(lr),
                         milestones=None if milestones is None else list(milestones), seed=int(seed),
                         num_workers=int(loader_workers), checkpoint_every=0, log_every=1, eval_every=-1,
                         task_options=options)
    return out, train(config)


def sima_mvr(ctx, *, views: int = 3, input_size: int = 64, epochs: int = 30, batch_size: int = 2, lr: float = 1e-3,
             milestones: list | None = (), heldout_poses=(1400,), extra_datasets=(), orientation_phase_epoch: int = 5,
             augment: bool = False, from_pretrained: bool = False, model_options: dict | None = None, seed: int = 0,
             loader_workers: int = 0, folder: str = "sima_mvr"):
    """Train MVR-Hand (N views per hand) on the rendered shards (+ extra multi-view benchmarks)."""
    from hands.stages_finetune import heldout_split
    from synth.tables import load_tables

    data = Path(ctx.need("dataset", "render"))
    train_ids, held = heldout_split(load_tables(data).poses["pose_ids"], heldout_poses)
    specs, evals = _common(ctx, data, held, train_ids, extra_datasets)
    encoder = ctx.outputs.get("pretrained_encoder") if from_pretrained else None
    out, result = _train(ctx, folder, epochs, batch_size, lr, milestones, seed, loader_workers, {
        "stage": "mvr", "views": int(views), "input_size": int(input_size), "datasets": specs,
        "eval_datasets": evals, "augment": bool(augment), "orientation_phase_epoch": int(orientation_phase_epoch),
        "pretrained_encoder": str(encoder) if encoder else None, "model_options": dict(model_options or {})})
    ctx.figure("MVR-Hand", f"{views} views per hand at {input_size} px; train poses {train_ids}, held out {held}")
    _report(ctx, result, "MVR")
    ctx.give(sima_mvr_model=result.files["model"], sima_mvr_run=out)


def sima_svr(ctx, *, input_size: int = 64, epochs: int = 30, batch_size: int = 2, lr: float = 1e-3,
             milestones: list | None = (), heldout_poses=(1400,), extra_datasets=(), orientation_phase_epoch: int = 5,
             beta: float = 1.0, gamma: float = 1.0, distill: bool = True, augment: bool = False,
             from_pretrained: bool = False, model_options: dict | None = None, seed: int = 0, loader_workers: int = 0,
             folder: str = "sima_svr"):
    """Train SVR-Hand with single-to-multi-view adaptation from the `sima_mvr` stage's frozen MVR-Hand."""
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
        "gamma": float(gamma), "input_size": int(input_size), "datasets": specs, "eval_datasets": evals,
        "augment": bool(augment), "orientation_phase_epoch": int(orientation_phase_epoch),
        "pretrained_encoder": str(encoder) if encoder else None, "model_options": dict(model_options or {})})
    ctx.figure("SVR-Hand", f"from MVR-Hand {teacher}" + (f" with L_SE x {beta}, L_OE x {gamma}" if distill
                                                         else " without distillation"))
    _report(ctx, result, "SVR")
    ctx.give(sima_svr_model=result.files["model"], sima_svr_run=out)
