"""Render a dataset: plan the shards, skip finished ones, spread the rest over Ray.

One Ray task per shard, retried on worker death and on renderer exceptions
(`max_retries`), and run by workers that exit after `recycle_after` shards
(Ray's max_calls) because Blender leaks memory slowly. With no address (and
no RAY_ADDRESS) a local Ray is started bound to 127.0.0.1 only; with one, the
existing cluster is joined. `workers=0` renders in this process without Ray.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from .render_config import RenderConfig
from .render_shard import prepare, render_shard, write_dataset_tables
from .shards import sample_key

# measured on 2 CPU threads (benchmarks/render.py): seconds per image ~ A + B * samples * (res/256)^2
COST_FIXED_S = 0.35
COST_PER_SAMPLE_S = 0.04


@dataclass
class RenderSummary:
    done: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    images: int = 0
    seconds: float = 0.0
    render_seconds: float = 0.0
    startup_seconds: float = 0.0  # starting or joining Ray, before the first task is sent
    cpus: int = 1

    def lines(self) -> list:
        per_image = self.seconds / self.images if self.images else float("nan")
        rate = self.images / self.seconds / self.cpus if self.seconds else float("nan")
        out = [f"shards done {len(self.done)}, skipped (already complete) {len(self.skipped)}, "
               f"failed {len(self.failed)}",
               f"images rendered {self.images} in {self.seconds:.1f} s: {per_image:.2f} s per image, "
               f"{rate:.3f} images per second per CPU ({self.cpus} CPUs)"
               + (f"; Ray start {self.startup_seconds:.1f} s not included" if self.startup_seconds else "")]
        out += [f"  pose {p} failed: {err}" for p, err in sorted(self.failed.items())]
        return out


def estimate_seconds_per_image(cfg: RenderConfig) -> float:
    return COST_FIXED_S + COST_PER_SAMPLE_S * cfg.samples * (cfg.resolution / 256) ** 2


def plan_shards(cfg: RenderConfig, root, pose_ids: list, view_ids: list) -> tuple:
    """(to render, already complete) pose ids."""
    from .shards import shard_status

    todo, done = [], []
    for p in pose_ids:
        keys = [sample_key(p, v) for v in view_ids]
        status = shard_status(root, p, config_hash=cfg.config_hash(), expected_keys=keys)
        (done if status == "complete" else todo).append(p)
    return todo, done


def _init_ray(address, workers: int):
    # before `import ray`: a local cluster then binds to 127.0.0.1 only
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1")
    return ray


def render_dataset(cfg: RenderConfig, root, pose_ids, view_ids, workers: int = 1, address=None,
                   max_retries: int = 2, recycle_after: int = 25, cpus_per_task: float = 1, gpus_per_task: float = 0,
                   progress: bool = True, report=print) -> RenderSummary:
    from tqdm import tqdm

    from .shards import clean_partial

    os.makedirs(root, exist_ok=True)
    plan = prepare(cfg, report=report)  # validates the HDRI catalog before any work
    pose_ids, view_ids = sorted(set(pose_ids)), sorted(set(view_ids))
    write_dataset_tables(root, plan, pose_ids, view_ids)
    clean_partial(root)
    todo, done = plan_shards(cfg, root, pose_ids, view_ids)
    summary = RenderSummary(skipped=done, cpus=max(1, workers))
    t0 = time.time()
    bar = tqdm(total=len(todo) * len(view_ids), unit="img", desc="rendering", disable=not progress)
    if not todo:
        bar.close()
        return summary
    if workers == 0 and not address:
        for p in todo:
            try:
                stats = render_shard(cfg, root, p, view_ids, progress=bar.update)
            except Exception as err:  # noqa: BLE001 - reported per shard in the summary
                summary.failed[p] = f"{type(err).__name__}: {err}"
                continue
            summary.done.append(p)
            summary.images += stats["images"]
            summary.render_seconds += stats["render_seconds"]
    else:
        ray = _init_ray(address, workers)
        summary.startup_seconds = time.time() - t0
        t0 = time.time()
        try:
            task = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=max_retries,
                              retry_exceptions=True, max_calls=recycle_after)(render_shard)
            pending = {task.remote(cfg, os.path.abspath(root), p, view_ids): p for p in todo}
            summary.cpus = int(ray.cluster_resources().get("CPU", workers))
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                p = pending.pop(ready[0])
                try:
                    stats = ray.get(ready[0])
                except Exception as err:  # noqa: BLE001 - after Ray's retries
                    summary.failed[p] = f"{type(err).__name__}: {str(err).splitlines()[0]}"
                    continue
                summary.done.append(p)
                summary.images += stats["images"]
                summary.render_seconds += stats["render_seconds"]
                bar.update(stats["images"])
        finally:
            ray.shutdown()
    bar.close()
    summary.seconds = time.time() - t0
    return summary
