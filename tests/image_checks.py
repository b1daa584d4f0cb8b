"""Comparisons of rendered images shared by the render tests."""
from __future__ import annotations

import numpy as np


def assert_same_render(a: np.ndarray, b: np.ndarray, name: str) -> None:
    """Two renders of one sample: labels and depth identical; the 8-bit RGB identical but for at most two
    grey levels on 1 % of its values. Cycles + OIDN on the CPU are not bit-exact here: the same scene
    rendered twice differs by up to 4e-3 in the linear image (without the denoiser by 2e-6 on a few
    hundred pixels; with one Cycles thread too), which moves values across rounding steps (66 of 27648
    by one level in one CI run). Another draw of anything (world, skin, arm, effects) changes far more."""
    a, b = np.asarray(a), np.asarray(b)
    if "rgb" not in name:
        np.testing.assert_array_equal(a, b, err_msg=name)
        return
    assert a.shape == b.shape, name
    diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
    assert diff.max() <= 2 and (diff > 0).mean() <= 1e-2, (name, int(diff.max()), int((diff > 0).sum()))
