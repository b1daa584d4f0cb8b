"""Named render looks the real-photo benchmarks compare (realism.py, sim_to_real.py).

A look is a dict of RenderConfig settings over the defaults. `legacy` is the default look as it was
before the real-photo benchmarks existed (its camera effects and occluder share as of 2026-12-06), kept so
its figures can be reproduced beside today's default.
"""
from __future__ import annotations

from synth.camera_effects import FORMER_DEFAULTS

# the camera-effect distribution that was the default until the real-photo measurements
LEGACY_CAMERA_EFFECTS = FORMER_DEFAULTS
LEGACY = {"camera_effects": "auto", "camera_effect_settings": LEGACY_CAMERA_EFFECTS, "occluder_prob": 0.3}

_NO_EFFECTS = {"camera_effects": "off"}
_NO_EFFECTS_OCCLUDERS = {**_NO_EFFECTS, "occluder_prob": 0.0}
_NO_EFFECTS_OCCLUDERS_FOREARM = {**_NO_EFFECTS_OCCLUDERS, "forearm": False}

LOOKS = {
    "default": {},
    "legacy": LEGACY,
    "no_effects": _NO_EFFECTS,
    "no_effects_occluders": _NO_EFFECTS_OCCLUDERS,
    "no_effects_occluders_forearm": _NO_EFFECTS_OCCLUDERS_FOREARM,
    "flat": {**_NO_EFFECTS_OCCLUDERS_FOREARM, "skin_detail": False},  # the renderer before the realism work
    "no_occluders": {"occluder_prob": 0.0},
    "no_forearm": {"forearm": False},
    "no_skin_detail": {"skin_detail": False},
    # OpenHand 1, the procedural hand with its tube forearm: the default hand until OpenHand 2
    "openhand1": {"model": "openhand1"},
    "openhand1_no_effects": {"model": "openhand1", **_NO_EFFECTS},
    "openhand1_no_effects_occluders_forearm": {"model": "openhand1", **_NO_EFFECTS_OCCLUDERS_FOREARM},
}


def look_config(name: str, **settings):
    """The RenderConfig of look `name` with `settings` (resolution, samples, seed, ...) on top."""
    from synth.render_config import RenderConfig

    if name not in LOOKS:
        raise ValueError(f"unknown look {name!r}; looks: {', '.join(LOOKS)}")
    return RenderConfig.from_dict({**LOOKS[name], **settings})
