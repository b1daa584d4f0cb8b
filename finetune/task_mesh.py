"""The fine-tuning task of the shared trainer: any reconstruction model of finetune.models on a mixture.

task_options (DEFAULTS): the model by registry name and its keywords, the pretrained encoder file
of `hands pretrain` (or none: from scratch), the training datasets with ratios
(finetune/training_data.py specs), evaluation datasets, augmentation, MobRecon's consistency
losses and the loss weights.

Loss: sum of weight x term over the model's `loss_terms` (MobRecon: mesh, pose2d, normal, edge,
equation 9) plus, with `consistency`, equation 10 on two augmented views of each image:

    con3D = | R_12 V_1 - V_2 |_1   (root-relative vertices, in the decoder's 0.2 m units)
    con2D = | T_12 L_1 - L_2 |_1   (2D keypoints, [0, 1] crop units: pixels / S, as the release)

The paper's total (equation 11) is the plain sum; the release weighs normal 0.1 and edge 1.0
(`loss_weights: release`, the default: the model's `release_weights`; `paper` gives every term 1)
and switches con2D / con3D on only from epoch 5 (`consistency_from_epoch`; runner.py passes the
augmentation parameters only when `epoch > 4`). With consistency on, both views are supervised too,
so a batch of B items is 2B images, before and after the consistency terms start.

Evaluation (per evaluation dataset): PA-MPJPE and PA-MPVPE (FreiHAND's Procrustes alignment,
finetune.metrics.align), root-relative MPJPE, the 2D error in crop pixels, and the root error of
the camera-space keypoints from root recovery (finetune/models/root.py) against the ground truth.
The final evaluation also writes OUT/pred_<split>.npz and OUT/gt_<split>.npz in the format
`hands evaluate` reads (camera-frame xyz and verts, uv, K, ids), so the benchmark metrics run on them.

Output (`export`): OUT/model.pt (finetune.models.load_model), OUT/finetune_config.json, OUT/metrics.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from pretrain.trainer import Task, register_task

DEFAULTS = {
    "model": "mobrecon_densestack",
    "model_options": {},            # keywords of the model factory (lifting, decoder, hand_model, ...)
    "pretrained_encoder": None,     # OUT/encoder.pt of `hands pretrain`; None trains from scratch
    "input_size": 128,
    "datasets": [],                 # training specs: [{"name", "root", "ratio", "options"}] or "NAME:ROOT[:RATIO]"
    "eval_datasets": {},            # {split name: spec}
    "epoch_size": None,             # samples per epoch (None: the first dataset once, the rest by ratio)
    "augment": True,                # True, False, or a dict of finetune.augment.AugmentConfig fields
    "consistency": True,            # MobRecon's con2D / con3D on paired views
    "consistency_from_epoch": 5,    # con2D / con3D from this epoch on (release runner.py: `self.epoch > 4`)
    "loss_weights": "release",      # release: the model's release_weights (MobRecon: normal 0.1); paper: all 1
    "weights": {},                  # term -> weight, over loss_weights' (e.g. {normal: 0.5})
    "mismatch": "error",            # meshes of another topology: 'error' or 'keypoints' (keypoints only)
}


def _augment_config(value):
    from finetune.augment import AugmentConfig

    if value is None:
        return None
    return AugmentConfig.from_value(value)


@register_task("mesh")
class MeshTask(Task):
    """Fine-tuning of a reconstruction model (task_options: see DEFAULTS)."""

    find_unused_parameters = True   # e.g. an encoder's maps the chosen 2D head does not read

    def __init__(self, config):
        super().__init__(config)
        unknown = sorted(set(self.options) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"mesh: unknown option(s) {unknown}; options: {sorted(DEFAULTS)}")
        self.options = {**DEFAULTS, **self.options}
        from finetune.training_data import parse_spec

        self.specs = [parse_spec(s) for s in self.options["datasets"]]
        if not self.specs:
            raise ValueError("mesh: no training datasets (task_options['datasets'], e.g. ['freihand:~/data/FreiHAND'])")
        evals = self.options["eval_datasets"] or {}
        if not isinstance(evals, dict):
            raise ValueError(f"mesh: eval_datasets must map split names to specs, got {evals!r}")
        self.eval_specs = {k: parse_spec(v) for k, v in evals.items()}
        self._model_topology = None
        self._model_reads_3d = None

    # -- model
    def model_kwargs(self) -> dict:
        kw = {"input_size": int(self.options["input_size"]), **dict(self.options["model_options"])}
        if self.options["pretrained_encoder"]:
            kw["pretrained_encoder"] = str(self.options["pretrained_encoder"])
        return kw

    def build_model(self):
        from finetune.models import build_model

        model = build_model(self.options["model"], **self.model_kwargs())
        self._model_topology = model.topology
        self._model_reads_3d = bool(getattr(model, "reads_keypoints_3d", True))
        return model

    @property
    def topology(self) -> str:
        if self._model_topology is None:
            from finetune.models.base import hand_model_topology
            from synth.hand_model import HandModel

            hm = self.options["model_options"].get("hand_model", "openhand")
            self._model_topology = hand_model_topology(HandModel(hm))
        return self._model_topology

    # -- data
    def _open(self, specs: list) -> dict:
        from finetune.training_data import open_dataset

        out = {}
        for spec in specs:
            name = spec["name"] if spec["name"] not in out else f"{spec['name']}#{len(out)}"
            out[name] = open_dataset(spec, int(self.options["input_size"]))
        return out

    def train_dataset(self):
        from finetune.training_data import MixedTrainingSet, check_keypoints_3d, check_topology

        datasets = self._open(self.specs)
        check_topology(datasets, self.topology, self.options["mismatch"])
        if self._model_reads_3d is None:
            self.build_model()
        check_keypoints_3d(datasets, self._model_reads_3d, self.options["model"])
        ratios = {name: spec["ratio"] for name, spec in zip(datasets, self.specs)}
        return MixedTrainingSet(datasets, ratios, self.topology, _augment_config(self.options["augment"]),
                                paired=bool(self.options["consistency"]), seed=int(self.config.seed),
                                epoch_size=self.options["epoch_size"])

    def eval_datasets(self) -> dict:
        from finetune.training_data import EvalSet, check_topology, open_dataset

        out = {}
        for split, spec in self.eval_specs.items():
            ds = open_dataset(spec, int(self.options["input_size"]))
            check_topology({split: ds}, self.topology, self.options["mismatch"])
            out[split] = EvalSet(ds, self.topology)
        return out

    # -- loss
    def weight(self, term: str, model=None) -> float:
        """The weight of a loss term: `weights` over the `loss_weights` preset (release: the model's own)."""
        preset = self.options["loss_weights"]
        if preset not in ("release", "paper"):
            raise ValueError(f"mesh: loss_weights must be 'release' or 'paper', got {preset!r}")
        base = getattr(model, "release_weights", {}) if preset == "release" and model is not None else {}
        return float(self.options["weights"].get(term, base.get(term, 1.0)))

    def consistency_on(self) -> bool:
        return bool(self.options["consistency"]) and self.epoch >= int(self.options["consistency_from_epoch"])

    def loss(self, model, batch) -> tuple:
        from finetune.models.base import run_model, unwrap
        from finetune.training_data import concat_views

        inner = unwrap(model)
        paired = "view1" in batch
        flat = concat_views(batch) if paired else batch
        pred = run_model(model, flat["image"], flat["K"])
        terms = inner.loss_terms(pred, flat)
        if paired and self.consistency_on():
            terms.update(consistency_terms(pred, batch, inner.input_size))
        loss = sum(self.weight(k, inner) * v for k, v in terms.items())
        return loss, {k: v.detach() for k, v in terms.items()}

    def describe_batch(self, batch, indices) -> list:
        b = batch.get("view1", batch) if isinstance(batch, dict) else {}
        ids = b.get("sample_id") if isinstance(b, dict) else None
        names = b.get("dataset") if isinstance(b, dict) else None
        if ids and names:
            return [f"{n}/{i}" for n, i in zip(names, ids)]
        return super().describe_batch(batch, indices)

    # -- evaluation
    def evaluate(self, model, loaders: dict, device, final: bool = False) -> dict:
        from finetune.model_eval import evaluate_loader

        return evaluate_splits(evaluate_loader, model, loaders, device, Path(self.config.out) if final else None)

    def export(self, model, out: Path, metrics: dict, trainer) -> dict:
        options = {**self.options, "datasets": self.specs, "eval_datasets": self.eval_specs}
        return write_run_outputs(model, out, metrics, trainer, options, "finetune_config.json")


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

    out = Path(out)
    files = {"model": save_model(out / "model.pt", model, step=int(trainer.step),
                                 metrics=json.loads(json.dumps(metrics)))}
    cfg = trainer.config.to_dict()
    cfg["task_options"] = task_options
    cfg.update(milestones_resolved=trainer.milestones, steps_per_epoch=trainer.steps_per_epoch,
               total_steps=trainer.total_steps)
    (out / config_name).write_text(json.dumps(cfg, indent=1, default=str))
    (out / "metrics.json").write_text(json.dumps({"step": trainer.step, "splits": metrics,
                                                  "history": trainer.history}, indent=1))
    files.update(config=out / config_name, metrics=out / "metrics.json")
    return files


def consistency_terms(pred: dict, batch: dict, input_size: int) -> dict:
    """Equation 10 on a paired batch whose prediction covers [view 1; view 2]."""
    from finetune.models.base import VERTEX_SCALE

    B = batch["T_12"].shape[0]
    verts = pred.get("decoded", pred["vertices"])       # release (loss.py contrastive_loss_3d): the decoder's mesh
    v1, v2 = verts[:B].float(), verts[B:].float()
    R = batch["R_12"].float()
    con3d = (torch.einsum("bij,bvj->bvi", R, v1) - v2).abs().mean() / VERTEX_SCALE
    T = batch["T_12"].float()
    l1, l2 = pred["keypoints_2d"][:B].float(), pred["keypoints_2d"][B:].float()
    mapped = torch.einsum("bij,bnj->bni", T[:, :2, :2], l1) + T[:, None, :2, 2]
    con2d = (mapped - l2).abs().mean() / input_size                # pixels -> [0, 1] units (release: loss.py)
    return {"con3d": con3d, "con2d": con2d}
