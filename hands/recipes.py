"""Every training recipe in one place: what `hands train` (and `hands pretrain` / `hands finetune`) and the
pipeline stages start from, before the user's settings.

`recipe(task, model=None, stage=None)` -> {'train': TrainConfig settings, 'task': task options} (a copy).
Where a paper gives its training schedule the release agrees with it; the rest (optimizer details, input
size, loss weights, when the consistency losses start, augmentation) is the release's:

| task / family | source | trainer | task |
| --- | --- | --- | --- |
| pose2d (pretraining) | MobRecon (seed 001) supplementary, Fig. 14 | Adam 1e-3, x0.1 at epochs x (1/4, 1/2, 3/4) = 20/40/60 of 80, batch 128 | DenseStack, 128 px |
| mesh: MobRecon (mobrecon_*) | seed 001 section 4.1; SeanChenxy/HandMesh mobrecon/configs/defaults.py, mobrecon_ds.yml, runner.py | Adam 1e-3, x0.1 at epoch 30, 38 epochs, batch 32 | 128 px, consistency from epoch 5, normal 0.1 / edge 1.0 |
| mesh: CMR (cmr_*) | HandMesh options/base_options.py, cmr/main.py | Adam 1e-4, x0.1 at epoch 30, 38 epochs, batch 32 | 224 px, no consistency, every sample rotated (+-90 deg) |
| mesh: SAR (sar_*) | zxz267/SAR config.py, base.py, data/processing.py | AdamW 3e-4 (weight decay 0.01), cosine per epoch, 50 epochs, batch 64 | 256 px, no consistency; every sample rotated U(-180, 180) deg, box x U(0.9, 1.1), shifted U(-10, 10) of 130 px, channels x U(0.8, 1.2) clipped |
| mesh: camera-space model (csr_*) | seed 002 section 5.1 (no release) | Adam 1e-4, x0.1 at epoch 40, 50 epochs, batch 32 | 224 px, no consistency (its loss has none) |
| sima: MVR-Hand / SVR-Hand | seed 003 section 5 (no release) | Adam; batch 64 (MVR) / 32 (SVR); lr and epochs not given: MobRecon's (1e-3, x0.1 at 30, 38 epochs), whose encoder pretraining the paper follows | 128 px, N = 8 views |

Families without a recipe of their own (SMR) train with MobRecon's, the baseline their paper compares with.
"""
from __future__ import annotations

import copy

PRETRAIN = {
    "train": {"epochs": 80, "batch_size": 128, "lr": 1e-3, "milestones": None, "optimizer": "adam",
              "schedule": "step"},
    "task": {"encoder": "densestack", "input_size": 128},
}

MOBRECON = {
    "train": {"epochs": 38, "batch_size": 32, "lr": 1e-3, "milestones": [30], "optimizer": "adam",
              "schedule": "step"},
    "task": {"input_size": 128, "consistency": True, "consistency_from_epoch": 5, "loss_weights": "release"},
}

MESH = {
    "mobrecon": MOBRECON,
    # release: options/base_options.py (--lr 1e-4, --decay_step 30, --epochs 38, --batch_size 32, --size 224)
    "cmr": {"train": {"epochs": 38, "batch_size": 32, "lr": 1e-4, "milestones": [30], "optimizer": "adam",
                      "schedule": "step"},
            "task": {"input_size": 224, "consistency": False,
                     "augment": {"rotation_prob": 1.0}}},   # cmr/datasets/FreiHAND/freihand.py: always rotated
    # release: config.py (lr 3e-4, 50 epochs, batch 64, input 256), base.py (AdamW with PyTorch's weight decay
    # 0.01, CosineAnnealingLR(T_max=50) stepped per epoch); data/processing.py get_aug_config (every sample:
    # box x U(0.9, 1.1), rotation U(-180, 180), centre shift U(-10, 10) px of the 130 px box, channel gains
    # U(0.8, 1.2) clipped; no photometric steps)
    "sar": {"train": {"epochs": 50, "batch_size": 64, "lr": 3e-4, "milestones": [], "optimizer": "adamw",
                      "weight_decay": 0.01, "schedule": "cosine"},
            "task": {"input_size": 256, "consistency": False,
                     "augment": {"rotation": 180.0, "rotation_prob": 1.0, "spread": 0.0, "scale": [1 / 1.1, 1 / 0.9],
                                 "translation": 10 / 130, "colour_prob": 0.0, "channel_gain": 0.2}}},
    # seed 002 section 5.1: Adam, batch 32, 50 epochs, 1e-4 divided by 10 at the 40th
    "csr": {"train": {"epochs": 50, "batch_size": 32, "lr": 1e-4, "milestones": [40], "optimizer": "adam",
                      "schedule": "step"},
            "task": {"input_size": 224, "consistency": False}},   # 224 px: finetune/models/csr.py's reading
}

# seed 003 section 5: Adam, batch 64 (MVR) and 32 (SVR), 128 px, all N = 8 views; the rest is MobRecon's
SIMA = {
    stage: {"train": {**MOBRECON["train"], "batch_size": batch},
            "task": {"stage": stage, "input_size": 128, **({"views": 8} if stage == "mvr" else {})}}
    for stage, batch in (("mvr", 64), ("svr", 32))
}

DEFAULT_MODEL = "mobrecon_densestack"
TASKS = ("pose2d", "mesh", "sima")


def family(model: str) -> str:
    """The recipe family of a registry name (its prefix before '_'), MobRecon's for the others."""
    head = str(model).split("_", 1)[0]
    return head if head in MESH else "mobrecon"


def recipe_for(model: str) -> dict:
    """{'train': TrainConfig settings, 'task': mesh task options} of the model's family (a copy)."""
    return copy.deepcopy(MESH[family(model)])


def recipe(task: str, model: str | None = None, stage: str | None = None) -> dict:
    """The recipe of a training task: pose2d, mesh (by the model's family) or sima (by stage, mvr or svr)."""
    if task == "pose2d":
        return copy.deepcopy(PRETRAIN)
    if task == "mesh":
        out = recipe_for(model or DEFAULT_MODEL)
        out["task"]["model"] = model or DEFAULT_MODEL
        return out
    if task == "sima":
        stage = stage or "mvr"
        if stage not in SIMA:
            raise ValueError(f"sima: stage must be 'mvr' or 'svr', got {stage!r}")
        return copy.deepcopy(SIMA[stage])
    raise ValueError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
