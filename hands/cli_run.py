"""`hands run` (a pipeline of pipelines.yaml) and `hands stages` (the stages a pipeline can use)."""
from __future__ import annotations

from pathlib import Path


def _cmd_run(args) -> None:
    from .pipeline import DEFAULT_FILE, load_pipelines, parse_stages, run_pipeline
    from .stages import STAGES

    if args.list or not args.pipeline:
        for name, spec in load_pipelines(args.file).items():
            stages = " -> ".join(s for s, _ in parse_stages(name, spec, STAGES))
            print(f"{name}: {spec.get('description', '')}\n    {stages}")
        return
    out = Path(args.out) if args.out else Path("runs") / args.pipeline
    run_pipeline(args.pipeline, out, args.file or DEFAULT_FILE, args.set, overwrite=args.overwrite)


def _cmd_stages(args) -> None:
    from .pipeline import stage_settings
    from .stages import STAGES

    for name, fn in STAGES.items():
        settings = ", ".join(f"{k}={v!r}" for k, v in stage_settings(fn).items())
        print(f"{name}({settings})\n    {(fn.__doc__ or '').strip()}")


def add_parser(sub) -> None:
    r = sub.add_parser("run", help="run a pipeline of pipelines.yaml (e.g. 'hands run demo')")
    r.add_argument("pipeline", nargs="?", help="pipeline name; omit to list them")
    r.add_argument("--file", help="pipeline file (default: pipelines.yaml of the repository)")
    r.add_argument("--out", help="output folder (default: runs/PIPELINE)")
    r.add_argument("--set", action="append", default=[], metavar="STAGE.KEY=VALUE",
                   help="override a stage setting (YAML value), repeatable")
    r.add_argument("--list", action="store_true", help="list the pipelines and their stages")
    r.add_argument("--overwrite", action="store_true",
                   help="replace the training runs a former run of the pipeline left in OUT (else refused)")
    r.set_defaults(fn=_cmd_run)

    s = sub.add_parser("stages", help="list the stages a pipeline can use, with their settings")
    s.set_defaults(fn=_cmd_stages)
