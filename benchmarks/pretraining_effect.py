"""Does pretraining on the complement data help? MobRecon's Table 1 claim, measured at a scale you choose.

    .venv/bin/python benchmarks/pretraining_effect.py [--out runs/pretraining_effect] [--scales 16,64]
        [--views 24] [--encoders densestack,ghoststack] [--pretrain-steps 80] [--pretrain-batch-size 32]
        [--finetune-steps 120] [--batch-size 8] [--matched-scratch] [--seeds 0] [--eval freihand:PATH]
        [--finetune-data NAME:ROOT[:RATIO]] [--hand-model openhand|mano] [--workers N] [--address HEAD:6379]
        [--render-workers 2]

1. Renders (resumable: a re-run renders only missing shards) into OUT/data (or --data, which runs with
   other training settings can share):
   - `train`: the training poses of the largest scale, `--views` views each spread over the 216,
     the default look (forearm, skin detail, occluders, camera effects), training HDRIs, plus the
     held-out poses with the same settings (the in-domain evaluation, `same`);
   - `shifted`: the held-out poses seen from other views, with held-out HDRIs, another seed (other
     skins, arms, occluders) and a harsher look (SHIFTED_LOOK: more and larger occlusion, stronger
     sensor noise, more blur and JPEG), the domain-shifted evaluation.
   Held-out poses are never trained on, in pretraining or fine-tuning, nor is any pose equal to one
   (the scheme's blends coincide). The scales are nested: the poses of a smaller scale are a
   spread-out subset of the larger's.
2. For every scale, encoder and seed: pretrains the encoder on the scale's training images (2D task,
   heatmap + MapReg heads, `--pretrain-steps`), then fine-tunes MobRecon with that encoder twice with
   the same budget (`--finetune-steps`, batch, lr, data order): from the pretrained encoder and from
   scratch (the paper's rows "Pre-training w/ ours" and "From-scratch fine-tuning"; ImageNet weights
   cannot be downloaded here, so that row is not run). With `--matched-scratch`, a third arm trains from
   scratch for as many images as pretraining and fine-tuning together saw (the pretrained arm's total
   compute in images), which tells a head start from extra training. Fine-tuning data: the scale's
   training images, or a real benchmark with `--finetune-data` (the paper's setting: FreiHAND, whose
   meshes supervise only a MANO model: `--hand-model mano` renders and builds MobRecon with MANO).
3. Scores each fine-tuned model on `same`, `shifted` and every `--eval` benchmark (e.g.
   freihand:~/data/FreiHAND, its evaluation split) with the official metric algorithms: PA-MPJPE and
   PA-MPVPE (mm; FreiHAND's Procrustes alignment), the 3D AUC of FreiHAND's eval.py (aligned
   keypoints, 0-50 mm), the 2D error (px) and the 2D AUC over 0-30 px; and, for reference, a constant
   prediction (each split's mean root-relative joints and mean 2D keypoints): an arm near it has not yet
   learned to read the image.
4. Writes OUT/results.json, OUT/results.md (a table per evaluation set, with the seeds and the wall
   times) and OUT/curves.png (evaluation PA-MPJPE against fine-tuning step, pretrained vs scratch).

Runs are skipped when their folder already holds a run finished with the same settings (a killed
benchmark resumes where it stopped); a run of other settings there is an error. `--workers N` trains through Ray Train (N processes; `--address` joins a cluster, the
output folder must then be on storage every node sees); `--render-workers` renders on N local Ray
workers or, with `--address`, on the cluster. Prints progress and the tables; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# the domain shift of the evaluation set, on top of held-out poses, views and HDRIs and another seed
SHIFTED_LOOK = {
    "occluder_prob": 0.6, "occluder_max": 2, "forearm_length_m": (0.15, 0.25), "forearm_taper": (1.2, 1.45),
    "camera_effects": "on",
    "camera_effect_settings": {"defocus_prob": 0.5, "motion_blur_prob": 0.4, "motion_blur_px": [2.0, 8.0],
                               "noise_poisson_peak": [80.0, 600.0], "noise_gaussian_sigma": [0.01, 0.03],
                               "jpeg_prob": 0.8, "jpeg_quality": [30, 80]},
}


def spread(ids, count: int) -> list:
    """`count` ids spread evenly over the sorted `ids` (all of them when count >= len(ids))."""
    ids = sorted(ids)
    if count >= len(ids):
        return ids
    return [ids[int(i)] for i in np.linspace(0, len(ids) - 1, count).round()]


def plan(scales: list, views: int, heldout_poses: int = 8, shifted_views: int = 12, pose_params=None) -> dict:
    """Pose and view ids: the held-out poses, every scale's training poses (nested), the training views and
    the evaluation set's other views. With `pose_params` (the (1520, 48) complement poses), no training
    pose equals a held-out one (the scheme's blends coincide: 1520 ids, 1235 distinct poses)."""
    if min(scales) < 1 or heldout_poses < 1:
        raise ValueError(f"scales {scales} and held-out poses {heldout_poses} must be at least 1")
    if max(scales) + heldout_poses > 1520:
        raise ValueError(f"scale {max(scales)} + {heldout_poses} held-out poses exceed the 1520 poses")
    if not 1 <= views + shifted_views <= 216:
        raise ValueError(f"{views} training views + {shifted_views} evaluation views: the rig has 216 views")
    every = list(range(1520))
    held = spread(every[10:], heldout_poses)                 # spread over bases, pairs and blends
    pool = [p for p in every if p not in held]
    if pose_params is not None:
        params = np.asarray(pose_params)
        pool = [p for p in pool if np.abs(params[held] - params[p]).max(axis=1).min() > 1e-6]
    if max(scales) > len(pool):
        raise ValueError(f"scale {max(scales)}: only {len(pool)} poses differ from the held-out ones")
    largest = spread(pool, max(scales))
    train = {s: spread(largest, s) for s in sorted(scales)}
    view_ids = spread(range(216), views)
    others = [v for v in range(216) if v not in view_ids]
    shifted = spread(others, shifted_views)
    return {"heldout": held, "train": train, "views": view_ids, "shifted_views": shifted}


def render(p: dict, out: Path, args) -> dict:
    """The two datasets in `out`; returns their folders and render seconds."""
    from synth.distribute import render_dataset
    from synth.render_config import RenderConfig

    base = RenderConfig(resolution=args.resolution, samples=args.samples, seed=0, threads=1 if args.render_workers else 0,
                        model=args.hand_model)
    shifted = replace(base, seed=1, hdri_split="heldout", **SHIFTED_LOOK)
    folders = {"train": out / "train", "shifted": out / "shifted"}
    seconds = {}
    for name, cfg, poses, views in (
            ("train", base, sorted(set(p["train"][max(p["train"])]) | set(p["heldout"])), p["views"]),
            ("shifted", shifted, p["heldout"], p["shifted_views"])):
        t = time.time()
        s = render_dataset(cfg, folders[name], poses, views, workers=args.render_workers, address=args.address)
        if s.failed:
            raise RuntimeError(f"rendering {folders[name]} failed for poses {sorted(s.failed)}: {s.failed}")
        seconds[name] = round(time.time() - t, 1)
        print(f"[render] {name}: {len(poses)} poses x {len(views)} views in {folders[name]} "
              f"({len(s.skipped)} shards already there, {seconds[name]} s)", flush=True)
    return {"folders": folders, "seconds": seconds}


def eval_specs(p: dict, folders: dict, extra: list, mano: bool = False) -> dict:
    """Evaluation split name -> dataset spec: same, shifted, and the --eval benchmarks (their MANO meshes are
    read only when the model is MANO's: other topologies are scored on keypoints)."""
    from finetune.training_data import parse_spec

    specs = {"same": {"name": "complement", "root": str(folders["train"]), "options": {"poses": p["heldout"]}},
             "shifted": {"name": "complement", "root": str(folders["shifted"])}}
    for text in extra:
        spec = parse_spec(text)
        if spec["name"] == "freihand":     # FreiHAND's evaluation split (ground truth released in 2020)
            spec["options"] = {"split": "evaluation", "load_vertices": mano, **spec["options"]}
        specs[spec["name"]] = {k: spec[k] for k in ("name", "root", "options")}
    return specs


def finished(run: Path, config: dict) -> dict | None:
    """The summary of a run finished in `run` with this config, else None; a finished run of another config
    is an error (pass another --out)."""
    path = run / "summary.json"
    if not path.exists():
        return None
    done = json.loads(path.read_text())
    if done.get("config") != config:
        keys = sorted(k for k in set(config) | set(done.get("config", {}))
                      if config.get(k) != done.get("config", {}).get(k))
        raise ValueError(f"{run} holds a run of other settings ({', '.join(keys)}): use another --out")
    return done


def run_tag(scale: int, encoder: str, seed: int) -> str:
    """The folder of one (scale, encoder, seed): its pretraining and fine-tuning runs."""
    return f"scale{scale}_{encoder}_seed{seed}"


def train(config, args) -> dict:
    """Train one TrainConfig (in this process or through Ray Train); its summary, saved beside the run."""
    from hands.training import launch

    run = Path(config.out)
    done = finished(run, config.to_dict())
    if done is not None:
        print(f"[skip] {run} is finished", flush=True)
        return done
    t = time.time()
    # an unfinished run (no summary.json) is redone from the start
    summary = launch(config, None, overwrite=True, workers=args.workers, address=args.address,
                     gpus_per_worker=args.gpus_per_worker, cpus_per_worker=1)
    summary.update(wall_seconds=round(time.time() - t, 1), config=config.to_dict())
    (run / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def steps_config(steps: int) -> dict:
    """A budget of `steps` optimiser steps, whatever the data's size (the trainer stops at max_steps)."""
    return {"epochs": steps, "max_steps": steps}


def pretrain_config(out: Path, folders: dict, poses: list, encoder: str, seed: int, args):
    from pretrain.trainer import TrainConfig

    return TrainConfig(task="pose2d", out=str(out), batch_size=args.pretrain_batch_size, lr=args.lr, milestones=[],
                       seed=seed, num_workers=args.loader_workers, checkpoint_every=0, log_every=5, eval_every=-1,
                       **steps_config(args.pretrain_steps),
                       task_options={"data": str(folders["train"]), "eval_data": [str(folders["shifted"])],
                                     "poses": poses, "heldout_poses": [], "encoder": encoder,
                                     "input_size": 128, "augment": True})


def matched_steps(args) -> int:
    """Fine-tuning steps of the matched-scratch arm: the pretrained arm's images (pretraining + fine-tuning)."""
    return args.finetune_steps + -(-args.pretrain_steps * args.pretrain_batch_size // args.batch_size)


def finetune_config(out: Path, train_specs: list, evals: dict, encoder: str, pretrained, seed: int, args,
                    steps: int | None = None):
    from pretrain.trainer import TrainConfig

    steps = steps or args.finetune_steps
    return TrainConfig(task="mesh", out=str(out), batch_size=args.batch_size, lr=args.lr, milestones=[], seed=seed,
                       num_workers=args.loader_workers, checkpoint_every=0, log_every=5,
                       eval_every=max(1, steps // args.eval_points), eval_samples=100000,
                       **steps_config(steps),
                       task_options={"model": f"mobrecon_{encoder}", "model_options": {"hand_model": args.hand_model},
                                     "pretrained_encoder": pretrained,
                                     "input_size": 128, "datasets": train_specs, "eval_datasets": evals,
                                     "consistency": bool(args.consistency), "augment": True})


def score(run: Path, split: str, mano: bool = False) -> dict:
    """Official figures of a fine-tuned run's final predictions on one evaluation split (meshes compared as
    MANO's only when the model is MANO's)."""
    from finetune.evaluate import evaluate_files
    from finetune.metrics.pck import evaluate_keypoints

    pred, gt = run / f"pred_{split}.npz", run / f"gt_{split}.npz"
    res = evaluate_files(pred, gt, "freihand", mesh_topology="mano" if mano else "other")
    with np.load(pred) as p, np.load(gt) as g:
        uv = evaluate_keypoints(g["uv"], p["uv"], 0.0, 30.0, 20)
    metrics = json.loads((run / "metrics.json").read_text())["splits"][split]
    return {"pa_mpjpe_mm": res.figures["xyz_al_mean3d"] * 10.0, "pa_mpvpe_mm": metrics.get("pa_mpvpe_mm"),
            "auc_3d": res.figures["xyz_al_auc3d"], "px_2d": metrics["px_2d"], "auc_2d": float(uv.auc),
            "samples": res.num_samples}


def constant_score(gt_path: Path) -> dict:
    """What a model that ignores the image approaches: one constant prediction for every sample, the
    split's own mean root-relative joints (PA-MPJPE, FreiHAND's alignment) and mean 2D keypoints."""
    from finetune.metrics.pck import evaluate_keypoints
    from finetune.model_eval import pa_errors

    with np.load(gt_path) as g:
        xyz, uv = g["xyz"].astype(np.float64), g["uv"].astype(np.float64)
    xyz = xyz - xyz[:, :1]
    pa = pa_errors(xyz, np.broadcast_to(xyz.mean(axis=0), xyz.shape)).mean()
    flat = evaluate_keypoints(uv, np.broadcast_to(uv.mean(axis=0), uv.shape), 0.0, 30.0, 20)
    return {"pa_mpjpe_mm": float(pa) * 1000.0, "px_2d": float(flat.mean), "auc_2d": float(flat.auc)}


def eval_history(run: Path, split: str) -> tuple:
    """(steps, PA-MPJPE mm) of the run's periodic evaluations of `split`."""
    from pretrain.curves import read_scalars

    steps, values = read_scalars(run / "scalars.csv").get(f"eval/{split}/pa_mpjpe_mm", ([], []))
    return list(map(int, steps)), list(map(float, values))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/pretraining_effect"))
    ap.add_argument("--data", type=Path, help="where the renders go (default OUT/data; share it between runs of "
                                              "other training settings)")
    ap.add_argument("--scales", default="16,64", help="training poses per scale, comma-separated")
    ap.add_argument("--views", type=int, default=24, help="training views per pose (spread over the 216)")
    ap.add_argument("--encoders", default="densestack,ghoststack")
    ap.add_argument("--pretrain-steps", type=int, default=80)
    ap.add_argument("--pretrain-batch-size", type=int, default=32)
    ap.add_argument("--finetune-steps", type=int, default=120)
    ap.add_argument("--batch-size", type=int, default=8, help="fine-tuning batch")
    ap.add_argument("--matched-scratch", action="store_true",
                    help="a third arm: from scratch for the pretrained arm's images in all")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seeds", default="0", help="training seeds, comma-separated")
    ap.add_argument("--consistency", action="store_true", help="MobRecon's consistency losses (2 images per item)")
    ap.add_argument("--eval-points", type=int, default=3, help="evaluations during each fine-tuning")
    ap.add_argument("--eval", action="append", default=[], metavar="NAME:ROOT",
                    help="also evaluate on a benchmark folder (e.g. freihand:~/data/FreiHAND); repeatable")
    ap.add_argument("--finetune-data", action="append", default=[], metavar="NAME:ROOT[:RATIO]",
                    help="fine-tune on these datasets instead of the rendered training images; repeatable")
    ap.add_argument("--heldout-poses", type=int, default=8, help="evaluation poses, never trained on")
    ap.add_argument("--shifted-views", type=int, default=12, help="views per pose of the shifted evaluation set")
    ap.add_argument("--hand-model", default="openhand",
                    help="the renders' and MobRecon's hand model: openhand, mano or a MANO file (fine-tuning or "
                         "scoring meshes on FreiHAND / HO3D needs MANO's topology)")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    ap.add_argument("--render-workers", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0, help="training processes through Ray Train (0: this one)")
    ap.add_argument("--gpus-per-worker", type=float, default=0)
    ap.add_argument("--address", help="an existing Ray cluster (rendering and training)")
    ap.add_argument("--loader-workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads in this process (0: torch's default)")
    args = ap.parse_args()

    import torch

    import finetune.task_mesh  # noqa: F401  registers the 'mesh' task
    import pretrain.task2d  # noqa: F401  registers the 'pose2d' task
    from benchmarks.pretraining_report import write_report

    if args.threads:
        torch.set_num_threads(args.threads)
    scales = sorted(int(s) for s in args.scales.split(","))
    encoders = [e.strip() for e in args.encoders.split(",") if e.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    from synth.hand_model import HandModel
    from synth.poses import complement_poses

    hand_model = HandModel(args.hand_model)
    mano = hand_model.name.upper() == "MANO"
    p = plan(scales, args.views, args.heldout_poses, args.shifted_views, complement_poses(model=hand_model))
    rendered = render(p, args.data or out / "data", args)
    evals = eval_specs(p, rendered["folders"], args.eval, mano)
    results = []
    for scale in scales:
        poses = p["train"][scale]
        train_specs = list(args.finetune_data) or [
            {"name": "complement", "root": str(rendered["folders"]["train"]), "options": {"poses": poses}}]
        for encoder in encoders:
            for seed in seeds:
                tag = run_tag(scale, encoder, seed)
                pre = train(pretrain_config(out / tag / "pretrain", rendered["folders"], poses, encoder, seed, args),
                            args)
                row = {"scale": scale, "poses": len(poses), "images": len(poses) * args.views, "encoder": encoder,
                       "seed": seed, "pretrain_seconds": pre["wall_seconds"], "pretrain_2d": pre["metrics"]}
                arms = [("pretrained", pre["files"]["encoder"], None), ("scratch", None, None)]
                if args.matched_scratch:
                    arms.append(("matched_scratch", None, matched_steps(args)))
                for arm, encoder_file, steps in arms:
                    run = out / tag / arm
                    s = train(finetune_config(run, train_specs, evals, encoder, encoder_file, seed, args, steps), args)
                    row[arm] = {"seconds": s["wall_seconds"], "steps": s["step"],
                                "splits": {split: score(run, split, mano) for split in evals},
                                "history": {split: eval_history(run, split) for split in evals}}
                    print(f"[{tag}] {arm}: " + ", ".join(
                        f"{split} PA-MPJPE {m['pa_mpjpe_mm']:.2f} mm" for split, m in row[arm]["splits"].items()),
                        flush=True)
                results.append(row)
    first = out / run_tag(scales[0], encoders[0], seeds[0]) / "scratch"
    summary = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "plan": p, "render_seconds": rendered["seconds"], "shifted_look": SHIFTED_LOOK,
               "constant": {split: constant_score(first / f"gt_{split}.npz") for split in evals},
               "wall_seconds": round(time.time() - t0, 1), "runs": results}
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    print(write_report(summary, out))


if __name__ == "__main__":
    main()
