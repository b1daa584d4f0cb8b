"""The procedural description of OpenHand: proportions of an average adult right hand.

Frame (MANO-like, metres): fingers point along -x, the back of the hand faces +y
(the palm faces -y), the thumb is on the +z side. Segment lengths follow the
hand-length ratios of anthropometric tables for a hand of about 19 cm
(wrist crease to middle fingertip); radii are lateral half-widths.

Every field is a *proportion parameter*: the shape space of the model is a PCA
over meshes generated from random variations of these numbers (see build.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

# Finger order used by the generator: thumb, index, middle, ring, little.
FINGERS = ("thumb", "index", "middle", "ring", "little")


@dataclass(frozen=True)
class Proportions:
    # wrist joint position (MANO puts the template's wrist near x = +0.09)
    wrist: tuple = (0.090, 0.0, 0.0)
    wrist_width: float = 0.058        # full width of the forearm cut
    wrist_thickness: float = 0.037    # full dorsal-palmar thickness there
    palm_length: float = 0.086        # wrist joint -> middle MCP along -x
    mcp_spread: float = 1.0           # scales the lateral spacing of the MCPs
    palm_thickness: float = 0.029     # at the knuckle line
    thenar: float = 0.008             # height of the thenar bulge
    # (proximal, middle, distal-to-tip) lengths; thumb: (metacarpal, proximal, distal)
    lengths: dict = field(default_factory=lambda: {
        "thumb": (0.046, 0.034, 0.030),
        "index": (0.046, 0.027, 0.022),
        "middle": (0.050, 0.031, 0.023),
        "ring": (0.046, 0.030, 0.023),
        "little": (0.037, 0.022, 0.020),
    })
    # lateral radius at the base of the finger and at the last full ring
    radii: dict = field(default_factory=lambda: {
        "thumb": (0.0115, 0.0094),
        "index": (0.0095, 0.0077),
        "middle": (0.0097, 0.0079),
        "ring": (0.0092, 0.0075),
        "little": (0.0081, 0.0066),
    })
    finger_length_scale: tuple = (1.0, 1.0, 1.0, 1.0, 1.0)
    finger_radius_scale: float = 1.0
    thumb_radius_scale: float = 1.0

    def segment_lengths(self, finger: str) -> np.ndarray:
        scale = self.finger_length_scale[FINGERS.index(finger)]
        return np.asarray(self.lengths[finger]) * scale

    def radius(self, finger: str) -> np.ndarray:
        scale = self.thumb_radius_scale if finger == "thumb" else self.finger_radius_scale
        return np.asarray(self.radii[finger]) * scale


# Where each long finger sits at the knuckle line, per finger:
# (fraction of palm_length of its MCP from the wrist, lateral z at mcp_spread=1,
#  dorsal y offset (knuckle arch), splay angle in degrees towards +z).
KNUCKLES = {
    "index": (0.955, 0.0275, 0.0000, 6.0),
    "middle": (1.000, 0.0055, 0.0015, 1.0),
    "ring": (0.960, -0.0157, 0.0000, -5.0),
    "little": (0.875, -0.0345, -0.0035, -12.0),
}

# The thumb in the flat pose: direction of its (straight) chain and of its pad.
THUMB_DIRECTION = (-0.72, -0.30, 0.62)
THUMB_PAD = (0.0, -0.45, -0.89)


# Variation used for the shape space: relative standard deviation of each
# scalar proportion (a shared size factor is added on top, so the PCA has a
# dominant "overall size" component like MANO's first beta).
VARIATION = {
    "wrist_width": 0.06,
    "wrist_thickness": 0.06,
    "palm_length": 0.05,
    "mcp_spread": 0.06,
    "palm_thickness": 0.08,
    "thenar": 0.20,
    "finger_radius_scale": 0.07,
    "thumb_radius_scale": 0.07,
}
FINGER_LENGTH_VARIATION = 0.05
SIZE_VARIATION = 0.05


def sample_proportions(rng: np.random.Generator, base: Proportions | None = None) -> Proportions:
    """One random hand: a shared size factor times independent per-parameter factors."""
    base = base or Proportions()
    size = float(np.exp(rng.normal(0.0, SIZE_VARIATION)))
    changes = {}
    for f in fields(base):
        if f.name in VARIATION:
            factor = float(np.exp(rng.normal(0.0, VARIATION[f.name])))
            linear = f.name not in ("mcp_spread", "finger_radius_scale", "thumb_radius_scale", "thenar")
            changes[f.name] = getattr(base, f.name) * factor * (size if linear else 1.0)
    lengths = np.exp(rng.normal(0.0, FINGER_LENGTH_VARIATION, size=5)) * size
    changes["finger_length_scale"] = tuple(float(v) for v in lengths)
    changes["mcp_spread"] = changes["mcp_spread"] * size
    changes["finger_radius_scale"] = changes["finger_radius_scale"] * size
    changes["thumb_radius_scale"] = changes["thumb_radius_scale"] * size
    return replace(base, **changes)
