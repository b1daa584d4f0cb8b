"""`hands train --task pose2d|mesh|sima`: every training task from the command line, from its recipe.

`hands pretrain` is `hands train --task pose2d` and `hands finetune` is `hands train --task mesh`, with
only their task's flags. Each task's flags become its task options here (`TASK_FLAGS`); everything else
(the recipe, the run settings, resuming, Ray) is hands/training.py's, shared with the pipeline stages.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .cli_values import key_values


# ---------------------------------------------------------------- value parsers

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


def _path(p) -> str:
    return str(Path(p).expanduser().resolve())


# ---------------------------------------------------------------- each task's flags -> its options

def _pose2d_flags(p) -> None:
    p.add_argument("--encoder", help="encoder name (default densestack): densestack, ghoststack, resnet18stack, ...")
    p.add_argument("--eval-data", action="append",
                   help="folder of held-out-HDRI evaluation shards (hands render --hdri-split heldout), repeatable")
    p.add_argument("--heldout-poses", help="fraction of poses (default 0.1) or comma list of pose ids to hold out")
    p.add_argument("--eval-coco", action="append", metavar="NAME=PATH",
                   help="COCO keypoint file of real hands (or its folder) scored as evaluation split NAME, on its "
                        "labelled keypoints (repeatable)")
    p.add_argument("--train-coco", action="append", metavar="PATH",
                   help="COCO keypoint file whose hands join the training crops (2D labels; repeatable)")


def _pose2d_options(args) -> dict:
    return {"data": [_path(d) for d in args.data] if args.data else None,
            "eval_data": [_path(d) for d in args.eval_data] if args.eval_data else None,
            "encoder": args.encoder,
            "heldout_poses": _heldout(args.heldout_poses) if args.heldout_poses is not None else None,
            "coco_eval": _coco_eval(args.eval_coco),
            "coco_train": [_path(p) for p in args.train_coco] if args.train_coco else None}


def _mesh_flags(p) -> None:
    p.add_argument("--eval", action="append", metavar="SPLIT=NAME:ROOT",
                   help="evaluation dataset under a split name (repeatable)")
    p.add_argument("--model", help="registry name (default mobrecon_densestack); hands model-stats lists them")
    p.add_argument("--pretrained-encoder", help="OUT/encoder.pt of hands pretrain (default: from scratch)")
    p.add_argument("--model-option", action="append", metavar="KEY=VALUE",
                   help="model setting, YAML value (e.g. lifting=heatmap, decoder=spiral, hand_model=mano)")
    p.add_argument("--no-consistency", action="store_true", help="without MobRecon's con2D / con3D losses")
    p.add_argument("--mismatch", choices=["error", "keypoints"],
                   help="meshes of another hand model's topology: refuse (default) or use only their keypoints")


def _mesh_options(args) -> dict:
    return {"model": args.model, "mismatch": args.mismatch,
            "datasets": list(args.data) if args.data else None,
            "eval_datasets": key_values(args.eval, "--eval", parse=False) or None,
            "model_options": key_values(args.model_option, "--model-option") or None,
            "pretrained_encoder": _path(args.pretrained_encoder) if args.pretrained_encoder else None,
            "consistency": False if args.no_consistency else None}


def _sima_flags(p) -> None:
    p.add_argument("--stage", choices=["mvr", "svr"], help="MVR-Hand (default) or SVR-Hand distilled from --teacher")
    p.add_argument("--views", type=int, help="views per hand (recipe: 8; SVR: the teacher's)")
    p.add_argument("--teacher", help="SVR: OUT/model.pt of a trained MVR-Hand")
    p.add_argument("--beta", type=float, help="SVR: weight of L_SE (default 1)")
    p.add_argument("--gamma", type=float, help="SVR: weight of L_OE (default 1)")
    p.add_argument("--no-distill", action="store_true", help="SVR without the distillation terms (the ablation)")


def _sima_options(args) -> dict:
    mesh = _mesh_options(args)
    return {**{k: mesh[k] for k in ("mismatch", "datasets", "eval_datasets", "model_options", "pretrained_encoder")},
            "stage": args.stage, "views": args.views, "teacher": _path(args.teacher) if args.teacher else None,
            "beta": args.beta, "gamma": args.gamma, "distill": False if args.no_distill else None}


# task -> (its options from the flags, what --data is, the flags (dests) it reads beside the shared ones)
TASK_FLAGS = {
    "pose2d": (_pose2d_options, "the folder of rendered shards",
               {"encoder", "eval_data", "heldout_poses", "eval_coco", "train_coco"}),
    "mesh": (_mesh_options, "NAME:ROOT[:RATIO], repeatable",
             {"eval", "model", "pretrained_encoder", "model_option", "no_consistency", "mismatch"}),
    "sima": (_sima_options, "NAME:ROOT[:RATIO] of a multi-view loader, repeatable",
             {"eval", "pretrained_encoder", "model_option", "mismatch", "stage", "views", "teacher", "beta",
              "gamma", "no_distill"}),
}
TASK_ONLY_FLAGS = set().union(*(flags for _, _, flags in TASK_FLAGS.values()))


# ---------------------------------------------------------------- the run

def run_settings(args) -> dict:
    """The TrainConfig settings given on the command line (add_run_arguments), None ones left out."""
    top = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
           "max_steps": args.max_steps, "eval_every": args.eval_every, "checkpoint_every": args.checkpoint_every,
           "num_workers": args.loader_workers, "device": args.device, "weight_decay": args.weight_decay}
    if args.milestones is not None:
        top["milestones"] = _ints(args.milestones, "milestones")
    if args.no_progress:
        top["progress"] = False
    if args.max_steps is not None and args.max_steps < 1:
        raise ValueError(f"--max-steps {args.max_steps}: must be at least 1 (leave it out to train the whole "
                         "schedule)")
    return {k: v for k, v in top.items() if v is not None}


def task_options(args) -> dict:
    """The task options the flags give (None ones left out): the task's own flags, then the shared ones."""
    _, _, mine = TASK_FLAGS[args.task]
    stray = sorted(f"--{d.replace('_', '-')}" for d in TASK_ONLY_FLAGS - mine if getattr(args, d, None))
    if stray:
        raise ValueError(f"{', '.join(stray)}: not a flag of task {args.task} (hands train --help lists each "
                         "task's flags)")
    options = TASK_FLAGS[args.task][0](args)
    options["input_size"] = args.input_size
    if args.no_augment or args.camera_augment:
        options["augment"] = augment_setting(args)
    options.update(key_values(args.task_option, "--task-option"))
    return {k: v for k, v in options.items() if v is not None}


def config_from_args(args):
    """(TrainConfig, checkpoint to resume or None): a fresh run from the recipe, or the checkpoint's run."""
    from .training import build_config, resumed_config

    top, options = run_settings(args), task_options(args)
    out = Path(args.out).resolve()
    if args.resume:
        return resumed_config(Path(args.out) if args.resume == "auto" else Path(args.resume), out, top, options)
    if not args.data:
        raise ValueError(f"--data is required ({TASK_FLAGS[args.task][1]}), unless --resume is given")
    return build_config(args.task, out, train=top, options=options), None


def _cmd_train(args) -> None:
    from .training import launch

    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite contradict each other: continue the run, or replace it")
    config, resume = config_from_args(args)
    summary = launch(config, resume, overwrite=args.overwrite, workers=args.workers or 0, address=args.address,
                     gpus_per_worker=args.gpus_per_worker or 0, cpus_per_worker=args.cpus_per_worker)
    print_summary(summary, config.task)


def print_summary(summary: dict, task: str) -> None:
    print(f"trained {summary.get('step')} steps ({summary.get('epoch')} epochs) in {summary.get('seconds')} s "
          f"-> {summary.get('out')}")
    for split, m in (summary.get("metrics") or {}).items():
        if task == "pose2d":
            print(f"  {split}: mean error {m.get('mean_px', float('nan')):.2f} px, AUC(0-30 px) "
                  f"{m.get('auc', 0):.3f}, heatmap peaks {m.get('hm_mean_px', float('nan')):.2f} px "
                  f"({m.get('samples')} samples)")
        else:
            shown = ", ".join(f"{k} {v:.2f}" for k, v in m.items() if isinstance(v, float))
            print(f"  {split} ({m.get('samples')} samples): {shown}")
    for name, path in (summary.get("files") or {}).items():
        print(f"  {name}: {path}")


def add_run_arguments(p, recipe_help: str) -> None:
    """The run options every training command shares; `recipe_help` says where the defaults come from."""
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--epochs", type=int, help=f"default: {recipe_help}")
    p.add_argument("--batch-size", type=int, help=f"global batch size (default: {recipe_help})")
    p.add_argument("--lr", type=float, help=f"initial learning rate (default: {recipe_help})")
    p.add_argument("--milestones", help=f"epochs where lr /= 10, comma list (default: {recipe_help})")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--input-size", type=int, help=f"crop size in pixels (default: {recipe_help})")
    p.add_argument("--seed", type=int)
    p.add_argument("--max-steps", type=int, help="stop after this many steps in all")
    p.add_argument("--eval-every", type=int, help="steps between evaluations (default: every epoch)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default 500)")
    p.add_argument("--loader-workers", type=int, help="DataLoader processes per training process (default: CPUs, <= 4)")
    p.add_argument("--no-augment", action="store_true", help="train on plain crops")
    p.add_argument("--camera-augment", type=camera_augment_value, metavar="PRESET|JSON",
                   help="camera and sensor effects drawn per epoch on top of the default augmentation: "
                        "'strong' (the renderer's former baked-in strength), 'medium' (about half of it) or a "
                        "JSON dict of camera-effect settings (README: 'How the renders look')")
    p.add_argument("--task-option", action="append", metavar="KEY=VALUE",
                   help="any task option, YAML value (README: 'Training'; e.g. consistency_from_epoch=0)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--resume", nargs="?", const="auto",
                   help="continue a killed run: from OUT/checkpoints/last.pt, or from the checkpoint given")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run OUT holds (its checkpoints, scalars, predictions); without it a folder "
                        "holding a run is refused")
    p.add_argument("--workers", type=int, help="training processes through Ray (default: one, without Ray)")
    p.add_argument("--gpus-per-worker", type=float, help="GPUs per training process (default 0)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--address", help="join an existing Ray cluster (or set RAY_ADDRESS)")
    p.add_argument("--no-progress", action="store_true")


def add_parser(subparsers) -> None:
    """`hands train`, and its shorthands `hands pretrain` and `hands finetune`."""
    t = subparsers.add_parser(
        "train", help="train any task from its recipe: pose2d (encoder pretraining), mesh (a reconstruction "
                      "model), sima (MVR-Hand / SVR-Hand)",
        description="Every training task with the shared trainer, from the recipe of hands/recipes.py (the "
                    "task's, the model family's or the SiMA stage's); flags override single values. --data is "
                    "a folder of rendered shards for pose2d and NAME:ROOT[:RATIO] for mesh and sima. Writes "
                    "OUT/ (weights, config, metrics.json, scalars.csv, curves.png, checkpoints/).")
    t.add_argument("--task", required=True, choices=list(TASK_FLAGS))
    t.add_argument("--data", action="append",
                   help="pose2d: folder of rendered shards; mesh, sima: NAME:ROOT[:RATIO] (repeatable)")
    add_run_arguments(t, "the task's recipe")
    _mesh_flags(t.add_argument_group("mesh and sima"))
    _pose2d_flags(t.add_argument_group("pose2d"))
    _sima_flags(t.add_argument_group("sima"))
    t.set_defaults(fn=_cmd_train)

    for name, (task, help_, description, data_help, add_flags, recipe_help) in SHORTHANDS.items():
        p = subparsers.add_parser(name, help=help_, description=description)
        p.add_argument("--data", action="append", help=data_help)
        add_flags(p)
        add_run_arguments(p, recipe_help)
        p.set_defaults(fn=_cmd_train, task=task)


# the shorthands: command -> (task, help, description, --data help, the task's flags, where defaults come from)
SHORTHANDS = {
    "pretrain": (
        "pose2d", "pretrain an encoder on the 2D pose task (heatmap + MapReg heads) on rendered shards",
        "hands train --task pose2d: 2D-pose pretraining of seed 001, Fig. 14. Defaults are the paper's schedule: "
        "80 epochs, batch 128, Adam lr 1e-3 divided by 10 at epochs 20, 40, 60, 128x128 input. Writes "
        "OUT/encoder.pt (load with pretrain.checkpoint.load_pretrained_encoder), head.pt, metrics.json, "
        "scalars.csv, curves.png and checkpoints/.",
        "folder of rendered shards (repeatable)", _pose2d_flags,
        "the paper's: 80 epochs, batch 128, lr 1e-3, milestones epochs x 1/4, 1/2, 3/4, 128 px"),
    "finetune": (
        "mesh", "fine-tune a reconstruction model (MobRecon, CMR baseline, ...) on a mixture of datasets",
        "hands train --task mesh: mixed fine-tuning with the shared trainer. Defaults are the model family's "
        "recipe (hands/recipes.py); MobRecon's: 38 epochs, batch 32, Adam lr 1e-3 divided by 10 at epoch 30, "
        "128x128 input, consistency losses from epoch 5; SAR's: AdamW 3e-4 cosine, 50 epochs, batch 64, 256 px; "
        "CMR's: Adam 1e-4, 224 px; the camera-space model's: Adam 1e-4, /10 at 40, 50 epochs. Datasets are "
        "NAME:ROOT[:RATIO] (names: hands data list), e.g. --data freihand:~/data/FreiHAND:1.0 --data "
        "complement:data/complement:0.5. Writes OUT/model.pt (hands predict / export-onnx read it), "
        "metrics.json, pred_/gt_<split>.npz (hands evaluate reads them), scalars.csv, curves.png and "
        "checkpoints/.",
        "training dataset NAME:ROOT[:RATIO] (repeatable)", _mesh_flags, "the model family's recipe"),
}

