"""The fine-tuning recipe of each model family: trainer settings and task options, from the authors' releases.

`hands finetune --model NAME` starts from `recipe_for(NAME)`; flags override single values. Where a
paper gives its training schedule the release agrees with it; the rest (optimizer details, input
size, loss weights, when the consistency losses start, augmentation) is the release's:

| family | release | trainer | task |
| --- | --- | --- | --- |
| MobRecon (mobrecon_*) | SeanChenxy/HandMesh mobrecon/configs/defaults.py, mobrecon_ds.yml, runner.py | Adam 1e-3, x0.1 at epoch 30, 38 epochs, batch 32 | 128 px, consistency from epoch 5, normal 0.1 / edge 1.0 |
| CMR (cmr_*) | HandMesh options/base_options.py, cmr/main.py | Adam 1e-4, x0.1 at epoch 30, 38 epochs, batch 32 | 224 px, no consistency, every sample rotated (+-90 deg) |
| SAR (sar_*) | zxz267/SAR config.py, base.py, data/processing.py | AdamW 3e-4 (weight decay 0.01), cosine per epoch, 50 epochs, batch 64 | 256 px, no consistency; every sample rotated U(-180, 180) deg, box x U(0.9, 1.1), shifted U(-10, 10) of 130 px, channels x U(0.8, 1.2) clipped |

Families without a release of their own (SMR, the camera-space model, SiMA's single-view stage)
train with MobRecon's recipe, the baseline their papers compare with.
"""
from __future__ import annotations

import copy

MOBRECON = {
    "train": {"epochs": 38, "batch_size": 32, "lr": 1e-3, "milestones": [30], "optimizer": "adam",
              "schedule": "step"},
    "task": {"input_size": 128, "consistency": True, "consistency_from_epoch": 5, "loss_weights": "release"},
}

RECIPES = {
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
}


def family(model: str) -> str:
    """The recipe family of a registry name (its prefix before '_'), MobRecon's for the others."""
    head = str(model).split("_", 1)[0]
    return head if head in RECIPES else "mobrecon"


def recipe_for(model: str) -> dict:
    """{'train': TrainConfig settings, 'task': mesh task options} of the model's family (a copy)."""
    return copy.deepcopy(RECIPES[family(model)])
