"""`hands finetune`: train a reconstruction model on a mixture of datasets with the shared trainer."""
from __future__ import annotations

from pathlib import Path

from finetune.recipes import MOBRECON

from .cli_pretrain import add_run_arguments, augment_setting, launch_training, resumed_config, run_settings

# MobRecon's fine-tuning recipe (seed 001, section 4.1): Adam 1e-3, /10 at epoch 30, 38 epochs, batch 32;
# other model families start from their own release's (finetune/recipes.py)
RECIPE = MOBRECON["train"]
DEFAULT_MODEL = "mobrecon_densestack"


def _key_values(items, what: str, parse=True) -> dict:
    """KEY=VALUE options as a dict; values parsed as YAML unless parse is False."""
    import yaml

    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--{what} {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v) if parse else v.strip()
    return out


def config_from_args(args):
    from finetune.recipes import recipe_for
    from pretrain.trainer import TrainConfig

    top = run_settings(args)
    task = {"model": args.model, "input_size": args.input_size, "mismatch": args.mismatch,
            "datasets": list(args.data) if args.data else None,
            "eval_datasets": _key_values(args.eval, "eval", parse=False) or None,
            "model_options": _key_values(args.model_option, "model-option") or None,
            "pretrained_encoder": str(Path(args.pretrained_encoder).resolve()) if args.pretrained_encoder else None}
    if args.no_augment or args.camera_augment:
        task["augment"] = augment_setting(args)
    if args.no_consistency:
        task["consistency"] = False
    task = {k: v for k, v in task.items() if v is not None}
    resumed = resumed_config(args, top, task)
    if resumed:
        return resumed
    if not args.data:
        raise ValueError("--data is required (NAME:ROOT[:RATIO], repeatable), unless --resume is given")
    recipe = recipe_for(task.get("model") or DEFAULT_MODEL)
    options = {**recipe["task"], **task}
    if isinstance(recipe["task"].get("augment"), dict) and isinstance(task.get("augment"), dict):
        options["augment"] = {**recipe["task"]["augment"], **task["augment"]}   # --camera-augment adds to it
    return TrainConfig.from_dict({**recipe["train"], **top, "out": str(Path(args.out).resolve()), "task": "mesh",
                                  "task_options": options}), None


def _cmd_finetune(args) -> None:
    config, resume = config_from_args(args)
    summary = launch_training(config, resume, args)
    print(f"trained {summary.get('step')} steps ({summary.get('epoch')} epochs) in {summary.get('seconds')} s "
          f"-> {summary.get('out')}")
    for split, m in (summary.get("metrics") or {}).items():
        shown = ", ".join(f"{k} {v:.2f}" for k, v in m.items() if isinstance(v, float))
        print(f"  {split} ({m.get('samples')} samples): {shown}")
    for name, path in (summary.get("files") or {}).items():
        print(f"  {name}: {path}")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune", help="fine-tune a reconstruction model (MobRecon, CMR baseline, ...) on a mixture of datasets",
        description="Mixed fine-tuning with the shared trainer. Defaults are the model family's released recipe "
                    "(finetune/recipes.py); MobRecon's: 38 epochs, batch 32, Adam lr 1e-3 divided by 10 at epoch "
                    "30, 128x128 input, consistency losses from epoch 5; SAR's: AdamW 3e-4 cosine, 50 epochs, "
                    "batch 64, 256 px; CMR's: Adam 1e-4, 224 px. Datasets "
                    "are NAME:ROOT[:RATIO] (names: hands data list), e.g. --data freihand:~/data/FreiHAND:1.0 "
                    "--data complement:data/complement:0.5. Writes OUT/model.pt (hands predict / export-onnx "
                    "read it), metrics.json, pred_/gt_<split>.npz (hands evaluate reads them), scalars.csv, "
                    "curves.png and checkpoints/.")
    p.add_argument("--model", help="registry name (default mobrecon_densestack); hands model-stats lists them")
    p.add_argument("--data", action="append", help="training dataset NAME:ROOT[:RATIO] (repeatable)")
    p.add_argument("--eval", action="append", metavar="SPLIT=NAME:ROOT",
                   help="evaluation dataset under a split name (repeatable)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--pretrained-encoder", help="OUT/encoder.pt of hands pretrain (default: from scratch)")
    p.add_argument("--model-option", action="append", metavar="KEY=VALUE",
                   help="model setting, YAML value (e.g. lifting=heatmap, decoder=spiral, hand_model=mano)")
    p.add_argument("--no-consistency", action="store_true", help="without MobRecon's con2D / con3D losses")
    p.add_argument("--mismatch", choices=["error", "keypoints"],
                   help="meshes of another hand model's topology: refuse (default) or use only their keypoints")
    add_run_arguments(p, epochs=RECIPE["epochs"], batch=RECIPE["batch_size"], milestones="30")
    p.set_defaults(fn=_cmd_finetune)
