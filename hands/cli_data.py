"""`hands data`: look at benchmark datasets on disk without training.

    hands data check DATASET ROOT [--limit N]    walk a dataset, print counts and problems
    hands data list                              the dataset names the registry knows

`check` prints the loader's report lines ("count: ...", "info: ...", "problem: ...", see
finetune/datasets/registry.py) and exits 1 when there is any problem. Heavy imports happen
inside the commands, so `hands --help` stays instant.
"""
from __future__ import annotations

import sys


def _cmd_check(args) -> None:
    from finetune.datasets import registry

    cls = registry.get(args.dataset)
    kwargs = {"limit": args.limit} if args.limit else {}
    lines = list(cls.check(args.root, **kwargs))
    problems = [ln for ln in lines if ln.startswith("problem")]
    for line in lines:
        print(line)
    print(f"{args.dataset} at {args.root}: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
    if problems:
        raise SystemExit(1)


def _cmd_list(args) -> None:
    from finetune.datasets import registry

    for name in registry.names():
        print(name)


def add_parser(subparsers) -> None:
    data = subparsers.add_parser("data", help="benchmark datasets on disk: check them without training")
    sub = data.add_subparsers(dest="what", required=True)
    c = sub.add_parser("check", help="walk a dataset in its official layout; print counts and problems")
    c.add_argument("dataset", help="dataset name (freihand, rhd, ho3d, ...; 'hands data list' shows them)")
    c.add_argument("root", help="the dataset's root folder, as published")
    c.add_argument("--limit", type=int, default=0, help="check only the first N samples of each split (0: all)")
    c.set_defaults(fn=_cmd_check)
    ls = sub.add_parser("list", help="the dataset names the registry knows")
    ls.set_defaults(fn=_cmd_list)


if __name__ == "__main__":  # python -m hands.cli_data check DATASET ROOT
    import argparse

    p = argparse.ArgumentParser(prog="hands")
    add_parser(p.add_subparsers(dest="command", required=True))
    a = p.parse_args()
    a.fn(a)
    sys.exit(0)
