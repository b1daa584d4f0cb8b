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

Output (`export`, finetune/task_common.py): OUT/model.pt (finetune.models.load_model),
OUT/finetune_config.json, OUT/metrics.json.
"""
from __future__ import annotations

import torch

from pretrain.tasks import register_task

from .task_common import ReconstructionTask, augment_config

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


@register_task("mesh")
class MeshTask(ReconstructionTask):
    """Fine-tuning of a reconstruction model (task_options: see DEFAULTS)."""

    DEFAULTS = DEFAULTS

    def __init__(self, config):
        super().__init__(config)
        self._model_reads_3d = None

    # -- model
    def build_model(self):
        model = self.build_named(self.options["model"])
        self._model_reads_3d = bool(getattr(model, "reads_keypoints_3d", True))
        return model

    # -- data
    def _open(self, specs: list) -> dict:
        from finetune.training_data import open_dataset

        return self.open_each(specs, lambda spec: open_dataset(spec, int(self.options["input_size"])))

    def train_dataset(self):
        from finetune.training_data import MixedTrainingSet, check_keypoints_3d, check_topology

        datasets = self._open(self.specs)
        check_topology(datasets, self.topology, self.options["mismatch"])
        if self._model_reads_3d is None:
            self.build_model()
        check_keypoints_3d(datasets, self._model_reads_3d, self.options["model"])
        return MixedTrainingSet(datasets, self.ratios(datasets), self.topology,
                                augment_config(self.options["augment"]), paired=bool(self.options["consistency"]),
                                seed=int(self.config.seed), epoch_size=self.options["epoch_size"])

    def eval_datasets(self) -> dict:
        from finetune.training_data import EvalSet, check_topology, open_dataset

        out = {}
        for split, spec in self.eval_specs.items():
            ds = open_dataset(spec, int(self.options["input_size"]))
            check_topology({split: ds}, self.topology, self.options["mismatch"])
            out[split] = EvalSet(ds, self.topology)
        return out

    # -- loss
    def base_weight(self, term: str, model=None) -> float:
        """The `loss_weights` preset's weight (release: the model's own `release_weights`; paper: 1)."""
        preset = self.options["loss_weights"]
        if preset not in ("release", "paper"):
            raise ValueError(f"mesh: loss_weights must be 'release' or 'paper', got {preset!r}")
        base = getattr(model, "release_weights", {}) if preset == "release" and model is not None else {}
        return float(base.get(term, 1.0))

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
    def evaluator(self, model, loader, device) -> tuple:
        from finetune.model_eval import evaluate_loader

        return evaluate_loader(model, loader, device)


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
