"""One sample's scene: every random draw of a render as one frozen value, in numpy (no bpy).

`draw_scene(plan, pose_id, view_id)` returns a `SampleScene`: the posed hand, the camera, the world (HDRI,
rotation, strength), the skin, the arm (its record and posed vertices), the occluders, the camera effects
and their noise seed, and the photo backdrop. The Blender view shows it in one call
(`synth.blender_scene.BlenderScene.apply`), and synth/render_shard.py's `render_sample` is
draw_scene -> apply -> render -> annotate, so what a sample contains is testable without Blender
(tests/test_scene.py, against a view that records what it is given).

Streams. Everything random is drawn from numpy SeedSequences keyed by the dataset seed and the sample's
ids, so the same config renders the same dataset whatever order, process or machine the shards are
rendered in. Every stream has a name; the numbers are fixed for good (a new number changes no existing
draw, a changed one changes every dataset):
- per sample: SeedSequence([seed, pose_id, view_id, STREAMS[name]]), one stream per element, so switching
  one on or off leaves the others' draws unchanged; the bare SeedSequence([seed, pose_id, view_id])
  (`sample_rng`) is the skin's when skin_run_length is 1;
- per run of consecutive views r*L .. r*L+L-1 of one pose: SeedSequence([seed, pose_id,
  RUN_STREAMS[name], r]): the world ("world", L = hdri_run_length: the HDRI, its rotation about the
  vertical and its strength; a fixed world lets Cycles reuse its importance map) and the skin ("skin",
  L = skin_run_length: every camera of a multi-view rig sees the same hand, and a new skin costs the
  procedural skin a mesh attribute update, about 40 ms at any resolution, synth/blender_scene.py).

Adding a random element touches two places: (1) its setting, a field of synth.render_config.RenderConfig
(serialisation, config hash, `hands render --set` and the render stage's `settings` follow); (2) here,
its stream (a new number in STREAMS), a SampleScene field (with metadata {"record": KEY} when the sample's
JSON should record it under KEY) and its draw in `draw_scene`. `BlenderScene.apply` then reads the field.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from .skin import sample_skin

STREAMS = {"forearm": 1, "occluders": 2, "camera_effects": 3, "sensor_noise": 4, "backdrop": 5}  # per sample
RUN_STREAMS = {"world": 7919, "skin": 7927}   # per run of views; far from the view ids the per-sample key holds
# Blender's procedural skies are about 5x dimmer on average than the bundled
# HDRIs (mean radiance 0.03-0.16 against 0.1-1.0); their strength is scaled up
SKY_GAIN = 5.0


# ---------------------------------------------------------------- streams

def sample_rng(seed: int, pose_id: int, view_id: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, pose_id, view_id]))


def stream_key(cfg, pose_id: int, view_id: int, stream: str) -> tuple:
    """The SeedSequence entropy of a per-sample stream (the sensor noise's goes to synth.camera_effects)."""
    return cfg.seed, pose_id, view_id, STREAMS[stream]


def stream_rng(cfg, pose_id: int, view_id: int, stream: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(stream_key(cfg, pose_id, view_id, stream))))


def run_rng(cfg, pose_id: int, stream: str, run: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, pose_id, RUN_STREAMS[stream], run]))


def run_of(view_id: int, cfg) -> int:
    return view_id // cfg.hdri_run_length


# ---------------------------------------------------------------- the draws, one per element

def draw_world(cfg, pose_id: int, view_id: int, hdris: list) -> dict:
    """HDRI id, rotation (deg) and strength of the sample's run of views, drawn from `hdris`."""
    if not hdris:
        raise ValueError(f"no HDRI environment of split '{cfg.hdri_split}' to render with "
                         "(all in the other split, or skipped)")
    run = run_of(view_id, cfg)
    rng = run_rng(cfg, pose_id, "world", run)
    entry = hdris[int(rng.integers(len(hdris)))]
    lo, hi = cfg.hdri_strength
    gain = SKY_GAIN if getattr(entry, "source", None) == "sky" else 1.0
    return {"id": entry.id, "rotation_deg": round(float(rng.uniform(0.0, 360.0)), 6),
            "strength": round(float(rng.uniform(lo, hi)) * gain, 6), "run": run}


def draw_skin(cfg, pose_id: int, view_id: int) -> dict:
    """The skin of the sample's run of `skin_run_length` views (with 1: of the sample alone, from its own
    stream SeedSequence([seed, pose_id, view_id]))."""
    if cfg.skin_run_length == 1:
        return sample_skin(sample_rng(cfg.seed, pose_id, view_id))
    return sample_skin(run_rng(cfg, pose_id, "skin", view_id // cfg.skin_run_length))


def arm_ranges(cfg) -> dict:
    return {"flexion": cfg.arm_flexion_deg, "deviation": cfg.arm_deviation_deg, "twist": cfg.arm_twist_deg}


def draw_forearm(cfg, pose_id: int, view_id: int) -> dict | None:
    """The tube forearm's draw (models without a body arm; `sample_arm` draws the body's arm)."""
    from .forearm import draw_forearm as draw

    return draw(stream_rng(cfg, pose_id, view_id, "forearm"), cfg.forearm_length_m, cfg.forearm_taper) \
        if cfg.forearm else None


def draw_occluders(cfg, pose_id: int, view_id: int, keypoints_cam, view, skin: dict) -> list:
    from .occluders import draw

    return draw(stream_rng(cfg, pose_id, view_id, "occluders"), keypoints_cam, view.R, view.t, float(view.K[0, 0]),
                cfg.occluder_prob, cfg.occluder_max, skin_srgb=skin.get("base_color_srgb"))


def draw_backdrop(cfg, pose_id: int, view_id: int, backdrops: list) -> dict | None:
    if not backdrops:
        return None
    from .backdrops import draw_backdrop as draw

    return draw(stream_rng(cfg, pose_id, view_id, "backdrop"), backdrops, cfg.hdri_split)


def camera_effects_on(cfg) -> bool:
    return cfg.camera_effects == "on" or (cfg.camera_effects == "auto" and cfg.hdri_split == "train")


def draw_camera_effects(cfg, pose_id: int, view_id: int) -> dict:
    if not camera_effects_on(cfg):
        return {"enabled": False}
    from .camera_effects import CameraEffectsConfig, draw_effects

    return draw_effects(CameraEffectsConfig.from_dict(cfg.camera_effect_settings),
                        stream_rng(cfg, pose_id, view_id, "camera_effects"))


# ---------------------------------------------------------------- the arm's geometry

def posed_forearm(plan, pose_id: int, arm: dict, dense_posed: np.ndarray) -> np.ndarray:
    """The sample's tube forearm (synth.forearm layout) in the model frame, joined to the posed wrist loop."""
    from .forearm import forearm_rest, pose_forearm

    rest = forearm_rest(plan.wrist, arm["length_m"], arm["taper"])
    return pose_forearm(rest, plan.wrist, dense_posed, plan.poses[pose_id][:3], plan.root_joint)


def sample_arm(plan, pose_id: int, view, dense_posed: np.ndarray, keypoints_cam: np.ndarray) -> tuple:
    """(record, posed vertices in the model frame) of the sample's arm, or (None, None) without one: the
    body's arm with drawn wrist angles (synth/body_arm.py) or the tube forearm (synth/forearm.py)."""
    cfg = plan.cfg
    if not cfg.forearm:
        return None, None
    if plan.arm is None:
        arm = draw_forearm(cfg, pose_id, view.view_id)
        return arm, posed_forearm(plan, pose_id, arm, dense_posed)
    from .body_arm import draw_arm

    return draw_arm(stream_rng(cfg, pose_id, view.view_id, "forearm"), plan.arm, arm_ranges(cfg), dense_posed,
                    plan.poses[pose_id][:3], plan.root_joint, keypoints_cam, view.R, view.t, view.K, cfg.resolution)


def arm_geometry(plan, pose_id: int, record: dict, dense_posed: np.ndarray) -> tuple:
    """(vertices in the model frame, faces) of the arm a sample's recorded `forearm` draw describes."""
    if plan.arm is None:
        from .forearm import forearm_faces

        return posed_forearm(plan, pose_id, record, dense_posed), forearm_faces(len(plan.wrist.indices))
    from .body_arm import pose_arm

    return pose_arm(plan.arm, record, dense_posed, plan.poses[pose_id][:3], plan.root_joint), plan.arm.faces


def forearm_skin_points(plan) -> np.ndarray:
    """Where the skin's noise is painted on the arm: the body arm's rest pose, or for the tube the rest pose
    of a middle-sized arm (0.15 m, taper 1.2), whatever the sample's length and taper (stretched with the
    arm), so a new arm needs no new albedo attribute; its first ring is the wrist loop's rest positions,
    where the hand's noise is painted."""
    from .forearm import forearm_rest

    if plan.arm is not None:
        return plan.arm.rest
    return forearm_rest(plan.wrist, 0.15, 1.2)


# ---------------------------------------------------------------- the scene

def _refuse(self, *args, **kwargs):
    raise TypeError("a SampleScene is frozen: copy a record (dict(r), list(r)) to change it")


class FrozenDict(dict):
    """A record inside a SampleScene: a dict (to JSON, pickle and ==) that refuses changes."""
    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self):
        return FrozenDict, (dict(self),)


class FrozenList(list):
    """A list inside a SampleScene record, likewise."""
    __setitem__ = __delitem__ = __iadd__ = __imul__ = append = extend = insert = pop = remove = clear = sort = \
        reverse = _refuse

    def __reduce__(self):
        return FrozenList, (list(self),)


def _freeze(value):
    """A read-only deep copy: dicts and lists as FrozenDict / FrozenList (equal to the originals), tuples
    of frozen items, arrays read-only copies."""
    if isinstance(value, dict):
        return FrozenDict({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return FrozenList(_freeze(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.ndarray):
        value = np.array(value)
        value.setflags(write=False)
    return value


def _thaw(value):
    """Records as plain JSON values (dicts and lists)."""
    if isinstance(value, dict):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value


def _record(key: str):
    return field(metadata={"record": key})


@dataclass(frozen=True, eq=False)
class SampleScene:
    """Everything one sample shows, as drawn: what the Blender view applies and the annotation records.
    Frozen all the way down: arrays are read-only copies, records FrozenDict / FrozenList."""
    pose_id: int
    view_id: int
    hand_vertices: np.ndarray                  # (N, 3) the posed render mesh, model frame
    K: np.ndarray                              # (3, 3) the rig camera's intrinsics
    R: np.ndarray                              # (3, 3) and extrinsics: model frame -> OpenCV camera
    t: np.ndarray                              # (3,)
    hdri_entry: object                         # hdri.catalog.HdriEntry of the world
    world: dict = _record("hdri")              # id, rotation_deg, strength
    skin: dict = _record("skin")               # synth.skin.sample_skin
    arm: dict | None = _record("forearm")      # the arm's draw (body arm's angles, or tube's length and taper)
    arm_vertices: np.ndarray | None            # (Na, 3) the posed arm, model frame (None: no arm)
    arm_skin_points: np.ndarray | None         # where the skin's noise is painted on the arm
    occluders: list = _record("occluders")     # synth.occluders.draw records, model frame
    camera_effects: dict = _record("camera_effects")   # synth.camera_effects.draw_effects
    noise_seed: tuple                          # the camera effects' sensor-noise stream (stream_key)
    backdrop: dict | None = _record("backdrop")     # synth.backdrops.draw_backdrop (None: the HDRI shows)
    backdrop_image: np.ndarray | None          # its linear RGB, resolution x resolution

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, _freeze(getattr(self, f.name)))

    def records(self) -> dict:
        """The draws the sample's JSON records, as plain JSON values: {key: record}."""
        return {f.metadata["record"]: _thaw(getattr(self, f.name)) for f in fields(self) if "record" in f.metadata}

    def __eq__(self, other) -> bool:
        if not isinstance(other, SampleScene):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    __hash__ = None


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is not None and b is not None and np.array_equal(a, b)
    return a == b


def draw_scene(plan, pose_id: int, view_id: int, occluders: list | None = None) -> SampleScene:
    """Every draw of sample (pose_id, view_id) of `plan` (a synth.render_shard.DatasetPlan: config, poses,
    views, HDRI catalog, backdrops, arm); `occluders` replaces the drawn ones (tests place their own)."""
    cfg, view = plan.cfg, plan.views[view_id]
    world = draw_world(cfg, pose_id, view_id, plan.usable_hdris)
    skin = draw_skin(cfg, pose_id, view_id)
    kp_cam = plan.keypoints[pose_id] @ view.R.T + view.t
    if occluders is None:
        occluders = draw_occluders(cfg, pose_id, view_id, kp_cam, view, skin)
    dense = plan.dense(pose_id)
    arm, arm_vertices = sample_arm(plan, pose_id, view, dense, kp_cam)
    backdrop = draw_backdrop(cfg, pose_id, view_id, plan.backdrops)
    photo = None
    if backdrop is not None:
        from .backdrops import backdrop_image

        photo = backdrop_image(plan.backdrops, backdrop, cfg.resolution)
    return SampleScene(
        pose_id=int(pose_id), view_id=int(view_id), hand_vertices=dense, K=view.K, R=view.R, t=view.t,
        hdri_entry=plan.hdri(world["id"]), world={k: world[k] for k in ("id", "rotation_deg", "strength")},
        skin=skin, arm=arm, arm_vertices=arm_vertices,
        arm_skin_points=None if arm is None else forearm_skin_points(plan),
        occluders=occluders, camera_effects=draw_camera_effects(cfg, pose_id, view_id),
        noise_seed=stream_key(cfg, pose_id, view_id, "sensor_noise"), backdrop=backdrop, backdrop_image=photo)
