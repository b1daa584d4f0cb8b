"""The SiMA-Hand task of the shared trainer ("sima"): stage 'mvr' trains MVR-Hand on multi-view batches,
stage 'svr' trains SVR-Hand on the same kind of batches, one view at a time, distilling (equation 12)
from a frozen, trained MVR-Hand (`teacher`: a model file of `save_model`, e.g. OUT/model.pt of the
'mvr' stage).

task_options (DEFAULTS):
- stage: 'mvr' | 'svr'; model_options: keywords of sima_mvr / sima_svr (encoder, orient_dim, ...);
  pretrained_encoder: OUT/encoder.pt of `hands pretrain` (the paper pre-trains the encoder as MobRecon);
- views: N views per hand (the paper uses all 8 of Dex-YCB / HanCo); for 'svr' with a teacher it must
  be the teacher's num_views (taken from it when None);
- datasets / eval_datasets: finetune/training_data.py specs of loaders with multi-view access:
  'complement' (opened with multiview=N: N random views of a pose per item, redrawn every epoch) and
  'hanco' and 'dexycb' (multiview=True: the cameras of a frame, 8 in both; N of them drawn per item;
  a Dex-YCB setup with fewer cameras than N, e.g. s2, is refused when opened); single-view loaders
  are refused with a clear error;
- augment: per-view augmentation (finetune.augment, each view drawn independently; the canonical
  targets come from the augmented keypoints, so rotations stay consistent);
- weights: term -> weight (default 1; the paper's equation 11 is the plain sum);
- beta, gamma: the weights of L_SE and L_OE (equation 12; the paper gives no values);
  distill: False trains the same student without the distillation terms (the ablation baseline);
- orientation_phase_epoch: the rotated-mesh / joint and rotation terms (mesh_r, joint_r, rot) have
  weight 0 before this epoch (H2ONet's two-phase training: canonical shape and 2D first);
  0 switches them on from the start.

Evaluation (per split, every view of every item is a sample): finetune.model_eval's figures (PA-MPJPE,
PA-MPVPE, MPJPE, root error after root recovery, 2D px) plus rot_deg, the geodesic error of the
predicted orientation against the palm frame. MVR sees N views of a hand at once (N drawn from the
item's views with a fixed seed); SVR one at a time, every view of the item (e.g. complement with
options {multiview: 'all'}).
Export: OUT/model.pt (finetune.models.load_model), OUT/sima_config.json, OUT/metrics.json.
"""
from __future__ import annotations

import numpy as np
import torch

from pretrain.tasks import register_task

from .task_common import ReconstructionTask, augment_config
from .training_data import FirstView, MultiViewSet, collate_views, flatten_views, open_multiview

DEFAULTS = {
    "stage": "mvr",
    "model_options": {},
    "pretrained_encoder": None,
    "input_size": 128,
    "views": None,                   # None: 8, or the teacher's num_views
    "datasets": [],
    "eval_datasets": {},
    "epoch_size": None,
    "augment": True,
    "weights": {},
    "teacher": None,                 # 'svr': model file of a trained sima_mvr
    "distill": True,
    "beta": 1.0,
    "gamma": 1.0,
    "orientation_phase_epoch": 0,
    "mismatch": "error",
}
ORIENTATION_TERMS = ("mesh_r", "joint_r", "rot")
def run_sima(model, batch: dict) -> dict:
    """The model's per-view predictions (B*N, ...) of a multi-view batch: MVR all views at once, else one by one."""
    from finetune.models.base import unwrap

    inner = unwrap(model)
    if hasattr(inner, "num_views"):
        return model(batch["image"])
    return model(batch["image"].reshape(-1, *batch["image"].shape[2:]))


def rotation_error_deg(R_pred: torch.Tensor, R_gt: torch.Tensor) -> torch.Tensor:
    cos = ((torch.matmul(R_gt.transpose(-1, -2), R_pred).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2)
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


@torch.no_grad()
def predict_multiview(model, loader, device) -> dict:
    """predict_loader's arrays (finetune.model_eval) for multi-view batches, plus 'rot_deg' per view."""
    from finetune.models.root import camera_space
    from finetune.models.sima import canonical_targets

    parts: dict = {}
    for batch in loader:
        image = batch["image"].to(device)
        pred = run_sima(model, {"image": image})
        flat = flatten_views(batch)
        K = flat["K"].to(device).float()
        cam = camera_space(pred, K)
        gt_root = flat["keypoints_3d"][:, :1].float()
        rot = rotation_error_deg(pred["rotation"].float().cpu(), canonical_targets(flat)["R"])
        arrays = {"pred_rel": pred["keypoints_3d"], "pred_verts_rel": pred["vertices"],
                  "pred_uv": pred["keypoints_2d"], "pred_xyz": cam["keypoints_cam"],
                  "pred_verts": cam["vertices_cam"], "gt_rel": flat["keypoints_3d_rel"], "gt_xyz": flat["keypoints_3d"],
                  "gt_verts_rel": flat["vertices_rel"], "gt_verts": flat["vertices_rel"] + gt_root,
                  "gt_uv": flat["keypoints_2d"], "K": flat["K"], "mesh_valid": flat["mesh_valid"],
                  "uv_valid": flat["keypoints_2d_valid"], "rot_deg": rot}
        for k, v in arrays.items():
            parts.setdefault(k, []).append(v.detach().cpu().double().numpy())
        parts.setdefault("ids", []).extend(f"{d}/{i}" for d, i in zip(flat["dataset"], flat["sample_id"]))
    return {k: (np.concatenate(v) if k != "ids" else np.asarray(v)) for k, v in parts.items()}


def evaluate_multiview(model, loader, device) -> tuple:
    from finetune.model_eval import metrics_of

    was_training = model.training
    model.eval()
    arrays = predict_multiview(model, loader, device)
    model.train(was_training)
    metrics = metrics_of(arrays)
    metrics["rot_deg"] = float(arrays["rot_deg"].mean())
    return metrics, arrays


@register_task("sima")
class SiMATask(ReconstructionTask):
    """MVR-Hand / SVR-Hand training (task_options: see DEFAULTS and the module doc)."""

    DEFAULTS = DEFAULTS
    config_name = "sima_config.json"

    def __init__(self, config):
        super().__init__(config)
        if self.options["stage"] not in ("mvr", "svr"):
            raise ValueError(f"sima: stage must be 'mvr' or 'svr', got {self.options['stage']!r}")
        self.teacher = None
        if self.options["stage"] == "svr" and self.options["teacher"]:
            from finetune.models import load_model

            self.teacher = load_model(self.options["teacher"])
            if getattr(self.teacher, "registry_name", None) != "sima_mvr":
                raise ValueError(f"sima: teacher {self.options['teacher']} is a "
                                 f"{getattr(self.teacher, 'registry_name', '?')}, not a sima_mvr model")
            for p in self.teacher.parameters():
                p.requires_grad_(False)
            if self.options["views"] is None:
                self.options["views"] = int(self.teacher.num_views)
            elif int(self.options["views"]) != int(self.teacher.num_views):
                raise ValueError(f"sima: views={self.options['views']} but the teacher fuses "
                                 f"{self.teacher.num_views} views")
        self.views = int(self.options["views"] or 8)

    # -- model
    def build_model(self):
        extra = {"num_views": self.views} if self.options["stage"] == "mvr" else {}
        return self.build_named(f"sima_{self.options['stage']}", **extra)

    # -- data
    def _open(self, specs: list) -> dict:
        return self.open_each(specs, lambda spec: open_multiview(spec, int(self.options["input_size"]), self.views))

    def _set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def train_dataset(self):
        from finetune.training_data import check_topology

        datasets = self._open(self.specs)
        check_topology({k: FirstView(v) for k, v in datasets.items()}, self.topology, self.options["mismatch"])
        return MultiViewSet(datasets, self.topology, self.views, self.ratios(datasets),
                            augment_config(self.options["augment"]),
                            seed=int(self.config.seed), epoch_size=self.options["epoch_size"],
                            on_epoch=self._set_epoch)

    def eval_datasets(self) -> dict:
        out = {}
        for split, spec in self.eval_specs.items():
            ds = open_multiview(spec, int(self.options["input_size"]), self.views)
            # MVR fuses exactly N views; SVR is scored on every view of an item
            views = self.views if self.options["stage"] == "mvr" else None
            out[split] = MultiViewSet({split: ds}, self.topology, views, train=False)
        return out

    def collate(self, samples: list):
        return collate_views(samples)

    # -- loss
    def weight(self, term: str, model=None) -> float:
        if term in ORIENTATION_TERMS and self.epoch < int(self.options["orientation_phase_epoch"]):
            return 0.0
        if term == "se":
            return float(self.options["beta"])
        if term == "oe":
            return float(self.options["gamma"])
        return super().weight(term, model)

    def loss(self, model, batch) -> tuple:
        from finetune.models.base import unwrap
        from finetune.models.sima import distillation_terms

        pred = run_sima(model, batch)
        terms = unwrap(model).loss_terms(pred, flatten_views(batch))
        if self.teacher is not None and self.options["distill"]:
            teacher = self.teacher.to(batch["image"].device).eval()
            with torch.no_grad():
                t = teacher(batch["image"])
            terms.update(distillation_terms(pred, t, batch["image"].shape[1]))
        loss = sum(self.weight(k) * v for k, v in terms.items())
        return loss, {k: v.detach() for k, v in terms.items()}

    def describe_batch(self, batch, indices) -> list:
        if isinstance(batch, dict) and "sample_id" in batch:
            return [f"{d[0]}/{'+'.join(map(str, s))}" for d, s in zip(batch["dataset"], batch["sample_id"])]
        return super().describe_batch(batch, indices)

    # -- evaluation and export
    def evaluator(self, model, loader, device) -> tuple:
        return evaluate_multiview(model, loader, device)

    def exported_options(self) -> dict:
        return {**super().exported_options(), "views": self.views}
