"""The GPU path, checked and timed on a machine with a GPU (issue 25). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/gpu_check.py [--out runs/gpu_check] [--steps 40]
    .venv/bin/python benchmarks/gpu_check.py --cpu-only --resolution 64 --views 0,45 --steps 2   # a smoke run

1. Rendering: the same small shard (poses x views) rendered with Cycles on the CPU and on the GPU (OptiX or
   CUDA, whatever Blender finds), in this process. Labels are the same draws and geometry, so keypoints,
   visibility, K / R / t must be identical; masks and depth nearly so (a silhouette pixel may flip); the RGB
   differs by the two devices' noise and denoising, reported as PSNR (whole image, and the hand region).
   Images per second of each device (after each device's first, scene-building shard).
2. Training: steps per second and peak GPU memory of DenseStack's 2D pretraining and of MobRecon-DenseStack's
   fine-tuning on the GPU render (the trainer's defaults on CUDA: mixed precision, torch.compile), after a few
   warm-up steps; the same steps on the CPU for reference.

Writes OUT/gpu_check.json with every figure (the README's "GPU" table reads from it). `--cpu-only` renders
both shards on the CPU and trains on the CPU: it checks the script, not the GPU.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402


def ids(text: str) -> list:
    return [int(t) for t in str(text).split(",") if t.strip()]


def render(out: Path, device: str, args) -> dict:
    """Render the shard(s) on `device` into `out`; seconds per image after the first (scene-building) shard."""
    from synth.distribute import render_dataset
    from synth.render_config import RenderConfig
    from synth.render_shard import drop_scene

    drop_scene()
    cfg = RenderConfig(resolution=args.resolution, samples=args.samples, device=device, hdri_skies=2,
                       camera_effects="off", occluder_prob=0.0)
    poses = ids(args.poses)
    t = time.time()
    first = render_dataset(cfg, out, poses[:1], ids(args.views), workers=0, progress=False)
    first_s = time.time() - t
    t = time.time()
    rest = render_dataset(cfg, out, poses, ids(args.views), workers=0, progress=False)
    rest_s = time.time() - t
    if first.failed or rest.failed:
        raise RuntimeError(f"render on {device} failed: {first.failed or rest.failed}")
    images = rest.images
    return {"device": device, "first_shard_s": round(first_s, 2), "images": images,
            "s_per_image": round(rest_s / images, 4) if images else None,
            "images_per_s": round(images / rest_s, 3) if images else None}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def compare(cpu_root: Path, gpu_root: Path) -> dict:
    """Labels identical, masks / depth nearly, RGB PSNR of the GPU render against the CPU's, per sample."""
    import torch

    from synth.reader import ComplementDataset

    a, b = ComplementDataset(cpu_root), ComplementDataset(gpu_root)
    if [s["key"] for s in a] != [s["key"] for s in b]:
        raise RuntimeError("the CPU and GPU renders hold other samples")
    rows, labels_equal = [], True
    for sa, sb in zip(a, b):
        for k in ("K", "R", "t", "keypoints_2d", "keypoints_3d", "visibility"):
            labels_equal &= bool(torch.equal(sa[k], sb[k]))
        ia, ib = sa["image"].numpy(), sb["image"].numpy()
        hand = sa["mask"].numpy() | sb["mask"].numpy()
        rows.append({"key": sa["key"], "psnr_db": round(psnr(ia, ib), 2),
                     "hand_psnr_db": round(psnr(ia[:, hand], ib[:, hand]), 2) if hand.any() else None,
                     "mask_agreement": round(float((sa["segmentation"] == sb["segmentation"]).float().mean()), 5),
                     "depth_max_diff_mm": round(1000 * float((sa["depth"] - sb["depth"]).abs().max()), 2)})
    return {"labels_identical": labels_equal, "samples": rows,
            "median_psnr_db": float(np.median([r["psnr_db"] for r in rows])),
            "worst_psnr_db": float(min(r["psnr_db"] for r in rows)),
            "median_hand_psnr_db": float(np.median([r["hand_psnr_db"] for r in rows if r["hand_psnr_db"]])),
            "min_mask_agreement": min(r["mask_agreement"] for r in rows)}


def train_speed(task: str, data: Path, device: str, steps: int, warmup: int, out: Path) -> dict:
    """Steps per second of `steps` training steps after `warmup` ones, and peak GPU memory."""
    import torch

    from hands.training import build_config, run

    options = {"data": str(data), "heldout_poses": []} if task == "pose2d" else {
        "model": "mobrecon_densestack", "datasets": [{"name": "complement", "root": str(data)}]}
    times = {}
    for n in (warmup, warmup + steps):
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        config = build_config(task, out / f"{task}_{device}_{n}", options=options, train={
            "device": device, "max_steps": n, "epochs": 10_000, "num_workers": 2, "progress": False,
            "checkpoint_every": 0, "eval_every": -1, "batch_size": 32})
        t = time.time()
        run(config, overwrite=True)
        times[n] = time.time() - t
    out_fig = {"task": task, "device": device, "steps": steps,
               "steps_per_s": round(steps / max(times[warmup + steps] - times[warmup], 1e-9), 3)}
    if device == "cuda":
        out_fig["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out_fig


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/gpu_check")
    ap.add_argument("--poses", default="0,700,1400")
    ap.add_argument("--views", default="0,13,20,45,60,75,80,90,110,130,150,180")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--steps", type=int, default=40, help="timed training steps (after --warmup)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--cpu-only", action="store_true", help="a smoke run of the script without a GPU")
    args = ap.parse_args()

    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gpu = "cpu" if args.cpu_only else "gpu"
    if not args.cpu_only and not torch.cuda.is_available():
        print("no CUDA GPU here: run this on a machine with one (or --cpu-only for a smoke run)")
        return 1
    figures = {"machine": {"torch": torch.__version__, "cuda": torch.version.cuda,
                           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                           "cpus": os.cpu_count()}}
    figures["render_cpu"] = render(out / "render_cpu", "cpu", args)
    print(f"render CPU: {figures['render_cpu']}", flush=True)
    figures["render_gpu"] = render(out / "render_gpu", gpu, args)
    print(f"render GPU: {figures['render_gpu']}", flush=True)
    figures["render_compare"] = compare(out / "render_cpu", out / "render_gpu")
    c = figures["render_compare"]
    print(f"labels identical: {c['labels_identical']}; RGB PSNR GPU vs CPU median {c['median_psnr_db']:.2f} dB "
          f"(worst {c['worst_psnr_db']:.2f}), hand region {c['median_hand_psnr_db']:.2f} dB; masks agree on "
          f">= {100 * c['min_mask_agreement']:.3f} % of pixels", flush=True)
    device = "cpu" if args.cpu_only else "cuda"
    figures["training"] = []
    for task in ("pose2d", "mesh"):
        for dev in ([device] if args.cpu_only else [device, "cpu"]):
            steps = args.steps if dev == device else max(2, args.steps // 10)
            fig = train_speed(task, out / "render_gpu", dev, steps, args.warmup, out / "train")
            figures["training"].append(fig)
            print(f"train {fig}", flush=True)
    (out / "gpu_check.json").write_text(json.dumps(figures, indent=1))
    print(f"figures: {out / 'gpu_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
