"""What the trainer is given: its settings (`TrainConfig`) and a task (`Task`, what a model family brings).

A task subclass registers with `@register_task(name)` (pretrain/tasks.py) and provides `build_model`,
`train_dataset`, `eval_datasets`, `loss`, `evaluate` and `export`; the trainer (pretrain/trainer.py)
does the rest.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .tasks import TASKS

# config keys a resumed run may change; every other key must match the checkpoint's
RESUMABLE = {"epochs", "max_steps", "eval_every", "checkpoint_every", "keep_checkpoints", "log_every",
             "num_workers", "progress", "out", "device", "compile", "eval_samples"}


def default_num_workers() -> int:
    """DataLoader worker processes per training process: the CPUs this process may use, at most 4."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(4, n))



@dataclass
class TrainConfig:
    task: str = "pose2d"
    out: str = "runs/pretrain"
    epochs: int = 80
    batch_size: int = 128            # global: split over the processes of a distributed run
    lr: float = 1e-3
    optimizer: str = "adam"          # adam | adamw | sgd
    weight_decay: float = 0.0
    milestones: list | None = None   # epochs where lr *= gamma; None: epochs x (1/4, 1/2, 3/4)
    schedule: str = "step"           # step (milestones) | cosine (to 0 over the epochs, per epoch; SAR's release)
    gamma: float = 0.1
    seed: int = 0
    max_steps: int = 0               # stop after this many steps in all (0: epochs x steps per epoch)
    eval_every: int = 0              # steps between evaluations; 0: at the end of every epoch; <0: only at the end
    eval_samples: int = 1024         # per split in periodic evaluations (the final one uses all)
    checkpoint_every: int = 500      # steps between checkpoints (one is also written at the end)
    keep_checkpoints: int = 3
    log_every: int = 10              # steps between train/* rows of scalars.csv
    num_workers: int = -1            # DataLoader workers; -1: default_num_workers()
    grad_clip: float = 0.0           # max gradient norm (0: off)
    device: str = "auto"             # auto | cpu | cuda
    amp: str = "auto"                # auto (on with CUDA) | on | off
    compile: str = "auto"            # auto (on with CUDA) | on | off
    progress: bool = True
    task_options: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}; settings: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    def resolved_milestones(self) -> list:
        if self.milestones is None:
            return [round(self.epochs * f) for f in (0.25, 0.5, 0.75)]
        return [int(m) for m in self.milestones]

    def check(self, require_task: bool = True) -> None:
        from synth.settings import check_types, typed_fields

        check_types({f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, typed_fields(TrainConfig),
                    "training setting")
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"optimizer must be adam, adamw or sgd, got {self.optimizer!r}")
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"schedule must be step or cosine, got {self.schedule!r}")
        for name in ("amp", "compile"):
            if getattr(self, name) not in ("auto", "on", "off"):
                raise ValueError(f"{name} must be auto, on or off, got {getattr(self, name)!r}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if require_task and self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; tasks: {', '.join(TASKS.names()) or 'none registered'} "
                             "(fine-tuning's register when `finetune` is imported)")



class Task:
    """What a model family gives the trainer. Subclass, register with @register_task(name) (pretrain/tasks.py)."""

    name = "task"
    # DDP: True when some parameters may get no gradient in a step (e.g. encoder outputs a head ignores)
    find_unused_parameters = False

    def __init__(self, config: TrainConfig):
        self.config = config
        self.options = dict(config.task_options)
        self.epoch = 0   # the trainer sets it before every epoch (e.g. for losses switched on later)

    def build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def train_dataset(self) -> Dataset:
        raise NotImplementedError

    def eval_datasets(self) -> dict:
        """{split name: dataset}; may be empty."""
        return {}

    def collate(self, samples: list):
        return torch.utils.data.default_collate(samples)

    def loss(self, model, batch) -> tuple:
        """(loss tensor, {name: scalar tensor}) of one batch already on the device."""
        raise NotImplementedError

    def evaluate(self, model, loaders: dict, device, final: bool = False) -> dict:
        """{split: {metric: float or list}}; float entries are logged as eval/<split>/<metric>."""
        return {}

    def export(self, model, out: Path, metrics: dict, trainer) -> dict:
        """Write the task's outputs (weights, config, metrics); returns {name: path}."""
        return {}

    def describe_batch(self, batch, indices) -> list:
        """Names of the samples of a batch, for error messages."""
        keys = batch.get("key") if isinstance(batch, dict) else None
        return list(keys) if isinstance(keys, (list, tuple)) else [f"index {i}" for i in indices]

