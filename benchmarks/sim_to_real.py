"""Does a model trained on renders only read real hands? The 2D task scored on real photographs.

    .venv/bin/python benchmarks/sim_to_real.py [--out runs/sim_to_real] [--arms camera+aug,baked]
        [--poses 24] [--views 48] [--heldout-poses 4] [--steps 600] [--batch-size 32] [--seeds 0]
        [--real coco_hand:../shared/realhands/asl/coco_hand.json] [--finetune-steps 0]
        [--workers N] [--address HEAD:6379] [--render-workers 2]

1. Renders (resumable; OUT/data/LOOK, one folder per look the arms use) `--poses` training poses and
   `--heldout-poses` held-out poses (never trained on, nor any pose equal to one), `--views` views each
   spread over the 216, at 128 px and 16 samples per pixel.
2. Per arm and seed, pretrains the encoder on the 2D task (heatmap + MapReg heads; pretrain/task2d.py)
   for `--steps` steps, evaluating `--eval-points` times on the held-out synthetic poses and on the real
   frames (a COCO hand keypoint file; only labelled keypoints count) for the learning curve. An arm is a
   look (benchmarks/looks.py) and an augmentation (ARMS): `baked` is the look as it was, camera effects
   baked into the renders at their former strength; `camera+aug` is today's default look (a camera model
   at real cameras' strength) with that strength drawn as training-time augmentation every epoch
   (preset 'strong'), `camera+medium` with about half of it (preset 'medium'); `camera` the same look
   without camera augmentation; `clean` no effects at all; `camera+aug+upright` is `camera+aug` with the
   geometry ranges used before the released code's (+-30 deg, zoom 0.9-1.1, shift +-5 %).
3. With `--finetune-steps`, fine-tunes MobRecon from each pretrained encoder on the same renders and
   scores its 2D keypoints on the real frames too (the fine-tuned model's own 2D error).
4. Writes OUT/results.json, OUT/results.md and OUT/curves.png: per arm the real 2D error (px in the
   128 px crop) and 2D AUC (0-30 px) against a constant prediction (the real set's mean keypoints: a
   model near it ignores the image) and against the same model's held-out synthetic error (a model good
   on held-out renders and bad on real ones meets a domain gap; bad on both, it is under-trained).

Runs are skipped when their folder holds a finished run of the same settings (a killed benchmark
resumes). `--workers N` trains through Ray Train, `--address` joins a cluster (the output folder must
then be on storage every node sees). Asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.looks import look_config  # noqa: E402
from benchmarks.pretraining_effect import plan, steps_config, train  # noqa: E402
from benchmarks.realism import DEFAULT_REAL  # noqa: E402
from pretrain.image_ops import CAMERA_AUGMENT_PRESETS  # noqa: E402

# the former baked-in strength as training-time augmentation (pretrain.image_ops.CAMERA_AUGMENT_PRESETS)
STRONG_CAMERA = CAMERA_AUGMENT_PRESETS["strong"]
ARMS = {
    "baked": {"look": "legacy", "augment": True},
    "camera+aug": {"look": "default", "augment": {"camera": STRONG_CAMERA}},
    "camera+medium": {"look": "default", "augment": {"camera": CAMERA_AUGMENT_PRESETS["medium"]}},
    "camera": {"look": "default", "augment": True},
    "clean": {"look": "no_effects_occluders", "augment": True},
    # today's look and camera augmentation with the geometry ranges before the release's (issue 22): +-30 deg
    # always, zoom 0.9-1.1, shift +-5 % (every complement view is rolled fingers-up, so this keeps hands upright)
    "camera+aug+upright": {"look": "default", "augment": {"camera": STRONG_CAMERA, "rotation": 30.0,
                                                          "rotation_prob": 1.0, "spread": 0.0, "scale": [0.9, 1.1],
                                                          "translation": 0.05}},
}


def render_looks(looks: list, p: dict, args) -> dict:
    """{look: dataset folder}: the training and held-out poses x the training views of each look."""
    from synth.distribute import render_dataset

    folders = {}
    for look in looks:
        folder = args.data / look
        cfg = look_config(look, resolution=128, samples=args.samples, seed=args.render_seed,
                          threads=1 if args.render_workers else 0)
        t = time.time()
        poses = sorted(set(p["train"][args.poses]) | set(p["heldout"]))
        s = render_dataset(cfg, folder, poses, p["views"], workers=args.render_workers, address=args.address)
        if s.failed:
            raise RuntimeError(f"rendering {folder} failed for poses {sorted(s.failed)}: {s.failed}")
        print(f"[render] {look}: {len(poses)} poses x {len(p['views'])} views in {folder} "
              f"({len(s.skipped)} shards already there, {time.time() - t:.0f} s)", flush=True)
        folders[look] = folder
    return folders


def pretrain_config(out: Path, folder: Path, p: dict, arm: dict, seed: int, args):
    from pretrain.trainer import TrainConfig

    return TrainConfig(task="pose2d", out=str(out), batch_size=args.batch_size, lr=args.lr, milestones=[],
                       seed=seed, num_workers=args.loader_workers, checkpoint_every=0, log_every=10,
                       eval_every=max(1, args.steps // args.eval_points), eval_samples=100000,
                       **steps_config(args.steps),
                       task_options={"data": str(folder), "poses": sorted(p["train"][args.poses] + p["heldout"]),
                                     "heldout_poses": p["heldout"], "encoder": args.encoder, "input_size": 128,
                                     "augment": arm["augment"], "coco_eval": {"real": str(args.real)}})


def finetune_config(out: Path, folder: Path, p: dict, encoder_file: str, seed: int, args):
    from pretrain.trainer import TrainConfig

    steps = args.finetune_steps
    data = {"name": "complement", "root": str(folder), "options": {"poses": p["train"][args.poses]}}
    evals = {"synthetic": {"name": "complement", "root": str(folder), "options": {"poses": p["heldout"]}},
             "real": {"name": "coco_hand", "root": str(args.real)}}
    return TrainConfig(task="mesh", out=str(out), batch_size=8, lr=args.lr, milestones=[], seed=seed,
                       num_workers=args.loader_workers, checkpoint_every=0, log_every=10,
                       eval_every=max(1, steps // args.eval_points), eval_samples=100000, **steps_config(steps),
                       task_options={"model": f"mobrecon_{args.encoder}", "pretrained_encoder": encoder_file,
                                     "input_size": 128, "datasets": [data], "eval_datasets": evals,
                                     "consistency": False, "augment": True})


def constant_figures(gt: np.ndarray, labelled: np.ndarray) -> dict:
    """The 2D figures of one constant prediction for every sample: the mean of each keypoint over the samples
    where it is labelled (crop pixels), scored on the labelled keypoints."""
    from pretrain.evaluate2d import pck_2d

    gt, labelled = np.asarray(gt, np.float64), np.asarray(labelled, bool)
    mean = np.array([gt[labelled[:, k], k].mean(axis=0) for k in range(gt.shape[1])])
    m = pck_2d(np.broadcast_to(mean, gt.shape), gt, labelled)
    return {"mean_px": m["mean_px"], "auc": m["auc"]}


def crops_labels(dataset) -> tuple:
    """(keypoints (N, 21, 2), labelled (N, 21)) of an un-augmented 2D dataset's items."""
    items = [dataset[i] for i in range(len(dataset))]
    return (np.stack([it["keypoints_2d"].numpy() for it in items]),
            np.stack([it["visibility"].numpy() for it in items]))


def constants(folder: Path, p: dict, args) -> dict:
    """The constant prediction's figures on the real frames and on the held-out synthetic poses."""
    from pretrain.coco_hand import CocoHand2D
    from pretrain.data2d import Pose2DSamples
    from synth.reader import ComplementDataset

    real_kp, real_lab = crops_labels(CocoHand2D(args.real, 128))
    synth_kp, _ = crops_labels(Pose2DSamples(ComplementDataset(folder, poses=p["heldout"]), 128))
    return {"real": constant_figures(real_kp, real_lab),
            "synthetic": constant_figures(synth_kp, np.ones(synth_kp.shape[:2], bool))}


def history(run: Path, split: str, key: str) -> tuple:
    from pretrain.curves import read_scalars

    steps, values = read_scalars(run / "scalars.csv").get(f"eval/{split}/{key}", ([], []))
    return list(map(int, steps)), list(map(float, values))


def mean_std(values: list) -> str:
    v = np.asarray(values, np.float64)
    return f"{v.mean():.3f}" if len(v) == 1 else f"{v.mean():.3f} +- {v.std(ddof=1):.3f}"


def markdown(summary: dict) -> str:
    c = summary["constant"]
    s = summary["settings"]
    lines = [f"{s['poses']} training poses x {s['views']} views = {summary['images']} renders, "
             f"{s['heldout_poses']} held-out poses ({summary['heldout_images']} renders), "
             f"{summary['real_frames']} real frames; {s['encoder']}, {s['steps']} steps of batch "
             f"{s['batch_size']}, lr {s['lr']}; wall {summary['wall_seconds'] / 60:.1f} min "
             f"(rendering {sum(summary['render_seconds'].values()) / 60:.1f} min)", "",
             "| arm | seed | real px | real AUC | held-out synthetic px | synthetic AUC | train s |",
             "| --- | --- | --- | --- | --- | --- | --- |",
             f"| constant prediction | - | {c['real']['mean_px']:.2f} | {c['real']['auc']:.3f} | "
             f"{c['synthetic']['mean_px']:.2f} | {c['synthetic']['auc']:.3f} | - |"]
    for r in summary["runs"]:
        lines.append(f"| {r['arm']} | {r['seed']} | {r['real']['mean_px']:.2f} | {r['real']['auc']:.3f} | "
                     f"{r['synthetic']['mean_px']:.2f} | {r['synthetic']['auc']:.3f} | {r['seconds']:.0f} |")
    arms = sorted({r["arm"] for r in summary["runs"]}, key=list(ARMS).index)
    if len(summary["runs"]) > len(arms):
        lines += ["", "| arm | seeds | real AUC (mean +- std) | synthetic AUC |", "| --- | --- | --- | --- |"]
        for a in arms:
            rs = [r for r in summary["runs"] if r["arm"] == a]
            lines.append(f"| {a} | {len(rs)} | {mean_std([r['real']['auc'] for r in rs])} | "
                         f"{mean_std([r['synthetic']['auc'] for r in rs])} |")
    ft = [r for r in summary["runs"] if r.get("finetune")]
    if ft:
        lines += ["", "MobRecon fine-tuned from each encoder on the same renders: its 2D error (px)", "",
                  "| arm | seed | real px | held-out synthetic px | steps |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {r['arm']} | {r['seed']} | {r['finetune']['real_px']:.2f} | "
                  f"{r['finetune']['synthetic_px']:.2f} | {r['finetune']['steps']} |" for r in ft]
    return "\n".join(lines)


def curves_picture(summary: dict, path: Path) -> Path:
    """Real and held-out synthetic 2D error against the step, every arm and seed, the constant's level."""
    from pretrain.curves import line_chart
    from synth.pictures import grid

    panels = []
    for split in ("real", "synthetic"):
        series = {f"{r['arm']} seed {r['seed']}": tuple(r["history"][split]) for r in summary["runs"]}
        xs = [x for steps, _ in series.values() for x in steps]
        if xs:
            series["constant prediction"] = ([min(xs), max(xs)], [summary["constant"][split]["mean_px"]] * 2)
        panels.append(line_chart(series, title=f"2D error on {split} hands", xlabel="pretraining step",
                                 ylabel="px (128 px crop)", size=(480, 300)))
    grid(panels, columns=2).save(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/sim_to_real"))
    ap.add_argument("--data", type=Path, help="where the renders go (default OUT/data; share it between runs)")
    ap.add_argument("--arms", default="camera+aug,baked", help=f"comma-separated, of: {', '.join(ARMS)}")
    ap.add_argument("--poses", type=int, default=24, help="training poses (spread over the 1520)")
    ap.add_argument("--views", type=int, default=48, help="views per pose (spread over the 216)")
    ap.add_argument("--heldout-poses", type=int, default=4)
    ap.add_argument("--encoder", default="densestack")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seeds", default="0", help="training seeds, comma-separated")
    ap.add_argument("--eval-points", type=int, default=4, help="evaluations during each run (the curve)")
    ap.add_argument("--real", type=Path, default=DEFAULT_REAL,
                    help="real frames: a COCO hand keypoint file or its folder (coco_hand:PATH also taken)")
    ap.add_argument("--finetune-steps", type=int, default=0, help="MobRecon fine-tuning steps after pretraining")
    ap.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    ap.add_argument("--render-seed", type=int, default=0)
    ap.add_argument("--render-workers", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0, help="training processes through Ray Train (0: this one)")
    ap.add_argument("--gpus-per-worker", type=float, default=0)
    ap.add_argument("--address", help="an existing Ray cluster (rendering and training)")
    ap.add_argument("--loader-workers", type=int, default=0,
                    help="DataLoader processes (0: load in this process; on 2 cores a worker process made a "
                         "step 3.6x slower through contention)")
    args = ap.parse_args()
    if str(args.real).startswith("coco_hand:"):
        args.real = Path(str(args.real).split(":", 1)[1])
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; arms: {', '.join(ARMS)}")
    if not args.real.exists():
        raise SystemExit(f"{args.real}: no such COCO hand keypoint file or folder (--real)")
    seeds = [int(s) for s in args.seeds.split(",")]

    import finetune.task_mesh  # noqa: F401  registers the 'mesh' task
    import pretrain.task2d  # noqa: F401  registers the 'pose2d' task
    from pretrain.coco_hand import CocoHand2D
    from synth.hand_model import HandModel
    from synth.poses import complement_poses

    args.out.mkdir(parents=True, exist_ok=True)
    args.data = args.data or args.out / "data"
    t0 = time.time()
    p = plan([args.poses], args.views, args.heldout_poses, 0, complement_poses(model=HandModel("openhand")))
    looks = sorted({ARMS[a]["look"] for a in arms})
    t = time.time()
    folders = render_looks(looks, p, args)
    render_seconds = {"all": round(time.time() - t, 1)}
    runs = []
    for arm in arms:
        folder = folders[ARMS[arm]["look"]]
        for seed in seeds:
            run = args.out / f"{arm}_seed{seed}"
            s = train(pretrain_config(run / "pretrain", folder, p, ARMS[arm], seed, args), args)
            m = s["metrics"]
            row = {"arm": arm, "seed": seed, "seconds": s["wall_seconds"], "steps": s["step"],
                   "real": {k: m["real"][k] for k in ("mean_px", "auc")},
                   "synthetic": {k: m["heldout_poses"][k] for k in ("mean_px", "auc")},
                   "history": {"real": history(run / "pretrain", "real", "mean_px"),
                               "synthetic": history(run / "pretrain", "heldout_poses", "mean_px")}}
            if args.finetune_steps:
                f = train(finetune_config(run / "finetune", folder, p, s["files"]["encoder"], seed, args), args)
                row["finetune"] = {"real_px": f["metrics"]["real"]["px_2d"],
                                   "synthetic_px": f["metrics"]["synthetic"]["px_2d"], "steps": f["step"]}
            print(f"[{arm} seed {seed}] real {row['real']['mean_px']:.2f} px AUC {row['real']['auc']:.3f}; "
                  f"held-out synthetic {row['synthetic']['mean_px']:.2f} px AUC {row['synthetic']['auc']:.3f}",
                  flush=True)
            runs.append(row)
    const = constants(folders[looks[0]], p, args)
    summary = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "plan": p, "arms": {a: ARMS[a] for a in arms}, "constant": const,
               "images": args.poses * args.views, "heldout_images": args.heldout_poses * args.views,
               "real_frames": len(CocoHand2D(args.real)),
               "render_seconds": render_seconds, "wall_seconds": round(time.time() - t0, 1), "runs": runs}
    (args.out / "results.json").write_text(json.dumps(summary, indent=1))
    text = markdown(summary)
    (args.out / "results.md").write_text(text + "\n")
    curves_picture(summary, args.out / "curves.png")
    print(text)
    print(f"\n{args.out / 'results.md'}, {args.out / 'curves.png'}")


if __name__ == "__main__":
    main()
