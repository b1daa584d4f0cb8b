"""An off-the-shelf real-photo hand detector (MediaPipe Hands) as a judge of renders; runs in .venv-detector.

    .venv-detector/bin/python benchmarks/hand_detector.py LIST.json OUT.json

LIST.json is a JSON list of image paths; OUT.json gets one entry per image:
{"path", "detected", "score", "landmarks"} with the 21 landmarks in that image's pixels (FreiHAND /
MediaPipe order, centre of the top-left pixel at (0, 0)), null when no hand was found.

Why a separate interpreter: mediapipe 0.10.14 needs protobuf < 5 and the project's onnx needs
protobuf >= 6, so the two cannot share one environment (`make detector` builds this one). This file
imports nothing of the project: only numpy, Pillow and mediapipe.
"""
from __future__ import annotations

import json
import sys

import numpy as np
from PIL import Image


def detect(paths: list, min_confidence: float = 0.5) -> list:
    import mediapipe as mp

    out = []
    with mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=1, model_complexity=1,
                                  min_detection_confidence=min_confidence) as hands:
        for path in paths:
            rgb = np.asarray(Image.open(path).convert("RGB"))
            h, w = rgb.shape[:2]
            res = hands.process(rgb)
            if not res.multi_hand_landmarks:
                out.append({"path": path, "detected": False, "score": None, "landmarks": None})
                continue
            lm = res.multi_hand_landmarks[0].landmark
            # MediaPipe's normalised x, y run from the image's left / top edge (0) to its right / bottom
            # edge (1): pixel-centre coordinates are x * w - 0.5
            pts = [[p.x * w - 0.5, p.y * h - 0.5] for p in lm]
            score = float(res.multi_handedness[0].classification[0].score) if res.multi_handedness else None
            out.append({"path": path, "detected": True, "score": score, "landmarks": pts})
    return out


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        paths = json.load(f)
    result = detect(paths)
    with open(sys.argv[2], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
