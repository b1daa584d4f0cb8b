"""The training tasks by name (`TASKS`), registered by the layer that defines each task.

A task is what a model family brings to the shared trainer (pretrain/task.py's `Task`). Each layer
registers its own: pretraining's `pose2d` here, fine-tuning's `mesh` and `sima` in finetune/__init__.py
(lazily: "module:Class" references), so the trainer below them never names a module above it.
Importing this module is light (no torch).
"""
from __future__ import annotations

from .registry import Registry

TASKS = Registry("task", {"pose2d": "pretrain.task2d:Pose2DTask"})


def register_task(name: str):
    """Class decorator: `@register_task("mesh")` makes the Task subclass trainable as task `name`."""
    def deco(cls):
        TASKS.register(name, cls)
        cls.name = name
        return cls
    return deco
