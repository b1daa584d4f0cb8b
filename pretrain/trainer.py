"""The one trainer of the project: pretraining here, every fine-tuning model later.

    config (TrainConfig) -> task from TASKS (model, data, losses, metrics, export)
    -> optimiser and step schedule -> loop -> checkpoints, scalars, curves, export

A *task* (a `Task` subclass of pretrain/task.py, registered with
`@register_task(name)` of pretrain/tasks.py by the layer that defines it) is what a
model family brings: `build_model`, `train_dataset`, `eval_datasets`, `loss`,
`evaluate` and `export`. The trainer does the rest:

- **data order**: `EpochBatchSampler` draws the permutation of epoch e from
  `default_rng([seed, e])` and cuts it into global batches of `batch_size`
  (the last, short one dropped); with W processes rank r takes every W-th item
  of each global batch. The order is a function of (seed, epoch) only, so a
  resumed run sees the same batches; datasets with `set_epoch` get it before
  every epoch (for per-sample augmentation seeds). DataLoader workers get a
  private generator, so they never consume the global torch RNG.
- **schedule**: the learning rate is a function of the step: `lr * gamma^k`
  with k the number of milestones (epochs) already reached. The default
  milestones are the paper's schedule scaled to the run: epochs x (1/4, 1/2,
  3/4), i.e. 20, 40, 60 of 80 epochs.
- **checkpoints** every `checkpoint_every` steps and at the end (model,
  optimiser, step, RNG states of every rank, the running scalar sums);
  `fit(resume=...)` continues from one to the same weights an uninterrupted
  run reaches (tests/test_trainer.py checks equality).
- **NaN/inf guard**: a non-finite loss or gradient stops the run with
  `NonFiniteError` naming the step, the epoch, the batch index and the samples
  (and saves the batch to OUT/nonfinite_batch.pt).
- **scalars**: OUT/scalars.csv (train/* every `log_every` steps, eval/<split>/*
  at every evaluation) and OUT/curves.png; a tqdm bar on rank 0.
- **devices**: CUDA when present (mixed precision with `amp`, `torch.compile`
  with `compile`, both 'auto' = on with CUDA); plain float32 on CPU.
- **several processes** (pretrain/distributed.py starts them): when
  torch.distributed is initialised the model is wrapped in DDP, each rank
  loads its share of every global batch, rank 0 evaluates, logs and writes
  checkpoints, and buffers (BatchNorm statistics) are broadcast from rank 0
  before evaluation, checkpoints and the end, so every rank holds the same state.

Steps count from 1: "step N" is the N-th optimiser step.
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from . import checkpoint as ckpt
from .batching import EpochBatchSampler, subset as _subset, to_device as _to_device
from .curves import ScalarLog, plot_curves
from .task import RESUMABLE, Task, TrainConfig, default_num_workers
from .tasks import TASKS, register_task

__all__ = ["EpochBatchSampler", "NonFiniteError", "RESUMABLE", "TASKS", "Task", "TrainConfig", "TrainResult",
           "Trainer", "build_task", "default_num_workers", "register_task", "train"]

# evaluation entries that are counts, not curves worth a panel
NOT_LOGGED = {"samples"}
# what a run leaves in its folder besides checkpoints/ and its task's exports (which a new run rewrites)
RUN_FILES = ("scalars.csv", "curves.png", "metrics.json", "pred_*.npz", "gt_*.npz", "nonfinite_batch*.pt")


class NonFiniteError(RuntimeError):
    """A loss or gradient became NaN or infinite; the message names the step and the batch."""


def build_task(config: TrainConfig) -> Task:
    """The registered task of `config.task`, built on the config (unknown names are a ValueError)."""
    config.check()
    return TASKS.get(config.task)(config)


def claim_run_folder(out, overwrite: bool = False) -> None:
    """Refuse to start a fresh run in a folder that holds another run's checkpoints (one folder, two runs),
    unless `overwrite`: then that run's checkpoints, scalars and predictions are removed first."""
    out = Path(out)
    folder = ckpt.checkpoint_dir(out)
    if not (folder.is_dir() and any(folder.glob("*.pt"))):
        return
    if not overwrite:
        step = ""
        try:
            step = f" (step {int(ckpt.load_checkpoint(ckpt.find_checkpoint(out))['step'])})"
        except Exception:  # noqa: BLE001 - the refusal matters more than the step it names
            pass
        raise ValueError(f"{out} holds a run{step}: continue it with --resume, or replace it with --overwrite "
                         "(a pipeline: hands run ... --overwrite), or give another --out")
    import shutil

    shutil.rmtree(folder)
    for pattern in RUN_FILES:
        for path in out.glob(pattern):
            path.unlink()


@dataclass
class TrainResult:
    out: Path
    step: int
    epoch: int
    metrics: dict
    files: dict
    seconds: float


class Trainer:
    """Trainer(config, task=None).fit(resume=None) -> TrainResult."""

    def __init__(self, config: TrainConfig | dict, task: Task | None = None):
        if isinstance(config, dict):
            config = TrainConfig.from_dict(config)
        self.config = config
        if task is None:
            task = build_task(config)
        else:
            config.check(require_task=False)
        self.task = task
        self.out = Path(config.out)
        dist = torch.distributed
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        self.device = self._pick_device()
        cuda = self.device.type == "cuda"
        self.amp = config.amp == "on" or (config.amp == "auto" and cuda)
        if self.amp and not cuda:
            warnings.warn("amp=on needs CUDA; training in float32 on the CPU", stacklevel=2)
            self.amp = False
        self.amp_dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
        use_compile = config.compile == "on" or (config.compile == "auto" and cuda)

        torch.manual_seed(config.seed)  # the same initial weights on every rank and every fresh run
        np.random.seed(config.seed % 2**32)
        self.model = self.task.build_model().to(self.device)
        self.train_set = self.task.train_dataset()
        self.eval_sets = self.task.eval_datasets()
        self.sampler = EpochBatchSampler(len(self.train_set), config.batch_size, config.seed, self.rank, self.world)
        if self.sampler.batch_size < config.batch_size and self.rank == 0:
            warnings.warn(f"the training set has {len(self.train_set)} samples, fewer than batch_size "
                          f"{config.batch_size}: using batches of {self.sampler.batch_size}", stacklevel=2)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.total_steps = config.epochs * self.steps_per_epoch
        if config.max_steps:
            self.total_steps = min(self.total_steps, int(config.max_steps))
        self.milestones = config.resolved_milestones()

        self.train_model = self.model
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.train_model = DDP(self.model, device_ids=[self.device.index] if cuda else None,
                                   find_unused_parameters=bool(self.task.find_unused_parameters))
        if use_compile:
            self.train_model = torch.compile(self.train_model)
        self.optimizer = self._make_optimizer()
        self.scaler = torch.amp.GradScaler("cuda") if self.amp and self.amp_dtype == torch.float16 else None
        self.step = 0
        self.log_acc: dict = {}
        self.history: list = []   # evaluation summaries {step, epoch, metrics}
        self.scalars = ScalarLog(self.out / "scalars.csv")
        self.num_workers = default_num_workers() if config.num_workers < 0 else int(config.num_workers)

    # -- setup
    def _pick_device(self) -> torch.device:
        want = self.config.device
        if want == "cpu" or (want == "auto" and not torch.cuda.is_available()):
            return torch.device("cpu")
        if not torch.cuda.is_available():
            raise ValueError(f"device {want!r} asked for, but CUDA is not available")
        if want.startswith("cuda:"):
            return torch.device(want)
        # Ray gives each process its own CUDA_VISIBLE_DEVICES, so the local rank wraps around the visible count
        local = int(os.environ.get("LOCAL_RANK", self.rank)) % max(1, torch.cuda.device_count())
        torch.cuda.set_device(local)
        return torch.device("cuda", local)

    def _make_optimizer(self):
        c = self.config
        params = [p for p in self.model.parameters() if p.requires_grad]
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
        if c.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
        return torch.optim.SGD(params, lr=c.lr, momentum=0.9, weight_decay=c.weight_decay)

    def lr_at(self, step: int) -> float:
        """Learning rate of the step after `step` completed ones."""
        epoch = step // self.steps_per_epoch
        if self.config.schedule == "cosine":  # SAR's release (base.py): CosineAnnealingLR(T_max=epochs), per epoch
            return self.config.lr * 0.5 * (1.0 + math.cos(math.pi * min(epoch, self.config.epochs) / self.config.epochs))
        return self.config.lr * self.config.gamma ** sum(epoch >= m for m in self.milestones)

    # -- data
    def _train_loader(self, epoch: int, start: int) -> DataLoader:
        self.sampler.set_epoch(epoch, start)
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        return DataLoader(self.train_set, batch_sampler=self.sampler, num_workers=self.num_workers,
                          collate_fn=self.task.collate, pin_memory=self.device.type == "cuda",
                          generator=torch.Generator().manual_seed(self.config.seed + epoch),
                          persistent_workers=False)

    def eval_loaders(self, final: bool) -> dict:
        limit = 0 if final else self.config.eval_samples
        bs = max(1, min(self.config.batch_size, 64))
        return {name: DataLoader(_subset(ds, limit), batch_size=bs, shuffle=False, num_workers=self.num_workers,
                                 collate_fn=self.task.collate)
                for name, ds in self.eval_sets.items()}

    # -- state
    def state(self) -> dict:
        return {"config": self.config.to_dict(), "step": self.step, "epoch": self.step // self.steps_per_epoch,
                "steps_per_epoch": self.steps_per_epoch, "train_size": len(self.train_set),
                "world": self.world, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "rng": self._gather_rng(), "log_acc": {k: list(v) for k, v in self.log_acc.items()},
                "history": json.loads(json.dumps(self.history))}

    def _gather_rng(self) -> list:
        mine = ckpt.rng_state()
        if not self.distributed:
            return [mine]
        states = [None] * self.world
        torch.distributed.all_gather_object(states, mine)
        return states

    def save_checkpoint(self) -> Path | None:
        self._sync_buffers()
        state = self.state()  # every rank takes part in gathering the RNG states
        if self.rank != 0:
            return None
        return ckpt.save_checkpoint(self.out, state, keep=self.config.keep_checkpoints)

    def load_state(self, data: dict, source="checkpoint") -> None:
        saved = TrainConfig.from_dict(data["config"])
        mine, theirs = self.config.to_dict(), saved.to_dict()
        differ = sorted(k for k in mine if k not in RESUMABLE and mine[k] != theirs.get(k))
        if differ:
            raise ValueError(f"{source}: cannot resume with a different {', '.join(differ)} "
                             f"({'; '.join(f'{k}: checkpoint {theirs.get(k)!r}, now {mine[k]!r}' for k in differ)})")
        if data.get("train_size", len(self.train_set)) != len(self.train_set):
            raise ValueError(f"{source}: the training set had {data['train_size']} samples, now "
                             f"{len(self.train_set)}; resuming would change the data order")
        self.model.load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])
        if self.scaler is not None and data.get("scaler"):
            self.scaler.load_state_dict(data["scaler"])
        self.step = int(data["step"])
        self.log_acc = {k: list(v) for k, v in data.get("log_acc", {}).items()}
        self.history = list(data.get("history", []))
        rngs = data["rng"]
        ckpt.set_rng_state(rngs[self.rank] if len(rngs) == self.world else rngs[0])

    def resume(self, where) -> Path:
        """Load the checkpoint at `where` (file or run folder); rank 0 reads, the others receive it."""
        path = ckpt.find_checkpoint(where) if self.rank == 0 else None
        data = ckpt.load_checkpoint(path) if self.rank == 0 else None
        if self.distributed:
            box = [data, str(path)]
            torch.distributed.broadcast_object_list(box, src=0)
            data, path = box[0], Path(box[1])
        self.load_state(data, source=str(path))
        if self.rank == 0:
            self.scalars.truncate_after(self.step)
        return Path(path)

    def _sync_buffers(self) -> None:
        if self.distributed:
            for b in self.model.buffers():
                torch.distributed.broadcast(b, src=0)

    # -- the loop
    def fit(self, resume=None, overwrite: bool = False) -> TrainResult:
        """Train to the end; `resume`: a checkpoint file or run folder to continue. A run folder that already
        holds a run (a checkpoint) is refused unless it is resumed or `overwrite` replaces it."""
        t0 = time.time()
        if self.rank == 0:
            if resume is None:
                claim_run_folder(self.out, overwrite)
            self.out.mkdir(parents=True, exist_ok=True)
            ckpt.atomic_write_text(self.out / "config.json", json.dumps(self.config.to_dict(), indent=1))
        if resume is not None:
            path = self.resume(resume)
            if self.rank == 0 and self.config.progress:
                print(f"resumed from {path} at step {self.step} of {self.total_steps}")
        elif self.rank == 0 and (self.out / "scalars.csv").exists():
            self.scalars.truncate_after(0)
        from tqdm import tqdm

        bar = tqdm(total=self.total_steps, initial=self.step, unit="step", desc=f"train {self.task.name}",
                   disable=not self.config.progress or self.rank != 0, dynamic_ncols=True)
        c = self.config
        try:
            while self.step < self.total_steps:
                epoch, start = divmod(self.step, self.steps_per_epoch)
                self.task.epoch = epoch
                self.model.train()
                for i, batch in enumerate(self._train_loader(epoch, start)):
                    index = start + i
                    terms = self._train_step(batch, epoch, index)
                    self.step += 1
                    for k, v in terms.items():
                        s = self.log_acc.setdefault(k, [0.0, 0])
                        s[0] += v
                        s[1] += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{terms['loss']:.4g}", lr=f"{self.lr_at(self.step - 1):.1e}")
                    last = self.step >= self.total_steps
                    if self.step % c.log_every == 0 or last:
                        self._log_train(epoch)
                    end_of_epoch = self.step % self.steps_per_epoch == 0
                    due = (c.eval_every > 0 and self.step % c.eval_every == 0) or (c.eval_every == 0 and end_of_epoch)
                    if due and not last and self.eval_sets:
                        self.evaluate(final=False)
                    if c.checkpoint_every > 0 and self.step % c.checkpoint_every == 0 and not last:
                        self.save_checkpoint()
                    if last:
                        break
        finally:
            bar.close()
        metrics = self.evaluate(final=True) if self.eval_sets else {}
        self.save_checkpoint()
        files = {}
        if self.rank == 0:
            files = self.task.export(self.model, self.out, metrics, self) or {}
            files["curves"] = plot_curves(self.out / "scalars.csv", self.out / "curves.png") \
                if (self.out / "scalars.csv").exists() else None
            files["checkpoint"] = ckpt.checkpoint_dir(self.out) / ckpt.LAST
        return TrainResult(self.out, self.step, self.step // self.steps_per_epoch, metrics, files, time.time() - t0)

    def _train_step(self, batch, epoch: int, index: int) -> dict:
        c = self.config
        lr = self.lr_at(self.step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        batch = _to_device(batch, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            loss, terms = self.task.loss(self.train_model, batch)
        finite = bool(torch.isfinite(loss.detach()).item())
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        if c.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, c.grad_clip)
        else:
            grad_norm = torch.linalg.vector_norm(torch.stack([p.grad.detach().float().norm() for p in params])) \
                if params else torch.zeros(())
        grad_ok = self.scaler is not None or bool(torch.isfinite(grad_norm).item())  # the scaler skips inf steps
        bad = torch.tensor([0.0 if finite and grad_ok else 1.0], device=self.device)
        if self.distributed:
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        if bad.item() > 0:
            self._non_finite(batch, epoch, index, loss, terms, grad_norm, finite, grad_ok)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        out = {"loss": float(loss.detach())}
        out.update({k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in terms.items()})
        out["lr"] = lr
        out["grad_norm"] = float(grad_norm)
        return out

    def _non_finite(self, batch, epoch, index, loss, terms, grad_norm, finite, grad_ok):
        step = self.step + 1
        indices = self.sampler.global_batches(epoch)[index][self.rank::self.world].tolist()
        names = self.task.describe_batch(batch, indices)
        what = []
        if not finite:
            what.append(f"loss {float(loss.detach())}")
            what += [f"{k} {float(v.detach()) if isinstance(v, torch.Tensor) else v}" for k, v in terms.items()]
        elif not grad_ok:
            what.append(f"gradient norm {float(grad_norm)}")
        else:
            what.append("another process's loss or gradient")
        saved = ""
        if self.rank == 0 or not finite or not grad_ok:
            path = self.out / (f"nonfinite_batch_rank{self.rank}.pt" if self.world > 1 else "nonfinite_batch.pt")
            try:
                cpu = _to_device(batch, "cpu")
                ckpt.atomic_save({"step": step, "epoch": epoch, "batch_index": index, "indices": indices,
                                  "names": [str(n) for n in names],
                                  "batch": {k: v for k, v in cpu.items() if isinstance(v, torch.Tensor)}
                                  if isinstance(cpu, dict) else cpu}, path)
                saved = f"; the batch is saved in {path}"
            except Exception:  # noqa: BLE001 - the error below matters more than the dump
                pass
        shown = ", ".join(map(str, names[:8])) + (f" ... ({len(names)} samples)" if len(names) > 8 else "")
        raise NonFiniteError(f"non-finite value at step {step} (epoch {epoch}, batch {index} of "
                             f"{self.steps_per_epoch}, rank {self.rank}): {', '.join(what)}; "
                             f"samples: {shown}{saved}")

    def _log_train(self, epoch: int) -> None:
        if self.rank == 0 and self.log_acc:
            self.scalars.add(self.step, epoch, {f"train/{k}": s / max(n, 1) for k, (s, n) in self.log_acc.items()})
        self.log_acc = {}

    def evaluate(self, final: bool = False) -> dict:
        """Task metrics on the evaluation splits (rank 0; the others wait)."""
        self._sync_buffers()
        metrics = {}
        if self.rank == 0:
            was = self.model.training
            self.model.eval()
            with torch.no_grad(), torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
                metrics = self.task.evaluate(self.model, self.eval_loaders(final), self.device, final=final)
            self.model.train(was)
            flat = {f"eval/{split}/{k}": v for split, m in metrics.items() for k, v in m.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    and k not in NOT_LOGGED}
            epoch = max(0, self.step - 1) // self.steps_per_epoch
            self.scalars.add(self.step, epoch, flat)
            self.history.append({"step": self.step, "final": final,
                                 "metrics": {k: round(float(v), 6) for k, v in flat.items()}})
            if (self.out / "scalars.csv").exists():
                plot_curves(self.out / "scalars.csv", self.out / "curves.png")
        if self.distributed:
            torch.distributed.barrier()
        return metrics


def train(config: TrainConfig | dict, resume=None, task: Task | None = None, overwrite: bool = False) -> TrainResult:
    """Build a Trainer for `config` and run it (resume: a checkpoint file or run folder; overwrite: replace a
    run already in config.out)."""
    return Trainer(config, task=task).fit(resume=resume, overwrite=overwrite)
