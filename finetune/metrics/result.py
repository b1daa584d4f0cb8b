"""What every benchmark evaluation returns: named figures with units, and PCK curves."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Curve:
    thresholds: np.ndarray  # in `unit`
    pck: np.ndarray         # share of correct keypoints (0..1) at each threshold
    unit: str
    label: str


@dataclass
class BenchmarkResult:
    benchmark: str
    num_samples: int
    figures: dict = field(default_factory=dict)   # name -> float, or None where the figure does not apply
    units: dict = field(default_factory=dict)     # name -> unit ("cm", "mm", "px", "" for shares and AUCs)
    curves: dict = field(default_factory=dict)    # name -> Curve
    per_keypoint: dict = field(default_factory=dict)  # name -> list of per-keypoint values
    notes: list = field(default_factory=list)     # what the figures mean (units, order, protocol)

    def add(self, name: str, value, unit: str = "") -> None:
        self.figures[name] = None if value is None else float(value)
        self.units[name] = unit

    def to_json(self) -> dict:
        return {"benchmark": self.benchmark, "num_samples": self.num_samples,
                "figures": self.figures, "units": self.units,
                "curves": {k: {"label": c.label, "unit": c.unit, "thresholds": np.asarray(c.thresholds).tolist(),
                               "pck": np.asarray(c.pck).tolist()} for k, c in self.curves.items()},
                "per_keypoint": self.per_keypoint, "notes": self.notes}
