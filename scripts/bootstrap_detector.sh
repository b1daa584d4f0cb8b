#!/usr/bin/env bash
# Creates .venv-detector: the real-photo hand detector of benchmarks/realism.py (MediaPipe Hands, whose
# models ship inside the wheel). A venv of its own because mediapipe 0.10.14 needs protobuf < 5 and the
# project's onnx needs protobuf >= 6. numpy < 2 and OpenCV 4.10 keep it on numpy 1, like the project.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
stamp=.venv-detector/.installed-$(sha256sum scripts/bootstrap_detector.sh | cut -c1-16)
if [ ! -f "$stamp" ]; then
    [ -x .venv-detector/bin/python ] || "$PY" -m venv .venv-detector
    echo "[bootstrap] installing the hand detector into .venv-detector"
    .venv-detector/bin/python -m pip install -q "mediapipe==0.10.14" "numpy>=1.26,<2" "opencv-contrib-python>=4.10,<4.11" "pillow>=10"
    rm -f .venv-detector/.installed-*
    touch "$stamp"
fi
