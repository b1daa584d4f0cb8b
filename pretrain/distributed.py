"""Training on several processes, GPUs or machines through Ray.

`run_distributed(train_fn, workers=N, gpus_per_worker=G, address=...)` starts N
training processes, initialises torch.distributed among them (NCCL with GPUs,
gloo on CPUs), calls `train_fn()` in each and returns their results by rank.
The trainer notices the initialised process group and shards every global
batch, wraps the model in DDP, and lets rank 0 evaluate and write (see
pretrain/trainer.py).

The cluster is found as the render command finds it: `address` (or
RAY_ADDRESS) joins an existing Ray cluster; with neither, a local Ray is
started bound to 127.0.0.1 only (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 and
RAY_USAGE_STATS_ENABLED=0 are set before `import ray`, as synth/distribute.py
does).

Two launchers, one behaviour:

- **Ray Train** (`ray.train.torch.TorchTrainer` with a ScalingConfig of N
  workers, `use_gpu`, CPU/GPU per worker), used whenever `ray.train` imports.
  It needs ray's `train` extra (pandas, pyarrow), which the project's CPU test
  environment does not install.
- **Ray core** otherwise (`launcher='core'` forces it): N Ray actors with the
  same resources; rank 0's node address and a free port (or, on a local
  loopback Ray, a rendezvous file) initialise the process group, with gloo
  bound to the loopback interface on a local Ray. This is what the CPU test
  runs.

`train_config(config_dict, resume)` is the `train_fn` of `hands pretrain
--workers N`: it builds a Trainer from the config in every process.
"""
from __future__ import annotations

import datetime
import os
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path

LOCAL_IP = "127.0.0.1"


def init_ray(address: str | None = None, num_cpus: int | None = None):
    """Join `address` / RAY_ADDRESS, or start a local Ray bound to loopback only. Returns (ray, started)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return ray, False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        from synth.distribute import check_ray_address

        check_ray_address(address)      # a bounded probe: ray.init would wait forever on a silent port
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, _node_ip_address=LOCAL_IP)
    return ray, True


def ray_train_available() -> bool:
    try:
        import ray.train.torch  # noqa: F401
    except ImportError:
        return False
    return True


def run_distributed(train_fn, workers: int, gpus_per_worker: float = 0, cpus_per_worker: float = 1,
                    address: str | None = None, launcher: str = "auto", storage: str | None = None,
                    timeout_s: float = 24 * 3600) -> list:
    """Run `train_fn()` in `workers` processes joined in one torch.distributed group; results by rank.

    Every rank's result comes back, with either launcher (Ray Train: through files in
    `storage`, which must be shared by the nodes of a cluster).
    """
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if launcher not in ("auto", "train", "core"):
        raise ValueError(f"launcher must be auto, train or core, got {launcher!r}")
    use_train = launcher == "train" or (launcher == "auto" and ray_train_available())
    if launcher == "train" and not ray_train_available():
        raise RuntimeError("Ray Train is not importable here (it needs ray[train]: pandas, pyarrow)")
    ray, started = init_ray(address, None if (address or os.environ.get("RAY_ADDRESS"))
                            else max(1, int(round(workers * cpus_per_worker))))
    try:
        if use_train:
            return _run_ray_train(train_fn, workers, gpus_per_worker, cpus_per_worker, storage)
        return _run_ray_core(ray, train_fn, workers, gpus_per_worker, cpus_per_worker, timeout_s)
    finally:
        if started:
            ray.shutdown()


# ---------------------------------------------------------------- Ray Train

def _ray_train_loop(cfg):
    import ray.train
    import torch

    result = cfg["fn"]()
    rank = ray.train.get_context().get_world_rank()
    # Ray Train keeps only rank 0's reported metrics, and no tensors in them: every
    # rank leaves its result in the run's storage folder for the driver instead
    torch.save(result, Path(cfg["results"]) / f"result_{rank}.pt")
    ray.train.report({"rank": rank})


def _run_ray_train(train_fn, workers, gpus, cpus, storage) -> list:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = {"CPU": cpus}
    if gpus:
        resources["GPU"] = gpus
    results = Path(tempfile.mkdtemp(prefix="hands-results-", dir=storage))  # shared storage on a cluster
    trainer = TorchTrainer(
        _ray_train_loop, train_loop_config={"fn": train_fn, "results": str(results)},
        scaling_config=ScalingConfig(num_workers=int(workers), use_gpu=bool(gpus), resources_per_worker=resources),
        run_config=RunConfig(name=f"hands-{uuid.uuid4().hex[:8]}",
                             storage_path=str(Path(storage or tempfile.gettempdir()).resolve())))
    result = trainer.fit()
    if result.error:
        raise result.error
    import torch

    out = [torch.load(results / f"result_{r}.pt", weights_only=False) for r in range(int(workers))]
    shutil.rmtree(results, ignore_errors=True)
    return out


# ---------------------------------------------------------------- Ray core

class _Worker:
    """One training process (a Ray actor)."""

    def where(self) -> tuple:
        import ray

        ip = ray.util.get_node_ip_address()
        with socket.socket() as s:
            s.bind((ip, 0))
            port = s.getsockname()[1]
        return ip, port

    def run(self, fn, rank: int, world: int, local_rank: int, init_method: str, backend: str, env: dict):
        import torch.distributed as dist

        os.environ.update({k: str(v) for k, v in env.items()})
        os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(local_rank)})
        dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world,
                                timeout=datetime.timedelta(minutes=30))
        try:
            return fn()
        finally:
            dist.destroy_process_group()


def _run_ray_core(ray, train_fn, workers, gpus, cpus, timeout_s) -> list:
    actor = ray.remote(_Worker).options(num_cpus=cpus, num_gpus=gpus or 0, max_restarts=0)
    actors = [actor.remote() for _ in range(int(workers))]
    try:
        places = ray.get([a.where.remote() for a in actors], timeout=600)
        ips = [ip for ip, _ in places]
        local = [sum(1 for j in range(r) if ips[j] == ips[r]) for r in range(len(ips))]
        master_ip, port = places[0]
        env = {"OMP_NUM_THREADS": max(1, int(cpus))}
        if all(ip == LOCAL_IP for ip in ips):
            # one machine, loopback Ray: rendezvous through a file, gloo on the loopback interface
            init = f"file://{tempfile.gettempdir()}/hands-dist-{uuid.uuid4().hex}"
            env["GLOO_SOCKET_IFNAME"] = "lo"
        else:
            init = f"tcp://{master_ip}:{port}"
            env["MASTER_ADDR"], env["MASTER_PORT"] = master_ip, port
        backend = "nccl" if gpus else "gloo"
        refs = [a.run.remote(train_fn, r, len(actors), local[r], init, backend, env) for r, a in enumerate(actors)]
        deadline = time.time() + timeout_s
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=max(1.0, deadline - time.time()))
            if not done:
                raise TimeoutError(f"distributed training did not finish within {timeout_s:.0f} s")
            ray.get(done)  # raises the first worker error at once (the others are killed below)
        return ray.get(refs)
    finally:
        for a in actors:
            ray.kill(a)
        if "init" in locals() and init.startswith("file://"):
            Path(init[len("file://"):]).unlink(missing_ok=True)


# ---------------------------------------------------------------- the CLI's train_fn

def train_config(config: dict, resume=None, extra_imports: tuple = (), overwrite: bool = False) -> dict:
    """Train `config` (a TrainConfig dict) in this process; a JSON-able summary of the result."""
    import importlib

    for mod in extra_imports:
        importlib.import_module(mod)
    from .trainer import train

    r = train(config, resume=resume, overwrite=overwrite)
    return {"out": str(r.out), "step": r.step, "epoch": r.epoch, "seconds": round(r.seconds, 2),
            "files": {k: str(v) for k, v in r.files.items() if v is not None},
            "metrics": {s: {k: v for k, v in m.items() if not isinstance(v, list)} for s, m in r.metrics.items()}}
