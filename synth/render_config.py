"""The configuration of a complement-dataset render: one frozen dataclass of settings.

A setting is one field (with its default, and its check in `__post_init__` when it has one); everything
else follows from the fields: `to_dict` / `from_dict` (tuples are lists in JSON, by the field's type),
the config hash, the `hands render` flags' `--set KEY=VALUE` and the `render` stage's `settings`. The
per-sample random draws that read the settings are synth/scene.py's.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields

from .shards import FORMAT_VERSION

ARM_ANGLES = ("arm_flexion_deg", "arm_deviation_deg", "arm_twist_deg")
SUBSURFACE_METHODS = {"random_walk": "RANDOM_WALK", "burley": "BURLEY"}   # setting -> Blender's subsurface_method
ACCURATE_FROM_SAMPLES = 64     # denoise_prefilter 'auto': OIDN's ACCURATE prefilter from this many samples up


@dataclass(frozen=True)
class RenderConfig:
    seed: int = 0
    model: str = "openhand"
    resolution: int = 256
    samples: int = 64
    denoiser: str = "oidn"          # 'oidn' or 'none'
    # OIDN's prefilter of its albedo and normal inputs: 'FAST', 'ACCURATE', 'NONE', or 'auto': ACCURATE from
    # ACCURATE_FROM_SAMPLES up, FAST below (`prefilter()`). From the README's quality-per-cost table (256 px,
    # 2 cores, Burley skin): 64 spp ACCURATE gives 35.0 dB hand PSNR at 1.41 s, the cheapest 35 dB there;
    # at 16 spp ACCURATE costs +70 % time for +0.5 dB, and 32 spp FAST is 0.6 dB better in that time
    denoise_prefilter: str = "auto"
    device: str = "auto"            # 'auto' (GPU when present), 'cpu', 'gpu'
    rgb_format: str = "png"         # 'png' or 'jpg'
    jpeg_quality: int = 95
    rig_radius: float = 0.52
    rig_fov_deg: float = 30.0
    splay: bool = False
    hdri_folders: tuple = ()
    hdri_skies: int = 6
    hdri_bundled: bool = True
    hdri_heldout: tuple | None = None
    hdri_strict: bool = False
    hdri_split: str = "train"       # draw environments from this split ('heldout': evaluation shards)
    hdri_run_length: int = 12
    hdri_strength: tuple = (0.6, 1.6)
    skin_run_length: int = 12                  # consecutive views sharing one skin draw (1: a skin per sample)
    sample_map_resolution: int = 256
    skin_detail: bool = True                   # nails, creases, albedo variation, normal detail (synth/skin_bake.py)
    forearm: bool = True                       # the arm: the body's (OpenHand 2, synth/body_arm.py), else a tube
    arm_flexion_deg: tuple = (-30.0, 40.0)     # wrist angles drawn per sample for the body's arm
    arm_deviation_deg: tuple = (-10.0, 20.0)   # radial (-) / ulnar (+)
    arm_twist_deg: tuple = (-45.0, 45.0)       # forearm pronation / supination
    forearm_length_m: tuple = (0.10, 0.20)     # the tube forearm (synth/forearm.py) of models without a body arm
    forearm_taper: tuple = (1.10, 1.35)        # far girth / wrist girth
    occluder_prob: float = 0.1                 # share of samples with occluders (synth/occluders.py)
    occluder_max: int = 2
    camera_effects: str = "auto"               # 'auto' (on for the train split), 'on', 'off'
    camera_effect_settings: dict = field(default_factory=dict)  # synth.camera_effects.CameraEffectsConfig fields
    backdrop_folders: tuple = ()               # photos to composite the hand over (synth/backdrops.py)
    backdrop_heldout: tuple | None = None      # held-out photo ids (None: a stable 25 % by hash)
    # the skin's subsurface method: 'burley' renders in 20-27 % less time than 'random_walk' at the same hand
    # PSNR against a random-walk reference (benchmarks/render_quality.py). It came after datasets were made
    # with random walk: at that value it is left out of the hash (`hash_default`), so a dataset that states
    # it keeps the hash it was made with
    skin_subsurface: str = field(default="burley", metadata={"hash_default": "random_walk"})
    threads: int = field(default=0, metadata={"affects_pixels": False})  # 0: Cycles decides

    def __post_init__(self):
        from .settings import check_types, typed_fields

        # one validation path (synth/settings.py): every field's type first, so a string where a list
        # belongs (`hdri_folders: /some/dir`) never reaches a folder scan and a bad value is named
        if isinstance(self.camera_effects, bool):      # YAML 1.1 reads a bare on / off as true / false
            object.__setattr__(self, "camera_effects", "on" if self.camera_effects else "off")
        check_types({f.name: getattr(self, f.name) for f in fields(self)}, typed_fields(type(self)), "render setting")
        for name in _tuple_fields():          # a list given for a tuple is the same setting
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        bad_items = [f"{name}={getattr(self, name)!r} (expected a list of strings)" for name in _STRING_LISTS
                     if getattr(self, name) is not None and not all(isinstance(v, str) for v in getattr(self, name))]
        bad_items += [f"{name}={getattr(self, name)!r} (expected a list of two numbers)" for name in _NUMBER_PAIRS
                      if len(getattr(self, name)) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                  for v in getattr(self, name))]
        if bad_items:
            raise ValueError(f"invalid render setting{'s' if len(bad_items) > 1 else ''}: {'; '.join(bad_items)}")
        checks = {
            "resolution": self.resolution >= 16,
            "samples": self.samples >= 1,
            "denoiser": self.denoiser in ("oidn", "none"),
            "denoise_prefilter": self.denoise_prefilter in ("auto", "FAST", "ACCURATE", "NONE"),
            "device": self.device in ("auto", "cpu", "gpu"),
            "rgb_format": self.rgb_format in ("png", "jpg"),
            "hdri_run_length": self.hdri_run_length >= 1,
            "skin_run_length": self.skin_run_length >= 1,
            "hdri_split": self.hdri_split in ("train", "heldout"),
            "hdri_strength": len(self.hdri_strength) == 2 and 0 < self.hdri_strength[0] <= self.hdri_strength[1],
            "forearm_length_m": len(self.forearm_length_m) == 2 and 0.02 <= self.forearm_length_m[0]
            <= self.forearm_length_m[1],
            "forearm_taper": len(self.forearm_taper) == 2 and 0.5 <= self.forearm_taper[0] <= self.forearm_taper[1],
            **{k: len(getattr(self, k)) == 2 and -90 <= getattr(self, k)[0] <= getattr(self, k)[1] <= 90
               for k in ARM_ANGLES},
            "occluder_prob": 0.0 <= self.occluder_prob <= 1.0,
            "occluder_max": self.occluder_max >= 0,
            "camera_effects": self.camera_effects in ("auto", "on", "off"),
            "skin_subsurface": self.skin_subsurface in SUBSURFACE_METHODS,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError("invalid render setting(s): " + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad))
        if self.camera_effect_settings:
            from .camera_effects import CameraEffectsConfig

            try:
                CameraEffectsConfig.from_dict(self.camera_effect_settings)
            except (ValueError, TypeError) as err:
                raise ValueError(f"invalid render setting camera_effect_settings: {err}") from None

    def prefilter(self) -> str:
        """The OIDN prefilter the render uses: `denoise_prefilter`, with 'auto' resolved by the sample count."""
        if self.denoise_prefilter != "auto":
            return self.denoise_prefilter
        return "ACCURATE" if self.samples >= ACCURATE_FROM_SAMPLES else "FAST"

    def to_dict(self) -> dict:
        """The settings as JSON values (tuple fields as lists): dataset.json's "config"."""
        d = asdict(self)
        for name in _tuple_fields():
            if d[name] is not None:
                d[name] = list(d[name])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RenderConfig":
        """`to_dict`'s inverse; also reads YAML / JSON with lists for tuple fields. Unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown render setting(s) {unknown}; settings: {sorted(known)}")
        d = dict(d)
        for name in _tuple_fields():
            if d.get(name) is not None:
                if not isinstance(d[name], (list, tuple)):
                    raise ValueError(f"render setting {name} must be a list, got {d[name]!r}")
                d[name] = tuple(d[name])
        return cls(**d)

    def config_hash(self) -> str:
        """Hash of every setting that changes the output (not threads)."""
        d = self.to_dict()
        for f in fields(self):
            if not f.metadata.get("affects_pixels", True) or \
                    ("hash_default" in f.metadata and d[f.name] == f.metadata["hash_default"]):
                del d[f.name]
        d["format_version"] = FORMAT_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# tuple fields whose items are checked here (their type, a tuple, is synth/settings.py's)
_STRING_LISTS = ("hdri_folders", "hdri_heldout", "backdrop_folders", "backdrop_heldout")
_NUMBER_PAIRS = ("hdri_strength", "forearm_length_m", "forearm_taper") + ARM_ANGLES


def _tuple_fields() -> tuple:
    """Names of the fields whose type is a tuple (or tuple | None): lists in JSON."""
    return tuple(f.name for f in fields(RenderConfig) if "tuple" in str(f.type).replace(" ", "").split("|"))
