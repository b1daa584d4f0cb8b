"""Render quality per cost: seconds per image and the hand region's PSNR against a high-sample reference.

    .venv/bin/python benchmarks/render_quality.py [--pose 700] [--views 0,45,80,130] [--resolution 256]
                                                  [--reference-samples 1024] [--settings 16,16a,32,64]

The same samples (one pose, a few views; camera effects and occluders off, so only the renderer's noise
differs) are rendered at each setting and once at --reference-samples with OIDN's ACCURATE prefilter, the
reference (with the skin's random-walk subsurface scattering, Cycles's more exact method, whatever the
settings use). For each setting: wall seconds per image (render_shard in this process, after a warm-up render
of the first view in a fresh scene, so the scene build is not counted) and the PSNR of the 8-bit sRGB image
against the reference's, over the hand's pixels (the reference's hand mask) and over the whole image:
median and worst of the views. A setting is `<samples>[a|n]`: `a` OIDN with the ACCURATE prefilter, `n` no
denoiser, else OIDN with the FAST prefilter; after a ':' RenderConfig settings or scene.cycles properties
(see `setting`), e.g. '64a:skin_subsurface=random_walk'. Prints a table; asserts nothing.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402

from synth.render_config import RenderConfig  # noqa: E402
from synth.render_shard import drop_scene, render_shard  # noqa: E402


def setting(text: str) -> dict:
    """'16' -> 16 spp + OIDN FAST; '16a' -> + ACCURATE prefilter; '16n' -> no denoiser; after a ':',
    '+'-separated KEY=VALUE items: a RenderConfig setting ('64a:skin_subsurface=burley') or any other
    scene.cycles property ('16:max_bounces=4', a lever to try before it becomes a setting)."""
    from dataclasses import fields

    known = {f.name for f in fields(RenderConfig)}
    text, _, extras = text.strip().partition(":")
    config, cycles = {}, {}
    for item in filter(None, extras.split("+")):
        key, _, value = item.partition("=")
        key, value = key.strip(), value.strip()
        value = value if value.isalpha() or "_" in value else float(value) if "." in value else int(value)
        (config if key in known else cycles)[key] = value
    text = text.strip()
    kind = text[-1] if text[-1] in "an" else ""
    samples = int(text[:-1] if kind else text)
    if kind == "n":
        return {"samples": samples, "denoiser": "none", **config, "cycles": cycles}
    return {"samples": samples, "denoiser": "oidn", "denoise_prefilter": "ACCURATE" if kind == "a" else "FAST",
            **config, "cycles": cycles}


def label(s: dict) -> str:
    shown = ("samples", "denoiser", "denoise_prefilter", "skin_subsurface", "cycles")
    extra = f", {s.get('skin_subsurface', RenderConfig.skin_subsurface).replace('_', ' ')} skin"
    extra += "".join(f", {k} {v}" for k, v in s.items() if k not in shown)
    extra += "".join(f", {k} {v}" for k, v in s["cycles"].items())
    if s["denoiser"] == "none":
        return f"{s['samples']} spp, no denoiser{extra}"
    return f"{s['samples']} spp + OIDN ({s['denoise_prefilter']}){extra}"


def with_cycles(extra: dict):
    """render_shard's scene_for, setting `extra` on scene.cycles of every scene it builds."""
    import synth.render_shard as rs

    original = rs.scene_for

    def scene_for(plan):
        scene = original(plan)
        for key, value in extra.items():
            setattr(scene.scene.cycles, key, value)
        return scene
    return original, scene_for


def render(cfg: RenderConfig, pose: int, views: list) -> tuple:
    """({view: (rgb float HxWx3 in [0, 1], hand mask HxW)}, wall seconds per image after the warm-up)."""
    from synth.reader import ComplementDataset

    drop_scene()
    tmp = Path(tempfile.mkdtemp())
    try:
        render_shard(cfg, tmp, pose, views[:1])          # the warm-up: scene build, BVH, importance map
        shutil.rmtree(tmp / "shards")
        t = time.time()
        render_shard(cfg, tmp, pose, views)
        seconds = (time.time() - t) / len(views)
        from synth.render_shard import prepare, write_dataset_tables

        write_dataset_tables(tmp, prepare(cfg), [pose], views)
        out = {}
        for s in ComplementDataset(tmp):
            out[s["view_id"]] = (s["image"].numpy().transpose(1, 2, 0).astype(np.float64), s["mask"].numpy())
        return out, seconds
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pose", type=int, default=700)
    ap.add_argument("--views", default="0,45,80,130")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--reference-samples", type=int, default=1024)
    ap.add_argument("--reference-adaptive", choices=["on", "off"], default="off",
                    help="Cycles' adaptive sampling in the reference (off: every pixel gets every sample, so the "
                         "reference's own noise does not cap the PSNR)")
    ap.add_argument("--settings", default="16,32,32a,48a,64,64a,128,64a:skin_subsurface=random_walk",
                    help="comma-separated (see `setting`)")
    args = ap.parse_args()
    views = [int(v) for v in args.views.split(",")]
    base = RenderConfig(resolution=args.resolution, camera_effects="off", occluder_prob=0.0)
    import synth.render_shard as rs

    t = time.time()
    original, patched = with_cycles({"use_adaptive_sampling": args.reference_adaptive == "on"})
    rs.scene_for = patched
    try:
        ref, ref_s = render(replace(base, samples=args.reference_samples, denoise_prefilter="ACCURATE",
                                    skin_subsurface="random_walk"), args.pose, views)
    finally:
        rs.scene_for = original
    print(f"reference: {args.reference_samples} spp + OIDN (ACCURATE), random walk skin, adaptive sampling "
          f"{args.reference_adaptive}, "
          f"pose {args.pose}, views {views}, {args.resolution} px: {ref_s:.2f} s per image "
          f"({time.time() - t:.0f} s in all)", flush=True)
    print("| setting | s / image | hand PSNR median (worst), dB | image PSNR median (worst), dB |")
    print("| --- | --- | --- | --- |")
    for text in args.settings.split(","):
        s = setting(text)
        original, patched = with_cycles(s["cycles"])
        rs.scene_for = patched
        try:
            got, seconds = render(replace(base, **{k: v for k, v in s.items() if k != "cycles"}), args.pose, views)
        finally:
            rs.scene_for = original
        hand = [psnr(got[v][0][ref[v][1]], ref[v][0][ref[v][1]]) for v in views]
        whole = [psnr(got[v][0], ref[v][0]) for v in views]
        print(f"| {label(s)} | {seconds:.3f} | {statistics.median(hand):.1f} ({min(hand):.1f}) | "
              f"{statistics.median(whole):.1f} ({min(whole):.1f}) |", flush=True)


if __name__ == "__main__":
    main()
