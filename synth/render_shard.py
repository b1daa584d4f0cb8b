"""Render one shard (all or some views of one pose) and write it. No Ray here.

`prepare(cfg)` builds what every shard of a dataset shares (hand model, poses,
rig, render mesh, HDRI catalog) once per process; `render_shard` renders the
views of one pose in one persistent Blender scene and hands the samples to the
shard writer, which makes the shard appear atomically.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .render_config import (RenderConfig, draw_backdrop, draw_camera_effects, draw_forearm, draw_occluders,
                            draw_skin, draw_world)
from .skin import linear_to_srgb

# a keypoint is visible when the surface seen at its pixel is at most this much
# nearer than the keypoint (joints lie inside the finger, about a radius deep)
VISIBILITY_TOLERANCE_M = 0.015

_PLANS: dict = {}
_SCENES: dict = {}


@dataclass
class DatasetPlan:
    cfg: RenderConfig
    model: object
    poses: np.ndarray        # (P, 48) flat MANO parameters, all complement poses
    vertices: np.ndarray     # (P, 778, 3) model frame (a selection of `dense` for a sculpted render mesh)
    keypoints: np.ndarray    # (P, 21, 3) model frame
    views: list              # rig.View, 216
    render_mesh: object
    catalog: list            # hdri.catalog.HdriEntry
    config_hash: str
    wrist: object            # synth.forearm.WristLoop of the dense mesh's rest pose
    root_joint: np.ndarray   # (3,) rest position of joint 0, about which the forearm turns
    backdrops: list          # synth.backdrops.Backdrop of cfg.backdrop_folders ([]: HDRI backgrounds)
    posed_dense: np.ndarray | None   # (P, N, 3) float32 sculpted render mesh of every pose (None: subdivision)
    arm: object = None       # synth.body_arm.BodyArm (models that carry the body's arm) or None: the tube

    def dense(self, pose_ids) -> np.ndarray:
        """The render mesh of a pose (or poses), model frame, float64."""
        if self.posed_dense is not None:
            return self.posed_dense[pose_ids].astype(np.float64)
        return self.render_mesh.densify(self.vertices[pose_ids])

    @property
    def usable_hdris(self) -> list:
        """The environments this render draws from: the config's split of the catalog."""
        return [e for e in self.catalog if e.split == self.cfg.hdri_split]

    def hdri(self, hdri_id: str):
        return next(e for e in self.catalog if e.id == hdri_id)


def prepare(cfg: RenderConfig, report=print) -> DatasetPlan:
    key = cfg.config_hash()
    if key in _PLANS:
        return _PLANS[key]
    import torch

    from hdri.catalog import build_catalog

    from .backdrops import backdrop_catalog
    from .forearm import wrist_loop
    from .hand_model import HandModel
    from .poses import complement_poses
    from .body_arm import BodyArm
    from .render_mesh import SculptedRenderMesh, render_mesh_for
    from .rig import RigConfig, build_views

    catalog = build_catalog(folders=cfg.hdri_folders, skies=cfg.hdri_skies, bundled=cfg.hdri_bundled,
                            strict=cfg.hdri_strict,
                            heldout=list(cfg.hdri_heldout) if cfg.hdri_heldout is not None else None,
                            report=report)
    model = HandModel(cfg.model)
    poses = complement_poses(model=model, splay=cfg.splay)
    with torch.no_grad():
        verts, kps = model(torch.as_tensor(poses, dtype=torch.float32))
    rest = model.joint_regressor @ model.template
    views = build_views(rest, RigConfig(radius=cfg.rig_radius, fov_deg=cfg.rig_fov_deg, image_size=cfg.resolution))
    render_mesh = render_mesh_for(model)
    verts, dense = verts.double().numpy(), None
    if isinstance(render_mesh, SculptedRenderMesh):   # posed on its own; the annotations are a selection of it
        dense = render_mesh.pose(model, poses).astype(np.float32)
        verts = render_mesh.to_model(dense).astype(np.float64)
    wrist = wrist_loop(render_mesh.faces, render_mesh.rest_vertices(model))
    backdrops = backdrop_catalog(cfg.backdrop_folders, cfg.backdrop_heldout) if cfg.backdrop_folders else []
    plan = DatasetPlan(cfg, model, poses, verts, kps.double().numpy(), views, render_mesh,
                       catalog, key, wrist, model.rest_joints()[0], backdrops, dense, BodyArm.from_model(model))
    _PLANS[key] = plan
    return plan


def scene_for(plan: DatasetPlan):
    """The process's persistent Blender scene for this config (built on first use)."""
    if plan.config_hash not in _SCENES:
        from .blender_scene import BlenderScene

        _SCENES.clear()  # one scene per process
        regions = rest = None
        if plan.cfg.skin_detail:
            from .skin_regions import region_weights

            regions = region_weights(plan.model, plan.render_mesh)
            rest = plan.render_mesh.rest_vertices(plan.model)
        _SCENES[plan.config_hash] = BlenderScene(plan.cfg, plan.render_mesh.faces, plan.render_mesh.num_vertices,
                                                 regions=regions, rest_vertices=rest,
                                                 arm=plan.arm)
    return _SCENES[plan.config_hash]


def drop_scene() -> None:
    """Forget the process's Blender scene: the next scene_for builds a fresh one."""
    _SCENES.clear()


def sample_key(pose_id: int, view_id: int) -> str:
    return f"{pose_id:04d}_{view_id:03d}"


def posed_forearm(plan: DatasetPlan, pose_id: int, arm: dict, dense_posed: np.ndarray) -> np.ndarray:
    """The sample's tube forearm (synth.forearm layout) in the model frame, joined to the posed wrist loop."""
    from .forearm import forearm_rest, pose_forearm

    rest = forearm_rest(plan.wrist, arm["length_m"], arm["taper"])
    return pose_forearm(rest, plan.wrist, dense_posed, plan.poses[pose_id][:3], plan.root_joint)


def sample_arm(plan: DatasetPlan, pose_id: int, view, dense_posed: np.ndarray, keypoints_cam: np.ndarray) -> tuple:
    """(record, posed vertices in the model frame) of the sample's arm, or (None, None) without one: the
    body's arm with drawn wrist angles (synth/body_arm.py) or the tube forearm (synth/forearm.py)."""
    cfg = plan.cfg
    if not cfg.forearm:
        return None, None
    if plan.arm is None:
        arm = draw_forearm(cfg, pose_id, view.view_id)
        return arm, posed_forearm(plan, pose_id, arm, dense_posed)
    from .body_arm import draw_arm
    from .render_config import arm_ranges, stream_rng

    return draw_arm(stream_rng(cfg, pose_id, view.view_id, "forearm"), plan.arm, arm_ranges(cfg), dense_posed,
                    plan.poses[pose_id][:3], plan.root_joint, keypoints_cam, view.R, view.t, view.K, cfg.resolution)


def arm_geometry(plan: DatasetPlan, pose_id: int, record: dict, dense_posed: np.ndarray) -> tuple:
    """(vertices in the model frame, faces) of the arm a sample's recorded `forearm` draw describes."""
    if plan.arm is None:
        from .forearm import forearm_faces

        return posed_forearm(plan, pose_id, record, dense_posed), forearm_faces(len(plan.wrist.indices))
    from .body_arm import pose_arm

    return pose_arm(plan.arm, record, dense_posed, plan.poses[pose_id][:3], plan.root_joint), plan.arm.faces


def forearm_skin_points(plan: DatasetPlan) -> np.ndarray:
    """Where the skin's noise is painted on the arm: the body arm's rest pose, or for the tube the rest pose
    of a middle-sized arm (0.15 m, taper 1.2), whatever the sample's length and taper (stretched with the
    arm), so a new arm needs no new albedo attribute; its first ring is the wrist loop's rest positions,
    where the hand's noise is painted."""
    from .forearm import forearm_rest

    if plan.arm is not None:
        return plan.arm.rest
    return forearm_rest(plan.wrist, 0.15, 1.2)


def annotate(plan: DatasetPlan, pose_id: int, view, depth: np.ndarray, mask: np.ndarray,
             world: dict, skin: dict, extras: dict | None = None) -> dict:
    size = plan.cfg.resolution
    kp_cam = plan.keypoints[pose_id] @ view.R.T + view.t
    uv = kp_cam[:, :2] / kp_cam[:, 2:3] * view.K[0, 0] + view.K[:2, 2]
    px = np.round(uv).astype(int)
    inside = (px >= 0).all(axis=1) & (px < size).all(axis=1)
    visible = np.zeros(21, dtype=bool)
    for k in np.where(inside)[0]:
        x, y = px[k]
        visible[k] = bool(mask[y, x]) and kp_cam[k, 2] - depth[y, x] < VISIBILITY_TOLERANCE_M
    ys, xs = np.nonzero(mask)
    crop = [float(xs.min() - 0.5), float(ys.min() - 0.5), float(xs.max() + 0.5), float(ys.max() + 0.5)] \
        if len(xs) else None
    return {
        "pose_id": int(pose_id), "view_id": int(view.view_id),
        "K": view.K.tolist(), "R": view.R.tolist(), "t": view.t.tolist(),
        "image_size": [size, size],
        "keypoints_2d": uv.tolist(), "keypoints_3d": kp_cam.tolist(), "visibility": visible.tolist(),
        "hdri": {"id": world["id"], "rotation_deg": world["rotation_deg"], "strength": world["strength"]},
        "skin": skin, "crop_box": crop, "seed": plan.cfg.seed,
        "hand_model": plan.model.name, "template_hash": plan.model.template_hash,
        **(extras or {}),
    }


def camera_image(cfg: RenderConfig, pose_id: int, view_id: int, lin, depth, effects: dict, K):
    """The linear render through the sample's drawn camera and sensor effects
    (synth/camera_effects.py) as 8-bit sRGB."""
    from .camera_effects import apply_effects_linear
    from .render_config import STREAMS

    if not effects.get("enabled"):
        return np.round(linear_to_srgb(lin) * 255.0).astype(np.uint8)
    return apply_effects_linear(lin, depth, effects, float(K[0][0]),
                                noise_seed=[cfg.seed, pose_id, view_id, STREAMS["sensor_noise"]])


def render_sample(plan: DatasetPlan, scene, pose_id: int, view_id: int, occluders: list | None = None) -> tuple:
    """(rgb, depth, labels, annotation, render seconds) of one sample, the scene already holding the pose's
    vertices (scene.set_vertices). Every random draw comes from the sample's streams; `occluders` replaces
    the drawn ones (tests place their own)."""
    from .shards import MASK_VALUES

    cfg, view = plan.cfg, plan.views[view_id]
    world = draw_world(cfg, pose_id, view_id, plan.usable_hdris)
    skin = draw_skin(cfg, pose_id, view_id)
    kp_cam = plan.keypoints[pose_id] @ view.R.T + view.t
    if occluders is None:
        occluders = draw_occluders(cfg, pose_id, view_id, kp_cam, view, skin)
    effects = draw_camera_effects(cfg, pose_id, view_id)
    backdrop = draw_backdrop(cfg, pose_id, view_id, plan.backdrops)
    if backdrop is not None:
        from .backdrops import backdrop_image

        scene.set_backdrop(backdrop_image(plan.backdrops, backdrop, cfg.resolution))
    scene.set_world(plan.hdri(world["id"]), world["rotation_deg"], world["strength"])
    scene.set_skin(skin)
    arm, arm_vertices = sample_arm(plan, pose_id, view, plan.dense(pose_id), kp_cam)
    scene.set_forearm(arm_vertices, None if arm is None else forearm_skin_points(plan))
    scene.set_occluders(occluders)
    scene.set_camera(view.K, view.R, view.t)
    t = time.time()
    lin, depth, labels = scene.render_linear()
    seconds = time.time() - t
    rgb = camera_image(cfg, pose_id, view_id, lin, depth, effects, view.K)
    extras = {"forearm": arm, "occluders": occluders, "camera_effects": effects, "backdrop": backdrop}
    annotation = annotate(plan, pose_id, view, depth, labels == MASK_VALUES["hand"], world, skin, extras)
    return rgb, depth, labels, annotation, seconds


def render_shard(cfg: RenderConfig, root, pose_id: int, view_ids=None, progress=None) -> dict:
    """Render views (default all 216) of one pose into shards/NNNN.tar; returns timing figures."""
    from .shards import ShardWriter

    plan = prepare(cfg)
    if not 0 <= pose_id < len(plan.poses):
        raise ValueError(f"pose id {pose_id} is not in 0..{len(plan.poses) - 1}")
    view_ids = list(range(len(plan.views))) if view_ids is None else sorted(int(v) for v in view_ids)
    bad = [v for v in view_ids if not 0 <= v < len(plan.views)]
    if bad:
        raise ValueError(f"view ids {bad} are not in 0..{len(plan.views) - 1}")
    t0 = time.time()
    scene = scene_for(plan)
    scene.set_vertices(plan.dense(pose_id))
    render_seconds = 0.0
    with ShardWriter(root, pose_id, plan.config_hash) as writer:
        for view_id in view_ids:
            rgb, depth, labels, annotation, seconds = render_sample(plan, scene, pose_id, view_id)
            render_seconds += seconds
            writer.add(sample_key(pose_id, view_id), rgb=rgb, depth_m=depth, mask=labels, annotation=annotation,
                       rgb_format=cfg.rgb_format, jpeg_quality=cfg.jpeg_quality)
            if progress is not None:
                progress(1)
    return {"pose_id": pose_id, "images": len(view_ids), "seconds": time.time() - t0,
            "render_seconds": render_seconds}


def write_dataset_tables(root, plan: DatasetPlan, pose_ids: list, view_ids: list) -> None:
    """dataset.json and the global tables (poses, views, mapping, HDRIs) of this render."""
    import platform

    from .tables import write_tables

    dense = plan.dense(pose_ids).astype(np.float32)
    rm = plan.render_mesh
    mapping = {"faces": plan.model.faces, "dense_faces": rm.faces}
    for name, m in (("M", rm.M), ("S", rm.S)):
        mapping.update({f"{name}_data": m.data, f"{name}_indices": m.indices, f"{name}_indptr": m.indptr,
                        f"{name}_shape": np.asarray(m.shape)})
    views = [plan.views[v] for v in view_ids]
    versions = {"python": platform.python_version(), "format": 1}
    for mod in ("numpy", "torch", "bpy", "smplx"):
        try:
            versions[mod] = __import__(mod).__version__ if mod != "bpy" else __import__("bpy").app.version_string
        except Exception:  # noqa: BLE001 - versions are informative only
            versions[mod] = None
    dataset = {
        "format": "hands-complement/1", "config": plan.cfg.to_dict(), "config_hash": plan.config_hash,
        "versions": versions,
        "counts": {"poses": len(pose_ids), "views": len(view_ids), "samples": len(pose_ids) * len(view_ids)},
        "hand_model": {"name": plan.model.name, "template_hash": plan.model.template_hash,
                       "num_vertices": plan.model.num_vertices},
        "pose_ids": [int(p) for p in pose_ids], "view_ids": [int(v) for v in view_ids],
    }
    write_tables(
        root, dataset,
        poses={"pose_ids": np.asarray(pose_ids, dtype=np.int64), "params": plan.poses[pose_ids],
               "vertices": plan.vertices[pose_ids].astype(np.float32),
               "keypoints": plan.keypoints[pose_ids].astype(np.float32), "dense": dense},
        views={"view_ids": np.asarray(view_ids, dtype=np.int64), "K": np.stack([v.K for v in views]),
               "R": np.stack([v.R for v in views]), "t": np.stack([v.t for v in views]),
               "longitude": np.array([v.longitude for v in views]),
               "latitude": np.array([v.latitude for v in views])},
        mapping=mapping,
        hdris=[e.to_dict() for e in plan.catalog],
    )
