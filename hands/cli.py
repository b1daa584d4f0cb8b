"""The `hands` command. Subcommands import their modules only when they run,
so `hands --help` stays instant (no torch, no bpy)."""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hands", description="Synthetic hand data, pretraining and fine-tuning toolkit")
    sub = p.add_subparsers(dest="command", required=True)

    from . import cli_data, cli_evaluate, cli_hdri, cli_model, cli_predict, cli_render, cli_run, cli_stats, cli_train

    cli_run.add_parser(sub)
    cli_model.add_parser(sub)
    cli_render.add_parser(sub)
    cli_hdri.add_parser(sub)
    cli_evaluate.add_parser(sub)
    cli_data.add_parser(sub)
    cli_stats.add_parser(sub)
    cli_train.add_parser(sub)
    cli_predict.add_parser(sub)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except (ValueError, OSError, RuntimeError) as err:  # OSError: a missing file, a read-only folder, a full disk
        print(f"hands: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
