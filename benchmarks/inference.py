"""Batch-1 CPU latency of the reconstruction models, in PyTorch and in onnxruntime.

    .venv/bin/python benchmarks/inference.py                      # every registered model
    .venv/bin/python benchmarks/inference.py --only mobrecon_densestack --runs 50 --threads 2

Each model is built at its input size with random weights (latency does not depend on them),
exported to ONNX (finetune/onnx_export.py) in a temporary folder, and timed: `--warmup` untimed
runs, then `--runs` timed ones; the table gives the median and the 10th-90th percentile spread in
milliseconds, and frames per second from the median. Both runtimes use `--threads` intra-op
threads (default: the CPUs this process may use). For MobRecon the paper's frame rate (seed 001,
Table 1: on an Apple A14 phone) is printed beside ours.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


# MobRecon (seed 001), its frame rates on an Apple A14 (Table 1 / section 4)
PAPER_FPS = {"mobrecon_densestack": 67, "mobrecon_ghoststack": 83}


def timed(fn, warmup: int, runs: int) -> list:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(1000.0 * (time.perf_counter() - t))
    return out


def summary(ms: list) -> str:
    q = statistics.quantiles(ms, n=10)
    med = statistics.median(ms)
    return f"{med:7.2f} ms ({q[0]:.2f}-{q[-1]:.2f}) {1000.0 / med:6.1f} FPS"


def main(argv=None) -> int:
    import torch

    from finetune.models import build_model, model_names
    from finetune.onnx_export import compare, export_onnx, onnx_session

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", action="append", help="model name (repeatable; default: all registered)")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = p.parse_args(argv)
    names = args.only or model_names()
    unknown = sorted(set(names) - set(model_names()))
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; models: {', '.join(model_names())}")
    torch.set_num_threads(args.threads)
    print(f"batch 1, {args.threads} threads, {args.runs} timed runs after {args.warmup} warm-up runs; "
          f"torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            torch.manual_seed(0)
            model = build_model(name).eval()
            S = int(model.input_size)
            x = torch.rand(1, 3, S, S)
            with torch.no_grad():
                t_torch = timed(lambda: model(x), args.warmup, args.runs)
            line = f"{name:24s} {S}px  torch {summary(t_torch)}"
            try:
                path = export_onnx(model, Path(tmp) / f"{name}.onnx")
                err = max(compare(model, path).values())
                sess = onnx_session(path, threads=args.threads)
                feed = {"image": x.numpy()}
                t_ort = timed(lambda: sess.run(None, feed), args.warmup, args.runs)
                line += f"  onnxruntime {summary(t_ort)}  (max diff {err:.1e})"
                if name in PAPER_FPS:
                    line += f"  paper {PAPER_FPS[name]} FPS (A14)"
            except Exception as exc:  # noqa: BLE001 - a model that does not export still gets its torch figure
                line += f"  onnxruntime: export failed ({type(exc).__name__}: {str(exc)[:80]})"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
