"""Mixing datasets with ratios, reproducibly.

`MixtureDataset(datasets)` is a ConcatDataset over named datasets (global index = offset of the
dataset + local index); `locate(i)` gives (name, local index).

`MixtureSampler(mixture, ratios, epoch_size=None, seed=0)` draws each epoch's indices. What a
ratio means, exactly:

    ratios are relative shares of an epoch. With ratios r_d (r_d >= 0, not all 0) and epoch
    size E, dataset d contributes n_d samples with n_d / E = r_d / sum(r) (largest-remainder
    rounding, so sum(n_d) == E exactly).
    E defaults to len(first dataset with r > 0) * sum(r) / r_first: the first dataset is drawn
    exactly once per epoch and the others in proportion. "FreiHAND 1.0 + complement 0.5" thus
    means: every FreiHAND sample once per epoch, plus half as many complement samples
    (E = 1.5 x len(FreiHAND)).

Within a dataset, samples are taken without replacement from a stream of random permutations
(permutation k of dataset d is seeded by (seed, d, k)): epoch e takes items
[e n_d, (e + 1) n_d) of that stream, so over successive epochs every sample of a large dataset
is visited before any repeats, and n_d > len(d) repeats whole permutations. The epoch's indices
are then shuffled with a generator seeded by (seed, e). Same seed and epoch -> same indices.

For several processes (Ray Train / DDP), num_replicas and rank give each process every
num_replicas-th index of the same epoch list (the list is padded by wrapping around so each
process gets the same count).
"""
from __future__ import annotations

import bisect
import math

import numpy as np
from torch.utils.data import ConcatDataset, Sampler


class MixtureDataset(ConcatDataset):
    def __init__(self, datasets):
        if isinstance(datasets, dict):
            names, dsets = list(datasets), list(datasets.values())
        else:
            dsets = list(datasets)
            names = [getattr(d, "name", type(d).__name__) for d in dsets]
        if not dsets:
            raise ValueError("MixtureDataset needs at least one dataset")
        if len(set(names)) != len(names):
            names = [f"{n}#{i}" for i, n in enumerate(names)]
        self.names = names
        super().__init__(dsets)
        self.sizes = [len(d) for d in dsets]
        self.offsets = [0] + list(self.cumulative_sizes[:-1])

    def locate(self, index: int) -> tuple:
        """(dataset name, local index) of a global index."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        d = bisect.bisect_right(self.cumulative_sizes, index)
        return self.names[d], index - self.offsets[d]


def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    rest = total - int(counts.sum())
    if rest > 0:
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:rest]] += 1
    return counts


class MixtureSampler(Sampler):
    """Each epoch's global indices into a MixtureDataset with the given ratios (see the module doc)."""

    def __init__(self, mixture: MixtureDataset, ratios, epoch_size: int | None = None, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0):
        if isinstance(ratios, dict):
            unknown = set(ratios) - set(mixture.names)
            if unknown:
                raise ValueError(f"ratios name unknown datasets {sorted(unknown)}; the mixture has {mixture.names}")
            ratios = [ratios.get(n, 0.0) for n in mixture.names]
        r = np.asarray(ratios, dtype=np.float64)
        if r.shape != (len(mixture.sizes),):
            raise ValueError(f"{len(r)} ratios for {len(mixture.sizes)} datasets")
        if np.any(r < 0) or not np.any(r > 0) or not np.all(np.isfinite(r)):
            raise ValueError(f"ratios must be finite, >= 0 and not all 0, got {list(r)}")
        empty = [n for n, size, x in zip(mixture.names, mixture.sizes, r) if x > 0 and size == 0]
        if empty:
            raise ValueError(f"datasets {empty} are empty but have a ratio > 0")
        if epoch_size is None:
            first = int(np.flatnonzero(r > 0)[0])
            epoch_size = int(round(mixture.sizes[first] * r.sum() / r[first]))
        if epoch_size <= 0:
            raise ValueError(f"epoch_size must be > 0, got {epoch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} not in 0..{num_replicas - 1}")
        self.mixture = mixture
        self.ratios = r
        self.epoch_size = int(epoch_size)
        self.counts = _largest_remainder(self.epoch_size, r)
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _stream(self, d: int, start: int, count: int) -> np.ndarray:
        """Items [start, start + count) of dataset d's stream of permutations (local indices)."""
        size = self.mixture.sizes[d]
        out = []
        k, pos = divmod(start, size)
        while count > 0:
            perm = np.random.default_rng(np.random.SeedSequence([self.seed, d, k])).permutation(size)
            take = perm[pos:pos + count]
            out.append(take)
            count -= len(take)
            k, pos = k + 1, 0
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def epoch_indices(self, epoch: int | None = None) -> np.ndarray:
        """All global indices of an epoch (before the split over replicas)."""
        e = self.epoch if epoch is None else int(epoch)
        parts = [self._stream(d, e * int(n), int(n)) + self.mixture.offsets[d]
                 for d, n in enumerate(self.counts) if n > 0]
        idx = np.concatenate(parts).astype(np.int64)
        return np.random.default_rng(np.random.SeedSequence([self.seed, 2 ** 31 - 1, e])).permutation(idx)

    def __iter__(self):
        idx = self.epoch_indices()
        if self.num_replicas > 1:
            per = math.ceil(len(idx) / self.num_replicas)
            idx = np.resize(idx, per * self.num_replicas)[self.rank::self.num_replicas]
        return iter(idx.tolist())

    def __len__(self) -> int:
        return math.ceil(self.epoch_size / self.num_replicas)
