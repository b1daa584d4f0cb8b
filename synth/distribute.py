"""Render a dataset: plan the shards, skip finished ones, spread the rest over Ray.

One Ray task per shard, retried on worker death and on renderer exceptions
(`max_retries`), and run by workers that exit after `recycle_after` shards
(Ray's max_calls) because Blender leaks memory slowly. With no address (and
no RAY_ADDRESS) a local Ray is started bound to 127.0.0.1 only; with one, the
existing cluster is joined (after a bounded probe of its port, `check_ray_address`:
HANDS_RAY_CONNECT_TIMEOUT seconds, default 15, so an address nobody answers on fails
instead of retrying forever). `workers=0` renders in this process without Ray.

A folder holding finished work is never silently replaced or shrunk (`plan_dataset`):
with the same config the run continues the dataset, whose plan becomes the union of
its recorded pose / view ids and the requested ones (shards lacking views of the union
are rendered again: the renders are deterministic, so the old samples come out the
same), and the tables describe that union; complete shards of another config are a
refusal unless `overwrite`, which removes the old shards and tables first.
"""
from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from .blender_scene import TMP_ROOT_ENV, temp_parent
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


# ---------------------------------------------------------------- what a folder holds, and the run's plan

TABLE_FILES = ("dataset.json", "poses.npz", "views.npz", "mapping.npz", "hdris.json")
RUN_FILES = ("render_summary.json", "preview.png")      # written by `hands render` beside the tables
_SHARD_NAME = r"(\d{4,})\.(tar|json)"                 # NNNN.tar / NNNN.json: a shard and its manifest
_COMPLETE_FILE = re.compile(rf"^{_SHARD_NAME}$")
_SHARD_FILE = re.compile(rf"^{_SHARD_NAME}$|^{_SHARD_NAME}\.[0-9a-f]+\.partial$")


def _recorded(root: Path) -> dict | None:
    """dataset.json as recorded (None: absent or unreadable)."""
    try:
        info = json.loads((root / "dataset.json").read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def complete_shards(root) -> dict:
    """{config hash: [pose ids]} of the complete shards in ROOT/shards, whatever their config."""
    from .shards import SHARDS_DIR, check_shard

    folder = Path(root) / SHARDS_DIR
    poses = sorted({int(m.group(1)) for m in (_COMPLETE_FILE.match(p.name)
                                               for p in (folder.iterdir() if folder.is_dir() else ())) if m})
    out: dict = {}
    for p in poses:
        c = check_shard(root, p)
        if c.status == "complete":
            out.setdefault(str(c.manifest["config_hash"]), []).append(p)
    return out


def _ids(values) -> list:
    try:
        return sorted({int(v) for v in values or ()})
    except (TypeError, ValueError):
        return []


@dataclass
class RenderPlan:
    """What a render into `root` does: the union plan, the shards to render or skip, what it replaces."""
    root: Path
    config_hash: str
    pose_ids: list                 # the plan: requested ids, united with the dataset's recorded ones
    view_ids: list
    requested: tuple               # (pose ids, view ids) as asked
    recorded: tuple = field(default_factory=lambda: ([], []))  # (pose ids, view ids) the dataset records
                                                                # (same config; else empty)
    todo: list = field(default_factory=list)
    done: list = field(default_factory=list)
    rerendered: list = field(default_factory=list)   # complete shards of this config rendered again for added views
    held: dict = field(default_factory=dict)         # {config hash: [pose ids]} complete shards in the folder
    previous: dict | None = None                      # the folder's dataset.json
    config: dict = field(default_factory=dict)        # this run's settings (RenderConfig.to_dict)
    overwrite: bool = False

    @property
    def other(self) -> dict:
        """{config hash: [pose ids]} of the complete shards of other configs."""
        return {h: p for h, p in self.held.items() if h != self.config_hash}

    @property
    def replaces(self) -> bool:
        """Whether the run removes the dataset in the folder first (overwrite, and there is one)."""
        return self.overwrite and bool(self.held or self.previous)

    def conflict(self, how: str = "--overwrite") -> str:
        """The refusal ('' when none): complete shards of another config without overwrite."""
        if not self.other or self.overwrite:
            return ""
        count = sum(len(v) for v in self.other.values())
        prev = (self.previous or {}).get("config_hash")
        hashes = sorted(self.other) if prev is None or prev == self.config_hash else \
            [prev] + sorted(h for h in self.other if h != prev)
        return (f"{self.root} holds a dataset of another config: {count} complete shard(s) of config "
                f"{', '.join(hashes)}, this run's config is {self.config_hash}{self._differences()}; render with "
                f"the dataset's settings to continue it, into another folder for a new dataset, or give {how} "
                "to replace it (its shards and tables are removed first)")

    def _differences(self) -> str:
        old = (self.previous or {}).get("config")
        if not isinstance(old, dict) or self.previous.get("config_hash") == self.config_hash:
            return ""
        from dataclasses import fields

        new = self.config
        ignored = {f.name for f in fields(RenderConfig) if not f.metadata.get("affects_pixels", True)}
        # a setting added later is absent from older datasets' configs: there it had its `hash_default`
        old = {**{f.name: f.metadata["hash_default"] for f in fields(RenderConfig) if "hash_default" in f.metadata},
               **old}
        keys = [k for k in new if k not in ignored and (k not in old or old[k] != new[k])]
        if not keys:
            return " (the same settings, another format version: synth.shards.FORMAT_VERSION)"
        shown = "; ".join(f"{k}: {old.get(k, '(unset)')!r} -> {new[k]!r}" for k in keys[:6])
        return f" (settings that differ: {shown}{' ...' if len(keys) > 6 else ''})"

    def lines(self) -> list:
        """What the run would do, for --dry-run (a refusal is raised, not described)."""
        out = [f"dataset {self.root} (config {self.config_hash})"]
        if self.replaces:
            held = sum(len(v) for v in self.held.values())
            hashes = ", ".join(sorted(self.held)) or (self.previous or {}).get("config_hash", "?")
            out.append(f"replaces the dataset in {self.root} (--overwrite): its {held} complete shards (config "
                       f"{hashes}) and its tables are removed first")
        rp, rv = self.recorded
        if rp:
            added_p = len(set(self.pose_ids) - set(rp))
            added_v = len(set(self.view_ids) - set(rv))
            out.append(f"continues the dataset recorded there ({len(rp)} poses x {len(rv)} views): this run adds "
                       f"{added_p} pose(s) and {added_v} view(s); the plan is the union, {len(self.pose_ids)} poses "
                       f"x {len(self.view_ids)} views")
        images = len(self.todo) * len(self.view_ids)
        out.append(f"shards: {len(self.pose_ids)} planned, {len(self.done)} complete, {len(self.todo)} to render "
                   f"({len(self.view_ids)} views each: {images} images)")
        out.append(f"{len(self.done)} shards complete, {len(self.todo)} to render, {len(self.rerendered)} complete "
                   "shards re-rendered for added views")
        return out


def plan_dataset(cfg: RenderConfig, root, pose_ids, view_ids, overwrite: bool = False) -> RenderPlan:
    """The plan of a render of poses x views into ROOT, from what ROOT holds (reads only).

    Same config as the dataset there: the union of its recorded pose / view ids (dataset.json) and the
    requested ones. Complete shards of another config: `conflict()` says why the run is refused, unless
    `overwrite`, whose plan is the request alone (the old dataset is removed first by `render_dataset`)."""
    from .shards import check_shard

    root = Path(root)
    key = cfg.config_hash()
    requested = (sorted({int(p) for p in pose_ids}), sorted({int(v) for v in view_ids}))
    previous = _recorded(root)
    held = complete_shards(root)
    plan = RenderPlan(root, key, list(requested[0]), list(requested[1]), requested, held=held, previous=previous,
                      config=cfg.to_dict(), overwrite=bool(overwrite))
    if overwrite and (held or previous):
        plan.todo = list(plan.pose_ids)
        return plan
    if previous is not None and previous.get("config_hash") == key:
        plan.recorded = (_ids(previous.get("pose_ids")), _ids(previous.get("view_ids")))
        plan.pose_ids = sorted(set(plan.pose_ids) | set(plan.recorded[0]))
        plan.view_ids = sorted(set(plan.view_ids) | set(plan.recorded[1]))
    for p in plan.pose_ids:
        keys = [sample_key(p, v) for v in plan.view_ids]
        check = check_shard(root, p, config_hash=key, expected_keys=keys)
        if check.status == "complete":
            plan.done.append(p)
            continue
        plan.todo.append(p)
        if p in held.get(key, ()):      # complete for this config, but lacks views of the union
            plan.rerendered.append(p)
    return plan


def clear_dataset(root) -> list:
    """Remove a dataset's shards, tables and run files from ROOT (only those names); returns what went."""
    from .shards import SHARDS_DIR

    root = Path(root)
    removed = []
    shards = root / SHARDS_DIR
    if shards.is_dir():
        for p in sorted(shards.iterdir()):
            if p.is_file() and _SHARD_FILE.match(p.name):
                p.unlink()
                removed.append(p)
        if not any(shards.iterdir()):
            shards.rmdir()
    for name in TABLE_FILES + RUN_FILES:
        if (root / name).is_file():
            (root / name).unlink()
            removed.append(root / name)
    return removed


# ---------------------------------------------------------------- Ray

DEFAULT_CONNECT_TIMEOUT_S = 15.0


def connect_timeout(timeout: float | None = None) -> float:
    """Seconds to wait for a Ray address to answer: `timeout`, else HANDS_RAY_CONNECT_TIMEOUT, else 15."""
    if timeout is None:
        text = os.environ.get("HANDS_RAY_CONNECT_TIMEOUT", "").strip()
        if not text:
            return DEFAULT_CONNECT_TIMEOUT_S
        try:
            timeout = float(text)
        except ValueError:
            raise ValueError(f"HANDS_RAY_CONNECT_TIMEOUT={text!r}: expected a number of seconds") from None
    if not timeout > 0:
        raise ValueError(f"Ray connect timeout must be > 0 seconds, got {timeout!r} (HANDS_RAY_CONNECT_TIMEOUT)")
    return float(timeout)


def _host_port(address: str):
    """(host, port) of 'host:port' or 'ray://host:port'; None for what Ray resolves itself ('auto', 'local')."""
    text = address.strip()
    if "://" in text:
        scheme, text = text.split("://", 1)
        if scheme.lower() != "ray":
            return None
    text = text.split("/", 1)[0]
    if text.lower() in ("", "auto", "local"):
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        return None
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ValueError(f"Ray address {address!r}: the port {port!r} is not a number "
                         "(expected HOST:PORT, ray://HOST:PORT, 'auto' or 'local')") from None


def check_ray_address(address, timeout: float | None = None) -> None:
    """RuntimeError naming `address` when nothing answers on its host:port within `timeout` seconds
    (connect_timeout: HANDS_RAY_CONNECT_TIMEOUT, default 15); 'auto', 'local' and None pass unprobed."""
    if not address:
        return
    target = _host_port(str(address))
    if target is None:
        return
    seconds = connect_timeout(timeout)
    try:
        with socket.create_connection(target, timeout=seconds):
            pass
    except OSError as err:
        why = "timed out" if isinstance(err, socket.timeout) else (err.strerror or type(err).__name__)
        head = "the Ray client server (ray://, port 10001 by default)" if str(address).strip().lower().startswith(
            "ray://") else "the head's GCS port (6379 by default)"
        raise RuntimeError(
            f"Ray address {address} does not answer: no connection to {target[0]}:{target[1]} ({why}; waited up to "
            f"{seconds:g} s); check that Ray runs there (`ray start --head` on that machine, `ray status`), that the port "
            f"is {head} and that no firewall blocks it (HANDS_RAY_CONNECT_TIMEOUT sets the wait, seconds)") from None


def init_ray(address=None, workers: int = 1, connect_timeout_s: float | None = None):
    """Join `address` (or RAY_ADDRESS) after a bounded probe of its port, or start a local Ray bound to
    127.0.0.1 only with `workers` CPUs. Returns the ray module."""
    # before `import ray`: a local cluster then binds to 127.0.0.1 only
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = address or os.environ.get("RAY_ADDRESS")
    check_ray_address(address, connect_timeout_s)
    import ray

    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1")
    return ray



_TASK_CALLS = 0


def _local_tmp_root(address) -> str | None:
    """For a local Ray (no address): a folder the workers make their temporary folders in (they inherit the
    variable when ray.init starts them), removed by the driver after ray.shutdown, which ends the workers
    without their exit handlers. None when joining a cluster (its nodes do not share this machine's disk)."""
    if address or os.environ.get("RAY_ADDRESS"):
        return None
    import tempfile

    root = tempfile.mkdtemp(prefix="hands-render-run-", dir=temp_parent())
    os.environ[TMP_ROOT_ENV] = root
    return root


def _render_shard_task(cfg: RenderConfig, root, pose_id: int, view_ids, recycle_after: int = 0) -> dict:
    """The Ray task: `render_shard`, and on the worker's last call before Ray recycles it (max_calls =
    recycle_after) its Blender scene is dropped, which removes the scene's temporary folder (Ray ends a
    recycled worker without running Python's exit handlers)."""
    global _TASK_CALLS
    _TASK_CALLS += 1
    try:
        return render_shard(cfg, root, pose_id, view_ids)
    finally:
        if recycle_after and _TASK_CALLS % int(recycle_after) == 0:
            from .render_shard import drop_scene

            drop_scene()


def render_dataset(cfg: RenderConfig, root, pose_ids, view_ids, workers: int = 1, address=None,
                   max_retries: int = 2, recycle_after: int = 25, cpus_per_task: float = 1, gpus_per_task: float = 0,
                   progress: bool = True, report=print, overwrite: bool = False,
                   overwrite_hint: str = "--overwrite") -> RenderSummary:
    """Render poses x views into ROOT, continuing the dataset there (same config: the union of its plan and
    this one) or replacing it (`overwrite`); complete shards of another config without `overwrite` are a
    ValueError naming the folder, both config hashes and the differing settings (`overwrite_hint`: how the
    caller's user asks for the replacement)."""
    from tqdm import tqdm

    from .shards import clean_partial

    use_ray = not (workers == 0 and not address)
    if use_ray:   # an address that does not answer fails now, in bounded time, before any work
        check_ray_address(address or os.environ.get("RAY_ADDRESS"))
    todo_plan = plan_dataset(cfg, root, pose_ids, view_ids, overwrite=overwrite)
    refusal = todo_plan.conflict(overwrite_hint)
    if refusal:
        raise ValueError(refusal)
    plan = prepare(cfg, report=report)  # validates the HDRI catalog before any work
    if todo_plan.replaces:
        clear_dataset(root)
    os.makedirs(root, exist_ok=True)
    pose_ids, view_ids = todo_plan.pose_ids, todo_plan.view_ids
    # the tables describe the plan before any shard is rendered: a failed shard leaves it recorded, so
    # `hands data check` names the missing or partial shard
    write_dataset_tables(root, plan, pose_ids, view_ids)
    clean_partial(root)
    todo, done = todo_plan.todo, todo_plan.done
    summary = RenderSummary(skipped=done, cpus=max(1, workers))
    t0 = time.time()
    bar = tqdm(total=len(todo) * len(view_ids), unit="img", desc="rendering", disable=not progress)
    if not todo:
        bar.close()
        return summary
    if not use_ray:
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
        tmp_root = _local_tmp_root(address)
        ray = init_ray(address, workers)
        summary.startup_seconds = time.time() - t0
        t0 = time.time()
        try:
            task = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=max_retries,
                              retry_exceptions=True, max_calls=recycle_after)(_render_shard_task)
            pending = {task.remote(cfg, os.path.abspath(root), p, view_ids, recycle_after): p for p in todo}
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
            if tmp_root is not None:
                import shutil

                shutil.rmtree(tmp_root, ignore_errors=True)
                os.environ.pop(TMP_ROOT_ENV, None)
    bar.close()
    summary.seconds = time.time() - t0
    return summary
