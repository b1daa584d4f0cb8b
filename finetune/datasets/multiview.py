"""What the multi-view loaders share (HanCo, Dex-YCB, the complement data's multi-view items): a frame's
views stacked along a leading axis, each with its world -> camera pose."""
from __future__ import annotations

import numpy as np
import torch


def stack_views(samples: list) -> dict:
    """Stack per-view sample dicts: tensors -> (V, ...), bools -> bool (V,), ints -> int64 (V,),
    floats -> float32 (V,), everything else -> a list of V values."""
    if not samples:
        raise ValueError("stack_views got no samples")
    out = {}
    for key, value in samples[0].items():
        values = [s[key] for s in samples]
        if isinstance(value, torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(value, (bool, np.bool_)):
            out[key] = torch.tensor([bool(v) for v in values], dtype=torch.bool)
        elif isinstance(value, (int, np.integer)):
            out[key] = torch.tensor([int(v) for v in values], dtype=torch.int64)
        elif isinstance(value, (float, np.floating)):
            out[key] = torch.tensor([float(v) for v in values], dtype=torch.float32)
        else:
            out[key] = values
    return out


def with_camera(sample: dict, R, t, camera: int) -> dict:
    """A view's sample with the multi-view extras: 'R', 't' (world -> camera, float32) and 'camera'."""
    sample["R"] = torch.as_tensor(R, dtype=torch.float32)
    sample["t"] = torch.as_tensor(t, dtype=torch.float32)
    sample["camera"] = camera
    return sample
