"""`hands render`: render complement-dataset shards (locally or on a Ray cluster)."""
from __future__ import annotations

import json
from pathlib import Path


def parse_ids(text: str, total: int, what: str) -> list:
    """'all', 'a:b' (half-open), 'a:b:step' or a comma list -> sorted ids, checked against 0..total-1."""
    text = str(text).strip()
    if text == "all":
        return list(range(total))
    ids = []
    for part in text.split(","):
        part = part.strip()
        try:
            if ":" in part:
                ids += list(range(*[int(x) for x in part.split(":")]))
            else:
                ids.append(int(part))
        except (ValueError, TypeError) as err:
            raise ValueError(f"--{what}: cannot read '{part}' (use 'all', 'a:b' or a comma list)") from err
    bad = sorted({i for i in ids if not 0 <= i < total})
    if bad:
        raise ValueError(f"--{what}: ids {bad[:5]}{'...' if len(bad) > 5 else ''} are not in 0..{total - 1}")
    if not ids:
        raise ValueError(f"--{what}: '{text}' selects nothing")
    return sorted(set(ids))


def config_from_args(args):
    from synth.render_config import RenderConfig

    base = {}
    if args.config:
        import yaml

        base = yaml.safe_load(Path(args.config).read_text()) or {}
    over = {"seed": args.seed, "model": args.model, "resolution": args.resolution, "samples": args.samples,
            "denoiser": args.denoiser, "device": args.device, "rgb_format": args.rgb_format,
            "hdri_skies": args.skies, "threads": args.threads,
            "hdri_folders": tuple(args.hdri_folder) if args.hdri_folder else None,
            "hdri_heldout": tuple(args.heldout) if args.heldout else None,
            "hdri_strict": True if args.strict else None, "hdri_split": args.hdri_split,
            "forearm": False if args.no_forearm else None, "occluder_prob": args.occluders,
            "camera_effects": args.camera_effects}
    base.update({k: v for k, v in over.items() if v is not None})
    return RenderConfig.from_dict(base)


def _cmd_render(args) -> None:
    from synth.distribute import estimate_seconds_per_image, plan_shards, render_dataset
    from synth.poses import NUM_POSES
    from synth.rig import NUM_VIEWS

    cfg = config_from_args(args)
    total_poses = NUM_POSES if not cfg.splay else 64 + 3 * 2016
    pose_ids = parse_ids(args.poses, total_poses, "poses")
    view_ids = parse_ids(args.views, NUM_VIEWS, "views")
    out = Path(args.out)
    if args.dry_run:
        todo, done = plan_shards(cfg, out, pose_ids, view_ids)
        per_image = estimate_seconds_per_image(cfg)
        images = len(todo) * len(view_ids)
        workers = max(1, args.workers)
        print(f"dataset {out} (config {cfg.config_hash()})")
        print(f"shards: {len(pose_ids)} planned, {len(done)} complete, {len(todo)} to render "
              f"({len(view_ids)} views each: {images} images)")
        if todo:
            print(f"first shards to render: {', '.join(f'{p:04d}.tar' for p in todo[:8])}"
                  f"{' ...' if len(todo) > 8 else ''}")
        print(f"estimated cost: {per_image:.2f} s per image per CPU at {cfg.resolution} px, {cfg.samples} spp "
              f"-> {images * per_image / 3600:.2f} CPU-hours, about {images * per_image / workers / 3600:.2f} h "
              f"on {workers} worker(s)")
        return
    summary = render_dataset(cfg, out, pose_ids, view_ids, workers=args.workers, address=args.address,
                             max_retries=args.retries, recycle_after=args.recycle_after,
                             progress=not args.no_progress)
    for line in summary.lines():
        print(line)
    (out / "render_summary.json").write_text(json.dumps({
        "done": summary.done, "skipped": summary.skipped, "failed": summary.failed, "images": summary.images,
        "seconds": summary.seconds, "render_seconds": summary.render_seconds, "cpus": summary.cpus}, indent=1))
    if summary.failed:
        raise RuntimeError(f"{len(summary.failed)} shard(s) failed; re-run the same command to retry them")
    if args.preview:
        from synth.pictures import contact_sheet
        from synth.reader import ComplementDataset

        path = out / "preview.png"
        contact_sheet(ComplementDataset(out, poses=pose_ids, views=view_ids), count=args.preview).save(path)
        print(f"preview: {path} ({args.preview} random samples at full size, with their label maps)")


def add_parser(sub) -> None:
    r = sub.add_parser("render", help="render complement-dataset shards (Blender; Ray for several workers)")
    r.add_argument("--out", required=True, help="dataset folder (shards/, tables, dataset.json)")
    r.add_argument("--poses", default="all", help="pose ids: 'all', '0:1520', '0,31,700' (default all)")
    r.add_argument("--views", default="all", help="view ids: 'all' (216), '0:36', '0,90' (default all)")
    r.add_argument("--config", help="YAML file of render settings (synth.render_config.RenderConfig)")
    r.add_argument("--seed", type=int)
    r.add_argument("--model", help="hand model: 'openhand' (default: OpenHand 2), 'openhand1', 'mano' or a path")
    r.add_argument("--resolution", type=int, help="image size in pixels (default 256)")
    r.add_argument("--samples", type=int, help="Cycles samples per pixel (default 64)")
    r.add_argument("--denoiser", choices=["oidn", "none"])
    r.add_argument("--device", choices=["auto", "cpu", "gpu"])
    r.add_argument("--rgb-format", choices=["png", "jpg"])
    r.add_argument("--threads", type=int, help="Cycles threads per worker (default: all it sees)")
    r.add_argument("--hdri-folder", action="append", help="folder of .hdr/.exr environments (repeatable)")
    r.add_argument("--skies", type=int, help="number of procedural skies in the catalog (default 6)")
    r.add_argument("--heldout", action="append", help="HDRI id kept out of training shards (repeatable)")
    r.add_argument("--strict", action="store_true", help="stop on a bad HDRI file instead of skipping it")
    r.add_argument("--hdri-split", choices=["train", "heldout"],
                   help="environments to draw from: 'train' (default) or 'heldout' for evaluation shards")
    r.add_argument("--no-forearm", action="store_true", help="render the hand alone (open wrist)")
    r.add_argument("--occluders", type=float, metavar="P", help="share of samples with occluders (default 0.1)")
    r.add_argument("--camera-effects", choices=["auto", "on", "off"],
                   help="camera and sensor effects: auto (default: on for the train split), on, off")
    r.add_argument("--preview", type=int, metavar="N", default=0,
                   help="write OUT/preview.png: N random samples at full size with their label maps")
    r.add_argument("--workers", type=int, default=1,
                   help="local Ray workers (default 1); 0 renders in this process without Ray")
    r.add_argument("--address", help="join an existing Ray cluster (or set RAY_ADDRESS)")
    r.add_argument("--retries", type=int, default=2, help="retries per shard on failure (default 2)")
    r.add_argument("--recycle-after", type=int, default=25, help="shards per Ray worker before it restarts")
    r.add_argument("--dry-run", action="store_true", help="print the shard plan and the estimated cost")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(fn=_cmd_render)
