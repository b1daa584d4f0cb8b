"""Render one shard (all or some views of one pose) and write it. No Ray here.

`prepare(cfg)` builds what every shard of a dataset shares (hand model, poses,
rig, render mesh, HDRI catalog) once per process; `render_shard` renders the
views of one pose in one persistent Blender scene and hands the samples to the
shard writer, which makes the shard appear atomically. One sample
(`render_sample`) is synth.scene.draw_scene -> the Blender view's `apply` ->
render -> `annotate`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .render_config import RenderConfig
from .scene import SampleScene, draw_scene
from .shards import sample_key
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
        from .blender_scene import BlenderScene, blender_output_captured

        drop_scene()  # one scene per process
        regions = rest = None
        if plan.cfg.skin_detail:
            from .skin_regions import region_weights

            regions = region_weights(plan.model, plan.render_mesh)
            rest = plan.render_mesh.rest_vertices(plan.model)
        with blender_output_captured():      # Cycles' device probes print to stdout while the scene is built
            _SCENES[plan.config_hash] = BlenderScene(plan.cfg, plan.render_mesh.faces,
                                                     plan.render_mesh.num_vertices, regions=regions,
                                                     rest_vertices=rest, arm=plan.arm)
    return _SCENES[plan.config_hash]


def drop_scene() -> None:
    """Forget the process's Blender scene (its temporary folder removed): the next scene_for builds a fresh
    one."""
    for scene in _SCENES.values():
        close = getattr(scene, "close", None)
        if close is not None:
            close()
    _SCENES.clear()


def annotate(plan: DatasetPlan, scene: SampleScene, depth: np.ndarray, mask: np.ndarray) -> dict:
    """The sample's JSON: camera, keypoints and their visibility in the rendered `depth` and hand `mask`, the
    crop box, and the scene's records (SampleScene.records)."""
    size = plan.cfg.resolution
    kp_cam = plan.keypoints[scene.pose_id] @ scene.R.T + scene.t
    uv = kp_cam[:, :2] / kp_cam[:, 2:3] * scene.K[0, 0] + scene.K[:2, 2]
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
        "pose_id": scene.pose_id, "view_id": scene.view_id,
        "K": scene.K.tolist(), "R": scene.R.tolist(), "t": scene.t.tolist(),
        "image_size": [size, size],
        "keypoints_2d": uv.tolist(), "keypoints_3d": kp_cam.tolist(), "visibility": visible.tolist(),
        "crop_box": crop, "seed": plan.cfg.seed,
        "hand_model": plan.model.name, "template_hash": plan.model.template_hash,
        **scene.records(),
    }


def camera_image(scene: SampleScene, lin: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """The linear render through the scene's camera and sensor effects (synth/camera_effects.py) as 8-bit
    sRGB."""
    from .camera_effects import apply_effects_linear

    if not scene.camera_effects.get("enabled"):
        return np.round(linear_to_srgb(lin) * 255.0).astype(np.uint8)
    return apply_effects_linear(lin, depth, scene.camera_effects, float(scene.K[0, 0]),
                                noise_seed=list(scene.noise_seed))


def render_sample(plan: DatasetPlan, renderer, pose_id: int, view_id: int, occluders: list | None = None) -> tuple:
    """(rgb, depth, labels, annotation, render seconds) of one sample: its scene drawn (synth.scene.draw_scene;
    `occluders` replaces the drawn ones, tests place their own), shown by `renderer` (a BlenderScene, or
    anything with `apply(scene)` and `render_linear()`), rendered and annotated."""
    from .shards import MASK_VALUES

    scene = draw_scene(plan, pose_id, view_id, occluders)
    renderer.apply(scene)
    t = time.time()
    lin, depth, labels = renderer.render_linear()
    seconds = time.time() - t
    rgb = camera_image(scene, lin, depth)
    annotation = annotate(plan, scene, depth, labels == MASK_VALUES["hand"])
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
    renderer = scene_for(plan)
    render_seconds = 0.0
    with ShardWriter(root, pose_id, plan.config_hash) as writer:
        for view_id in view_ids:
            rgb, depth, labels, annotation, seconds = render_sample(plan, renderer, pose_id, view_id)
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
    versions = {"python": platform.python_version()}   # and "format", which write_tables fills in
    for mod in ("numpy", "torch", "bpy", "smplx"):
        try:
            versions[mod] = __import__(mod).__version__ if mod != "bpy" else __import__("bpy").app.version_string
        except Exception:  # noqa: BLE001 - versions are informative only
            versions[mod] = None
    dataset = {
        "config": plan.cfg.to_dict(), "config_hash": plan.config_hash,
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
