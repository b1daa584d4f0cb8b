"""The configuration of a complement-dataset render, and the per-sample random draws.

Everything random is drawn from numpy SeedSequences keyed by the dataset seed
and the sample's ids, so the same config renders the same dataset whatever
order, process or machine the shards are rendered in:
- per sample: SeedSequence([seed, pose_id, view_id, STREAM]) for each
  per-sample draw (STREAMS: forearm, occluders, camera effects, sensor noise,
  backdrop), so switching one on or off leaves the others' draws unchanged;
- per run of `skin_run_length` consecutive views (views r*L .. r*L+L-1):
  SeedSequence([seed, pose_id, SKIN_RUN_STREAM, r]) -> the skin parameters (with
  L = 1: SeedSequence([seed, pose_id, view_id]), a skin per sample). A run shares
  one skin, as every camera of a real multi-view rig sees the same hand, and a
  new skin costs the procedural skin a mesh attribute update (about 40 ms a
  time at any resolution, synth/blender_scene.py);
- per run of `hdri_run_length` consecutive views of one pose (views
  r*L .. r*L+L-1): SeedSequence([seed, pose_id, RUN_STREAM, r]) -> the HDRI,
  its rotation about the vertical and its strength. Keeping the world fixed over
  a run lets Cycles reuse its importance map (persistent data).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from .skin import sample_skin

RUN_STREAM = 7919  # separates the per-run stream from the per-sample one
SKIN_RUN_STREAM = 7927  # the stream of a run of views' skin (skin_run_length > 1)
ARM_ANGLES = ("arm_flexion_deg", "arm_deviation_deg", "arm_twist_deg")
STREAMS = {"forearm": 1, "occluders": 2, "camera_effects": 3, "sensor_noise": 4, "backdrop": 5}
# Blender's procedural skies are about 5x dimmer on average than the bundled
# HDRIs (mean radiance 0.03-0.16 against 0.1-1.0); their strength is scaled up
SKY_GAIN = 5.0
FORMAT_VERSION = 4   # 2: labelled masks (hand / forearm / occluder), forearm, occluders, camera effects;
                     # 3: the skin's albedo and normal detail per vertex (synth/skin_bake.py);
                     # 4: camera effects applied to the renderer's linear output (no 8-bit round trip first)


@dataclass(frozen=True)
class RenderConfig:
    seed: int = 0
    model: str = "openhand"
    resolution: int = 256
    samples: int = 64
    denoiser: str = "oidn"          # 'oidn' or 'none'
    denoise_prefilter: str = "FAST"  # OIDN prefilter: 'FAST' (cheaper) or 'ACCURATE'
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
    threads: int = field(default=0, metadata={"affects_pixels": False})  # 0: Cycles decides

    def __post_init__(self):
        checks = {
            "resolution": self.resolution >= 16,
            "samples": self.samples >= 1,
            "denoiser": self.denoiser in ("oidn", "none"),
            "denoise_prefilter": self.denoise_prefilter in ("FAST", "ACCURATE", "NONE"),
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
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError("invalid render setting(s): " + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad))
        if self.camera_effect_settings:
            from .camera_effects import CameraEffectsConfig

            try:
                CameraEffectsConfig.from_dict(self.camera_effect_settings)
            except ValueError as err:
                raise ValueError(f"invalid render setting camera_effect_settings: {err}") from None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hdri_folders"] = list(self.hdri_folders)
        d["hdri_heldout"] = list(self.hdri_heldout) if self.hdri_heldout is not None else None
        d["hdri_strength"] = list(self.hdri_strength)
        d["forearm_length_m"], d["forearm_taper"] = list(self.forearm_length_m), list(self.forearm_taper)
        for key in ARM_ANGLES:
            d[key] = list(getattr(self, key))
        d["backdrop_folders"] = list(self.backdrop_folders)
        d["backdrop_heldout"] = list(self.backdrop_heldout) if self.backdrop_heldout is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RenderConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown render setting(s) {unknown}; settings: {sorted(known)}")
        d = dict(d)
        for key in ("hdri_folders", "hdri_strength", "forearm_length_m", "forearm_taper", "backdrop_folders",
                    "backdrop_heldout") + ARM_ANGLES:
            if key in d and d[key] is not None:
                d[key] = tuple(d[key])
        if d.get("hdri_heldout") is not None:
            d["hdri_heldout"] = tuple(d["hdri_heldout"])
        return cls(**d)

    def config_hash(self) -> str:
        """Hash of every setting that changes the output (not threads)."""
        d = {f.name: v for f, v in zip(fields(self), self.to_dict().values())
             if f.metadata.get("affects_pixels", True)}
        d["format_version"] = FORMAT_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def sample_rng(seed: int, pose_id: int, view_id: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, pose_id, view_id]))


def run_of(view_id: int, cfg: RenderConfig) -> int:
    return view_id // cfg.hdri_run_length


def draw_world(cfg: RenderConfig, pose_id: int, view_id: int, hdris: list) -> dict:
    """HDRI id, rotation (deg) and strength of the sample's run of views, drawn from `hdris`."""
    if not hdris:
        raise ValueError(f"no HDRI environment of split '{cfg.hdri_split}' to render with "
                         "(all in the other split, or skipped)")
    run = run_of(view_id, cfg)
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, pose_id, RUN_STREAM, run]))
    entry = hdris[int(rng.integers(len(hdris)))]
    lo, hi = cfg.hdri_strength
    gain = SKY_GAIN if getattr(entry, "source", None) == "sky" else 1.0
    return {"id": entry.id, "rotation_deg": round(float(rng.uniform(0.0, 360.0)), 6),
            "strength": round(float(rng.uniform(lo, hi)) * gain, 6), "run": run}


def draw_skin(cfg: RenderConfig, pose_id: int, view_id: int) -> dict:
    """The skin of the sample's run of `skin_run_length` views (with 1: of the sample alone, from its own
    stream SeedSequence([seed, pose_id, view_id]))."""
    if cfg.skin_run_length == 1:
        return sample_skin(sample_rng(cfg.seed, pose_id, view_id))
    run = view_id // cfg.skin_run_length
    return sample_skin(np.random.default_rng(np.random.SeedSequence([cfg.seed, pose_id, SKIN_RUN_STREAM, run])))


def stream_rng(cfg: RenderConfig, pose_id: int, view_id: int, stream: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, pose_id, view_id, STREAMS[stream]]))


def arm_ranges(cfg: RenderConfig) -> dict:
    return {"flexion": cfg.arm_flexion_deg, "deviation": cfg.arm_deviation_deg, "twist": cfg.arm_twist_deg}


def draw_forearm(cfg: RenderConfig, pose_id: int, view_id: int) -> dict | None:
    """The tube forearm's draw (models without a body arm; synth/render_shard.py draws the body's arm)."""
    from .forearm import draw_forearm as draw

    return draw(stream_rng(cfg, pose_id, view_id, "forearm"), cfg.forearm_length_m, cfg.forearm_taper) \
        if cfg.forearm else None


def draw_occluders(cfg: RenderConfig, pose_id: int, view_id: int, keypoints_cam, view, skin: dict) -> list:
    from .occluders import draw

    return draw(stream_rng(cfg, pose_id, view_id, "occluders"), keypoints_cam, view.R, view.t, float(view.K[0, 0]),
                cfg.occluder_prob, cfg.occluder_max, skin_srgb=skin.get("base_color_srgb"))


def draw_backdrop(cfg: RenderConfig, pose_id: int, view_id: int, backdrops: list) -> dict | None:
    if not backdrops:
        return None
    from .backdrops import draw_backdrop as draw

    return draw(stream_rng(cfg, pose_id, view_id, "backdrop"), backdrops, cfg.hdri_split)


def camera_effects_on(cfg: RenderConfig) -> bool:
    return cfg.camera_effects == "on" or (cfg.camera_effects == "auto" and cfg.hdri_split == "train")


def draw_camera_effects(cfg: RenderConfig, pose_id: int, view_id: int) -> dict:
    if not camera_effects_on(cfg):
        return {"enabled": False}
    from .camera_effects import CameraEffectsConfig, draw_effects

    return draw_effects(CameraEffectsConfig.from_dict(cfg.camera_effect_settings),
                        stream_rng(cfg, pose_id, view_id, "camera_effects"))
