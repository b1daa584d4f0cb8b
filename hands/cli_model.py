"""The hand model's commands: `hands show hand`, `hands mano convert`, `hands poses check`, `hands rig check`,
`hands openhand build`."""
from __future__ import annotations

from pathlib import Path


def _cmd_show_hand(args) -> None:
    import torch

    from synth.hand_model import HandModel
    from synth.pictures import hand_sheet
    from synth.render_mesh import rendered_surface
    from synth.poses import complement_poses, pose_name
    from synth.rig import rig_anchors

    hm = HandModel(args.model)
    poses = complement_poses(model=hm)
    ids = [int(i) for i in args.poses.split(",")]
    bad = [i for i in ids if not 0 <= i < len(poses)]
    if bad:
        raise ValueError(f"--poses: ids {bad} are not in 0..{len(poses) - 1}")
    with torch.no_grad():
        verts, kps = (x.double().numpy() for x in hm(torch.as_tensor(poses[ids], dtype=torch.float32)))
    wrist, centre, palm = rig_anchors(hm.joint_regressor @ hm.template)
    surface, faces = rendered_surface(hm, poses[ids], verts)   # the sculpted mesh the renderer shows
    sheet = hand_sheet(surface, kps, faces, [f"pose {i}: {pose_name(i)}" for i in ids], size=args.size,
                       palm_normal=palm, finger_dir=centre - wrist)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out} ({len(ids)} poses x 2 views, {hm.name})")


def _cmd_mano_convert(args) -> None:
    from synth.mano_io import convert_to_plain

    print(f"wrote {convert_to_plain(args.src, args.dst)} (plain numpy/scipy, readable without chumpy)")


def _cmd_poses_check(args) -> None:
    import numpy as np
    import torch
    from tqdm import tqdm

    from synth.hand_model import HandModel
    from synth.poses import complement_poses, pose_name
    from synth.selfcontact import penetration_share

    hm = HandModel(args.model)
    poses = complement_poses(model=hm, splay=args.splay)
    ids = np.arange(len(poses))[: args.limit] if args.limit else np.arange(len(poses))
    shares = np.empty(len(ids))
    for s in tqdm(range(0, len(ids), 32), desc="self-penetration", unit="batch"):
        chunk = ids[s:s + 32]
        with torch.no_grad():
            verts = hm(torch.as_tensor(poses[chunk], dtype=torch.float32))[0].double().numpy()
        shares[s:s + len(chunk)] = penetration_share(verts, hm.faces)
    order = np.argsort(shares)[::-1][:5]
    print(f"poses checked: {len(ids)}; mean {100 * shares.mean():.3f} %")
    for i in order:
        print(f"  pose {ids[i]:5d} ({pose_name(int(ids[i]), args.splay)}): {100 * shares[i]:.2f} % of "
              "vertices have their 1 mm outward point inside the hand")
    print(f"worst pose {ids[order[0]]}: {100 * shares[order[0]]:.2f} %")


def _cmd_rig_check(args) -> None:
    import numpy as np
    import torch

    from synth.hand_model import HandModel
    from synth.poses import complement_poses
    from synth.rig import MARGIN, RigConfig, build_views, coverage

    hm = HandModel(args.model)
    poses = complement_poses(model=hm)
    cfg = RigConfig(radius=args.radius or RigConfig.radius, fov_deg=args.fov or RigConfig.fov_deg,
                    image_size=args.size or RigConfig.image_size)
    with torch.no_grad():
        verts = hm(torch.as_tensor(poses, dtype=torch.float32))[0].double().numpy()
    margins, fills = coverage(verts, build_views(hm.joint_regressor @ hm.template, cfg), cfg.image_size)
    p, v = np.unravel_index(margins.argmin(), margins.shape)
    print(f"pairs: {margins.size}; smallest margin {margins.min():.4f} of the image (pose {p}, view {v}; "
          f"required {MARGIN}); median fill {np.median(fills):.3f} (required 0.35)")


def _cmd_openhand_build(args) -> None:
    from synth.openhand.build import write_asset

    print(f"wrote {write_asset(Path(args.out)) if args.out else write_asset()}")


def add_parser(sub) -> None:
    show = sub.add_parser("show", help="pictures to look at").add_subparsers(dest="what", required=True)
    h = show.add_parser("hand", help="the hand model in several poses, two views each (PNG)")
    h.add_argument("--model", default="openhand",
                   help="'openhand' (default: OpenHand 2), 'openhand1', 'mano' ($MANO_MODEL_PATH) or a path")
    h.add_argument("--poses", default="0,31,1,6,24,700", help="comma-separated complement pose ids")
    h.add_argument("--size", type=int, default=256)
    h.add_argument("--out", default="hand.png")
    h.set_defaults(fn=_cmd_show_hand)

    mano = sub.add_parser("mano", help="MANO model files").add_subparsers(dest="what", required=True)
    c = mano.add_parser("convert", help="write a plain-numpy copy of a MANO pickle (no chumpy needed)")
    c.add_argument("src")
    c.add_argument("dst")
    c.set_defaults(fn=_cmd_mano_convert)

    poses = sub.add_parser("poses", help="the complement pose space").add_subparsers(dest="what", required=True)
    pc = poses.add_parser("check", help="self-penetration of every pose; prints the worst")
    pc.add_argument("--model", default="openhand")
    pc.add_argument("--limit", type=int, default=0, help="check only the first N poses")
    pc.add_argument("--splay", action="store_true", help="include the optional spread base poses")
    pc.set_defaults(fn=_cmd_poses_check)

    rig = sub.add_parser("rig", help="the camera rig").add_subparsers(dest="what", required=True)
    rc = rig.add_parser("check", help="margin and fill of every pose-view pair")
    rc.add_argument("--model", default="openhand")
    rc.add_argument("--radius", type=float, help="metres (default: the rig's)")
    rc.add_argument("--fov", type=float, help="degrees (default: the rig's)")
    rc.add_argument("--size", type=int, help="image size in pixels (default: the rig's)")
    rc.set_defaults(fn=_cmd_rig_check)

    oh = sub.add_parser("openhand", help="OpenHand 1, the procedural hand (OpenHand 2: make openhand2)"
                        ).add_subparsers(dest="what", required=True)
    ob = oh.add_parser("build", help="regenerate the OpenHand 1 asset from its procedural description")
    ob.add_argument("--out", help="write here instead of the bundled asset")
    ob.set_defaults(fn=_cmd_openhand_build)
