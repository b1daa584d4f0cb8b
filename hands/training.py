"""One way to train: a task's recipe (hands/recipes.py) + the user's settings -> a TrainConfig -> the trainer.

`hands train` (and its shorthands `hands pretrain`, `hands finetune`) and the pipeline stages all build
their run with `build_config` and start it with `launch` (in this process, or in Ray processes), so a
recipe changes in one place. `import finetune` here registers the fine-tuning tasks with the trainer's
task table (pretrain/tasks.py): this top layer knows every layer, the trainer below does not.
"""
from __future__ import annotations

import os
from pathlib import Path

# imported in every training process (Ray workers too) before the task is looked up
TASK_PACKAGES = ("finetune",)


def merge_options(base: dict, over: dict) -> dict:
    """Task options `over` on top of `base`; an 'augment' dict adds to the base's dict rather than replacing it
    (e.g. --camera-augment on top of a recipe's augmentation ranges)."""
    out = {**base, **over}
    if isinstance(base.get("augment"), dict) and isinstance(over.get("augment"), dict):
        out["augment"] = {**base["augment"], **over["augment"]}
    return out


def build_config(task: str, out, *, train: dict | None = None, options: dict | None = None):
    """The TrainConfig of a fresh run: the recipe of `task` (the model's family for mesh, the stage for sima),
    then `train` (TrainConfig settings) and `options` (task options) over it."""
    from hands.recipes import recipe
    from pretrain.trainer import TrainConfig

    options = dict(options or {})
    r = recipe(task, model=options.get("model"), stage=options.get("stage"))
    return TrainConfig.from_dict({**r["train"], **(train or {}), "out": str(out), "task": task,
                                  "task_options": merge_options(r["task"], options)})


def resumed_config(where, out, train: dict, options: dict):
    """(the TrainConfig saved in the checkpoint at `where` with these settings over it, the checkpoint file)."""
    from pretrain.checkpoint import find_checkpoint, load_checkpoint
    from pretrain.trainer import TrainConfig

    path = find_checkpoint(Path(where))
    saved = load_checkpoint(path)["config"]
    cfg = {**saved, **train, "out": str(out)}
    cfg["task_options"] = merge_options(saved.get("task_options", {}), options)
    return TrainConfig.from_dict(cfg), path


def import_tasks() -> None:
    import importlib

    for name in TASK_PACKAGES:
        importlib.import_module(name)


def run(config, resume=None, overwrite: bool = False):
    """Train `config` in this process; the trainer's TrainResult. A folder holding another run is refused
    unless `overwrite` (pretrain.trainer.claim_run_folder)."""
    import_tasks()
    from pretrain.trainer import train

    return train(config, resume=resume, overwrite=overwrite)


def launch(config, resume=None, *, overwrite: bool = False, workers: int = 0, address: str | None = None,
           gpus_per_worker: float = 0, cpus_per_worker: float = 1.0) -> dict:
    """Train in this process, or in `workers` Ray processes (or on the cluster at `address` / RAY_ADDRESS);
    the run's JSON summary. The run folder is claimed here, before any process starts."""
    from pretrain.distributed import run_distributed, train_config
    from pretrain.trainer import claim_run_folder

    if resume is None:
        claim_run_folder(config.out, overwrite)
    if (workers or 0) >= 1 or address or os.environ.get("RAY_ADDRESS"):
        fn = _Partial(train_config, config.to_dict(), str(resume) if resume else None, TASK_PACKAGES)
        results = run_distributed(fn, workers=max(1, workers or 0), gpus_per_worker=gpus_per_worker or 0,
                                  cpus_per_worker=cpus_per_worker, address=address,
                                  storage=str(Path(config.out) / "ray"))
        return next((r for r in results if r), {})
    return train_config(config.to_dict(), str(resume) if resume else None, TASK_PACKAGES)


class _Partial:
    """A picklable fn() -> f(*args) (functools.partial of a module function, spelled out for Ray)."""

    def __init__(self, f, *args):
        self.f, self.args = f, args

    def __call__(self):
        return self.f(*self.args)
