#!/usr/bin/env bash
# Creates .venv-detector: the real-photo hand detector of benchmarks/realism.py (MediaPipe Hands, whose
# models ship inside the wheel). A venv of its own because mediapipe 0.10.14 needs protobuf < 5 and the
# project's onnx needs protobuf >= 6. numpy < 2 and OpenCV 4.10 keep it on numpy 1, like the project.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/side_venv.sh
side_venv .venv-detector scripts/bootstrap_detector.sh \
    "mediapipe==0.10.14" "numpy>=1.26,<2" "opencv-contrib-python>=4.10,<4.11" "pillow>=10"
