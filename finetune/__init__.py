"""Fine-tuning: reconstruction models, real-benchmark loaders, metrics, and the trainer's tasks.

The fine-tuning tasks register here with the shared trainer's task table (pretrain/tasks.py), as
lazy references: importing any part of `finetune` makes `mesh` and `sima` trainable by name
without loading torch until one is asked for.
"""
from pretrain.tasks import TASKS

TASKS.register("mesh", "finetune.task_mesh:MeshTask")
TASKS.register("sima", "finetune.task_sima:SiMATask")
