"""finetune.mixture: ratios as epoch shares, sampling without replacement, determinism, replicas."""
from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DataLoader, Dataset

from finetune.mixture import MixtureDataset, MixtureSampler


class Numbers(Dataset):
    def __init__(self, name, n):
        self.name, self.n = name, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return {"dataset": self.name, "i": i}


@pytest.fixture
def mix():
    return MixtureDataset({"freihand": Numbers("freihand", 1000), "complement": Numbers("complement", 3000),
                           "rhd": Numbers("rhd", 200)})


def located(mix, idx):
    names = np.array([mix.locate(int(i))[0] for i in idx])
    return {n: int((names == n).sum()) for n in mix.names}


def test_ratios_are_epoch_shares(mix):
    s = MixtureSampler(mix, {"freihand": 1.0, "complement": 0.5}, seed=0)
    assert len(s) == 1500  # FreiHAND once + half as many complement samples
    idx = list(s)
    assert located(mix, idx) == {"freihand": 1000, "complement": 500, "rhd": 0}
    assert sorted(mix.locate(i)[1] for i in idx if mix.locate(i)[0] == "freihand") == list(range(1000))
    # explicit epoch size: proportions within one sample of r / sum(r)
    s = MixtureSampler(mix, [1.0, 0.5, 0.25], epoch_size=1001, seed=1)
    got = located(mix, list(s))
    assert sum(got.values()) == 1001
    for name, r in zip(mix.names, (1.0, 0.5, 0.25)):
        assert abs(got[name] - 1001 * r / 1.75) <= 1


def test_every_index_valid_and_readable(mix):
    s = MixtureSampler(mix, [0.3, 1.0, 2.0], epoch_size=5000, seed=2)
    idx = np.array(list(s))
    assert idx.min() >= 0 and idx.max() < len(mix)
    for i in idx[:50]:
        name, local = mix.locate(int(i))
        assert mix[int(i)] == {"dataset": name, "i": local}
    batch = next(iter(DataLoader(mix, batch_size=64, sampler=s)))
    assert len(batch["i"]) == 64


def test_without_replacement_across_epochs(mix):
    s = MixtureSampler(mix, {"freihand": 1.0, "complement": 0.5}, seed=3)
    seen = []
    for e in range(6):  # 500 complement samples an epoch: 6 epochs visit all 3000 once
        s.set_epoch(e)
        seen += [mix.locate(i)[1] for i in s if mix.locate(i)[0] == "complement"]
    assert sorted(seen) == list(range(3000))
    # a ratio asking for more than the dataset holds repeats whole permutations
    s = MixtureSampler(mix, {"freihand": 1.0, "rhd": 0.5}, seed=3)  # rhd: 500 of 200
    counts = np.bincount([mix.locate(i)[1] for i in s if mix.locate(i)[0] == "rhd"], minlength=200)
    assert counts.min() >= 2 and counts.max() <= 3 and counts.sum() == 500


def test_deterministic_by_seed_and_epoch(mix):
    a = MixtureSampler(mix, [1.0, 0.5, 0.1], seed=4)
    b = MixtureSampler(mix, [1.0, 0.5, 0.1], seed=4)
    assert list(a) == list(b)
    assert list(a) != list(MixtureSampler(mix, [1.0, 0.5, 0.1], seed=5))
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    np.testing.assert_array_equal(a.epoch_indices(0), np.array(first))


def test_replicas_split_one_epoch(mix):
    full = MixtureSampler(mix, [1.0, 0.5, 0.0], epoch_size=1001, seed=6).epoch_indices(0)
    parts = [list(MixtureSampler(mix, [1.0, 0.5, 0.0], epoch_size=1001, seed=6, num_replicas=4, rank=r))
             for r in range(4)]
    assert all(len(p) == 251 for p in parts)
    assert sorted(sum(parts, []))[:1001] != [] and set(sum(parts, [])) == set(full.tolist())


def test_bad_ratios(mix):
    with pytest.raises(ValueError, match="unknown datasets"):
        MixtureSampler(mix, {"stb": 1.0})
    with pytest.raises(ValueError, match=">= 0 and not all 0"):
        MixtureSampler(mix, [1.0, -1.0, 0.0])
    with pytest.raises(ValueError, match="not all 0"):
        MixtureSampler(mix, [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="3 ratios for 2 datasets"):
        MixtureSampler(MixtureDataset([Numbers("a", 3), Numbers("b", 4)]), [1, 1, 1])
    with pytest.raises(IndexError):
        mix.locate(len(mix))
