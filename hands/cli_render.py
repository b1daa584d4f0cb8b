"""`hands render`: render complement-dataset shards (locally or on a Ray cluster)."""
from __future__ import annotations

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


def read_config_file(path) -> dict:
    """The settings of a `--config` YAML file as a mapping, their types checked (synth/settings.py); a missing
    file, a folder, unreadable YAML, a top level that is not a mapping or a wrongly typed setting is a
    one-line ValueError naming the file."""
    import yaml

    from synth.render_config import RenderConfig
    from synth.settings import check_types, mapping_of, typed_fields

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--config {path}: is a folder; expected a YAML file of render settings")
    if not path.exists():
        raise ValueError(f"--config {path}: not found; expected a YAML file of render settings")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"--config {path}: cannot read it ({err})") from None
    except yaml.YAMLError as err:
        raise ValueError(f"--config {path}: not readable YAML ({' '.join(str(err).split())})") from None
    data = mapping_of(data, f"--config {path}")
    check_types(data, typed_fields(RenderConfig), f"render setting in {path}")
    return data


def config_from_args(args):
    """The RenderConfig of a command line: --config FILE, then --set KEY=VALUE and the setting flags (whose
    argparse dest is the RenderConfig field they set), a setting named by both being an error."""
    from dataclasses import fields

    from synth.render_config import RenderConfig

    from .cli_values import key_values

    base = read_config_file(args.config) if args.config else {}
    sets = key_values(getattr(args, "set", None), "--set")
    flags = {f.name: getattr(args, f.name) for f in fields(RenderConfig) if getattr(args, f.name, None) is not None}
    both = sorted(set(sets) & set(flags))
    if both:
        raise ValueError(f"render setting(s) {both} given both by a flag and by --set; give each once")
    return RenderConfig.from_dict({**base, **sets, **flags})


def write_json_atomic(path, obj) -> None:
    """JSON through a temporary file and a rename (synth.shards' writer): a full disk or a read-only folder
    leaves the former file (or none), never an empty or cut one, and is a one-line error naming the path."""
    from synth.shards import _atomic_write_json

    try:
        _atomic_write_json(Path(path), obj)
    except OSError as err:
        raise RuntimeError(f"cannot write {path}: {err.strerror or err}") from None


def _cmd_render(args) -> None:
    from synth.distribute import estimate_seconds_per_image, plan_dataset, render_dataset
    from synth.poses import num_poses
    from synth.rig import NUM_VIEWS

    cfg = config_from_args(args)
    pose_ids = parse_ids(args.poses, num_poses(cfg.splay), "poses")
    view_ids = parse_ids(args.views, NUM_VIEWS, "views")
    out = Path(args.out)
    if args.dry_run:
        plan = plan_dataset(cfg, out, pose_ids, view_ids, overwrite=args.overwrite)
        refusal = plan.conflict()
        if refusal:
            raise ValueError(refusal)
        per_image = estimate_seconds_per_image(cfg)
        images = len(plan.todo) * len(plan.view_ids)
        workers = max(1, args.workers)
        for line in plan.lines():
            print(line)
        if plan.todo:
            print(f"first shards to render: {', '.join(f'{p:04d}.tar' for p in plan.todo[:8])}"
                  f"{' ...' if len(plan.todo) > 8 else ''}")
        print(f"estimated cost: {per_image:.2f} s per image per CPU at {cfg.resolution} px, {cfg.samples} spp "
              f"-> {images * per_image / 3600:.2f} CPU-hours, about {images * per_image / workers / 3600:.2f} h "
              f"on {workers} worker(s)")
        return
    summary = render_dataset(cfg, out, pose_ids, view_ids, workers=args.workers, address=args.address,
                             max_retries=args.retries, recycle_after=args.recycle_after,
                             progress=not args.no_progress, overwrite=args.overwrite)
    for line in summary.lines():
        print(line)
    write_json_atomic(out / "render_summary.json", {
        "done": summary.done, "skipped": summary.skipped, "failed": summary.failed, "images": summary.images,
        "seconds": summary.seconds, "render_seconds": summary.render_seconds, "cpus": summary.cpus})
    if summary.failed:
        raise RuntimeError(f"{len(summary.failed)} shard(s) failed; re-run the same command to retry them")
    if args.preview:
        from synth.pictures import contact_sheet
        from synth.reader import ComplementDataset

        path = out / "preview.png"
        contact_sheet(ComplementDataset(out, poses=pose_ids, views=view_ids), count=args.preview).save(path)
        print(f"preview: {path} ({args.preview} random samples at full size, with their label maps)")


def _add_setting_flags(g) -> None:
    """Shorthands for common settings, each with the RenderConfig field it sets as its dest (config_from_args
    reads them by field name); a new setting needs none, --set reaches every field."""
    g.add_argument("--seed", dest="seed", type=int)
    g.add_argument("--model", dest="model",
                   help="hand model: 'openhand' (default: OpenHand 2), 'openhand1', 'mano' or a path")
    g.add_argument("--resolution", dest="resolution", type=int, help="image size in pixels (default 256)")
    g.add_argument("--samples", dest="samples", type=int, help="Cycles samples per pixel (default 64)")
    g.add_argument("--denoiser", dest="denoiser", choices=["oidn", "none"])
    g.add_argument("--device", dest="device", choices=["auto", "cpu", "gpu"])
    g.add_argument("--rgb-format", dest="rgb_format", choices=["png", "jpg"])
    g.add_argument("--threads", dest="threads", type=int, help="Cycles threads per worker (default: all it sees)")
    g.add_argument("--hdri-folder", dest="hdri_folders", action="append", metavar="HDRI_FOLDER",
                   help="folder of .hdr/.exr environments (repeatable)")
    g.add_argument("--skies", dest="hdri_skies", type=int, metavar="SKIES",
                   help="number of procedural skies in the catalog (default 6)")
    g.add_argument("--heldout", dest="hdri_heldout", action="append", metavar="HELDOUT",
                   help="HDRI id kept out of training shards (repeatable)")
    g.add_argument("--strict", dest="hdri_strict", action="store_const", const=True,
                   help="stop on a bad HDRI file instead of skipping it")
    g.add_argument("--hdri-split", dest="hdri_split", choices=["train", "heldout"],
                   help="environments to draw from: 'train' (default) or 'heldout' for evaluation shards")
    g.add_argument("--no-forearm", dest="forearm", action="store_const", const=False,
                   help="render the hand alone (open wrist)")
    g.add_argument("--occluders", dest="occluder_prob", type=float, metavar="P",
                   help="share of samples with occluders (default 0.1)")
    g.add_argument("--camera-effects", dest="camera_effects", choices=["auto", "on", "off"],
                   help="camera and sensor effects: auto (default: on for the train split), on, off")


def add_parser(sub) -> None:
    r = sub.add_parser("render", help="render complement-dataset shards (Blender; Ray for several workers)")
    r.add_argument("--out", required=True, help="dataset folder (shards/, tables, dataset.json)")
    r.add_argument("--poses", default="all", help="pose ids: 'all', '0:1520', '0,31,700' (default all)")
    r.add_argument("--views", default="all", help="view ids: 'all' (216), '0:36', '0,90' (default all)")
    r.add_argument("--config", help="YAML file of render settings (synth.render_config.RenderConfig)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any RenderConfig setting, the value as YAML (repeatable): --set skin_run_length=1 "
                        "--set 'hdri_strength=[0.8, 1.2]'")
    _add_setting_flags(r.add_argument_group("render settings (shorthands: --set reaches every RenderConfig field)"))
    r.add_argument("--preview", type=int, metavar="N", default=0,
                   help="write OUT/preview.png: N random samples at full size with their label maps")
    r.add_argument("--workers", type=int, default=1,
                   help="local Ray workers (default 1); 0 renders in this process without Ray")
    r.add_argument("--address", help="join an existing Ray cluster (or set RAY_ADDRESS)")
    r.add_argument("--retries", type=int, default=2, help="retries per shard on failure (default 2)")
    r.add_argument("--recycle-after", type=int, default=25, help="shards per Ray worker before it restarts")
    r.add_argument("--overwrite", action="store_true",
                   help="replace the dataset in --out (its shards and tables are removed first); without it a "
                        "folder holding complete shards of another config is refused, and one of the same config "
                        "is continued (the plan is the union of its poses / views and these)")
    r.add_argument("--dry-run", action="store_true",
                   help="print the shard plan (what is complete, rendered, re-rendered or replaced) and the cost")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(fn=_cmd_render)
