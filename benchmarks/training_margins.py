"""How much room the training tests' assertions have, under other float conditions.

    .venv/bin/python benchmarks/training_margins.py [--conditions base,omp1,avx2,seed1,seed2] [--out runs/margins]

A short training run amplifies the last bits of floating-point summation order, which differ between
CPUs (vector width, thread count, library kernels). Each condition below runs the tests marked `trains`
(`pytest -m trains`) in a fresh process under one such change:

| condition | what changes |
| --- | --- |
| base | nothing (the machine's defaults: 2 threads here) |
| omp1 | OMP_NUM_THREADS=1 (one thread: other reduction splits in every kernel) |
| avx2 | ATEN_CPU_CAPABILITY=avx2, MKL_ENABLE_INSTRUCTIONS=AVX2, ONEDNN_MAX_CPU_ISA=AVX2: the kernels an AVX2-only
|      | CPU runs (other vector widths, other summation orders) |
| sse  | ATEN_CPU_CAPABILITY=default, MKL_ENABLE_INSTRUCTIONS=SSE4_2, ONEDNN_MAX_CPU_ISA=SSE41 (slow) |
| seedN | HANDS_TEST_SEED=N: other initial weights and data order |

Every assertion a training test makes through the `margin` fixture (tests/conftest.py) is logged as
value / bound, the share of the allowed room the run used (it passes below 1). The table printed at the
end (and written to OUT/margins.md) gives that share per condition and the worst of them, so a test whose
worst share is near 1 is one that a CPU somewhere will fail. Conditions already finished in OUT are not
run again (delete OUT/<condition>.jsonl to redo one). Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONDITIONS = {
    "base": {},
    "omp1": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "sse": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}


def condition_env(name: str) -> dict:
    if name.startswith("seed") and name[4:].isdigit():
        return {"HANDS_TEST_SEED": name[4:]}
    if name not in CONDITIONS:
        raise SystemExit(f"unknown condition {name!r}; conditions: {', '.join(CONDITIONS)}, seedN")
    return CONDITIONS[name]


def run_condition(name: str, out: Path, tests: list) -> dict:
    log, done = out / f"{name}.jsonl", out / f"{name}.done"
    if done.exists():
        return json.loads(done.read_text())
    log.unlink(missing_ok=True)
    env = {**os.environ, **condition_env(name), "HANDS_MARGIN_LOG": str(log)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "trains", *tests]
    print(f"[{name}] {' '.join(f'{k}={v}' for k, v in condition_env(name).items()) or 'defaults'}", flush=True)
    t0 = time.time()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    summary = {"returncode": res.returncode, "seconds": round(time.time() - t0, 1),
               "last_line": (res.stdout.strip().splitlines() or [""])[-1]}
    print(f"[{name}] {summary['last_line']} ({summary['seconds']} s)", flush=True)
    if res.returncode not in (0, 1):   # 1: some test failed, which the table shows; anything else is broken
        sys.stderr.write(res.stdout[-3000:] + res.stderr[-3000:])
    done.write_text(json.dumps(summary))
    return summary


def read_rows(out: Path, names: list) -> dict:
    """{(test, check): {condition: used share}}, the largest share where a check ran more than once."""
    table: dict = {}
    for name in names:
        path = out / f"{name}.jsonl"
        for line in path.read_text().splitlines() if path.exists() else []:
            row = json.loads(line)
            cell = table.setdefault((row["test"], row["check"]), {})
            cell[name] = max(cell.get(name, 0.0), row["used"])
    return table


def markdown(table: dict, names: list) -> str:
    head = "| test | check | " + " | ".join(names) + " | worst |\n|---|---|" + "---|" * (len(names) + 1) + "\n"
    lines = []
    for (test, check), cells in sorted(table.items()):
        shares = [cells.get(n) for n in names]
        worst = max(s for s in shares if s is not None)
        lines.append(f"| {test.split('::', 1)[-1]} | {check} | "
                     + " | ".join("-" if s is None else f"{s:.2f}" for s in shares) + f" | **{worst:.2f}** |")
    return head + "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conditions", default="base,omp1,avx2,seed1,seed2")
    ap.add_argument("--out", default="runs/margins")
    ap.add_argument("tests", nargs="*", help="test files or node ids (default: the whole suite's `trains` tests)")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.conditions.split(",") if n.strip()]
    for n in names:
        condition_env(n)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summaries = {n: run_condition(n, out, args.tests) for n in names}
    text = ("Share of each training assertion's allowed room used (value / bound; a test fails at 1.00).\n\n"
            + markdown(read_rows(out, names), names) + "\n"
            + "\n".join(f"- {n}: {s['last_line']} in {s['seconds']} s" for n, s in summaries.items()) + "\n")
    (out / "margins.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
