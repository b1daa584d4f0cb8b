"""Does SiMA's distillation help? One MVR-Hand teacher, then the same SVR-Hand student trained with and
without L_SE / L_OE (equal steps, seed, data order), scored on held-out poses.

    .venv/bin/python benchmarks/sima_distillation.py --data SHARDS [--heldout 1425] [--views 3] [--size 64]
        [--mvr-epochs 60] [--svr-epochs 30] [--batch-size 4] [--out runs/sima_distillation] [--teacher MODEL]

SHARDS: a rendered complement set (`hands render --out SHARDS --poses ... --views ...`), at least
`--views` views per pose. The teacher trains on the poses not held out (views drawn anew every epoch);
the students train on the same items, one view at a time, and are scored on every view of the held-out
poses. `--teacher` reuses a trained sima_mvr model file instead of training one.
Prints the figures of each run (PA-MPJPE, PA-MPVPE, MPJPE, rotation error, 2D error) and the first and
last values of the distillation terms; asserts nothing.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

FIGURES = (("pa_mpjpe_mm", "PA-MPJPE mm"), ("pa_mpvpe_mm", "PA-MPVPE mm"), ("mpjpe_mm", "MPJPE mm"),
           ("rot_deg", "rotation deg"), ("px_2d", "2D px"))


def config(out: Path, data: Path, train_ids, held, stage: str, epochs: int, args, **options):
    from pretrain.trainer import TrainConfig

    spec = {"name": "complement", "root": str(data)}
    every_view = "all" if stage == "svr" else args.views
    task = {"stage": stage, "views": args.views, "input_size": args.size, "augment": False,
            "datasets": [{**spec, "options": {"poses": list(train_ids)}}],
            "eval_datasets": {"heldout": {**spec, "options": {"poses": list(held), "multiview": every_view}}},
            "orientation_phase_epoch": args.orientation_phase_epoch, **options}
    return TrainConfig(task="sima", out=str(out), epochs=epochs, batch_size=args.batch_size, lr=args.lr,
                       milestones=[], seed=args.seed, num_workers=0, checkpoint_every=0, log_every=1,
                       eval_every=-1, progress=True, task_options=task)


def term(out: Path, tag: str) -> list:
    from pretrain.curves import read_scalars

    return list(read_scalars(out / "scalars.csv").get(f"train/{tag}", ([], []))[1])


def run(cfg) -> tuple:
    from pretrain.trainer import train

    t = time.perf_counter()
    result = train(cfg, overwrite=True)      # a re-run of the benchmark replaces its former runs
    return result, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path, help="rendered complement shards")
    ap.add_argument("--heldout", default="1425", help="held-out pose ids, comma-separated")
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--mvr-epochs", type=int, default=60)
    ap.add_argument("--svr-epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--orientation-phase-epoch", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--teacher", type=Path, help="a trained sima_mvr model file (skips the MVR run)")
    ap.add_argument("--out", type=Path, default=Path("runs/sima_distillation"))
    args = ap.parse_args()

    import finetune.task_sima  # noqa: F401  registers the task
    from hands.stages_finetune import heldout_split
    from synth.tables import load_tables

    if args.threads:
        torch.set_num_threads(args.threads)
    held_wanted = [int(p) for p in args.heldout.split(",") if p.strip()]
    train_ids, held = heldout_split(load_tables(args.data).poses["pose_ids"], held_wanted)
    print(f"data {args.data}: train poses {len(train_ids)}, held-out poses {held}; {args.views} views at "
          f"{args.size} px, batch {args.batch_size}")
    rows = []
    teacher = args.teacher
    if teacher is None:
        result, seconds = run(config(args.out / "mvr", args.data, train_ids, held, "mvr", args.mvr_epochs, args))
        teacher = Path(result.files["model"])
        rows.append(("MVR-Hand (teacher)", result.metrics["heldout"], result.step, seconds))
    for name, distill in (("SVR-Hand + SiMA", True), ("SVR-Hand alone", False)):
        out = args.out / ("svr_distill" if distill else "svr_plain")
        result, seconds = run(config(out, args.data, train_ids, held, "svr", args.svr_epochs, args,
                                     teacher=str(teacher), distill=distill))
        rows.append((name, result.metrics["heldout"], result.step, seconds))
        if distill:
            se, oe = term(out, "se"), term(out, "oe")
            print(f"L_SE {se[0]:.3f} -> {se[-1]:.3f}, L_OE {oe[0]:.3f} -> {oe[-1]:.3f} over {len(se)} steps")
    print(f"\n{'run':22s} {'steps':>6s} {'s':>7s} " + " ".join(f"{label:>13s}" for _, label in FIGURES))
    for name, m, steps, seconds in rows:
        print(f"{name:22s} {steps:6d} {seconds:7.0f} " + " ".join(f"{m[k]:13.2f}" for k, _ in FIGURES))


if __name__ == "__main__":
    main()
