"""`hands pretrain`: 2D-pose pretraining of a stacked encoder on rendered complement shards."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def _heldout(text: str):
    """'0.1' -> a fraction of the poses; '3,17,700' -> those pose ids."""
    text = str(text).strip()
    try:
        if "," in text or (text.isdigit() and int(text) >= 1):
            return [int(t) for t in text.split(",") if t.strip()]
        return float(text)
    except ValueError:
        raise ValueError(f"--heldout-poses: '{text}' is neither a fraction nor a comma list of pose ids") from None


def _ints(text: str, what: str) -> list:
    text = str(text).strip()
    if text in ("", "none"):
        return []
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"--{what}: '{text}' is not a comma list of integers") from None


def _coco_eval(items) -> dict | None:
    """--eval-coco NAME=PATH (repeatable) -> {NAME: absolute PATH}."""
    out = {}
    for item in items or []:
        name, sep, path = str(item).partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"--eval-coco {item!r}: expected NAME=PATH (a COCO keypoint JSON or its folder)")
        if name.strip() in out:
            raise ValueError(f"--eval-coco: the split name {name.strip()!r} is given twice")
        out[name.strip()] = str(Path(path.strip()).expanduser().resolve())
    return out or None


def camera_augment_value(text: str):
    """--camera-augment: a preset name (pretrain.image_ops.CAMERA_AUGMENT_PRESETS) or a JSON dict of
    camera-effect settings, checked before any work starts."""
    from pretrain.image_ops import camera_settings

    value = text
    if text.strip().startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"--camera-augment {text!r}: not valid JSON ({err})") from None
    try:
        camera_settings(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def augment_setting(args):
    """The task's 'augment' option from --no-augment / --camera-augment (the loaders' defaults otherwise)."""
    if args.no_augment and args.camera_augment:
        raise ValueError("--no-augment and --camera-augment contradict each other: give one")
    return False if args.no_augment else {"camera": args.camera_augment}


def add_augment_flags(p) -> None:
    p.add_argument("--no-augment", action="store_true", help="train on plain crops")
    p.add_argument("--camera-augment", type=camera_augment_value, metavar="PRESET|JSON",
                   help="camera and sensor effects drawn per epoch on top of the default augmentation: "
                        "'strong' (the renderer's former baked-in strength), 'medium' (about half of it) or a "
                        "JSON dict of camera-effect settings (README: 'How the renders look')")


def config_from_args(args):
    """The TrainConfig of a fresh run, or of the checkpoint being resumed with the given overrides."""
    from pretrain.trainer import TrainConfig

    top = run_settings(args)
    task = {"data": [str(Path(d).resolve()) for d in args.data] if args.data else None,
            "eval_data": [str(Path(d).resolve()) for d in args.eval_data] if args.eval_data else None,
            "encoder": args.encoder, "input_size": args.input_size,
            "heldout_poses": _heldout(args.heldout_poses) if args.heldout_poses is not None else None,
            "coco_eval": _coco_eval(args.eval_coco),
            "coco_train": [str(Path(p).expanduser().resolve()) for p in args.train_coco] if args.train_coco else None}
    if args.no_augment or args.camera_augment:
        task["augment"] = augment_setting(args)
    task = {k: v for k, v in task.items() if v is not None}
    resumed = resumed_config(args, top, task)
    if resumed:
        return resumed
    if not args.data:
        raise ValueError("--data is required (the folder of rendered shards), unless --resume is given")
    return TrainConfig.from_dict({**top, "out": str(Path(args.out).resolve()), "task": "pose2d",
                                  "task_options": {"encoder": "densestack", **task}}), None


def run_settings(args) -> dict:
    """The TrainConfig settings given on the command line (add_run_arguments), None ones left out."""
    top = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
           "max_steps": args.max_steps, "eval_every": args.eval_every, "checkpoint_every": args.checkpoint_every,
           "num_workers": args.loader_workers, "device": args.device, "weight_decay": args.weight_decay}
    if args.milestones is not None:
        top["milestones"] = _ints(args.milestones, "milestones")
    if args.no_progress:
        top["progress"] = False
    return {k: v for k, v in top.items() if v is not None}


def resumed_config(args, top: dict, task: dict):
    """With --resume: (the checkpoint's TrainConfig with these overrides, the checkpoint); else None."""
    from pretrain.checkpoint import find_checkpoint, load_checkpoint
    from pretrain.trainer import TrainConfig

    if not args.resume:
        return None
    where = Path(args.out) if args.resume == "auto" else Path(args.resume)
    saved = load_checkpoint(find_checkpoint(where))["config"]
    cfg = {**saved, **top, "out": str(Path(args.out).resolve())}
    saved_task = saved.get("task_options", {})
    cfg["task_options"] = {**saved_task, **task}
    if isinstance(task.get("augment"), dict) and isinstance(saved_task.get("augment"), dict):
        # --camera-augment on a resume adds to the run's own augmentation settings, not replaces them
        cfg["task_options"]["augment"] = {**saved_task["augment"], **task["augment"]}
    return TrainConfig.from_dict(cfg), find_checkpoint(where)


def _cmd_pretrain(args) -> None:
    config, resume = config_from_args(args)
    _print_summary(launch_training(config, resume, args))


def launch_training(config, resume, args) -> dict:
    """Train in this process, or in --workers Ray Train processes; the run's JSON summary."""
    workers = args.workers or 0
    if workers >= 1 or args.address or os.environ.get("RAY_ADDRESS"):
        from pretrain.distributed import run_distributed, train_config

        fn = _Partial(train_config, config.to_dict(), str(resume) if resume else None)
        results = run_distributed(fn, workers=max(1, workers), gpus_per_worker=args.gpus_per_worker or 0,
                                  cpus_per_worker=args.cpus_per_worker, address=args.address,
                                  storage=str(Path(config.out) / "ray"))
        summary = next((r for r in results if r), {})
    else:
        from pretrain.distributed import train_config

        summary = train_config(config.to_dict(), str(resume) if resume else None)
    return summary


class _Partial:
    """A picklable fn() -> f(*args) (functools.partial of a module function, spelled out for Ray)."""

    def __init__(self, f, *args):
        self.f, self.args = f, args

    def __call__(self):
        return self.f(*self.args)


def _print_summary(summary: dict) -> None:
    print(f"trained {summary.get('step')} steps ({summary.get('epoch')} epochs) in {summary.get('seconds')} s "
          f"-> {summary.get('out')}")
    for split, m in (summary.get("metrics") or {}).items():
        print(f"  {split}: mean error {m.get('mean_px', float('nan')):.2f} px, AUC(0-30 px) {m.get('auc', 0):.3f}, "
              f"heatmap peaks {m.get('hm_mean_px', float('nan')):.2f} px ({m.get('samples')} samples)")
    for name, path in (summary.get("files") or {}).items():
        print(f"  {name}: {path}")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "pretrain", help="pretrain an encoder on the 2D pose task (heatmap + MapReg heads) on rendered shards",
        description="2D-pose pretraining of seed 001, Fig. 14. Defaults are the paper's schedule: 80 epochs, "
                    "batch 128, Adam lr 1e-3 divided by 10 at epochs 20, 40, 60, 128x128 input. Writes "
                    "OUT/encoder.pt (load with pretrain.checkpoint.load_pretrained_encoder), head.pt, "
                    "metrics.json, scalars.csv, curves.png and checkpoints/.")
    p.add_argument("--data", action="append", help="folder of rendered shards (repeatable)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--encoder", help="encoder name (default densestack): densestack, ghoststack, resnet18stack, ...")
    p.add_argument("--eval-data", action="append",
                   help="folder of held-out-HDRI evaluation shards (hands render --hdri-split heldout), repeatable")
    p.add_argument("--heldout-poses", help="fraction of poses (default 0.1) or comma list of pose ids to hold out")
    p.add_argument("--eval-coco", action="append", metavar="NAME=PATH",
                   help="COCO keypoint file of real hands (or its folder) scored as evaluation split NAME, on its "
                        "labelled keypoints (repeatable)")
    p.add_argument("--train-coco", action="append", metavar="PATH",
                   help="COCO keypoint file whose hands join the training crops (2D labels; repeatable)")
    add_run_arguments(p, epochs=80, batch=128, milestones="epochs x 1/4, 1/2, 3/4")
    p.set_defaults(fn=_cmd_pretrain)


def add_run_arguments(p, epochs: int, batch: int, milestones: str) -> None:
    """The training-run options `hands pretrain` and `hands finetune` share (defaults named in the help)."""
    p.add_argument("--epochs", type=int, help=f"default {epochs}")
    p.add_argument("--batch-size", type=int, help=f"global batch size (default {batch})")
    p.add_argument("--lr", type=float, help="initial learning rate (default 1e-3)")
    p.add_argument("--milestones", help=f"epochs where lr /= 10, comma list (default: {milestones})")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--input-size", type=int, help="crop size in pixels (default 128; finetune: the model's recipe)")
    p.add_argument("--seed", type=int)
    p.add_argument("--max-steps", type=int, help="stop after this many steps in all")
    p.add_argument("--eval-every", type=int, help="steps between evaluations (default: every epoch)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default 500)")
    p.add_argument("--loader-workers", type=int, help="DataLoader processes per training process (default: CPUs, <= 4)")
    add_augment_flags(p)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--resume", nargs="?", const="auto",
                   help="continue a killed run: from OUT/checkpoints/last.pt, or from the checkpoint given")
    p.add_argument("--workers", type=int, help="training processes through Ray (default: one, without Ray)")
    p.add_argument("--gpus-per-worker", type=float, help="GPUs per training process (default 0)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--address", help="join an existing Ray cluster (or set RAY_ADDRESS)")
    p.add_argument("--no-progress", action="store_true")
