"""Render benchmark: seconds per image, orchestration overhead, Ray scaling.

    .venv/bin/python benchmarks/render.py [--samples 16] [--views 24] [--rounds 3] [--skip-ray]
    .venv/bin/python benchmarks/render.py --against-model openhand1   # the default hand's cost against another
    .venv/bin/python benchmarks/render.py --overhead-only --samples 64  # only part 2

1. seconds per image at 128 and 256 px for the given samples (views 1..N of
   pose 0 after a warm-up render of view 0, in this process), for the default
   look and for the plain look (no forearm, occluders, camera effects or skin
   detail, a skin per sample: the renderer before the realism settings), in
   alternating rounds so that a busy machine slows both alike; prints every
   round (wall and process-CPU seconds) and the median of the rounds' ratios.
   With the default 24 views the measurement crosses one boundary of the HDRI
   and skin runs (12 views each), as every 12 views of a shard do;
2. the orchestration overhead of render_shard (drawing and showing each
   sample, the skin bake, the EXR write and read-back, camera effects,
   annotation, PNG encoding, tar writing) against a bare
   bpy.ops.render.render() of the same samples, interleaved view by view
   (`overhead_paired`);
3. Ray scaling: the same shards (--ray-shards x --views images) with 1 and
   with 2 local workers (1 Cycles thread each), images per second after Ray
   has started (each worker still builds its Blender scene inside the timing).
Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth.distribute import render_dataset  # noqa: E402
from synth.render_config import RenderConfig  # noqa: E402
from synth.scene import draw_scene  # noqa: E402
from synth.render_shard import drop_scene, prepare, render_shard, sample_key, scene_for  # noqa: E402


# the renderer's look before the realism settings (forearm, skin detail, occluders, camera effects, skins
# in runs of views)
PLAIN_LOOK = {"forearm": False, "skin_detail": False, "occluder_prob": 0.0, "camera_effects": "off",
              "skin_run_length": 1}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def per_image(cfg: RenderConfig, views: list) -> tuple:
    """(wall, process CPU, render call) seconds per image of render_shard over `views`, after a warm-up
    render of view 0 in the same fresh scene (scene build, first BVH and importance map)."""
    drop_scene()
    tmp = Path(tempfile.mkdtemp())
    try:
        render_shard(cfg, tmp, 0, [0])
        shutil.rmtree(tmp / "shards")
        t, c = time.time(), _cpu()
        stats = render_shard(cfg, tmp, 0, views)
        n = len(views)
        return (time.time() - t) / n, (_cpu() - c) / n, stats["render_seconds"] / n
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare_looks(cfg: RenderConfig, views: list, rounds: int) -> None:
    """The default and the plain look in alternating rounds; every round and the median ratios."""
    plain = replace(cfg, **PLAIN_LOOK)
    walls, cpus = [], []
    for r in range(rounds):
        p = per_image(plain, views)
        d = per_image(cfg, views)
        walls.append(d[0] / p[0])
        cpus.append(d[1] / p[1])
        print(f"{cfg.resolution:4d} px round {r + 1}: plain {p[0]:.3f} s ({p[1]:.3f} s CPU), default {d[0]:.3f} s "
              f"({d[1]:.3f} s CPU) per image", flush=True)
    print(f"{cfg.resolution:4d} px: the default look costs {100 * (statistics.median(walls) - 1):+.1f} % wall, "
          f"{100 * (statistics.median(cpus) - 1):+.1f} % CPU (median of {rounds} rounds)", flush=True)


def compare_models(cfg: RenderConfig, other: str, views: list, rounds: int) -> None:
    """The default look with the default hand (OpenHand 2: the sculpted mesh and the body's arm) against
    the same look with hand model `other` (e.g. openhand1: the subdivided procedural hand and its tube
    forearm), in alternating rounds."""
    alt = replace(cfg, model=other)
    walls = []
    for r in range(rounds):
        o = per_image(alt, views)
        d = per_image(cfg, views)
        walls.append(d[0] / o[0])
        print(f"{cfg.resolution:4d} px round {r + 1}: {other} {o[0]:.3f} s ({o[1]:.3f} s CPU), "
              f"{cfg.model} {d[0]:.3f} s ({d[1]:.3f} s CPU) per image", flush=True)
    print(f"{cfg.resolution:4d} px: {cfg.model} costs {100 * (statistics.median(walls) - 1):+.1f} % wall against "
          f"{other} (median of {rounds} rounds)", flush=True)


def overhead_paired(cfg: RenderConfig, views: int) -> tuple:
    """(render_shard's seconds per sample, the bare render's) over the same samples, interleaved view by view
    in one scene so that a busy machine slows both alike: pass 1 takes the odd views through render_shard's
    loop body (render_sample: draw, apply, render, read-back, camera effects, annotation; then the shard
    writer's PNG and tar) and renders the even ones bare (apply and prepare_frame untimed, then
    bpy.ops.render.render() alone, so Cycles re-syncs what a new sample makes it re-sync); pass 2 swaps
    them. Views 1..`views` of pose 0, each pass after a warm-up render of view 0 (its world and skin)."""
    import bpy

    from synth.render_shard import render_sample
    from synth.shards import ShardWriter

    drop_scene()
    plan = prepare(cfg)
    renderer = scene_for(plan)
    tmp = Path(tempfile.mkdtemp())
    full = bare = 0.0
    try:
        for parity in (1, 0):
            render_sample(plan, renderer, 0, 0)
            with ShardWriter(tmp / str(parity), 0, plan.config_hash) as writer:
                for view in range(1, views + 1):
                    if view % 2 == parity:
                        t = time.time()
                        rgb, depth, labels, annotation, _ = render_sample(plan, renderer, 0, view)
                        writer.add(sample_key(0, view), rgb=rgb, depth_m=depth, mask=labels,
                                   annotation=annotation, rgb_format=cfg.rgb_format, jpeg_quality=cfg.jpeg_quality)
                        full += time.time() - t
                    else:
                        renderer.apply(draw_scene(plan, 0, view))
                        renderer.prepare_frame()
                        t = time.time()
                        bpy.ops.render.render()
                        bare += time.time() - t
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return full / views, bare / views


def overhead_rounds(cfg: RenderConfig, rounds: int, views: int) -> None:
    """`overhead_paired` in rounds; every round and the median."""
    ratios = []
    for r in range(rounds):
        full, bare = overhead_paired(cfg, views)
        ratios.append(full / bare)
        print(f"{cfg.resolution} px, {cfg.samples} spp, round {r + 1}: render_shard {full:.3f} s per sample, bare "
              f"render of the same samples {bare:.3f} s: overhead {100 * (full / bare - 1):+.1f} %", flush=True)
    print(f"orchestration overhead at {cfg.samples} spp: {100 * (statistics.median(ratios) - 1):+.1f} % "
          f"(median of {rounds} rounds of views 1..{views}, interleaved)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=RenderConfig.samples)
    ap.add_argument("--views", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--ray-shards", type=int, default=6, help="shards (poses) in the Ray measurement")
    ap.add_argument("--overhead-only", action="store_true",
                    help="only the orchestration overhead at 256 px, render_shard and the bare render alternating")
    ap.add_argument("--against-model", metavar="MODEL",
                    help="only compare the default look's cost with this hand model (e.g. openhand1) at 256 px")
    args = ap.parse_args()
    views = list(range(1, args.views + 1))
    if args.against_model:
        compare_models(RenderConfig(resolution=256, samples=args.samples), args.against_model, views, args.rounds)
        return
    if args.overhead_only:
        overhead_rounds(RenderConfig(resolution=256, samples=args.samples), args.rounds, args.views)
        return
    print(f"samples per pixel: {args.samples}; views 1..{args.views} of pose 0 per measurement")
    for res in (128, 256):
        cfg = RenderConfig(resolution=res, samples=args.samples)
        compare_looks(cfg, views, args.rounds)
        overhead_rounds(cfg, args.rounds, args.views)
    if args.skip_ray:
        return
    cfg = RenderConfig(resolution=128, samples=args.samples, threads=1)
    poses = list(range(args.ray_shards))
    views = views[:12]
    rates = {}
    for workers in (1, 2):
        tmp = Path(tempfile.mkdtemp())
        try:
            s = render_dataset(replace(cfg), tmp, poses, views, workers=workers, progress=False)
            rates[workers] = s.images / s.seconds
            print(f"Ray, {workers} worker(s), 1 Cycles thread each: {s.images} images in {s.seconds:.1f} s "
                  f"= {rates[workers]:.2f} images/s (Ray start {s.startup_seconds:.1f} s, not included)")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"scaling 1 -> 2 workers: x{rates[2] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
