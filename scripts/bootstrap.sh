#!/usr/bin/env bash
# Creates .venv and installs the project into it. Idempotent: re-installs only
# when pyproject.toml changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
    echo "[bootstrap] creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
    echo "[bootstrap] installing dependencies (first run takes a few minutes)"
    .venv/bin/python -m pip install -q --upgrade pip
    # The CPU torch first and pinned: anything that pulls plain 'torch'
    # (smplx does) would otherwise fetch a multi-GB CUDA build.
    .venv/bin/python -m pip install -q "torch==2.13.0"
    .venv/bin/python -m pip install -q -e ".[render,train,export,dev]"
    rm -f .venv/.installed-*
    touch "$stamp"
fi
