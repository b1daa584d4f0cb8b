"""pretrain.trainer: data order, schedule, checkpoints and exact resume, NaN guard, scalars and curves,
two Ray workers in sync. A toy task (a small MLP with BatchNorm and dropout on seeded data with
per-epoch noise) keeps these fast; tests/test_pretrain.py runs the real 2D-pose task."""
from __future__ import annotations

import csv
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from pretrain import checkpoint as ckpt
from pretrain.curves import ScalarLog, plot_curves, read_scalars
from pretrain.trainer import (EpochBatchSampler, NonFiniteError, Task, TrainConfig, Trainer, default_num_workers,
                              train)


class ToyData(Dataset):
    """y = W x + per-epoch noise drawn from (seed, epoch, index), like the real augmentation."""

    def __init__(self, n=48, seed=0, nan_at=None):
        g = np.random.default_rng(seed)
        self.x = g.normal(size=(n, 8)).astype(np.float32)
        self.w = g.normal(size=(8, 2)).astype(np.float32)
        self.nan_at, self.epoch, self.seed = nan_at, 0, seed

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, i]))
        x = self.x[i] + rng.normal(0, 0.05, 8).astype(np.float32)
        if self.nan_at is not None and i == self.nan_at:
            x = x * np.nan
        return {"x": torch.from_numpy(x), "y": torch.from_numpy(self.x[i] @ self.w), "key": f"toy_{i:03d}"}


class ToyTask(Task):
    name = "toy"

    def __init__(self, config, nan_at=None, die_at_step=None):
        super().__init__(config)
        self.nan_at, self.die_at_step, self.calls = nan_at, die_at_step, 0

    def build_model(self):
        return nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 2))

    def train_dataset(self):
        return ToyData(nan_at=self.nan_at)

    def eval_datasets(self):
        return {"val": ToyData(n=16, seed=1)}

    def loss(self, model, batch):
        self.calls += 1
        if self.die_at_step is not None and self.calls == self.die_at_step:
            raise KeyboardInterrupt("killed")
        mse = ((model(batch["x"]) - batch["y"]) ** 2).mean()
        return mse, {"mse": mse.detach()}

    def evaluate(self, model, loaders, device, final=False):
        out = {}
        for name, loader in loaders.items():
            err = [((model(b["x"]) - b["y"]) ** 2).mean().item() for b in loader]
            out[name] = {"mse": float(np.mean(err))}
        return out

    def export(self, model, out, metrics, trainer):
        path = out / "toy.pt"
        torch.save(model.state_dict(), path)
        return {"model": path}


def _config(tmp_path, name="run", **kw):
    base = dict(task="toy", out=str(tmp_path / name), epochs=4, batch_size=8, lr=1e-2, num_workers=0,
                progress=False, checkpoint_every=5, log_every=2, eval_every=0)
    base.update(kw)
    return TrainConfig(**base)


def _same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ---------------------------------------------------------------- data order and schedule

def test_sampler_order_is_a_function_of_seed_and_epoch():
    s = EpochBatchSampler(20, 4, seed=3)
    assert s.steps_per_epoch == 5 and len(s) == 5
    e0 = list(s)
    assert sorted(i for b in e0 for i in b) == list(range(20))
    assert e0 == list(EpochBatchSampler(20, 4, seed=3))
    s.set_epoch(1)
    assert list(s) != e0
    s.set_epoch(0, start=2)
    assert list(s) == e0[2:] and len(s) == 3
    # two ranks split every global batch and together see exactly it
    r0, r1 = (list(EpochBatchSampler(20, 4, seed=3, rank=r, world=2)) for r in (0, 1))
    assert [sorted(a + b) for a, b in zip(r0, r1)] == [sorted(b) for b in e0]
    with pytest.raises(ValueError, match="multiple of the process count"):
        EpochBatchSampler(20, 5, world=2)
    # fewer samples than a batch: one batch of everything
    assert EpochBatchSampler(3, 8).steps_per_epoch == 1


def test_lr_schedule_and_paper_defaults(tmp_path):
    c = TrainConfig()
    assert (c.epochs, c.batch_size, c.lr, c.resolved_milestones()) == (80, 128, 1e-3, [20, 40, 60])
    assert TrainConfig(epochs=40).resolved_milestones() == [10, 20, 30]
    cfg = _config(tmp_path, epochs=8, milestones=[2, 5])
    t = Trainer(cfg, task=ToyTask(cfg))
    spe = t.steps_per_epoch
    assert spe == 6
    lrs = [t.lr_at(s) for s in range(8 * spe)]
    assert lrs[0] == lrs[2 * spe - 1] == 1e-2
    assert lrs[2 * spe] == pytest.approx(1e-3) and lrs[5 * spe - 1] == pytest.approx(1e-3)
    assert lrs[5 * spe] == pytest.approx(1e-4)


def test_config_checks(tmp_path):
    with pytest.raises(ValueError, match=r"unknown training setting\(s\) \['lrate'\]"):
        TrainConfig.from_dict({"lrate": 1})
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        train(TrainConfig(task="nope", out=str(tmp_path)))
    with pytest.raises(ValueError, match="amp must be"):
        TrainConfig(amp="maybe").check(require_task=False)
    assert 1 <= default_num_workers() <= 4


def test_cpu_runs_float32_without_compile(tmp_path):
    t = Trainer(_config(tmp_path), task=ToyTask(_config(tmp_path)))
    if not torch.cuda.is_available():
        assert t.device.type == "cpu" and not t.amp and t.train_model is t.model
        assert all(p.dtype == torch.float32 for p in t.model.parameters())


# ---------------------------------------------------------------- checkpoints and resume

def test_resume_after_a_kill_gives_the_same_weights(tmp_path):
    straight = _config(tmp_path, "straight", log_every=4)   # the checkpoint at 10 holds half-summed scalars
    a = Trainer(straight, task=ToyTask(straight))
    res_a = a.fit()
    assert res_a.step == a.total_steps == 24

    killed = _config(tmp_path, "killed", log_every=4)
    b = Trainer(killed, task=ToyTask(killed, die_at_step=13))   # dies in step 13: last checkpoint at 10
    with pytest.raises(KeyboardInterrupt):
        b.fit()
    assert ckpt.load_checkpoint(tmp_path / "killed/checkpoints/last.pt")["step"] == 10

    c = Trainer(killed, task=ToyTask(killed))                    # a new process would build a new trainer
    res_c = c.fit(resume=tmp_path / "killed")
    assert res_c.step == 24
    _same_state(a.model.state_dict(), c.model.state_dict())
    sa, sc = a.optimizer.state_dict()["state"], c.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[k]["exp_avg"], sc[k]["exp_avg"]) for k in sa)
    assert res_a.metrics == res_c.metrics
    # the scalars of the resumed run equal the uninterrupted run's, row for row
    rows = lambda p: list(csv.reader(open(p)))  # noqa: E731
    assert rows(tmp_path / "straight/scalars.csv") == rows(tmp_path / "killed/scalars.csv")


def test_loader_workers_do_not_change_the_result(tmp_path):
    for n in (0, 2):
        cfg = _config(tmp_path, f"w{n}", epochs=2, num_workers=n)
        train(cfg, task=ToyTask(cfg))
    a, b = (torch.load(tmp_path / f"w{n}/toy.pt", weights_only=True) for n in (0, 2))
    _same_state(a, b)


def test_checkpoint_files(tmp_path):
    cfg = _config(tmp_path, keep_checkpoints=2, checkpoint_every=3)
    train(cfg, task=ToyTask(cfg))
    d = tmp_path / "run/checkpoints"
    assert sorted(p.name for p in d.glob("step_*.pt")) == ["step_0000021.pt", "step_0000024.pt"]
    data = torch.load(d / "last.pt", weights_only=True)   # plain tensors and values only
    assert data["format"] == ckpt.CHECKPOINT_FORMAT and data["step"] == 24 and data["train_size"] == 48
    assert TrainConfig.from_dict(data["config"]) == cfg
    assert (tmp_path / "run/config.json").exists() and (tmp_path / "run/toy.pt").exists()


def test_resume_refuses_a_different_setup(tmp_path):
    cfg = _config(tmp_path, epochs=1)
    train(cfg, task=ToyTask(cfg))
    other = _config(tmp_path, epochs=1, lr=0.5)
    with pytest.raises(ValueError, match=r"different lr \(lr: checkpoint 0.01, now 0.5\)"):
        Trainer(other, task=ToyTask(other)).fit(resume=tmp_path / "run")
    longer = _config(tmp_path, epochs=2)   # more epochs is fine: the run goes on
    assert Trainer(longer, task=ToyTask(longer)).fit(resume=tmp_path / "run").step == 12
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        Trainer(cfg, task=ToyTask(cfg)).fit(resume=tmp_path / "elsewhere")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt: not a readable training checkpoint"):
        Trainer(cfg, task=ToyTask(cfg)).fit(resume=tmp_path / "bad.pt")


def test_rng_state_round_trip():
    import random

    state = ckpt.rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    ckpt.set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


# ---------------------------------------------------------------- NaN guard

def test_nan_guard_names_the_step_and_the_batch(tmp_path):
    cfg = _config(tmp_path)
    t = Trainer(cfg, task=ToyTask(cfg, nan_at=17))
    order = t.sampler.global_batches(0)
    b = next(i for i, batch in enumerate(order) if 17 in batch)
    with pytest.raises(NonFiniteError, match=rf"step {b + 1} \(epoch 0, batch {b} of 6, rank 0\): loss nan.*toy_017"):
        t.fit()
    dump = torch.load(tmp_path / "run/nonfinite_batch.pt", weights_only=True)
    assert dump["step"] == b + 1 and 17 in dump["indices"] and "toy_017" in dump["names"]
    assert torch.isnan(dump["batch"]["x"]).any()


# ---------------------------------------------------------------- scalars and curves

def test_scalars_csv_truncate_and_curves(tmp_path):
    log = ScalarLog(tmp_path / "s.csv")
    for step in range(1, 11):
        log.add(step, step // 5, {"train/loss": 1.0 / step, "train/lr": 1e-3})
        if step % 5 == 0:
            log.add(step, step // 5, {"eval/val/mean_px": 10.0 - step, "eval/test/mean_px": 12.0 - step})
    data = read_scalars(tmp_path / "s.csv")
    assert list(data["train/loss"][0]) == list(range(1, 11)) and list(data["eval/val/mean_px"][0]) == [5, 10]
    log.truncate_after(6)
    assert read_scalars(tmp_path / "s.csv")["train/loss"][0].max() == 6
    png = plot_curves(tmp_path / "s.csv", tmp_path / "c.png", columns=3)
    img = Image.open(png)
    assert img.size == (3 * 420, 280)   # train loss, train lr, eval mean_px (two splits in one panel)
    assert len(np.unique(np.asarray(img).reshape(-1, 3), axis=0)) > 10   # something was drawn
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="junk.csv: not a scalars file"):
        read_scalars(tmp_path / "junk.csv")


@pytest.mark.trains
def test_training_writes_scalars_and_curves(tmp_path, train_seed, margin):
    # constant lr (the default schedule would divide it by 10 after the first epoch of three) and one
    # train row an epoch (the mean over all 48 samples, not over two batches of 8)
    cfg = _config(tmp_path, epochs=3, seed=train_seed, milestones=[], log_every=6)
    res = train(cfg, task=ToyTask(cfg))
    s = read_scalars(tmp_path / "run/scalars.csv")
    assert list(s["eval/val/mse"][0]) == [6, 12, 18]   # end of every epoch; the last one is the final
    margin.check("train mse epoch 3 / epoch 1", s["train/mse"][1][-1] / s["train/mse"][1][0], 1.0, s["train/mse"][1])
    assert res.files["curves"].exists() and res.metrics["val"]["mse"] == s["eval/val/mse"][1][-1]


# ---------------------------------------------------------------- two Ray workers

def _distributed_fn(out):
    def fn():
        cfg = TrainConfig(task="toy", out=out, epochs=2, batch_size=8, lr=1e-2, num_workers=0, progress=False,
                          checkpoint_every=0, eval_every=-1)
        t = Trainer(cfg, task=ToyTask(cfg))
        init = {k: v.clone() for k, v in t.model.state_dict().items()}
        t.fit()
        return {"rank": t.rank, "world": t.world, "step": t.step, "init": init,
                "state": {k: v.clone() for k, v in t.model.state_dict().items()},
                "batch": len(next(iter(t._train_loader(0, 0)))["x"])}
    return fn


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["train", "core"])
def test_two_ray_workers_stay_in_sync(tmp_path, launcher):
    import ray.cloudpickle

    from pretrain.distributed import run_distributed

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])   # the toy task travels by value
    results = run_distributed(_distributed_fn(str(tmp_path / "dist")), workers=2, launcher=launcher)
    assert [(r["rank"], r["world"], r["step"], r["batch"]) for r in results] == [(0, 2, 12, 4), (1, 2, 12, 4)]
    _same_state(results[0]["state"], results[1]["state"])          # parameters and BatchNorm buffers
    assert not torch.equal(results[0]["state"]["0.weight"], results[0]["init"]["0.weight"])
    assert (tmp_path / "dist/checkpoints/last.pt").exists()
