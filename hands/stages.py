"""The stages pipelines are made of. Each takes the context and its settings
(keyword-only, with defaults), reads earlier outputs with ctx.need and adds its
own with ctx.give. Heavy imports stay inside the functions."""
from __future__ import annotations

import numpy as np

from pretrain.registry import Registry
from synth.rig import RigConfig

from . import stages_finetune, stages_pretrain, stages_sima
from .pipeline import PipelineError


def hand_model(ctx, *, model: str = "openhand"):
    """Load the hand model and check its topology and counts."""
    from synth import meshops
    from synth.hand_model import HandModel

    hm = HandModel(model)
    loops = meshops.boundary_loops(hm.faces)
    ctx.figure("model", f"{hm.name} ({hm.path.name}, template hash {hm.template_hash})")
    ctx.figure("vertices", hm.num_vertices)
    ctx.figure("faces", len(hm.faces))
    ctx.figure("keypoints", hm.joint_regressor.shape[0])
    ctx.figure("open boundary loops", len(loops))
    ctx.figure("edge-manifold", meshops.is_edge_manifold(hm.faces))
    ctx.give(model=hm, model_spec=model)


def pose_space(ctx, *, splay: bool = False, check: str = "base"):
    """Build the complement poses; measure self-penetration on 'base' (32), 'all' or 'none'."""
    import torch

    from synth.poses import NUM_BASE, complement_poses
    from synth.selfcontact import penetration_share

    if check not in ("base", "all", "none"):
        raise ValueError(f"pose_space: check must be 'base', 'all' or 'none', got {check!r}")
    hm = ctx.need("model", "hand_model")
    poses = complement_poses(model=hm, splay=splay)
    np.save(ctx.out / "poses.npy", poses)
    ctx.figure("poses", len(poses))
    if check != "none":
        ids = np.arange(NUM_BASE if check == "base" else len(poses))
        with torch.no_grad():
            verts, _ = hm(torch.as_tensor(poses[ids], dtype=torch.float32))
        share = penetration_share(verts.double().numpy(), hm.faces)
        worst = int(ids[share.argmax()])
        ctx.figure(f"worst self-penetration ({check} poses)", f"{100 * share.max():.2f} % (pose {worst})")
    ctx.give(poses=poses)


def render_mesh(ctx):
    """The render mesh (OpenHand 2's sculpted mesh, else one Loop subdivision step) and the matrix mapping it
    back (checked over all poses)."""
    import torch

    from synth.render_mesh import render_mesh_for

    hm = ctx.need("model", "hand_model")
    poses = ctx.need("poses", "pose_space")
    rm = render_mesh_for(hm)
    with torch.no_grad():
        verts = hm(torch.as_tensor(poses, dtype=torch.float32))[0].double().numpy()
    err = np.abs(rm.to_model(rm.pose(hm, poses, verts)) - verts).max()
    ctx.figure("dense vertices", rm.num_vertices)
    ctx.figure("dense faces", len(rm.faces))
    ctx.figure("max |M @ dense - verts| over all poses (mm)", f"{1000 * err:.2e}")
    ctx.give(render_mesh=rm)


def camera_rig(ctx, *, radius: float = RigConfig.radius, fov_deg: float = RigConfig.fov_deg,
               image_size: int = RigConfig.image_size,
               preview_pose: int = 1000):
    """The 216 views; coverage of every pose-view pair; a picture of a pose seen from the rig."""
    import torch

    from synth.pictures import grid, labelled, render_view
    from synth.rig import MARGIN, RigConfig, build_views, coverage

    hm = ctx.need("model", "hand_model")
    poses = ctx.need("poses", "pose_space")
    cfg = RigConfig(radius=radius, fov_deg=fov_deg, image_size=image_size)
    rest = hm.joint_regressor @ hm.template
    views = build_views(rest, cfg)
    with torch.no_grad():
        verts, kps = (x.double().numpy() for x in hm(torch.as_tensor(poses, dtype=torch.float32)))
    margins, fills = coverage(verts, views, image_size)
    ctx.figure("views", len(views))
    ctx.figure("pose-view pairs", margins.size)
    ctx.figure("smallest margin (fraction of image)", f"{margins.min():.4f} (required {MARGIN})")
    ctx.figure("median bbox fill", f"{np.median(fills):.3f}")
    if not 0 <= preview_pose < len(poses):
        raise ValueError(f"camera_rig: preview_pose {preview_pose} is not in 0..{len(poses) - 1}")
    size = min(image_size, 160)
    scale = size / image_size
    tiles = []
    for m in range(6):
        for k in (0, 9, 18, 27):
            v = views[m * 36 + k]
            K = v.K.copy()
            K[:2] *= scale
            K[:2, 2] = (size - 1) / 2.0
            tiles.append(labelled(render_view(verts[preview_pose], hm.faces, K, v.R, v.t, size,
                                              keypoints=kps[preview_pose]), f"view {v.view_id}"))
    path = ctx.out / "rig_views.png"
    grid(tiles, columns=4).save(path)
    ctx.picture(path, f"pose {preview_pose} from 24 of the 216 rig views (rows: latitude 0-75 deg; "
                      "columns: longitude 0, 90, 180, 270 deg)")
    ctx.give(views=views, rig=cfg)


def hand_picture(ctx, *, poses: list = (0, 31, 1, 6, 24, 700), size: int = 256):
    """The hand in several complement poses, from the back and the palm side."""
    import torch

    from synth.pictures import hand_sheet
    from synth.render_mesh import rendered_surface
    from synth.poses import pose_name
    from synth.rig import rig_anchors

    hm = ctx.need("model", "hand_model")
    all_poses = ctx.need("poses", "pose_space")
    ids = list(poses)
    bad = [i for i in ids if not 0 <= i < len(all_poses)]
    if bad:
        raise ValueError(f"hand_picture: pose ids {bad} are not in 0..{len(all_poses) - 1}")
    with torch.no_grad():
        verts, kps = (x.double().numpy() for x in hm(torch.as_tensor(all_poses[ids], dtype=torch.float32)))
    labels = [f"pose {i}: {pose_name(i)}" for i in ids]
    rest = hm.joint_regressor @ hm.template
    wrist, centre, palm = rig_anchors(rest)
    surface, faces = rendered_surface(hm, all_poses[ids], verts)   # the sculpted mesh the renderer shows
    sheet = hand_sheet(surface, kps, faces, labels, size=size, palm_normal=palm, finger_dir=centre - wrist)
    path = ctx.out / "hand.png"
    sheet.save(path)
    ctx.picture(path, "complement poses (mask bit 0 = thumb ... bit 4 = little bent), back and palm views")


def render(ctx, *, poses: list = (0, 31, 700), views: list = (0, 20, 45, 75, 110, 150, 180, 210),
           resolution: int = 128, samples: int = 16, workers: int = 2, skies: int = 2, seed: int = 0,
           folder: str = "complement", settings: dict | None = None, overwrite: bool = False):
    """Render complement shards with Blender (Ray with `workers` local workers; 0: in-process). `settings`:
    any other RenderConfig fields, e.g. {occluder_prob: 0.3, skin_run_length: 1}. A former run's dataset in
    the folder is continued when the config is the same (complete shards skipped, the plan the union of its
    poses / views and these); one of another config is refused unless `overwrite: true` (or `hands run
    --overwrite`), which replaces it."""
    from synth.distribute import plan_dataset, render_dataset
    from synth.render_config import RenderConfig

    # the model as the user named it ('openhand', 'mano' or a path): the dataset's config
    # hash must not depend on where the package is installed
    spec = ctx.need("model_spec", "hand_model")
    own = {"seed": seed, "model": spec, "resolution": resolution, "samples": samples, "hdri_skies": skies}
    twice = sorted(set(own) & set(settings or {}))
    if twice:
        raise ValueError(f"render: settings {twice} are the stage's own (seed, resolution, samples, skies) or the "
                         "hand_model stage's (model); set them there")
    cfg = RenderConfig.from_dict({"threads": 1 if workers > 1 else 0, **own, **(settings or {})})
    root = ctx.out / folder
    # only a dataset of another config is replaced (a former run of the same config is continued, as before)
    replace = bool(plan_dataset(cfg, root, list(poses), list(views)).other) and (overwrite or ctx.overwrite)
    summary = render_dataset(cfg, root, list(poses), list(views), workers=workers, progress=True,
                             overwrite=replace,
                             overwrite_hint="the render stage's setting overwrite: true (--set render.overwrite=true) "
                                            "or hands run --overwrite")
    for line in summary.lines():
        print(f"  {line}")
    if summary.failed:
        raise RuntimeError(f"render: {len(summary.failed)} shard(s) failed: {summary.failed}")
    ctx.figure("shards", f"{len(summary.done)} rendered, {len(summary.skipped)} already complete")
    ctx.figure("images rendered", summary.images)
    if summary.images:
        ctx.figure("seconds per image", f"{summary.seconds / summary.images:.3f}")
    ctx.give(dataset=root)


def render_preview(ctx, *, count: int = 12, columns: int = 6, realism: int = 8):
    """Read the rendered shards back and draw 2D keypoints and mask outlines on a grid; and a contact sheet
    of `realism` random samples as rendered, at full size, beside their label maps."""
    from synth.pictures import contact_sheet, grid, labelled, preview_tile
    from synth.reader import ComplementDataset

    ds = ComplementDataset(ctx.need("dataset", "render"))
    idx = np.linspace(0, len(ds) - 1, min(count, len(ds))).round().astype(int)
    tiles = []
    for i in idx:
        s = ds[int(i)]
        tiles.append(labelled(preview_tile(s), f"{s['key']} {s['hdri_id']}"))
    path = ctx.out / "renders.png"
    grid(tiles, columns=columns).save(path)
    ctx.figure("samples in dataset", len(ds))
    ctx.picture(path, "rendered samples read back from the shards: 2D keypoints and the mask outline (cyan)")
    if realism:
        sheet = ctx.out / "realism.png"
        contact_sheet(ds, count=realism, columns=4).save(sheet)
        ctx.picture(sheet, "random samples as rendered (forearm, skin, occluders, camera effects) and their "
                           "label maps: hand white, forearm orange, occluders blue")


# name -> stage function (a pretrain.registry.Registry; a new stage is a keyword-only function registered here)
STAGES = Registry("stage", {
    "hand_model": hand_model,
    "pose_space": pose_space,
    "render_mesh": render_mesh,
    "camera_rig": camera_rig,
    "hand_picture": hand_picture,
    "render": render,
    "render_preview": render_preview,
    "pretrain": stages_pretrain.pretrain,
    "pretrain_preview": stages_pretrain.pretrain_preview,
    "finetune": stages_finetune.finetune,
    "evaluate": stages_finetune.evaluate,
    "sima_mvr": stages_sima.sima_mvr,
    "sima_svr": stages_sima.sima_svr,
}, normalise=str, error=PipelineError)
