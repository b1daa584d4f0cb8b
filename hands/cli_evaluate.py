"""`hands evaluate PRED GT --benchmark ...`: official benchmark metrics of a predictions file.
numpy, scipy and PIL are imported only when the command runs."""
from __future__ import annotations


def _cmd_evaluate(args) -> None:
    from finetune.evaluate import run_evaluate

    out = args.out or f"runs/evaluate_{args.benchmark}"
    run_evaluate(args.pred, args.gt, args.benchmark, out, mesh_topology=args.mesh_topology, steps=args.steps,
                 fps=args.fps)


def add_parser(subparsers) -> None:
    from argparse import RawDescriptionHelpFormatter

    p = subparsers.add_parser(
        "evaluate", help="score predictions with a benchmark's official metrics (table, JSON, PCK plot)",
        formatter_class=RawDescriptionHelpFormatter,
        description="Score predictions against ground truth with the benchmark's official algorithms.\n"
                    "PRED and GT: .npz (xyz (N,21,3) m, optional verts, uv, vis, K, ids, sequence; project "
                    "conventions),\n.json ([xyz_list, verts_list] or an evaluation_xyz.json list; the "
                    "benchmark's submission convention),\nor a Dex-YCB result .txt (index + 63 values in mm).")
    p.add_argument("pred", help="predictions file")
    p.add_argument("gt", help="ground-truth file")
    p.add_argument("--benchmark", required=True, choices=["freihand", "ho3d", "dexycb", "rhd", "stb"])
    p.add_argument("--out", help="output folder for metrics_<benchmark>.json and pck_<benchmark>.png "
                                 "(default: runs/evaluate_<benchmark>)")
    p.add_argument("--mesh-topology", choices=["auto", "mano", "other"], default="auto",
                   help="auto: MANO when vertex counts match (the official rule); 'other' for meshes of "
                        "another topology, e.g. OpenHand's, which has 778 vertices but not MANO's order")
    p.add_argument("--steps", type=int, help="RHD/STB: thresholds per AUC curve (default 20, as MobRecon)")
    p.add_argument("--fps", type=float, help="scale Acc to per-second^2 units (default: per frame^2)")
    p.set_defaults(fn=_cmd_evaluate)
