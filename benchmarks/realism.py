"""Do our renders look like hands to a detector trained on real photographs?

    make detector                                  # once: .venv-detector with MediaPipe Hands
    .venv/bin/python benchmarks/realism.py [--out runs/realism] [--looks default,no_effects,...]
        [--poses 0,31,300,700,1100,1400] [--views 0,13,20,...] [--set KEY=VALUE] [--resolution 128]
        [--samples 16]
        [--detector-size 256] [--real ../shared/realhands/asl/coco_hand.json] [--workers 2]

For every look (benchmarks/looks.py: the default, and realism settings switched off), renders the
poses x views (the demo's 6 x 12 by default, resumable per look in OUT/renders/LOOK), upscales each
image to the detector's size and runs MediaPipe Hands (benchmarks/hand_detector.py, in its own
interpreter) on it; the real hands of `--real` (a COCO hand keypoint file) are cut as the shared frames
are (the square box around the labelled keypoints x 2), brought down to --resolution and up the same
way, so both sides carry the same detail; unlabelled keypoints count nowhere. Prints and
writes (OUT/realism.md, OUT/realism.json):

- per look: the detection rate, the median and 90th percentile of the landmark disagreement (the mean
  over 21 keypoints of |detector - our label| / the labels' box diagonal, over detected samples);
- per keypoint (default look and real frames): the median disagreement and the median offset along
  the finger (positive: the detector puts it further out than our label);
- per latitude band of the rig (views m*36 .. m*36+35, m = 0..5): detection and median disagreement;
- OUT/worst.png: per look, the samples with the largest disagreement and the misses, our labels in
  green, the detector's in red.

Asserts nothing; it measures (the README's realism table comes from it).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import realism_metrics as rm  # noqa: E402
from benchmarks.looks import LOOKS, look_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO_POSES = [0, 31, 300, 700, 1100, 1400]
DEMO_VIEWS = [0, 13, 20, 45, 60, 75, 90, 110, 130, 150, 180, 210]
DEFAULT_LOOKS = ["default", "legacy", "no_effects", "no_effects_occluders", "no_effects_occluders_forearm", "flat"]
DEFAULT_REAL = ROOT.parent / "shared" / "realhands" / "asl" / "coco_hand.json"
REAL_BOX = 2.0   # the shared real frames are the keypoints' square box x 2.0


def rescale_points(points: np.ndarray, factor: float) -> np.ndarray:
    """Pixel-centre coordinates of an image resized by `factor` (centre of the top-left pixel at 0)."""
    return (np.asarray(points, np.float64) + 0.5) * factor - 0.5


def resized(img, size: int):
    from PIL import Image

    return img.resize((size, size), Image.BICUBIC)


def render_look(name: str, args) -> Path:
    from synth.distribute import render_dataset

    folder = args.out / "renders" / name
    cfg = look_config(name, resolution=args.resolution, samples=args.samples, seed=args.seed,
                      threads=1 if args.workers else 0, **dict(args.set))
    t = time.time()
    s = render_dataset(cfg, folder, args.poses, args.views, workers=args.workers)
    if s.failed:
        raise RuntimeError(f"rendering look {name} into {folder} failed for poses {sorted(s.failed)}: {s.failed}")
    print(f"[render] {name}: {len(args.poses)} poses x {len(args.views)} views ({len(s.skipped)} shards already "
          f"there, {time.time() - t:.0f} s)", flush=True)
    return folder


def render_items(name: str, folder: Path, work: Path, size: int) -> list:
    """Each rendered sample upscaled to `size` in `work`, with its labels at that size."""
    from PIL import Image

    from synth.reader import ComplementDataset

    ds = ComplementDataset(folder)
    items = []
    for i, ref in enumerate(ds.samples):
        raw = ds.read_raw(i)
        ann = json.loads(raw["json"])
        img = Image.open(io.BytesIO(raw["rgb"])).convert("RGB")
        path = work / f"{name}_{ref.key}.png"
        resized(img, size).save(path)
        items.append({"look": name, "id": ref.key, "view": int(ref.view_id), "path": str(path),
                      "labels": rescale_points(ann["keypoints_2d"], size / img.width).tolist()})
    return items


def real_items(coco: Path, work: Path, resolution: int, size: int, count: int) -> list:
    """The real frames as the renders are seen: the square box around the labelled keypoints x REAL_BOX
    (how the shared frames were cut) resampled to `resolution`, then up to `size`; a left hand mirrored."""
    from PIL import Image

    from pretrain.coco_hand import find_coco_json, load_hand, parse_coco_hand
    from pretrain.data2d import crop_transform
    from pretrain.image_ops import warp_image

    items = []
    for rec in parse_coco_hand(find_coco_json(coco)).records[:count or None]:
        rgb, kp = load_hand(rec)
        A = crop_transform(kp[rec.labelled], resolution, REAL_BOX)
        path = work / f"real_{len(items):05d}.png"
        resized(Image.fromarray(warp_image(rgb, A, resolution)), size).save(path)
        labels = rescale_points(kp @ A[:2, :2].T + A[:2, 2], size / resolution)
        items.append({"look": "real", "id": rec.key or str(rec.annotation_id), "view": None, "path": str(path),
                      "labels": labels.tolist(), "labelled": rec.labelled.tolist()})
    return items


def run_detector(items: list, work: Path, python: Path) -> None:
    """Adds 'detected' and 'landmarks' to each item (one detector process for all)."""
    if not python.exists():
        raise FileNotFoundError(f"{python} not found: run `make detector` first (it builds .venv-detector with "
                                "mediapipe==0.10.14), or pass --detector-python")
    listing, result = work / "images.json", work / "landmarks.json"
    listing.write_text(json.dumps([it["path"] for it in items]))
    t = time.time()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([str(python), str(ROOT / "benchmarks" / "hand_detector.py"), str(listing), str(result)],
                          env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the hand detector failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    for it, r in zip(items, json.loads(result.read_text())):
        it["detected"], it["landmarks"] = bool(r["detected"]), r["landmarks"]
    print(f"[detect] {len(items)} images in {time.time() - t:.0f} s", flush=True)


def score(items: list) -> dict:
    """The figures of one look (see realism_metrics); only labelled keypoints count."""
    errors, signed, bands = [], [], {}
    for it in items:
        if it["detected"]:
            lab = it.get("labelled")
            e = rm.keypoint_errors(it["landmarks"], it["labels"], lab)
            it["error"] = float(np.nanmean(e))
            errors.append(e)
            signed.append(rm.signed_along_finger(it["landmarks"], it["labels"], lab))
        if it["view"] is not None:
            bands.setdefault(it["view"] // 36, []).append(it)
    out = {**rm.summary([it["detected"] for it in items], errors), "per_keypoint": rm.per_keypoint(errors, signed)}
    out["per_band"] = {int(m): rm.summary([it["detected"] for it in band],
                                          [rm.keypoint_errors(it["landmarks"], it["labels"], it.get("labelled"))
                                           for it in band if it["detected"]]) for m, band in sorted(bands.items())}
    return out


def markdown(results: dict, looks: list) -> str:
    f = lambda x: "-" if x != x else f"{x:.3f}"  # noqa: E731 - NaN when nothing was detected
    lines = ["| look | samples | detector finds a hand | median disagreement | 90th percentile |",
             "| --- | --- | --- | --- | --- |"]
    for name in looks + ["real"]:
        r = results.get(name)
        if r:
            lines.append(f"| {name} | {r['samples']} | {r['detection_rate']:.2f} | {f(r['median'])} | {f(r['p90'])} |")
    for name in [looks[0], "real"]:
        r = results.get(name)
        if r and r["per_keypoint"]:
            lines += ["", f"Per keypoint ({name}): median disagreement / median offset along the finger "
                          "(+: the detector's point is further out)", "",
                      "| keypoint | median | along finger |", "| --- | --- | --- |"]
            lines += [f"| {k['keypoint']} | {k['median']:.3f} | {k['signed']:+.3f} |" for k in r["per_keypoint"]]
    lines += ["", "Per latitude band (m: views m*36 .. m*36+35, latitude m x 15 deg): detection / median", "",
              "| look | " + " | ".join(f"m={m}" for m in range(6)) + " |", "| --- |" + " --- |" * 6]
    for name in looks:
        bands = results[name]["per_band"]
        cells = [f"{bands[m]['detection_rate']:.2f} / {f(bands[m]['median'])}" if m in bands else "-" for m in range(6)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def draw_skeleton(draw, points, colour, labelled=None, width: int = 2) -> None:
    """One skeleton in one colour (two are drawn over each other; synth.pictures colours by finger)."""
    from synth.hand_model import FREIHAND_PARENTS

    pts = [tuple(map(float, p)) for p in points]
    lab = [True] * len(pts) if labelled is None else labelled
    for k, p in enumerate(FREIHAND_PARENTS):
        if p >= 0 and lab[k] and lab[p]:
            draw.line([pts[p], pts[k]], fill=colour, width=width)
    for (x, y), ok in zip(pts, lab):
        if ok:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)


def worst_sheet(by_look: dict, path: Path, per_row: int = 8, size: int = 256) -> None:
    """Per look a row: the largest disagreements, then misses; green ours, red the detector's."""
    from PIL import Image, ImageDraw

    rows = list(by_look.items())
    sheet = Image.new("RGB", (per_row * size, len(rows) * (size + 18)), "white")
    for r, (name, items) in enumerate(rows):
        hits = sorted((it for it in items if it["detected"]), key=lambda it: -it["error"])
        misses = [it for it in items if not it["detected"]]
        chosen = (hits[:per_row // 2] + misses[:per_row // 2] + hits[per_row // 2:])[:per_row]
        y0 = r * (size + 18)
        ImageDraw.Draw(sheet).text((4, y0 + 3), f"{name}: worst detections (red: detector, green: ours), then misses",
                                   fill="black")
        for c, it in enumerate(chosen):
            image = Image.open(it["path"]).convert("RGB")
            factor = size / image.width
            tile = image.resize((size, size))
            d = ImageDraw.Draw(tile)
            draw_skeleton(d, rescale_points(it["labels"], factor), (40, 220, 60), it.get("labelled"))
            if it["detected"]:
                draw_skeleton(d, rescale_points(it["landmarks"], factor), (230, 40, 40))
                d.text((4, 4), f"{it['id']}  {it['error']:.3f}", fill="yellow")
            else:
                d.text((4, 4), f"{it['id']}  missed", fill="yellow")
            sheet.paste(tile, (c * size, y0 + 18))
    sheet.save(path)


def setting(text: str) -> tuple:
    """KEY=VALUE with VALUE read as JSON, a bare word staying a string (not YAML: YAML reads `off` as False,
    and `camera_effects=off` must stay 'off')."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def id_list(total: int, what: str):
    """An argparse type: ids as `hands render` takes them ('all', 'a:b', a comma list), checked."""
    from hands.cli_render import parse_ids

    def parse(text: str) -> list:
        try:
            return parse_ids(text, total, what)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return parse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/realism"))
    ap.add_argument("--looks", default=",".join(DEFAULT_LOOKS), help=f"comma-separated, of: {', '.join(LOOKS)}")
    ap.add_argument("--poses", type=id_list(1520, "pose"), default=DEMO_POSES)
    ap.add_argument("--views", type=id_list(216, "view"), default=DEMO_VIEWS)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    ap.add_argument("--seed", type=int, default=0, help="the renders' seed (skins, worlds, effects)")
    ap.add_argument("--detector-size", type=int, default=256, help="images are upscaled to this for the detector")
    ap.add_argument("--real", type=Path, default=DEFAULT_REAL, help="a COCO hand keypoint file of real photos")
    ap.add_argument("--real-count", type=int, default=0, help="real frames to use (0: all)")
    ap.add_argument("--workers", type=int, default=2, help="local Ray render workers (0: this process)")
    ap.add_argument("--set", action="append", default=[], type=setting, metavar="KEY=JSON",
                    help="a render setting over every look, e.g. --set occluder_prob=0.1 (repeatable; JSON values)")
    ap.add_argument("--detector-python", type=Path, default=ROOT / ".venv-detector" / "bin" / "python")
    args = ap.parse_args()
    looks = [x.strip() for x in args.looks.split(",") if x.strip()]
    unknown = [x for x in looks if x not in LOOKS]
    if unknown:
        raise SystemExit(f"unknown look(s) {unknown}; looks: {', '.join(LOOKS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    folders = {name: render_look(name, args) for name in looks}
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        work = Path(tmp)
        items = [it for name in looks for it in render_items(name, folders[name], work, args.detector_size)]
        if args.real and args.real.exists():
            items += real_items(args.real, work, args.resolution, args.detector_size, args.real_count)
        else:
            print(f"[real] {args.real} not found: no real-photo reference row", flush=True)
        run_detector(items, work, args.detector_python)
        by_look = {}
        for it in items:
            by_look.setdefault(it["look"], []).append(it)
        results = {name: score(group) for name, group in by_look.items()}
        worst_sheet(by_look, args.out / "worst.png")
    table = markdown(results, looks)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    (args.out / "realism.json").write_text(json.dumps({"settings": settings, "looks": {n: LOOKS[n] for n in looks},
                                                       "results": results,
                                                       "wall_seconds": round(time.time() - t0, 1)}, indent=1))
    (args.out / "realism.md").write_text(table + "\n")
    print(table)
    print(f"\n{args.out / 'realism.md'}, {args.out / 'worst.png'} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
