"""`hands export-onnx`: a trained model as an ONNX graph, checked against PyTorch with onnxruntime.

The graph takes `image` (B, 3, S, S) float32 RGB in [0, 1] (B dynamic) and returns `vertices`
(B, 778, 3), `keypoints_3d` (B, 21, 3) (root-relative, metres) and `keypoints_2d` (B, 21, 2) (crop
pixels) — the model's contract (finetune/models/__init__.py); root recovery stays outside (it
needs the camera). Exported with torch's TorchScript-based exporter (it needs no onnxscript),
opset 17 (GridSample needs 16).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

OUTPUTS = ("vertices", "keypoints_3d", "keypoints_2d")


class _Outputs(torch.nn.Module):
    """The model with its dict output as the tuple ONNX wants."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        out = self.model(image)
        return tuple(out[k] for k in OUTPUTS)


def export_onnx(model, path, opset: int = 17, batch: int = 1) -> Path:
    import warnings

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    S = int(model.input_size)
    example = torch.rand(batch, 3, S, S)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # the exporter's deprecation and tracer notes
        torch.onnx.export(_Outputs(model.eval()), (example,), str(path), dynamo=False, opset_version=int(opset),
                          input_names=["image"], output_names=list(OUTPUTS),
                          dynamic_axes={"image": {0: "batch"}, **{k: {0: "batch"} for k in OUTPUTS}})
    return path


def onnx_session(path, threads: int = 0):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def compare(model, path, batch: int = 2, seed: int = 0) -> dict:
    """{output: max |onnxruntime - torch|} on a random batch."""
    S = int(model.input_size)
    x = torch.rand(batch, 3, S, S, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = model.eval()(x)
    got = onnx_session(path).run(list(OUTPUTS), {"image": x.numpy()})
    return {k: float(np.abs(g - ref[k].numpy()).max()) for k, g in zip(OUTPUTS, got)}
