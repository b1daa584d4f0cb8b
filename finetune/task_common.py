"""What the fine-tuning tasks share (finetune/task_mesh.py, finetune/task_sima.py).

`ReconstructionTask` is a trainer Task (pretrain/task.py) whose options are checked against the
subclass's `DEFAULTS`, whose training and evaluation datasets are finetune/training_data.py specs,
whose model comes from the model registry with the task's input size, model options and pretrained
encoder, and whose mesh topology is the model's hand model's (DESIGN.md's topology guard). Its
evaluation writes OUT/pred_/gt_<split>.npz on the final pass and its export OUT/model.pt,
OUT/<config_name> and OUT/metrics.json. A subclass adds its data, loss and `evaluator`.
"""
from __future__ import annotations

import json
from pathlib import Path

from pretrain.task import Task


def augment_config(value):
    """The task option 'augment' (True, False, None or a dict of AugmentConfig fields) as an AugmentConfig."""
    from finetune.augment import AugmentConfig

    if value is None:
        return None
    return AugmentConfig.from_value(value)


class ReconstructionTask(Task):
    """Base of the tasks that train a finetune.models model on dataset specs (see the module doc)."""

    DEFAULTS: dict = {}
    config_name = "finetune_config.json"   # the run's settings file in OUT
    find_unused_parameters = True          # e.g. an encoder's maps the chosen 2D head does not read

    def __init__(self, config):
        super().__init__(config)
        unknown = sorted(set(self.options) - set(self.DEFAULTS))
        if unknown:
            raise ValueError(f"{self.name}: unknown option(s) {unknown}; options: {sorted(self.DEFAULTS)}")
        self.options = {**self.DEFAULTS, **self.options}
        from finetune.training_data import parse_spec

        self.specs = [parse_spec(s) for s in self.options["datasets"]]
        if not self.specs:
            raise ValueError(f"{self.name}: no training datasets (task_options['datasets'], e.g. "
                             "['complement:runs/demo/complement'])")
        evals = self.options["eval_datasets"] or {}
        if not isinstance(evals, dict):
            raise ValueError(f"{self.name}: eval_datasets must map split names to specs, got {evals!r}")
        self.eval_specs = {k: parse_spec(v) for k, v in evals.items()}
        self._topology = None

    # -- model
    def model_kwargs(self) -> dict:
        kw = {"input_size": int(self.options["input_size"]), **dict(self.options["model_options"])}
        if self.options["pretrained_encoder"]:
            kw["pretrained_encoder"] = str(self.options["pretrained_encoder"])
        return kw

    def build_named(self, name: str, **extra):
        from finetune.models import build_model

        model = build_model(name, **self.model_kwargs(), **extra)
        self._topology = model.topology
        return model

    @property
    def topology(self) -> str:
        """The mesh topology of the model's hand model (known before the model is built)."""
        if self._topology is None:
            from synth.hand_model import resolve_hand_model

            self._topology = resolve_hand_model(self.options["model_options"].get("hand_model", "openhand")).topology
        return self._topology

    # -- data
    def open_each(self, specs: list, opener) -> dict:
        """{name: opener(spec)}, a repeated dataset name made unique as 'name#k'."""
        out = {}
        for spec in specs:
            name = spec["name"] if spec["name"] not in out else f"{spec['name']}#{len(out)}"
            out[name] = opener(spec)
        return out

    def ratios(self, datasets: dict) -> dict:
        return {name: spec["ratio"] for name, spec in zip(datasets, self.specs)}

    # -- loss
    def weight(self, term: str, model=None) -> float:
        """A loss term's weight: the `weights` option over `base_weight` (1 unless a subclass says otherwise)."""
        return float(self.options["weights"].get(term, self.base_weight(term, model)))

    def base_weight(self, term: str, model=None) -> float:
        return 1.0

    # -- evaluation and export
    def evaluator(self, model, loader, device) -> tuple:
        """(metrics, arrays) of one evaluation split."""
        raise NotImplementedError

    def evaluate(self, model, loaders: dict, device, final: bool = False) -> dict:
        return evaluate_splits(self.evaluator, model, loaders, device, Path(self.config.out) if final else None)

    def exported_options(self) -> dict:
        return {**self.options, "datasets": self.specs, "eval_datasets": self.eval_specs}

    def export(self, model, out: Path, metrics: dict, trainer) -> dict:
        return write_run_outputs(model, out, metrics, trainer, self.exported_options(), self.config_name)


def evaluate_splits(evaluator, model, loaders: dict, device, prediction_dir: Path | None = None) -> dict:
    """{split: metrics} of `evaluator(model, loader, device) -> (metrics, arrays)`; with prediction_dir
    (the final evaluation) also the pred_/gt_<split>.npz files `hands evaluate` reads."""
    from finetune.model_eval import write_prediction_files

    out = {}
    for split, loader in loaders.items():
        out[split], arrays = evaluator(model, loader, device)
        if prediction_dir is not None:
            write_prediction_files(prediction_dir, split, arrays)
    return out


def write_run_outputs(model, out: Path, metrics: dict, trainer, task_options: dict, config_name: str) -> dict:
    """OUT/model.pt, OUT/<config_name> (the run's settings, task options resolved) and OUT/metrics.json."""
    from finetune.models import save_model
    from pretrain.checkpoint import atomic_write_text

    out = Path(out)
    files = {"model": save_model(out / "model.pt", model, step=int(trainer.step),
                                 metrics=json.loads(json.dumps(metrics)))}
    cfg = trainer.config.to_dict()
    cfg["task_options"] = task_options
    cfg.update(milestones_resolved=trainer.milestones, steps_per_epoch=trainer.steps_per_epoch,
               total_steps=trainer.total_steps)
    atomic_write_text(out / config_name, json.dumps(cfg, indent=1, default=str))
    atomic_write_text(out / "metrics.json", json.dumps({"step": trainer.step, "splits": metrics,
                                                        "history": trainer.history}, indent=1))
    files.update(config=out / config_name, metrics=out / "metrics.json")
    return files
