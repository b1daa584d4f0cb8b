"""Skin-detail benchmark: seconds per image of the procedural skin against the plain one-colour skin.

    .venv/bin/python benchmarks/skin_detail.py [--resolution 256] [--samples 16] [--views 16] [--rounds 2]

The same views of pose 0 (with the sample's forearm, one HDRI) are rendered with BlenderScene(regions=None)
(the plain skin) and with the region weights (synth/skin_shader.py, synth/skin_bake.py), alternating rounds
so that a busy machine slows both alike. The views are spread over the rig, so every view has a skin of its
own: the worst case of the procedural skin, which pays a mesh attribute update for every new skin (renders
in runs of `skin_run_length` views pay it once a run; benchmarks/render.py measures that). Prints wall-clock
and process CPU seconds per image (the CPU figure is steadier when other work shares the cores) and the
ratio; asserts nothing.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth.blender_scene import BlenderScene  # noqa: E402
from synth.render_config import RenderConfig  # noqa: E402
from synth.render_shard import prepare  # noqa: E402
from synth.scene import draw_skin, forearm_skin_points, sample_arm  # noqa: E402
from synth.skin_regions import region_weights  # noqa: E402


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def per_image(plan, regions, views: list) -> tuple:
    """(wall, cpu) seconds per render call, after one warm-up render."""
    cfg = plan.cfg
    rest = plan.render_mesh.rest_vertices(plan.model)
    scene = BlenderScene(cfg, plan.render_mesh.faces, plan.render_mesh.num_vertices, regions=regions,
                         rest_vertices=rest, arm=plan.arm)
    dense = plan.dense(0)
    scene.set_vertices(dense)
    scene.set_world(plan.usable_hdris[0], 0.0, 1.0)
    wall, cpu = [], []
    for i, v in enumerate([views[0]] + views):
        view = plan.views[v]
        scene.set_skin(draw_skin(cfg, 0, v))
        arm, arm_vertices = sample_arm(plan, 0, view, dense, plan.keypoints[0] @ view.R.T + view.t)
        scene.set_forearm(arm_vertices, forearm_skin_points(plan))
        scene.set_camera(view.K, view.R, view.t)
        t, c = time.time(), _cpu()
        scene.render()
        if i:  # the first render builds the BVH and the world's importance map
            wall.append(time.time() - t)
            cpu.append(_cpu() - c)
    return float(np.mean(wall)), float(np.mean(cpu))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--views", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    cfg = RenderConfig(resolution=args.resolution, samples=args.samples, hdri_skies=1)
    plan = prepare(cfg, report=lambda *_: None)
    regions = region_weights(plan.model, plan.render_mesh)
    views = [int(v) for v in np.linspace(0, len(plan.views) - 1, args.views)]
    figures = {"plain": [], "detail": []}
    for _ in range(args.rounds):
        for name, reg in (("plain", None), ("detail", regions)):
            figures[name].append(per_image(plan, reg, views))
    print(f"{args.resolution} px, {args.samples} samples, {len(views)} views of pose 0, {args.rounds} rounds")
    for name, runs in figures.items():
        wall, cpu = np.mean(runs, axis=0)
        print(f"{name:6s} skin: {wall:.3f} s per image (process CPU {cpu:.3f} s)")
    (pw, pc), (dw, dc) = np.mean(figures["plain"], axis=0), np.mean(figures["detail"], axis=0)
    print(f"detail / plain: wall x{dw / pw:.3f}, CPU x{dc / pc:.3f}")


if __name__ == "__main__":
    main()
