"""The trainer's data order: seeded per-epoch global batches split over processes, and small batch helpers."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Sampler


class EpochBatchSampler(Sampler):
    """Global batches of a seeded per-epoch permutation; rank r of W takes batch[r::W].

    `set_epoch(epoch, start=k)` skips the first k batches (resuming mid-epoch).
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world: int = 1,
                 shuffle: bool = True):
        if n < 1:
            raise ValueError("the training set is empty")
        self.n, self.seed, self.rank, self.world, self.shuffle = int(n), int(seed), int(rank), int(world), shuffle
        self.batch_size = min(int(batch_size), self.n)
        if self.batch_size < self.world or self.batch_size % self.world:
            raise ValueError(f"batch size {self.batch_size} does not split over {self.world} processes "
                             f"(it must be a multiple of the process count)")
        self.epoch, self.start = 0, 0

    def __len__(self) -> int:
        return self.steps_per_epoch - self.start

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.batch_size

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def global_batches(self, epoch: int) -> list:
        order = np.random.default_rng([self.seed, int(epoch)]).permutation(self.n) if self.shuffle \
            else np.arange(self.n)
        b = self.batch_size
        return [order[i * b:(i + 1) * b] for i in range(self.steps_per_epoch)]

    def __iter__(self):
        for batch in self.global_batches(self.epoch)[self.start:]:
            yield batch[self.rank::self.world].tolist()


def to_device(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def subset(dataset, limit: int):
    if limit and len(dataset) > limit:
        idx = np.linspace(0, len(dataset) - 1, limit).round().astype(int)
        return torch.utils.data.Subset(dataset, sorted(set(idx.tolist())))
    return dataset

